"""Follow-ups resolved against the asker's previous turn, without an LLM (pure functions)."""

from __future__ import annotations

import pytest

from nlu.follow_ups import FollowUp, PreviousTurn, resolve_follow_up, subject_of
from tests.support.builtin_intents import BUILTIN, Intent


def after(intent: Intent, text: str, follow_up: str) -> FollowUp | None:
    return resolve_follow_up(follow_up, PreviousTurn.from_request(intent, text), BUILTIN)


def test_switching_the_travel_mode_keeps_both_places():
    resolved = after(Intent.WALK, "从天安门走到王府井怎么走", "那开车呢")
    assert resolved is not None and resolved.intent is Intent.DRIVE
    assert resolved.slots == {"origin": "天安门", "destination": "王府井"}
    assert resolved.request == "从天安门开车到王府井怎么走"


def test_a_picture_becomes_a_video_of_the_same_subject():
    resolved = after(Intent.IMAGE, "画一只柴犬", "换成视频吧")
    assert resolved is not None and resolved.intent is Intent.VIDEO
    assert resolved.subject == "一只柴犬" and "一只柴犬" in resolved.request


@pytest.mark.parametrize(("intent", "text", "follow_up", "expected", "slots"), [
    (Intent.WALK, "从天安门走到王府井怎么走", "反过来呢", Intent.WALK,
     {"origin": "王府井", "destination": "天安门"}),
    (Intent.WALK, "从酒店走到夫子庙要多久", "回来呢", Intent.WALK,
     {"origin": "夫子庙", "destination": "酒店"}),
    (Intent.DRIVE, "开车从家到机场要多久", "从公司出发呢", Intent.DRIVE,
     {"origin": "公司", "destination": "机场"}),
    (Intent.WALK, "从酒店走到外滩要多久", "那到南京路呢", Intent.WALK,
     {"origin": "酒店", "destination": "南京路"}),
    (Intent.WEATHER, "明天北京天气怎么样", "那上海呢", Intent.WEATHER, {"place": "上海", "day": "明天"}),
    (Intent.WEATHER, "北京现在多少度", "明天呢", Intent.WEATHER, {"place": "北京", "day": "明天"}),
    (Intent.PLACES, "三里屯附近有啥好吃的火锅", "那望京呢", Intent.PLACES,
     {"place": "望京", "keyword": "火锅"}),
])
def test_follow_ups_change_one_thing_and_keep_the_rest(intent, text, follow_up, expected, slots):
    resolved = after(intent, text, follow_up)
    assert resolved is not None and resolved.intent is expected and resolved.slots == slots


@pytest.mark.parametrize(("intent", "text", "follow_up"), [
    (Intent.DRIVE, "开车从西湖到灵隐寺要多久", "开车真累"),  # names a mode, asks nothing
    (Intent.TRANSIT, "坐地铁从家到公司怎么走", "地铁上好挤啊"),
    (Intent.WEATHER, "北京今天冷吗", "那我多穿点"),
    (Intent.WEATHER, "明天北京天气怎么样", "开车去天津要多久"),  # a request of its own
    (Intent.WALK, "从天安门走到王府井怎么走", "从西湖走到断桥要多久"),
    (Intent.IMAGE, "画一只柴犬", "好可爱啊"),
    (Intent.VIDEO, "做个烟花的视频", "视频做好了吗"),
    (Intent.CHAT, "你好", "那开车呢"),
])
def test_messages_that_stand_alone_are_no_follow_ups(intent, text, follow_up):
    assert after(intent, text, follow_up) is None


def test_no_previous_turn_no_follow_up():
    assert resolve_follow_up("那开车呢", None, BUILTIN) is None
    walked = PreviousTurn(Intent.WALK, {"origin": "a", "destination": "b"})
    assert resolve_follow_up("", walked, BUILTIN) is None


@pytest.mark.parametrize(("asked", "subject"), [
    ("画一只柴犬", "一只柴犬"),
    ("帮我画一只在雪地里的狐狸", "一只在雪地里的狐狸"),
    ("生成一张海边日落的图", "海边日落"),
    ("做一段熊猫打太极的视频", "熊猫打太极"),
    ("P一张图：一只猫坐在月亮上", "一只猫坐在月亮上"),
    ("draw a cat on the moon", "a cat on the moon"),
])
def test_subject_of_a_generation_request(asked, subject):
    assert subject_of(asked) == subject


def test_style_and_again_keep_the_subject():
    styled = after(Intent.IMAGE, "画一只柴犬", "换成水墨风格")
    assert styled is not None and styled.intent is Intent.IMAGE and styled.subject == "一只柴犬，水墨风格"
    again = after(Intent.VIDEO, "生成一段小猫追蝴蝶的视频", "再来一个")
    assert again is not None and again.intent is Intent.VIDEO and again.subject == "小猫追蝴蝶"
