"""A fake 高德 Web Service API: a real HTTP server on loopback, answering the endpoints 小爱 uses with the
documented JSON shapes (status/info/infocode, geocodes, lives/forecasts.casts, route.paths/transits,
pois), so the production client is exercised over real HTTP.

It knows a handful of places (`PLACES`) and restaurants (`CATALOG`), computes routes from coordinates,
and can be scripted: `fail(infocode, info)` answers status "0" with that code, `http_error(status)`
answers an HTTP error, `empty(path)` answers an empty result. Every request is recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from tests.support.http_fake import LoopbackServer, QuietHandler

TEST_KEY = "test-amap-key"
INFOCODES = {
    "10001": "INVALID_USER_KEY", "10003": "DAILY_QUERY_OVER_LIMIT", "10004": "ACCESS_TOO_FREQUENT",
    "10009": "USERKEY_PLAT_NOMATCH", "10044": "USER_DAILY_QUERY_OVER_LIMIT", "20000": "INVALID_PARAMS",
    "20001": "MISSING_REQUIRED_PARAMS", "20800": "OUT_OF_SERVICE", "20802": "ROUTE_FAIL",
    "20803": "OVER_DIRECTION_RANGE",
}


@dataclass(frozen=True)
class Place:
    name: str
    location: str
    adcode: str
    citycode: str
    city: str
    province: str
    address: str
    level: str = "兴趣点"


PLACES: tuple[Place, ...] = (
    Place("北京", "116.407387,39.904179", "110000", "010", "北京市", "北京市", "北京市", "省"),
    Place("杭州", "120.155070,30.274084", "330100", "0571", "杭州市", "浙江省", "浙江省杭州市", "市"),
    Place("上海", "121.473701,31.230416", "310000", "021", "上海市", "上海市", "上海市", "省"),
    Place("天安门", "116.397477,39.908692", "110101", "010", "北京市", "北京市", "东长安街"),
    Place("王府井", "116.417093,39.914585", "110101", "010", "北京市", "北京市", "王府井大街"),
    Place("五道口", "116.337742,39.992894", "110108", "010", "北京市", "北京市", "成府路"),
    Place("颐和园", "116.275179,39.999617", "110108", "010", "北京市", "北京市", "新建宫门路19号"),
    Place("三里屯", "116.454975,39.937053", "110105", "010", "北京市", "北京市", "三里屯路"),
    Place("西湖", "120.148732,30.242526", "330106", "0571", "杭州市", "浙江省", "龙井路1号"),
)

# keyword -> (name, address, rating or "", cost or "", metres east, metres north of the search centre)
CATALOG: dict[str, list[tuple[str, str, str, str, int, int]]] = {
    "火锅": [
        ("海底捞火锅(三里屯店)", "三里屯路19号", "4.6", "130", 300, 200),
        ("巴奴毛肚火锅(太古里店)", "三里屯路11号院", "4.7", "150", -400, 100),
        ("小龙坎老火锅", "工体北路8号", "4.4", "110", 900, -300),
        ("凑凑火锅·茶憩", "三里屯太古里南区", "", "140", 150, -450),
        ("大龙燚火锅", "幸福村中路1号", "4.5", "", -1200, 800),
        ("老北京涮羊肉", "工人体育场北路", "4.2", "90", 2000, 1000),
    ],
    "公园": [("团结湖公园", "团结湖南路16号", "4.5", "", 800, -900)],
}


def _offset(location: str, east_m: int, north_m: int) -> str:
    lng, lat = (float(v) for v in location.split(","))
    lat2 = lat + north_m / 111_000
    lng2 = lng + east_m / (111_000 * math.cos(math.radians(lat)))
    return f"{lng2:.6f},{lat2:.6f}"


def straight_distance(a: str, b: str) -> int:
    (lng1, lat1), (lng2, lat2) = ((float(v) for v in p.split(",")) for p in (a, b))
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return int(2 * 6_371_000 * math.asin(math.sqrt(h)))


def _valid_location(value: str) -> bool:
    try:
        lng, lat = (float(v) for v in value.split(","))
    except ValueError:
        return False
    return 73 < lng < 136 and 3 < lat < 54


def ok(**body: Any) -> dict[str, Any]:
    return {"status": "1", "info": "OK", "infocode": "10000", **body}


def error(infocode: str, info: str | None = None) -> dict[str, Any]:
    return {"status": "0", "info": info or INFOCODES.get(infocode, "UNKNOWN_ERROR"), "infocode": infocode}


@dataclass
class FakeAmap(LoopbackServer):
    key: str = TEST_KEY
    # per forecast day, today first: (dayweather, nightweather, daytemp, nighttemp, daywind, daypower)
    weather_days: list[tuple[str, str, int, int, str, str]] = field(default_factory=lambda: [
        ("晴", "多云", 26, 15, "南", "≤3"),
        ("小雨", "中雨", 18, 12, "东北", "4"),
        ("多云", "晴", 22, 13, "北", "1-3"),
        ("阴", "阴", 20, 14, "无风向", "≤3"),
    ])
    timezone: str = "Asia/Shanghai"
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[dict[str, Any]] = []
        self._empty: set[str] = set()
        self.serve(self._handler_class())

    @property
    def base_url(self) -> str:
        return self.root

    # -- scripting -------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self._empty.clear()
            self.requests.clear()

    def fail(self, infocode: str, info: str | None = None, *, path: str | None = None,
             times: int | None = None) -> None:
        """Answer status "0" with `infocode` (on `path` only, when given; `times` times, when given)."""
        with self._lock:
            self._failures.append({"body": error(infocode, info), "status": 200, "path": path,
                                   "times": times})

    def http_error(self, status: int = 502, *, path: str | None = None, times: int | None = None) -> None:
        with self._lock:
            self._failures.append({"body": {"message": "bad gateway"}, "status": status, "path": path,
                                   "times": times})

    def raw(self, status: int, body: bytes, content_type: str = "text/html", *, path: str | None = None,
            times: int | None = None) -> None:
        """Answer with these bytes (an HTML 502 from a proxy, a truncated or non-JSON body)."""
        with self._lock:
            self._failures.append({"raw": (body, content_type), "status": status, "path": path,
                                   "times": times})

    def slow(self, seconds: float, *, path: str | None = None, times: int | None = None) -> None:
        """Answer normally, but only after `seconds` (client timeout tests)."""
        with self._lock:
            self._failures.append({"delay": seconds, "path": path, "times": times})

    def empty(self, path: str) -> None:
        """Answer `path` (e.g. "v5/place/around") with status "1" and no results."""
        with self._lock:
            self._empty.add(path.strip("/"))

    def calls(self, path: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [params for p, params in self.requests if path is None or p == path.strip("/")]

    # -- answers ---------------------------------------------------------------------------------
    def answer(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        delay = 0.0
        with self._lock:
            self.requests.append((path, params))
            scripted = None
            for failure in self._failures:
                if failure["path"] not in (None, path) or failure["times"] == 0:
                    continue
                if failure["times"] is not None:
                    failure["times"] -= 1
                scripted = failure
                break
            is_empty = path in self._empty
        if scripted is not None and "delay" in scripted:
            delay = scripted["delay"]
        elif scripted is not None:
            return scripted["status"], scripted.get("raw", scripted.get("body"))
        if delay:
            time.sleep(delay)
        if params.get("key") != self.key:
            return 200, error("10001")
        handler = {
            "v3/geocode/geo": self._geocode,
            "v3/weather/weatherInfo": self._weather,
            "v5/direction/walking": self._path,
            "v5/direction/bicycling": self._path,
            "v5/direction/driving": self._path,
            "v5/direction/transit/integrated": self._transit,
            "v5/place/text": self._place_text,
            "v5/place/around": self._place_around,
        }.get(path)
        if handler is None:
            return 200, error("10002", "SERVICE_NOT_AVAILABLE")
        return 200, handler(path, params, is_empty)

    @staticmethod
    def find(name: str, region: str = "") -> Place | None:
        for place in PLACES:
            if (place.name in name or name in place.name) and (
                    not region or region in place.city or place.city.startswith(region)
                    or region == place.adcode or place.name == region):
                return place
        return None

    def _geocode(self, path: str, params: dict[str, str], is_empty: bool) -> dict[str, Any]:
        address = params.get("address", "")
        if not address:
            return error("20001")
        place = None if is_empty else self.find(address, params.get("city", ""))
        if place is None:
            return ok(count="0", geocodes=[])
        return ok(count="1", geocodes=[{
            "formatted_address": f"{place.province}{place.address}", "country": "中国",
            "province": place.province, "citycode": place.citycode, "city": place.city, "district": [],
            "township": [], "neighborhood": {"name": [], "type": []}, "building": {"name": [], "type": []},
            "adcode": place.adcode, "street": [], "number": [], "location": place.location,
            "level": place.level}])

    def _weather(self, path: str, params: dict[str, str], is_empty: bool) -> dict[str, Any]:
        adcode = params.get("city", "")
        if not adcode:
            return error("20001")
        place = next((p for p in PLACES if p.adcode == adcode), None)
        live = params.get("extensions", "base") != "all"
        if place is None or is_empty:
            return ok(count="0", **({"lives": []} if live else {"forecasts": []}))
        now = dt.datetime.now(ZoneInfo(self.timezone))
        city = place.city if place.level in ("省", "市") else place.name
        if live:
            day, _, high, _, wind, power = self.weather_days[0]
            return ok(count="1", lives=[{
                "province": place.province, "city": city, "adcode": adcode, "weather": day,
                "temperature": str(high - 3), "winddirection": wind, "windpower": power, "humidity": "45",
                "reporttime": now.strftime("%Y-%m-%d %H:00:00"), "temperature_float": f"{high - 3}.0",
                "humidity_float": "45.0"}])
        casts = []
        for offset, (day, night, high, low, wind, power) in enumerate(self.weather_days):
            date = now.date() + dt.timedelta(days=offset)
            casts.append({
                "date": date.isoformat(), "week": str(date.isoweekday()), "dayweather": day,
                "nightweather": night, "daytemp": str(high), "nighttemp": str(low), "daywind": wind,
                "nightwind": wind, "daypower": power, "nightpower": power,
                "daytemp_float": f"{high}.0", "nighttemp_float": f"{low}.0"})
        return ok(count="1", forecasts=[{
            "city": city, "adcode": adcode, "province": place.province,
            "reporttime": now.strftime("%Y-%m-%d %H:00:00"), "casts": casts}])

    def _path(self, path: str, params: dict[str, str], is_empty: bool) -> dict[str, Any]:
        origin, destination = params.get("origin", ""), params.get("destination", "")
        if not origin or not destination:
            return error("20001")
        if not (_valid_location(origin) and _valid_location(destination)):
            return error("20000")
        distance = int(straight_distance(origin, destination) * 1.25) + 50
        mode = path.rsplit("/", 1)[-1]
        if mode == "walking" and distance > 100_000:
            return error("20803")
        if is_empty:
            return ok(count="0", route={"origin": origin, "destination": destination, "paths": []})
        speed = {"walking": 1.2, "bicycling": 4.0, "driving": 9.0}[mode]
        with_cost = "cost" in params.get("show_fields", "")
        verb = {"walking": "步行", "bicycling": "骑行", "driving": "行驶"}[mode]
        legs = [distance // 2, distance // 4, distance - distance // 2 - distance // 4 - 10, 10]
        roads = ["长安街", "王府井大街", "东单北大街", "金鱼胡同"]
        steps = []
        for i, (leg, road) in enumerate(zip(legs, roads, strict=True)):
            step = {"instruction": f"沿{road}{verb}{leg}米" + ("右转" if i < 3 else "到达目的地"),
                    "orientation": "东", "road_name": road, "step_distance": str(leg)}
            if with_cost:
                step["cost"] = {"duration": str(int(leg / speed))}
            steps.append(step)
        route_path: dict[str, Any] = {"distance": str(distance), "steps": steps}
        if mode == "driving":
            route_path["restriction"] = "0"
        if with_cost:
            route_path["cost"] = {"duration": str(int(distance / speed))}
            if mode == "driving":
                route_path["cost"].update(tolls="0", toll_distance="0", traffic_lights=str(distance // 800))
        route: dict[str, Any] = {"origin": origin, "destination": destination, "paths": [route_path]}
        if mode == "driving" and with_cost:
            route["taxi_cost"] = str(13 + int(2.3 * max(0, distance - 3000) / 1000))
        return ok(count="1", route=route)

    def _transit(self, path: str, params: dict[str, str], is_empty: bool) -> dict[str, Any]:
        origin, destination = params.get("origin", ""), params.get("destination", "")
        if not (origin and destination and params.get("city1") and params.get("city2")):
            return error("20001")
        if not (_valid_location(origin) and _valid_location(destination)):
            return error("20000")
        route: dict[str, Any] = {"origin": origin, "destination": destination,
                                 "distance": str(straight_distance(origin, destination)), "transits": []}
        if is_empty:
            return ok(count="0", route=route)
        distance = int(straight_distance(origin, destination) * 1.3) + 500
        with_cost = "cost" in params.get("show_fields", "")

        def cost(seconds: int, **extra: str) -> dict[str, Any]:
            return {"cost": {"duration": str(seconds), **extra}} if with_cost else {}

        if params["city1"] == params["city2"]:
            ride = {"buslines": [
                {"departure_stop": {"name": "五道口站", "id": "1", "location": origin},
                 "arrival_stop": {"name": "西直门站", "id": "2", "location": destination},
                 "name": "地铁13号线(东直门--西直门)", "id": "110100023110", "type": "地铁线路",
                 "distance": str(distance // 2), "via_num": "2", **cost(900)},
                {"departure_stop": {"name": "五道口", "id": "3"},
                 "arrival_stop": {"name": "西直门", "id": "4"},
                 "name": "375路(西直门--颐和园)", "id": "x", "type": "普通公交线路", "distance": "1",
                 "via_num": "9"},
            ]}
            second = {"buslines": [
                {"departure_stop": {"name": "西直门站", "id": "5"},
                 "arrival_stop": {"name": "王府井站", "id": "6"},
                 "name": "地铁4号线大兴线(安河桥北--天宫院)", "id": "y", "type": "地铁线路",
                 "distance": str(distance // 3), "via_num": "5", **cost(1200)}]}
            segments = [
                {"walking": {"origin": origin, "destination": origin, "distance": "300", **cost(240),
                             "steps": [{"instruction": "步行300米到达五道口站", "distance": "300"}]},
                 "bus": ride},
                {"walking": {"distance": "0", "steps": []}, "bus": second},
                {"walking": {"origin": destination, "destination": destination, "distance": "450",
                             **cost(360),
                             "steps": [{"instruction": "步行450米到达终点", "distance": "450"}]}},
            ]
            transit = {"distance": str(distance), "walking_distance": "750", "nightflag": "0",
                       **cost(2700, transit_fee="5.0"), "segments": segments}
        else:
            segments = [{"railway": {
                "id": "G1", "time": "16800", "name": "G1次", "trip": "G1", "distance": str(distance),
                "type": "高速动车", "departure_stop": {"name": "北京南站", "id": "a", "time": "0700"},
                "arrival_stop": {"name": "杭州东站", "id": "b", "time": "1140"}}}]
            transit = {"distance": str(distance), "walking_distance": "0", "nightflag": "0",
                       **cost(18000, transit_fee="538.0"), "segments": segments}
        route["transits"] = [transit]
        return ok(count="1", route=route)

    def _poi(self, name: str, address: str, location: str, rating: str, cost: str, place: Place,
             with_business: bool, distance: int | None = None) -> dict[str, Any]:
        poi: dict[str, Any] = {
            "name": name, "id": f"B0{abs(hash(name)) % 10**8:08d}", "location": location, "type": "餐饮服务",
            "typecode": "050100", "pname": place.province, "cityname": place.city, "adname": "",
            "address": address, "pcode": place.adcode[:2] + "0000", "adcode": place.adcode,
            "citycode": place.citycode}
        if distance is not None:
            poi["distance"] = str(distance)
        if with_business:
            business: dict[str, Any] = {"business_area": "", "tel": "010-12345678"}
            if rating:
                business["rating"] = rating
            if cost:
                business["cost"] = cost
            poi["business"] = business
        return poi

    def _place_text(self, path: str, params: dict[str, str], is_empty: bool) -> dict[str, Any]:
        keywords, region = params.get("keywords", ""), params.get("region", "")
        if not keywords:
            return error("20001")
        with_business = "business" in params.get("show_fields", "")
        size = int(params.get("page_size", "10") or 10)
        pois = []
        if not is_empty:
            place = self.find(keywords, region if params.get("city_limit") == "true" else "")
            if place is not None:
                pois.append(self._poi(place.name, place.address, place.location, "", "", place,
                                      with_business))
            elif keywords in CATALOG:
                city = self.find(region) if region else PLACES[0]
                center = city or PLACES[0]
                for name, address, rating, cost, east, north in CATALOG[keywords]:
                    pois.append(self._poi(name, address, _offset(center.location, east, north), rating, cost,
                                          center, with_business))
        return ok(count=str(len(pois[:size])), pois=pois[:size])

    def _place_around(self, path: str, params: dict[str, str], is_empty: bool) -> dict[str, Any]:
        location = params.get("location", "")
        if not _valid_location(location):
            return error("20000")
        radius = int(params.get("radius", "5000") or 5000)
        size = int(params.get("page_size", "10") or 10)
        with_business = "business" in params.get("show_fields", "")
        center = min(PLACES, key=lambda p: straight_distance(p.location, location))
        pois = []
        if not is_empty:
            for name, address, rating, cost, east, north in CATALOG.get(params.get("keywords", ""), []):
                spot = _offset(location, east, north)
                distance = straight_distance(location, spot)
                if distance <= radius:
                    pois.append(self._poi(name, address, spot, rating, cost, center, with_business, distance))
        if params.get("sortrule") == "distance":
            pois.sort(key=lambda p: int(p["distance"]))
        return ok(count=str(len(pois[:size])), pois=pois[:size])

    # -- serving ---------------------------------------------------------------------------------
    def _handler_class(self) -> type[QuietHandler]:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                params = dict(parse_qsl(url.query, keep_blank_values=True))
                status, body = fake.answer(url.path.strip("/"), params)
                if isinstance(body, tuple):  # raw bytes and their content type
                    self.send_bytes(status, *body)
                else:
                    self.send_json(status, body, "application/json;charset=UTF-8")

        return Handler


# -- helpers for intent tests ------------------------------------------------------------------------
SLOT_MARKERS = {"weather": "天气槽位", "route": "路线槽位", "places": "地点推荐槽位"}


def script_slots(fake_llm: Any, kind: str, question: str, slots: dict[str, str] | str, **kwargs: Any) -> Any:
    """Make the fake LLM answer the `kind` slot prompt with `slots` (JSON) when the latest message
    contains `question`."""
    from tests.support.fake_llm import latest_question, prompt_text

    marker = SLOT_MARKERS[kind]
    reply = slots if isinstance(slots, str) else json.dumps(slots, ensure_ascii=False)
    return fake_llm.add(
        lambda req: marker in prompt_text(req) and question in latest_question(req), reply, **kwargs)
