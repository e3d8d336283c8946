"""The composition root: `build_app` wires every part with exactly what it uses, and `Application`
runs the result — the services, then the channel feeding the dispatcher — until stopped.

Reading `build_app` top to bottom shows everything the bot is made of. Nothing receives the
Application itself; it holds the wired parts its lifecycle and the console need.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from bot.background import cancel_and_wait
from bot.channels.base import Channel
from bot.config import AppConfig, Secrets
from bot.config.live import LiveConfig
from bot.config.secret_store import FILE_NAME as SECRETS_FILE
from bot.config.watch import ConfigWatcher
from bot.console import attach_console
from bot.console.checks import checks_for
from bot.jobs import JobQueue, JobStore, LocalBackend, Outbox, RemoteBackend, WorkerBackend
from bot.jobs.kinds import IMAGE_PRIORITY, ImageKind, VideoKind, video_token
from bot.jobs.kinds.image import KEY_ENV as IMAGE_KEY_ENV
from bot.jobs.render_process import RenderProcessBackend
from bot.jobs.video_api import ApiVideoBackend
from bot.jobs.video_choice import VideoChoice, choose, cuda_gpu_present
from bot.jobs.warmup import LibraryWarmup, ModelPreload
from bot.llm import LiveLLM
from bot.ops.admin import AdminCommands, AdminTools
from bot.ops.alerts import DisconnectAlerts
from bot.ops.notices import AdminNotices
from bot.ops.scheduler import Scheduler
from bot.pipeline.conversation import History, Sender
from bot.pipeline.dispatch import Dispatcher, FollowUps
from bot.pipeline.gates import (
    AdminGate,
    Dedup,
    NonText,
    PhotoGate,
    RateLimit,
    Record,
    RoomDirectory,
    addressing,
    allow_list,
    mention_only,
    self_echo,
    typed_mention,
)
from bot.pipeline.photos import FOLDER as PHOTO_FOLDER
from bot.pipeline.photos import PhotoStore
from bot.plugin import IntentRegistry, load_intents
from intents import weather
from nlu.classify import LLMClassifier
from nlu.embedded import EmbeddedClassifier
from services.amap import AmapConnections
from services.amap.errors import KEY_ENV as AMAP_KEY_ENV

if TYPE_CHECKING:
    from bot.jobs.celery_backend import CeleryBackend

PLUGIN_SKIPPED = "插件 {source} 没有加载（{reason}），小爱照常服务，只是少了它的功能。修好后重启小爱。"


class Service(Protocol):
    """Something with a lifecycle tied to the bot's (a job queue, a scheduler, a config watcher)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(kw_only=True, eq=False, repr=False)  # one object, compared by identity, never printed whole
class Application:
    """The wired bot: start the services, serve the channel into the dispatcher, stop in reverse."""

    live_config: LiveConfig
    channel: Channel
    dispatcher: Dispatcher
    services: list[tuple[str, Service]]
    live_llm: LiveLLM
    jobs: JobQueue
    config_watcher: ConfigWatcher
    _stopped: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def run(self) -> None:
        for name, service in self.services:
            logger.info("starting {}", name)
            await service.start()
        channel_task = asyncio.create_task(self.channel.run(self.dispatcher.on_message))
        stop_task = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({channel_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self.channel.stop()
            try:
                await cancel_and_wait(channel_task, stop_task)
            finally:
                await self.close()

    async def close(self) -> None:
        """Stop the services in reverse order and close the LLM client (also for apps never run)."""
        for _name, service in reversed(self.services):
            with contextlib.suppress(Exception):
                await service.stop()
        await self.live_llm.close()

    def stop(self) -> None:
        self._stopped.set()


class PluginReport:
    """Service: once the channel is connected, tells the admins which plugins were skipped and why (the
    log has the traceback); the bot serves without them."""

    def __init__(self, intents: IntentRegistry, tell: Callable[..., Awaitable[int]],
                 connected: Callable[[], bool]) -> None:
        self.intents, self.tell, self.connected = intents, tell, connected
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self.intents.failures:
            self._task = asyncio.create_task(self._report(), name="plugin-report")

    async def _report(self) -> None:
        while not self.connected():  # noqa: ASYNC110 - channels offer a flag, not an event
            await asyncio.sleep(0.5)
        for failure in self.intents.failures:
            await self.tell(PLUGIN_SKIPPED.format(source=failure.source, reason=failure.reason),
                            key=f"plugin:{failure.source}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)


def add_console(app: Application, secrets: Secrets) -> None:
    """The admin console (/admin) for a bot that is run for real (`xiaoai run` / playground): mounted on
    the playground's page server, else its own small web server started with the other services."""
    jobs = app.jobs
    intents = {i.name: i.label for i in app.dispatcher.intents}
    console = attach_console(app.channel, config=app.live_config, secrets=secrets, jobs=jobs,
                             watcher=app.config_watcher, intents=intents,
                             live_workers=lambda: jobs.backend_for("video").live_workers())
    if console is not None:
        app.services.append(("console", console))


def video_choice_for(live: LiveConfig, secrets: Secrets) -> Callable[[], VideoChoice]:
    """Where videos go now (`video.backend`, with `auto` resolved), read from the current config."""
    return lambda: choose(live.current.video, secrets.video_api_keys())


def build_app(config: AppConfig, secrets: Secrets, channel: Channel, config_path: Path | None = None
              ) -> Application:
    """Wire the bot for `channel`: sending, the job queue with its kinds, the services that run it for
    a family, and the dispatcher with its gates."""
    live = LiveConfig(config)
    if secrets.file is None:  # keys typed into the console, for what the environment does not set
        secrets.use_file(config.data_dir / SECRETS_FILE)
    intents = load_intents(config.plugins.dirs)  # built-ins, plugin folders, entry points; read at start
    history = History()
    llm = LiveLLM(config.llm, secrets)
    live.subscribe(llm.on_config)
    sender = Sender(channel, history, live)
    notices = AdminNotices(live, sender.send)

    jobs, warm_ups, gpu_workers, render_process = _job_queue(live, secrets, channel, sender=sender,
                                                             notices=notices)
    photos = PhotoStore(jobs.media_dir)  # photos people post, for "让这张照片动起来"; the same retention
    jobs.retention.keep(PHOTO_FOLDER, lambda: live.current.video.photo.keep_hours * 3600)

    amap = AmapConnections(key=partial(secrets.key, AMAP_KEY_ENV))
    secrets.on_change(amap.reread_key)  # a key saved in the console reaches the next message
    rooms = RoomDirectory()
    scheduler, watcher, alerts, admin = _family_ops(live, secrets, channel, config_path, sender=sender,
                                                    notices=notices, jobs=jobs, history=history, amap=amap,
                                                    rooms=rooms, gpu_workers=gpu_workers, intents=intents,
                                                    model_loaded=render_process.loaded)
    embedded = EmbeddedClassifier(intents, config=config.offline.classifier,
                                  cache_dir=config.data_dir / "cache")
    dispatcher = _dispatcher(live, intents, embedded, admin=admin, sender=sender, history=history, llm=llm,
                             jobs=jobs, amap=amap, rooms=rooms, notices=notices, photos=photos)
    services: list[tuple[str, Service]] = [
        ("jobs", jobs),
        *warm_ups,
        ("embedded classifier", embedded),
        ("chat answered ahead", dispatcher.ahead),
        ("amap", amap),
        ("scheduler", scheduler),
        ("alerts", alerts),
        ("config watch", watcher),
        ("plugin report", PluginReport(intents, notices.tell, connected=lambda: channel.connected)),
    ]
    return Application(live_config=live, channel=channel, dispatcher=dispatcher, services=services,
                       live_llm=llm, jobs=jobs, config_watcher=watcher)


def _job_queue(live: LiveConfig, secrets: Secrets, channel: Channel, *, sender: Sender,
               notices: AdminNotices
               ) -> tuple[JobQueue, list[tuple[str, Service]], CeleryBackend | None, RenderProcessBackend]:
    """The job queue with its two kinds, the services that warm their models up, the Celery backend
    when `jobs.backend` is celery, and the render process backend (which knows what its child loaded).

    Pictures have priority so they don't starve behind long videos. With celery both go to the GPU
    workers; else video jobs go to the serve-video host while video.backend is remote, to a hosted API
    while it is api (or auto found no GPU but a key), and everything else runs here: in a child process
    while it renders on the CPU (`jobs.render_process`), else in this one."""
    config = live.current
    store = JobStore(config.data_dir / "jobs.sqlite3")
    video_choice = video_choice_for(live, secrets)
    video_kind = VideoKind(lambda: live.current.video, backend=lambda: video_choice().backend)
    image_kind = ImageKind(lambda: live.current.image,
                           api_key=lambda: secrets.get(IMAGE_KEY_ENV) or secrets.openai_api_key,
                           api_base_url=lambda: secrets.openai_base_url)
    render_process = RenderProcessBackend({"video": video_kind, "image": image_kind},
                                          mode=lambda: live.current.jobs.render_process,
                                          gpu_present=cuda_gpu_present)
    backends: list[WorkerBackend] = [
        RemoteBackend(lambda: live.current.video, video_token),
        ApiVideoBackend(lambda: live.current.video, store, secrets.video_api_keys, video_choice),
        render_process,  # local renders on the CPU: a child process, off the event loop's GIL
        LocalBackend(),
    ]
    gpu_workers = None
    if config.jobs.backend == "celery":
        from bot.jobs.celery_backend import CeleryBackend

        gpu_workers = CeleryBackend(lambda: live.current.jobs, tell_admins=notices.tell)
        backends.insert(0, gpu_workers)
    jobs = JobQueue(
        store,
        backends,
        media_dir=config.data_dir / "media",
        outbox=Outbox(sender.send, is_connected=lambda: channel.connected, tell_admins=notices.tell),
        timezone=lambda: live.current.schedules.timezone,
    )
    jobs.register(video_kind, label="视频",
                  retention_s=lambda: live.current.video.queue.media_max_age_hours * 3600)
    jobs.register(image_kind, label="图片", priority=IMAGE_PRIORITY,
                  retention_s=lambda: live.current.image.queue.media_max_age_hours * 3600)
    jobs.on_storage_full = notices.storage_full  # a full disk is the admins' to fix
    if gpu_workers is not None:  # a render that finishes after its job was given up on
        gpu_workers.late.on_result = jobs.late_result
    # with Celery the workers render (and warm up): nothing here would ever use a model or torch
    warm_ups: list[tuple[str, Service]] = [] if gpu_workers is not None else [
        ("video preload", ModelPreload(video_kind, lambda: live.current.video, render_process)),
        ("image preload", ModelPreload(image_kind, lambda: live.current.image, render_process)),
        ("library warm-up", LibraryWarmup(lambda: (video_kind, image_kind), render_process)),
    ]
    return jobs, warm_ups, gpu_workers, render_process


def _family_ops(live: LiveConfig, secrets: Secrets, channel: Channel, config_path: Path | None, *,
                sender: Sender, notices: AdminNotices, jobs: JobQueue, history: History,
                amap: AmapConnections, rooms: RoomDirectory, gpu_workers: CeleryBackend | None,
                intents: IntentRegistry, model_loaded: Callable[[str], bool | None]
                ) -> tuple[Scheduler, ConfigWatcher, DisconnectAlerts, AdminCommands]:
    """Running it for a family: schedules, the config file, disconnect alerts, admin commands."""

    async def resolve_room(room: str) -> str:
        """A schedule's `room`: a topic seen in a message, else looked up in the channel, else an id."""
        if room not in rooms.ids and (found := await channel.find_room(room)) is not None:
            rooms.ids[room] = found
        return rooms.ids.get(room, room)

    scheduler = Scheduler(
        live, send=sender.send, resolve_room=resolve_room,
        weather_report=lambda city: weather.daily_report(amap.client(live.current.amap), city,
                                                         live.current.amap),
        remove_old_media=jobs.retention.cleanup, prune_history=history.prune,
    )
    live.subscribe(scheduler.on_config)
    watcher = ConfigWatcher(config_path, apply=live.apply, notices=notices,
                            connected=lambda: channel.connected)
    alerts = DisconnectAlerts(live, connected=lambda: channel.connected,
                              state=lambda: channel.login_status(), notices=notices, env=secrets)
    started_at = time.time()
    checks = checks_for(channel, live, secrets, lambda: jobs.backend_for("video").live_workers(), jobs=jobs)
    admin = AdminCommands(AdminTools(config=live, reply=sender.reply, jobs=jobs, scheduler=scheduler,
                                     watcher=watcher, started_at=started_at, checks=checks.run_async,
                                     workers=gpu_workers.workers if gpu_workers else None,
                                     model_loaded=model_loaded,
                                     intents=tuple((i.name, i.label) for i in intents)))
    return scheduler, watcher, alerts, admin


def _dispatcher(live: LiveConfig, intents: IntentRegistry, embedded: EmbeddedClassifier, *,
                admin: AdminCommands, sender: Sender, history: History, llm: LiveLLM, jobs: JobQueue,
                amap: AmapConnections, rooms: RoomDirectory, notices: AdminNotices,
                photos: PhotoStore) -> Dispatcher:
    """The gates in order, then the LLM classifier (the embedded one without it), then the intent."""
    followups = FollowUps()
    gates = [Dedup(), self_echo, rooms, typed_mention, AdminGate(admin.run), allow_list, addressing,
             PhotoGate(photos, followups, sender.reply), NonText(sender.reply), Record(history), mention_only,
             RateLimit(sender.reply)]
    return Dispatcher(
        config=live, gates=gates, classify_llm=LLMClassifier(intents), classify_embedded=embedded,
        intents=intents, reply=sender.reply, history=history, llm=llm, jobs=jobs, amap=amap.client,
        followups=followups, notify_admins=notices.tell,
    )
