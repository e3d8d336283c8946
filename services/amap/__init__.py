"""高德 (AMap) Web Service API: the client (`client.py`), what it returns (`results.py`) and how it fails
(`errors.py`). Features import from here."""

from services.amap import errors, results
from services.amap.client import AmapClient, AmapConnections, key_from_env
from services.amap.errors import *  # noqa: F403 - the failures, listed in errors.__all__
from services.amap.results import *  # noqa: F403 - the answers, listed in results.__all__
from services.amap.settings import AmapSettings

__all__ = ["AmapClient", "AmapConnections", "AmapSettings", "key_from_env", *errors.__all__, *results.__all__]
