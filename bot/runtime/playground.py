"""Playground mode: the usual app (`build_app`, same router and features) behind the web playground channel,
plus the demo video model when no real weights are found. Used by `xiaoai playground` and by `xiaoai run`
when no WeChat gateway is configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from bot.channels.playground.channel import PlaygroundChannel, job_status_of
from bot.channels.playground.transcript import Transcript
from bot.config import AppConfig, Secrets
from bot.config.secret_store import FILE_NAME as SECRETS_FILE
from bot.runtime.app import Application, add_console, build_app

NO_LLM_NOTICE = ("还没有接上语言模型：不能闲聊，画图和视频直接照原话做，其它功能照常"
                 "（在管理台「密钥」页填写后马上生效）。")


@dataclass
class Playground:
    app: Application
    channel: PlaygroundChannel
    notes: list[str] = field(default_factory=list)  # what the person starting it should know


def llm_configured(config: AppConfig, secrets: Secrets) -> bool:
    return bool(secrets.openai_api_key or secrets.openai_base_url or config.llm.base_url)


def with_demo_models(config: AppConfig, api_keys: Mapping[str, str | None] | None = None
                     ) -> tuple[AppConfig, dict[str, str]]:
    """Point `video` / `image` at random-weight demo models when no real weights are found (not video when
    `video.backend: auto` picks a hosted API: `api_keys`, default from the environment).

    Returns the config to use and {media kind: label} for replies that carry demo output."""
    if not config.offline.playground.demo_models:
        return config, {}
    from bot.jobs.video_choice import choose

    keys = Secrets.from_env().video_api_keys() if api_keys is None else api_keys
    video_by_api = choose(config.video, keys).backend == "api"
    from generators.demo import DEMO_IMAGE_LABEL, DEMO_VIDEO_LABEL, demo_image_config, demo_video_config

    root = config.data_dir / "demo-models"
    updates: dict[str, object] = {}
    labels: dict[str, str] = {}
    for kind, make, label in (("video", demo_video_config, DEMO_VIDEO_LABEL),
                              ("image", demo_image_config, DEMO_IMAGE_LABEL)):
        if kind == "video" and video_by_api:
            continue
        try:
            section, demo = make(getattr(config, kind), root)
        except Exception as exc:  # noqa: BLE001 - no torch/diffusers here: the bot still runs without it
            logger.warning("demo: could not prepare the demo {} model: {}", kind, exc)
            continue
        if demo:
            updates[kind], labels[kind] = section, label
    return config.model_copy(update=updates), labels


DAILY_QUOTAS = ("user_images_per_day", "group_images_per_day", "user_videos_per_day", "group_videos_per_day")


def without_daily_quotas(config: AppConfig) -> AppConfig:
    """No daily picture/video limits in the playground (one person plays every member there), unless the
    config file sets them itself."""
    if "quotas" in config.model_fields_set:
        return config
    return config.model_copy(update={"quotas": config.quotas.model_copy(update=dict.fromkeys(DAILY_QUOTAS))})


def build_playground(config: AppConfig, secrets: Secrets, config_path: Path | None = None) -> Playground:
    """The app with the playground as its channel. Blocking the first time (builds the demo model)."""
    notes: list[str] = []
    config, labels = with_demo_models(without_daily_quotas(config), secrets.video_api_keys())
    if labels:
        what = " and ".join({"video": "CogVideoX (videos)", "image": "FLUX (pictures)"}[k] for k in labels)
        notes.append(f"No {what} weights found: they come from tiny RANDOM demo models (noise), "
                     "just to try the flow.")
    if secrets.file is None:  # keys typed into the console count from the start
        secrets.use_file(config.data_dir / SECRETS_FILE)
    if not llm_configured(config, secrets):
        notes.append("No LLM configured: chat and prompt rewriting need a key: enter it on the console's "
                     "Keys page, or set OPENAI_API_KEY (and/or OPENAI_BASE_URL).")
    kinds = "和".join({"video": "视频", "image": "图片"}[k] for k in labels)
    demo = f"{kinds}用的是随机权重的演示模型，画面是噪声。" if labels else ""

    def notice() -> str:
        """Read for each page load: a key saved in the console since the start clears the LLM line."""
        return " ".join(part for part in (
            "" if llm_configured(live(), secrets) else NO_LLM_NOTICE, demo) if part)

    channel = PlaygroundChannel(
        config.offline.playground, config.data_dir / "media", bot_name=lambda: live().bot.name,
        notice=notice, media_labels=labels,
        transcript=Transcript(config.data_dir / "playground.sqlite3"),
    )
    app = build_app(config, secrets, channel, config_path=config_path)
    add_console(app, secrets)
    live = app.live_config
    live.overlay(without_daily_quotas)
    if labels:  # an edited config.yaml must not lose the demo model while the playground runs
        live.overlay(lambda edited: with_demo_models(edited, secrets.video_api_keys())[0])
    channel.job_status = job_status_of(app.jobs)
    return Playground(app, channel, notes)
