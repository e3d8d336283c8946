"""What the AMap client returns: small frozen dataclasses, parsed defensively from AMap's answers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


# -- parsed results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Location:
    name: str
    location: str  # "lng,lat" (GCJ-02), as AMap takes it back
    adcode: str = ""
    citycode: str = ""
    city: str = ""
    address: str = ""


@dataclass(frozen=True)
class LiveWeather:
    city: str
    weather: str
    temperature: str
    wind_direction: str
    wind_power: str
    humidity: str
    report_time: str


@dataclass(frozen=True)
class Forecast:
    city: str
    report_time: str
    casts: tuple[DayCast, ...]


@dataclass(frozen=True)
class DayCast:
    date: dt.date
    week: str
    day_weather: str
    night_weather: str
    day_temp: int | None
    night_temp: int | None
    day_wind: str
    day_power: str
    night_wind: str = ""
    night_power: str = ""


@dataclass(frozen=True)
class RoutePlan:
    distance_m: int
    duration_s: int | None
    steps: tuple[str, ...]
    taxi_cost: float | None = None  # driving only: route.taxi_cost, yuan
    tolls: float | None = None
    traffic_lights: int | None = None


@dataclass(frozen=True)
class TransitLeg:
    kind: str  # "walk" | "bus" | "railway" | "taxi"
    name: str = ""  # line name, e.g. 地铁1号线(古城--环球度假区)
    departure: str = ""
    arrival: str = ""
    stops: int | None = None  # via_num: stations passed between departure and arrival
    distance_m: int | None = None
    duration_s: int | None = None


@dataclass(frozen=True)
class TransitPlan:
    distance_m: int
    duration_s: int | None
    walking_m: int | None
    fee: float | None
    legs: tuple[TransitLeg, ...] = field(default_factory=tuple)

    @property
    def transfers(self) -> int:
        return max(0, sum(1 for leg in self.legs if leg.kind in ("bus", "railway")) - 1)


@dataclass(frozen=True)
class Poi:
    name: str
    address: str
    location: str
    distance_m: int | None = None
    rating: str = ""
    cost: str = ""
    adcode: str = ""
    citycode: str = ""
    city: str = ""


__all__ = ["DayCast", "Forecast", "LiveWeather", "Location", "Poi", "RoutePlan", "TransitLeg", "TransitPlan"]
