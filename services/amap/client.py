"""高德 (AMap) Web Service API client: geocoding, weather, walking/cycling/driving/transit routes, places.

One async httpx client with a timeout per request and tenacity retries for transient failures (network,
5xx, "too frequent"). Every AMap answer carries `status` ("1" ok / "0" failed), `info` and `infocode`;
failures become one of the `AmapError` subclasses below so callers can say something useful in Chinese.
Responses are parsed defensively into small dataclasses: AMap sends numbers as strings, and fields are
missing or `[]` instead of "" now and then.

The key comes from the environment (AMAP_KEY), never from config; it is sent as the `key` parameter and
never logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

import httpx
from loguru import logger
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from services.amap.errors import (
    KEY_ENV,
    AmapBusy,
    AmapError,
    AmapNoKey,
    AmapNoRoute,
    AmapRequestFailed,
    AmapUnavailable,
    error_for,
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
from services.amap.settings import AmapSettings


# -- defensive field readers ----------------------------------------------------------------------------
def _text(data: Any, key: str) -> str:
    """AMap sends `[]` for empty strings in places; treat anything non-string as empty."""
    value = data.get(key) if isinstance(data, Mapping) else None
    if isinstance(value, int | float):
        return str(value)
    return value.strip() if isinstance(value, str) else ""


def _number(data: Any, key: str) -> float | None:
    try:
        return float(_text(data, key))
    except ValueError:
        return None


def _int(data: Any, key: str) -> int | None:
    number = _number(data, key)
    return None if number is None else int(round(number))


def _map(data: Any, key: str) -> Mapping[str, Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _list(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _duration(path: Mapping[str, Any]) -> int | None:
    """v5 puts the duration in `cost.duration` (show_fields=cost); some answers have a top-level one."""
    return _int(_map(path, "cost"), "duration") or _int(path, "duration")


def _parse_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


_READERS: dict[str, Callable[[Any, str], Any]] = {"str": _text, "int | None": _int}


def _weather_fields(item: Mapping[str, Any], result: type, besides: tuple[str, ...] = ()) -> dict[str, Any]:
    """AMap's weather answers name each value as our field does, less the underscores (day_temp ->
    daytemp). `besides`: the fields the caller fills itself; any other field of a type without a reader
    is a KeyError here, not a value silently left at its default."""
    return {f.name: _READERS[str(f.type)](item, f.name.replace("_", ""))
            for f in fields(result) if f.name not in besides}


def _parse_poi(item: Mapping[str, Any]) -> Poi:
    business = _map(item, "business")
    return Poi(
        name=_text(item, "name"),
        address=_text(item, "address"),
        location=_text(item, "location"),
        distance_m=_int(item, "distance"),
        rating=_text(business, "rating"),
        cost=_text(business, "cost"),
        adcode=_text(item, "adcode"),
        citycode=_text(item, "citycode"),
        city=_text(item, "cityname"),
    )


def _parse_path(path: Mapping[str, Any], limit_steps: int = 50) -> RoutePlan:
    steps = tuple(s for s in (_text(step, "instruction") for step in _list(path, "steps")) if s)
    cost = _map(path, "cost")
    return RoutePlan(
        distance_m=_int(path, "distance") or 0,
        duration_s=_duration(path),
        steps=steps[:limit_steps],
        tolls=_number(cost, "tolls"),
        traffic_lights=_int(cost, "traffic_lights"),
    )


def _parse_transit(transit: Mapping[str, Any]) -> TransitPlan:
    legs: list[TransitLeg] = []
    for segment in _list(transit, "segments"):
        walking = _map(segment, "walking")
        if walking and (_int(walking, "distance") or 0) > 0:
            legs.append(TransitLeg("walk", distance_m=_int(walking, "distance"),
                                   duration_s=_duration(walking)))
        buslines = _list(_map(segment, "bus"), "buslines")
        if buslines:
            line = buslines[0]  # the first is the suggested one; the others are alternatives
            legs.append(TransitLeg(
                "bus",
                name=_text(line, "name"),
                departure=_text(_map(line, "departure_stop"), "name"),
                arrival=_text(_map(line, "arrival_stop"), "name"),
                stops=_int(line, "via_num"),
                distance_m=_int(line, "distance"),
                duration_s=_duration(line),
            ))
        railway = _map(segment, "railway")
        if _text(railway, "name") or _text(railway, "trip"):
            legs.append(TransitLeg(
                "railway",
                name=" ".join(p for p in (_text(railway, "trip"), _text(railway, "name")) if p),
                departure=_text(_map(railway, "departure_stop"), "name"),
                arrival=_text(_map(railway, "arrival_stop"), "name"),
                distance_m=_int(railway, "distance"),
                duration_s=_int(railway, "time"),
            ))
        taxi = _map(segment, "taxi")
        if taxi and (_int(taxi, "distance") or 0) > 0:
            legs.append(TransitLeg("taxi", distance_m=_int(taxi, "distance"),
                                   duration_s=_int(taxi, "drivetime")))
    cost = _map(transit, "cost")
    return TransitPlan(
        distance_m=_int(transit, "distance") or 0,
        duration_s=_duration(transit),
        walking_m=_int(transit, "walking_distance"),
        fee=_number(cost, "transit_fee"),
        legs=tuple(legs),
    )


def key_from_env(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return (env.get(KEY_ENV) or "").strip() or None


# -- the client -----------------------------------------------------------------------------------------
class AmapClient:
    """Typed calls to the endpoints 小爱 uses. Pass a shared `http` client to reuse connections."""

    def __init__(self, config: AmapSettings, key: str | None, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.key = key
        self._http = http or httpx.AsyncClient()
        self._owns_http = http is None

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """GET one endpoint and return the JSON body with status "1", or raise an AmapError."""
        if not self.key:
            raise AmapNoKey(f"{KEY_ENV} is not set")
        url = self.config.base_url.rstrip("/") + "/" + path.lstrip("/")
        query = {k: v for k, v in params.items() if v not in (None, "")}
        query.update(key=self.key, output="JSON")
        deadline_s = self.config.timeout_s
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + deadline_s
        try:
            async with asyncio.timeout(deadline_s):  # the whole query, retries included
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.config.retries + 1),
                    wait=wait_exponential(multiplier=0.1, max=1),
                    retry=retry_if_exception_type((AmapUnavailable, AmapBusy)),
                    reraise=True,
                ):
                    with attempt:
                        return await self._get_once(path, url, query, max(0.05, ends_at - loop.time()))
        except TimeoutError as exc:
            error: AmapError = AmapUnavailable(f"{path}: no answer within {deadline_s:g} s")
            logger.warning("amap {}: {} (retries included)", path, error)
            raise error from exc
        except AmapError as error:
            logger.warning("amap {}: {}: {}", path, type(error).__name__, error)  # once, after the retries
            raise
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _get_once(self, path: str, url: str, query: dict[str, str], timeout_s: float) -> dict[str, Any]:
        try:
            response = await self._http.get(url, params=query, timeout=timeout_s)
        except httpx.HTTPError as exc:  # timeouts, refused connections, DNS, protocol errors
            detail = str(exc).replace(self.key, "***") if self.key else str(exc)  # the key never in a log
            raise AmapUnavailable(f"{path}: {type(exc).__name__}: {detail}") from exc
        if response.status_code >= 500:
            raise AmapUnavailable(f"{path}: HTTP {response.status_code} "
                                  f"({response.headers.get('content-type') or 'no content type'})")
        if response.status_code >= 400:
            raise AmapRequestFailed(f"{path}: HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise AmapUnavailable(f"{path}: the answer is not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise AmapUnavailable(f"{path}: the answer is not a JSON object")
        if str(data.get("status")) != "1":
            raise error_for(_text(data, "infocode"), _text(data, "info"))
        return data

    # -- geocoding and places ----------------------------------------------------------------------
    async def geocode(self, address: str, city: str | None = None) -> Location | None:
        """v3/geocode/geo: a structured address or a well-known place -> location, adcode, citycode."""
        data = await self._get("v3/geocode/geo", {"address": address, "city": city or ""})
        for item in _list(data, "geocodes"):
            location = _text(item, "location")
            if location:
                return Location(
                    name=address,
                    location=location,
                    adcode=_text(item, "adcode"),
                    citycode=_text(item, "citycode"),
                    city=_text(item, "city") or _text(item, "province"),
                    address=_text(item, "formatted_address"),
                )
        return None

    async def search_text(self, keywords: str, region: str | None = None, limit: int = 5) -> list[Poi]:
        """v5/place/text: keyword search, limited to `region` (a city name or adcode) when given."""
        data = await self._get("v5/place/text", {
            "keywords": keywords,
            "region": region or "",
            "city_limit": "true" if region else "",
            "page_size": str(max(1, min(limit, 25))),
            "show_fields": "business",
        })
        return [poi for poi in map(_parse_poi, _list(data, "pois")) if poi.name][:limit]

    async def search_around(self, location: str, keywords: str, radius_m: int, limit: int = 5) -> list[Poi]:
        """v5/place/around: places matching `keywords` within `radius_m` of `location`."""
        data = await self._get("v5/place/around", {
            "location": location,
            "keywords": keywords,
            "radius": str(radius_m),
            "sortrule": "weight",
            "page_size": str(max(1, min(limit, 25))),
            "show_fields": "business",
        })
        return [poi for poi in map(_parse_poi, _list(data, "pois")) if poi.name][:limit]

    async def locate(self, name: str, city: str | None = None) -> Location | None:
        """A point for routes: the best POI match first (landmarks, shops), then the geocoder (addresses)."""
        pois = await self.search_text(name, region=city, limit=1)
        if pois and pois[0].location:
            poi = pois[0]
            return Location(poi.name, poi.location, poi.adcode, poi.citycode, poi.city, poi.address)
        return await self.geocode(name, city)

    # -- weather -----------------------------------------------------------------------------------
    async def live_weather(self, adcode: str) -> LiveWeather | None:
        """v3/weather/weatherInfo extensions=base: the weather now."""
        data = await self._get("v3/weather/weatherInfo", {"city": adcode, "extensions": "base"})
        for item in _list(data, "lives"):
            return LiveWeather(**_weather_fields(item, LiveWeather))
        return None

    async def forecast(self, adcode: str) -> Forecast | None:
        """v3/weather/weatherInfo extensions=all: today and the next three days."""
        data = await self._get("v3/weather/weatherInfo", {"city": adcode, "extensions": "all"})
        for item in _list(data, "forecasts"):
            casts = []
            for cast in _list(item, "casts"):
                date = _parse_date(_text(cast, "date"))
                if date is None:
                    continue
                casts.append(DayCast(date=date, **_weather_fields(cast, DayCast, besides=("date",))))
            return Forecast(casts=tuple(casts), **_weather_fields(item, Forecast, besides=("casts",)))
        return None

    # -- routes ------------------------------------------------------------------------------------
    async def _first_path(self, path: str, params: dict[str, str]) -> tuple[dict[str, Any], RoutePlan]:
        data = await self._get(path, params)
        paths = _list(_map(data, "route"), "paths")
        if not paths:
            raise AmapNoRoute(f"{path}: no paths in the answer")
        return data, _parse_path(paths[0])

    async def walking(self, origin: str, destination: str) -> RoutePlan:
        _, plan = await self._first_path("v5/direction/walking", {
            "origin": origin, "destination": destination, "show_fields": "cost"})
        return plan

    async def bicycling(self, origin: str, destination: str) -> RoutePlan:
        _, plan = await self._first_path("v5/direction/bicycling", {
            "origin": origin, "destination": destination, "show_fields": "cost"})
        return plan

    async def driving(self, origin: str, destination: str) -> RoutePlan:
        """v5/direction/driving with show_fields=cost, which adds route.taxi_cost and tolls per path."""
        data, plan = await self._first_path("v5/direction/driving", {
            "origin": origin, "destination": destination, "show_fields": "cost"})
        taxi = _number(_map(data, "route"), "taxi_cost")
        return RoutePlan(plan.distance_m, plan.duration_s, plan.steps, taxi, plan.tolls, plan.traffic_lights)

    async def transit(self, origin: str, destination: str, city1: str, city2: str) -> TransitPlan:
        """v5/direction/transit/integrated: city1/city2 are the citycodes of origin and destination."""
        data = await self._get("v5/direction/transit/integrated", {
            "origin": origin, "destination": destination, "city1": city1, "city2": city2,
            "show_fields": "cost"})
        transits = _list(_map(data, "route"), "transits")
        if not transits:
            raise AmapNoRoute("v5/direction/transit/integrated: no transits in the answer")
        return _parse_transit(transits[0])


class AmapConnections:
    """One HTTP connection pool shared by every message's client; closed when the bot stops."""

    def __init__(self, key: Callable[[], str | None] = key_from_env) -> None:
        self._read_key = key
        self.key = key()
        self._http: httpx.AsyncClient | None = None

    def reread_key(self) -> None:
        """Take the key again (a new one was saved): each message's client uses the copy held here."""
        self.key = self._read_key()

    def client(self, config: AmapSettings) -> AmapClient:
        """A client for this message's config, with the key as last read."""
        if self._http is None:
            self._http = httpx.AsyncClient()
        return AmapClient(config, self.key, self._http)

    async def start(self) -> None:
        # the pool now, not on the first message: its TLS context reads the CA bundle, tens of ms of CPU
        if self._http is None:
            self._http = httpx.AsyncClient()
        self.reread_key()
        if self.key is None:
            logger.warning("amap: {} is not set; weather, routes and places will say how to set it", KEY_ENV)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
