"""The READMEs say what the playground enforces with the shipped config.yaml (its daily quotas)."""

from __future__ import annotations

from pathlib import Path

from bot.config import load
from bot.runtime.playground import without_daily_quotas

ROOT = Path(__file__).resolve().parents[2]


def test_readmes_state_the_shipped_daily_quotas_of_the_playground() -> None:
    quotas = without_daily_quotas(load(ROOT / "config.yaml")).quotas
    zh = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    en = (ROOT / "README.md").read_text(encoding="utf-8")
    assert quotas.user_videos_per_day is not None  # the shipped file sets them: the playground keeps them
    assert (f"每人每天 {quotas.user_images_per_day} 张图、\n  {quotas.user_videos_per_day} 个视频" in zh
            and f"每个群每天 {quotas.group_images_per_day} 张图、{quotas.group_videos_per_day} 个视频" in zh)
    assert "试玩页里没有每天的图片 / 视频次数限制" not in zh
    en = en.replace("\n", " ")
    assert (f"{quotas.user_images_per_day} pictures and {quotas.user_videos_per_day} videos a person a day, "
            f"{quotas.group_images_per_day} and {quotas.group_videos_per_day} a group" in en)
