"""步行/骑行/驾车/公交规划: one flow for the four travel modes — slots (origin, destination, city),
locating both places, the AMap call for the mode and a templated reply — registered as four intents in
one loop over `MODES`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from bot.messages import Reply
from bot.pipeline.context import Context
from bot.plugin import IntentSpec
from intents.slots import (
    amap_failed,
    amap_slots,
    answered,
    finish,
    format_distance,
    format_duration,
    not_found,
)
from services.amap import AmapClient, AmapError, Location, RoutePlan, TransitLeg, TransitPlan

FIELDS = ("origin", "destination", "city")
MAX_STEP_CHARS = 40


@dataclass(frozen=True)
class Mode:
    name: str  # the intent's name
    label: str  # the intent's label
    verb: str  # 步行 / 骑行 / 驾车 / 公交/地铁: used in the reply and the prompt
    call: str  # the AmapClient method that plans it
    describe: str  # the classifier prompt's line


MODES = (
    Mode("walk", "步行规划", "步行", "walking", "问从一个地方走路到另一个地方怎么走、要多久"),
    Mode("cycle", "骑行规划", "骑行", "bicycling", "问骑自行车/电动车从一个地方到另一个地方怎么走"),
    Mode("drive", "驾车规划", "驾车", "driving", "问开车/打车从一个地方到另一个地方的路线、时间、打车费"),
    Mode("transit", "公交规划", "公交/地铁", "transit",
         "问坐公交、地铁等公共交通从一个地方到另一个地方怎么走"),
)


def _short(text: str, limit: int = MAX_STEP_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line_name(name: str) -> str:
    """"地铁1号线(古城--环球度假区)" -> "地铁1号线": the direction is in the stops we print anyway."""
    for bracket in ("(", "（"):
        if bracket in name and not name.startswith(bracket):
            return name.split(bracket, 1)[0]
    return name


def render_path(mode: Mode, origin: Location, destination: Location, plan: RoutePlan, max_steps: int) -> str:
    summary = [f"约{format_distance(plan.distance_m)}"]
    if plan.duration_s is not None:
        summary.append(f"大约{format_duration(plan.duration_s)}")
    if plan.taxi_cost is not None:
        summary.append(f"打车约{plan.taxi_cost:.0f}元")
    if plan.tolls:
        summary.append(f"过路费{plan.tolls:.0f}元")
    lines = [f"从{origin.name}{mode.verb}到{destination.name}：" + "，".join(summary) + "。"]
    if plan.steps:
        lines.append("路线：")
        lines.extend(f"{i}. {_short(step)}" for i, step in enumerate(plan.steps[:max_steps], 1))
        if len(plan.steps) > max_steps:
            lines.append(f"……共{len(plan.steps)}步，详细路线可以在高德地图里看。")
    return "\n".join(lines)


def _leg_line(leg: TransitLeg) -> str:
    if leg.kind == "walk":
        return f"步行{format_distance(leg.distance_m)}"
    if leg.kind == "taxi":
        return f"打车{format_distance(leg.distance_m)}"
    stops = f"，{leg.stops + 1}站" if leg.stops is not None and leg.kind == "bus" else ""
    between = f"（{leg.departure}上车 → {leg.arrival}下车{stops}）" if leg.departure and leg.arrival else ""
    return f"乘{_line_name(leg.name)}{between}"


def render_transit(origin: Location, destination: Location, plan: TransitPlan) -> str:
    summary = []
    if plan.duration_s is not None:
        summary.append(f"全程约{format_duration(plan.duration_s)}")
    summary.append("不用换乘" if plan.transfers == 0 else f"换乘{plan.transfers}次")
    if plan.walking_m:
        summary.append(f"步行约{format_distance(plan.walking_m)}")
    if plan.fee:
        summary.append(f"票价约{plan.fee:g}元")
    lines = [f"从{origin.name}坐公交/地铁到{destination.name}：" + "，".join(summary) + "。"]
    lines.extend(f"{i}. {_leg_line(leg)}" for i, leg in enumerate(plan.legs, 1))
    return "\n".join(lines)


def question_for(missing: list[str]) -> tuple[str, str]:
    """(the slot asked for, the question)."""
    if missing == ["origin"]:
        return "origin", "从哪里出发呀？"
    if missing == ["destination"]:
        return "destination", "要去哪里呀？"
    return "origin", "从哪里出发、要去哪里呀？"


async def _plan(client: AmapClient, mode: Mode, origin: Location, destination: Location,
                max_steps: int) -> str:
    if mode.call == "transit":
        plan = await client.transit(origin.location, destination.location,
                                    origin.citycode or destination.citycode,
                                    destination.citycode or origin.citycode)
        return render_transit(origin, destination, plan)
    call: Callable[[str, str], Awaitable[RoutePlan]] = getattr(client, mode.call)
    plan = await call(origin.location, destination.location)
    return render_path(mode, origin, destination, plan, max_steps)


async def handle_route(ctx: Context, mode: Mode) -> Reply:
    slots = await amap_slots(ctx, FIELDS, mode=mode.verb)
    return answered(await route_for(ctx, mode, slots), slots)


async def route_for(ctx: Context, mode: Mode, slots: dict[str, str]) -> Reply:
    client = ctx.amap
    missing = [name for name in ("origin", "destination") if not slots[name]]
    if missing:
        asked, question = question_for(missing)
        return ctx.ask(slots, asked, question)
    city = slots["city"] or None
    try:
        # amap.default_city is only a first guess: "从北京南站到天安门" must work wherever it is set
        default_city = ctx.config.amap.default_city if not city else None
        origin = await client.locate(slots["origin"], city or default_city)
        if origin is None and default_city:
            origin = await client.locate(slots["origin"], None)
        if origin is None:
            return Reply(not_found(slots["origin"]))
        # the destination is most likely in the origin's city; fall back to anywhere
        destination = await client.locate(slots["destination"], city or origin.city or None)
        if destination is None and not city and origin.city:
            destination = await client.locate(slots["destination"], None)
        if destination is None:
            return Reply(not_found(slots["destination"]))
        origin = Location(slots["origin"], origin.location, origin.adcode, origin.citycode, origin.city)
        destination = Location(slots["destination"], destination.location, destination.adcode,
                               destination.citycode, destination.city)
        text = await _plan(client, mode, origin, destination, ctx.config.amap.route_steps)
    except AmapError as exc:
        return await amap_failed(ctx, exc)
    return await finish(ctx, text)


INTENTS = tuple(IntentSpec(name=mode.name, label=mode.label, handler=partial(handle_route, mode=mode),
                           describe=mode.describe, follow_up="route") for mode in MODES)
