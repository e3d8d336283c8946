"""The AMap client against the fake AMap server over real HTTP: parsing, retries, timeouts, errors."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator

import pytest

from bot.config import AmapConfig
from services.amap import (
    AmapBusy,
    AmapClient,
    AmapKeyRejected,
    AmapNoKey,
    AmapNoRoute,
    AmapQuotaExceeded,
    AmapRequestFailed,
    AmapUnavailable,
    key_from_env,
)
from tests.support.fake_amap import PLACES, TEST_KEY, FakeAmap
from tests.support.peer import free_port

TIANANMEN = next(p for p in PLACES if p.name == "天安门")
WANGFUJING = next(p for p in PLACES if p.name == "王府井")
WUDAOKOU = next(p for p in PLACES if p.name == "五道口")


@pytest.fixture
async def client(amap: FakeAmap) -> AsyncIterator[AmapClient]:
    client = AmapClient(AmapConfig(base_url=amap.base_url, timeout_s=5, retries=2), TEST_KEY)
    yield client
    await client.close()


async def test_geocode_returns_location_adcode_citycode(client: AmapClient, amap_server: FakeAmap):
    location = await client.geocode("北京")
    assert location is not None
    assert (location.location, location.adcode, location.citycode) == (
        "116.407387,39.904179", "110000", "010")
    params = amap_server.calls("v3/geocode/geo")[0]
    assert params["key"] == TEST_KEY and params["address"] == "北京" and params["output"] == "JSON"
    assert "city" not in params  # empty optional parameters are not sent


async def test_geocode_unknown_place_is_none(client: AmapClient):
    assert await client.geocode("不存在的地方") is None


async def test_forecast_has_four_dated_casts_and_live_weather(client: AmapClient, amap_server: FakeAmap):
    forecast = await client.forecast("110000")
    assert forecast is not None and forecast.city == "北京市"
    assert len(forecast.casts) == 4
    first = forecast.casts[0]
    assert isinstance(first.date, dt.date)
    assert (first.day_weather, first.night_weather) == ("晴", "多云")
    assert (first.day_temp, first.night_temp) == (26, 15)
    assert forecast.casts[1].date - first.date == dt.timedelta(days=1)
    assert amap_server.calls("v3/weather/weatherInfo")[0]["extensions"] == "all"
    live = await client.live_weather("110000")
    assert live is not None and live.weather == "晴" and live.temperature == "23" and live.humidity == "45"
    assert amap_server.calls("v3/weather/weatherInfo")[1]["extensions"] == "base"


async def test_weather_for_unknown_adcode_is_none(client: AmapClient):
    assert await client.forecast("999999") is None
    assert await client.live_weather("999999") is None


async def test_walking_has_distance_duration_and_steps(client: AmapClient, amap_server: FakeAmap):
    plan = await client.walking(TIANANMEN.location, WANGFUJING.location)
    assert plan.distance_m > 1000
    assert plan.duration_s is not None and plan.duration_s > 600  # only sent back with show_fields=cost
    assert plan.steps and "步行" in plan.steps[0]
    assert amap_server.calls("v5/direction/walking")[0]["show_fields"] == "cost"


async def test_bicycling_is_faster_than_walking(client: AmapClient):
    walk = await client.walking(TIANANMEN.location, WUDAOKOU.location)
    ride = await client.bicycling(TIANANMEN.location, WUDAOKOU.location)
    assert ride.duration_s is not None and walk.duration_s is not None and ride.duration_s < walk.duration_s


async def test_driving_has_taxi_cost(client: AmapClient):
    plan = await client.driving(TIANANMEN.location, WUDAOKOU.location)
    assert plan.taxi_cost is not None and plan.taxi_cost > 13
    assert plan.tolls == 0 and plan.traffic_lights is not None


async def test_transit_legs_lines_stops_and_transfers(client: AmapClient, amap_server: FakeAmap):
    plan = await client.transit(WUDAOKOU.location, WANGFUJING.location, "010", "010")
    kinds = [leg.kind for leg in plan.legs]
    assert kinds == ["walk", "bus", "bus", "walk"]  # the walking segment with distance 0 is skipped
    ride = plan.legs[1]
    assert (ride.name, ride.departure, ride.arrival, ride.stops) == (
        "地铁13号线(东直门--西直门)", "五道口站", "西直门站", 2)
    assert plan.transfers == 1 and plan.fee == 5.0 and plan.walking_m == 750 and plan.duration_s == 2700
    params = amap_server.calls("v5/direction/transit/integrated")[0]
    assert (params["city1"], params["city2"]) == ("010", "010")


async def test_transit_between_cities_is_by_rail(client: AmapClient):
    hangzhou = next(p for p in PLACES if p.name == "西湖")
    plan = await client.transit(TIANANMEN.location, hangzhou.location, "010", "0571")
    assert [leg.kind for leg in plan.legs] == ["railway"]
    assert plan.legs[0].departure == "北京南站" and plan.transfers == 0


async def test_places_around_with_rating_distance_and_missing_rating(client: AmapClient,
                                                                     amap_server: FakeAmap):
    pois = await client.search_around(next(p for p in PLACES if p.name == "三里屯").location, "火锅", 3000, 5)
    assert len(pois) == 5
    assert pois[0].name == "海底捞火锅(三里屯店)" and pois[0].rating == "4.6" and pois[0].distance_m
    assert any(p.rating == "" for p in pois)  # AMap leaves rating out for some places
    params = amap_server.calls("v5/place/around")[0]
    assert params["radius"] == "3000" and params["page_size"] == "5" and params["show_fields"] == "business"


async def test_place_text_and_locate(client: AmapClient):
    pois = await client.search_text("火锅", region="北京", limit=3)
    assert len(pois) == 3 and pois[0].city == "北京市"
    spot = await client.locate("颐和园")
    assert spot is not None and spot.citycode == "010" and spot.name == "颐和园"


async def test_empty_results(client: AmapClient, amap_server: FakeAmap):
    amap_server.empty("v5/place/around")
    assert await client.search_around(TIANANMEN.location, "火锅", 3000) == []
    amap_server.empty("v5/direction/driving")
    with pytest.raises(AmapNoRoute):
        await client.driving(TIANANMEN.location, WANGFUJING.location)
    amap_server.empty("v5/direction/transit/integrated")
    with pytest.raises(AmapNoRoute):
        await client.transit(TIANANMEN.location, WANGFUJING.location, "010", "010")


@pytest.mark.parametrize(("infocode", "error"), [
    ("10003", AmapQuotaExceeded), ("10044", AmapQuotaExceeded), ("10001", AmapKeyRejected),
    ("10009", AmapKeyRejected), ("20802", AmapNoRoute), ("20000", AmapRequestFailed),
])
async def test_infocodes_map_to_errors_without_retry(client: AmapClient, amap_server: FakeAmap,
                                                     infocode, error):
    amap_server.fail(infocode)
    with pytest.raises(error) as caught:
        await client.geocode("北京")
    assert caught.value.infocode == infocode
    assert len(amap_server.calls()) == 1  # none of these get better by asking again


async def test_walking_too_far_is_no_route(client: AmapClient):
    hangzhou = next(p for p in PLACES if p.name == "杭州")
    with pytest.raises(AmapNoRoute) as caught:
        await client.walking(TIANANMEN.location, hangzhou.location)
    assert caught.value.infocode == "20803"


async def test_too_frequent_and_5xx_are_retried(client: AmapClient, amap_server: FakeAmap):
    amap_server.fail("10004", times=1)
    assert await client.geocode("北京") is not None
    amap_server.reset()
    amap_server.http_error(502, times=2)
    assert await client.geocode("北京") is not None
    assert len(amap_server.calls()) == 3


async def test_busy_after_all_retries(client: AmapClient, amap_server: FakeAmap):
    amap_server.fail("10004")
    with pytest.raises(AmapBusy):
        await client.geocode("北京")
    assert len(amap_server.calls()) == 3  # retries=2


async def test_timeout_is_unavailable(amap_server: FakeAmap):
    amap_server.reset()
    amap_server.slow(2.0)
    amap = AmapClient(AmapConfig(base_url=amap_server.base_url, timeout_s=0.3, retries=0), TEST_KEY)
    started = time.monotonic()
    with pytest.raises(AmapUnavailable):
        await amap.geocode("北京")
    assert time.monotonic() - started < 1.5
    await amap.close()
    amap_server.reset()


async def test_unreachable_server_is_unavailable_quickly():
    closed = f"http://127.0.0.1:{free_port()}"
    amap = AmapClient(AmapConfig(base_url=closed, timeout_s=1, retries=2), TEST_KEY)
    started = time.monotonic()
    with pytest.raises(AmapUnavailable):
        await amap.walking(TIANANMEN.location, WANGFUJING.location)
    assert time.monotonic() - started < 3
    await amap.close()


async def test_no_key_fails_before_any_request(amap_server: FakeAmap):
    amap_server.reset()
    amap = AmapClient(AmapConfig(base_url=amap_server.base_url), None)
    with pytest.raises(AmapNoKey):
        await amap.geocode("北京")
    assert amap_server.calls() == []
    await amap.close()


def test_key_from_env():
    assert key_from_env({"AMAP_KEY": " abc "}) == "abc"
    assert key_from_env({"AMAP_KEY": ""}) is None
    assert key_from_env({}) is None
