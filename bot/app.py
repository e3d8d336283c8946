"""Composition root. `Application` holds what every message needs (current config, channel, LLM,
history, router, classifier) and runs the channel plus the registered services until stopped;
`build_app` wires the features: the GPU job queue, the classifiers, and the services for running it for
a family. Reading this file top to bottom shows everything the bot is made of.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from loguru import logger

from bot.alerts import DisconnectAlerts
from bot.channels.base import Channel, ChatRef, IncomingMessage, Reply
from bot.config import AppConfig, Secrets
from bot.config_watch import ConfigWatcher
from bot.context import Context
from bot.history import History
from bot.image import PRIORITY as IMAGE_PRIORITY
from bot.image import ImageKind, image_api_key
from bot.jobs import JobQueue
from bot.llm import LLM
from bot.progress import LibraryWarmup
from bot.quotas import Quotas
from bot.router import Router, llm_classifier
from bot.scheduler import Scheduler
from bot.video import ModelPreload, VideoKind
from intents import Intent
from intents.embedded import EmbeddedClassifier, with_fallback
from intents.slots import AmapFeature, follow_up_classifier


class Service(Protocol):
    """Something with a lifecycle tied to the bot's (a job queue, a scheduler, a config watcher)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


Classifier = Callable[[Context], Awaitable[Intent]]


class Application:
    def __init__(
        self,
        config: AppConfig,
        secrets: Secrets,
        channel: Channel,
        *,
        config_path: Path | None = None,
    ) -> None:
        self._config = config
        self.secrets = secrets
        self.channel = channel
        self.config_path = config_path
        self.llm = LLM(config.llm, secrets)
        self.history = History()
        self.router = Router(self)
        self.classifier: Classifier = llm_classifier
        self.services: dict[str, Service] = {}
        # set by build_app; None in an Application built bare (unit tests)
        self.jobs: JobQueue | None = None
        self.quotas: Quotas | None = None
        self.scheduler: Scheduler | None = None
        self.config_watcher: ConfigWatcher | None = None
        self.embedded_classifier: EmbeddedClassifier | None = None
        self.started_at = time.time()
        self._stopped = asyncio.Event()
        self._closing: set[asyncio.Task] = set()  # replaced LLM clients being closed
        # called with each newly applied config (the scheduler resyncs its jobs), in registration order
        self.config_listeners: list[Callable[[AppConfig], None]] = []
        # applied to every reloaded config before it is swapped in (the playground's demo model)
        self.config_overlays: list[Callable[[AppConfig], AppConfig]] = []

    # -- config -------------------------------------------------------------------------------
    @property
    def config(self) -> AppConfig:
        return self._config

    def apply_config(self, config: AppConfig) -> None:
        """Swap in a validated config; rebuild what depends on changed sections."""
        for overlay in self.config_overlays:
            config = overlay(config)
        if config.llm != self._config.llm:
            retired, self.llm = self.llm, LLM(config.llm, self.secrets)
            self._close_later(retired)
        self._config = config
        for listener in self.config_listeners:
            try:
                listener(config)
            except Exception:  # noqa: BLE001 - one listener's bug must not block the others or the swap
                logger.exception("config listener {} failed", listener)

    def _close_later(self, llm: LLM) -> None:
        """Calls in flight may still use a replaced LLM client: close it once they must have ended."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop, so nothing in flight; the client is closed when collected
        grace = llm.config.timeout_s * (llm.config.retries + 1) + 1

        def close() -> None:
            task = loop.create_task(llm.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

        loop.call_later(grace, close)

    # -- sending ------------------------------------------------------------------------------
    async def send(self, chat: ChatRef, reply: Reply) -> bool:
        """Send and record the bot's line in the history; False (logged) when the channel failed."""
        try:
            await self.channel.send(chat, reply)
        except Exception as exc:  # noqa: BLE001 - callers decide whether to retry
            logger.warning("send to {} failed: {}", chat.key, exc)
            return False
        if reply.text:
            self.history.add(chat.key, self._config.bot.name, reply.text, from_bot=True)
        return True

    async def reply(self, msg: IncomingMessage, reply: Reply) -> bool:
        """Answer `msg` in its chat, @-mentioning the asker in rooms."""
        if msg.chat.is_room and not reply.mention_ids:
            reply = Reply(reply.text, reply.file, (msg.sender_id,))
        return await self.send(msg.chat, reply)

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        for name, service in self.services.items():
            logger.info("starting {}", name)
            await service.start()
        channel_task = asyncio.create_task(self.channel.run(self.router.on_message))
        stop_task = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({channel_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self.channel.stop()
            for task in (channel_task, stop_task):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            for service in reversed(list(self.services.values())):
                with contextlib.suppress(Exception):
                    await service.stop()
            await self.llm.close()

    def stop(self) -> None:
        self._stopped.set()


def build_app(config: AppConfig, secrets: Secrets, channel: Channel, config_path: Path | None = None
              ) -> Application:
    """Wire the application: the GPU job queue with its kinds, the classifiers, and the services that
    run for a family (scheduler, alerts, config watcher, quotas)."""
    app = Application(config, secrets, channel, config_path=config_path)

    # the GPU job queue: videos, and pictures with priority so they don't starve behind long videos
    app.jobs = JobQueue(config.data_dir, deliver=app.send, is_connected=lambda: app.channel.connected)
    video_kind = VideoKind(lambda: app.config.video)
    app.jobs.register(video_kind, label="视频",
                      retention_s=lambda: app.config.video.media_max_age_hours * 3600)
    image_kind = ImageKind(lambda: app.config.image,
                           api_key=lambda: image_api_key() or app.secrets.openai_api_key,
                           api_base_url=lambda: app.secrets.openai_base_url)
    app.jobs.register(image_kind, label="图片", priority=IMAGE_PRIORITY,
                      retention_s=lambda: app.config.image.media_max_age_hours * 3600)
    app.services["jobs"] = app.jobs
    app.services["video preload"] = ModelPreload(video_kind, lambda: app.config.video)
    app.services["image preload"] = ModelPreload(image_kind, lambda: app.config.image)
    app.services["library warm-up"] = LibraryWarmup(lambda: (video_kind, image_kind))

    # classification: the LLM, the embedded classifier alone or behind it, and AMap's follow-up answers
    app.embedded_classifier = EmbeddedClassifier(config=config.offline.classifier)
    app.classifier = with_fallback(app.classifier, app.embedded_classifier)
    app.services["embedded classifier"] = app.embedded_classifier
    app.services["amap"] = AmapFeature()
    app.classifier = follow_up_classifier(app.classifier, app)  # "从哪里出发？" answers go back

    # running it for a family
    app.quotas = Quotas(app)
    app.scheduler = Scheduler(app)
    app.config_listeners.append(app.scheduler.sync)
    app.services["scheduler"] = app.scheduler
    app.services["alerts"] = DisconnectAlerts(app)
    if config_path is not None:
        app.config_watcher = ConfigWatcher(app, config_path)
        app.services["config_watch"] = app.config_watcher
    return app
