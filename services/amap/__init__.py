"""高德 (AMap) Web Service API: the client (`client.py`), what it returns (`results.py`) and how it fails
(`errors.py`). Features import from here."""

from services.amap.client import AmapClient, AmapConnections, key_from_env
from services.amap.errors import (
    KEY_ENV,
    AmapBusy,
    AmapError,
    AmapKeyRejected,
    AmapNoKey,
    AmapNoRoute,
    AmapQuotaExceeded,
    AmapRequestFailed,
    AmapUnavailable,
)
from services.amap.results import (
    DayCast,
    Forecast,
    LiveWeather,
    Location,
    Poi,
    RoutePlan,
    TransitLeg,
    TransitPlan,
)

__all__ = [
    "KEY_ENV", "AmapBusy", "AmapClient", "AmapConnections", "AmapError", "AmapKeyRejected", "AmapNoKey",
    "AmapNoRoute", "AmapQuotaExceeded", "AmapRequestFailed", "AmapUnavailable", "DayCast", "Forecast",
    "LiveWeather", "Location", "Poi", "RoutePlan", "TransitLeg", "TransitPlan", "key_from_env",
]
