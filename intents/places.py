"""地点推荐: the top places for a keyword near a named place (v5/place/around) or in a city (v5/place/text).

Slots from the LLM (prompts/places.md): place, city, keyword. No keyword, or nowhere to look (no place,
no city, no amap.default_city), gets a short question back.
"""

from __future__ import annotations

from bot.messages import Reply
from bot.pipeline.context import Context
from bot.plugin import IntentSpec
from intents.slots import amap_failed, amap_slots, answered, finish, format_distance, not_found
from services.amap import AmapError, Poi

FIELDS = ("place", "city", "keyword")
MAX_ADDRESS_CHARS = 30


def poi_lines(index: int, poi: Poi) -> list[str]:
    facts = [f"评分{poi.rating}" if poi.rating else "", format_distance(poi.distance_m),
             f"人均{poi.cost}元" if poi.cost else ""]
    head = f"{index}. {poi.name}" + "".join(f"｜{f}" for f in facts if f)
    address = poi.address
    if len(address) > MAX_ADDRESS_CHARS:
        address = address[:MAX_ADDRESS_CHARS - 1] + "…"
    return [head, f"   {address}"] if address else [head]


def render_places(where: str, keyword: str, pois: list[Poi]) -> str:
    lines = [f"{where}的{keyword}，给你挑了{len(pois)}家："]
    for index, poi in enumerate(pois, 1):
        lines.extend(poi_lines(index, poi))
    return "\n".join(lines)


async def handle(ctx: Context) -> Reply:
    slots = await amap_slots(ctx, FIELDS)
    return answered(await places_for(ctx, slots), slots)


async def places_for(ctx: Context, slots: dict[str, str]) -> Reply:
    config = ctx.config.amap
    client = ctx.amap
    place, keyword = slots["place"], slots["keyword"]
    city = slots["city"] or config.default_city or ""
    if not keyword:
        return ctx.ask(slots, "keyword", "想找什么样的地方呀？比如火锅、公园、超市。")
    if not place and not city:
        return ctx.ask(slots, "place", "在哪一带找呀？说个地名或者城市吧。")
    try:
        if place:
            center = await client.locate(place, city or None)
            if center is None:
                return Reply(not_found(place))
            pois = await client.search_around(center.location, keyword, config.places_radius_m,
                                              config.places_limit)
            where = f"{place}附近"
        else:
            pois = await client.search_text(keyword, region=city, limit=config.places_limit)
            where = city
    except AmapError as exc:
        return await amap_failed(ctx, exc)
    if not pois:
        radius = f"{format_distance(config.places_radius_m)}内" if place else ""
        return Reply(f"{where}{radius}没找到「{keyword}」，换个关键词或者地点试试？")
    return await finish(ctx, render_places(where, keyword, pois))


INTENT = IntentSpec(name="places", label="地点推荐", handler=handle, follow_up="places",
                    describe="找附近或某地的餐厅、景点、商店等地方")
