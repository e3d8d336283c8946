"""How long a video and a picture took on this machine lately: a line each in the one list of checks
(console, `#状态`, `xiaoai doctor`), averaged from the job store's own measured runs.

Only runs with the model and speed preset in force count (the same `profile` the ack's "预计 N 秒"
compares, minus the per-job size), so a changed model starts from "not measured yet". The store is read
through a read-only connection: `xiaoai doctor` runs beside the bot and must never create or lock it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.config import AppConfig
from bot.console.check import Check
from bot.console.words import Text

STORE_FILE = "jobs.sqlite3"  # the bot's JobStore under data_dir
RECENT = 5  # how many finished jobs the average covers
PRESET_WORDS: dict[str, Text] = {"exact": ("精确档，不加速", "exact, no speed-ups"),
                                 "default": ("默认速度", "default speed"), "fast": ("快速档", "fast preset")}


def recent_seconds(data_dir: Path, kind: str, profile_prefix: str, count: int = RECENT) -> list[float]:
    """Run times of the last `count` finished jobs of `kind` whose profile starts with `profile_prefix`
    (any size); [] when the store does not exist yet or cannot be read."""
    path = data_dir / STORE_FILE
    if not path.is_file():
        return []
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            rows = db.execute(
                "SELECT finished_at - started_at FROM jobs WHERE kind=? AND state='done' "
                "AND started_at IS NOT NULL AND finished_at IS NOT NULL "
                "AND (profile=? OR substr(profile, 1, ?)=?) ORDER BY id DESC LIMIT ?",
                (kind, profile_prefix, len(profile_prefix) + 1, profile_prefix + "|", count)).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []
    return [float(seconds) for (seconds,) in rows]


def _video_model(config: AppConfig) -> Text:
    from generators.cogvideox_models import REPO_NAMES

    variant = config.video.model.variant
    model = REPO_NAMES.get(variant, f"CogVideoX {variant}")
    preset = PRESET_WORDS.get(config.video.speed.preset, (config.video.speed.preset,) * 2)
    return f"{model}，{preset[0]}", f"{model}, {preset[1]}"


def _image_model(config: AppConfig) -> Text:
    if config.image.backend == "api":
        return config.image.api.model, config.image.api.model
    model = f"FLUX.1-{config.image.model.variant}"
    return model, model


def _seconds(value: float) -> Text:
    if value < 120:
        return f"{value:.0f} 秒", f"{value:.0f} s"
    return f"{value / 60:.1f} 分钟", f"{value / 60:.1f} min"


def _timing_check(key: str, name: Text, what: Text, where: Text, model: Text, durations: list[float]
                  ) -> Check:
    if not durations:
        return Check(key, True, name, (f"还没在{where[0]}做过{what[0]}（{model[0]}）",
                                       f"no {what[1]} made {where[1]} yet ({model[1]})"))
    average = _seconds(sum(durations) / len(durations))
    return Check(key, True, name,
                 (f"{where[0]}最近 {len(durations)} 个平均 {average[0]}（{model[0]}）",
                  f"last {len(durations)} {what[1]} {where[1]}: {average[1]} on average ({model[1]})"))


def timing_checks(config: AppConfig) -> list[Check]:
    """The video and picture lines: the average of this machine's last runs with the settings in force."""
    from bot.jobs.kinds.image import ImageKind
    from bot.jobs.kinds.video import VideoKind

    video_where: Text = ("这台机器上", "here")
    if config.video.backend == "remote":
        video_where = ("视频工作机上", "on the video workers")
    video = _timing_check(
        "video_time", ("视频用时", "video time"), ("视频", "videos"), video_where, _video_model(config),
        recent_seconds(config.data_dir, "video", VideoKind(lambda: config.video).profile({})))
    image_where: Text = ("图片服务上", "by the images API") if config.image.backend == "api" else (
        "这台机器上", "here")
    image = _timing_check(
        "image_time", ("图片用时", "picture time"), ("图片", "pictures"), image_where, _image_model(config),
        recent_seconds(config.data_dir, "image", ImageKind(lambda: config.image).profile({})))
    return [video, image]
