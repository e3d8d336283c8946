"""`xiaoai` command line: parse arguments, load the config, build the app (bot/runtime/app.py) and run it."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loguru import logger

from bot.config import AppConfig, ConfigError, Secrets, load, load_resilient
from bot.logs import setup_logging
from bot.runtime import instance_lock
from bot.runtime.instance_lock import DataDirInUse, InstanceLock

STOP_GRACE_S = 5.0  # after a stop, a loading thread (weights, the classifier's examples) gets this long
NO_PUPPET_HELP = (
    "No WeChat gateway is configured, so this is the local playground. To connect WeChat: `make gateway`"
    " (scan its QR code), then set WECHATY_PUPPET_SERVICE_ENDPOINT and WECHATY_PUPPET_SERVICE_TOKEN to what"
    " it prints and `make run` again."
)


def config_path(given: Path | None) -> Path | None:
    """The file a command reads: --config, else ./config.yaml when there is one, else none (defaults)."""
    if given is None and Path("config.yaml").is_file():
        return Path("config.yaml")
    return given


def _load_config(path: Path | None) -> tuple[AppConfig, str | None]:
    """The config for a start, and the reason when the file is broken and the last copy that validated
    is used instead (see `load_resilient`): logged loudly here, told to the admins once connected."""
    path = config_path(path)
    config, error = load_resilient(path)
    if error:
        logger.error("config has an error, running on the last good copy: {}", error)
        print(f"config error (running on the last good copy): {error}", file=sys.stderr)
    logger.info("config: {}", path or "embedded defaults")
    return config, error


GATEWAY_DOWN_HELP = """\
Nothing answers at the WeChat gateway {endpoint} yet.
Start the gateway first, in another terminal:   make gateway
The bot keeps retrying every few seconds and starts serving as soon as the gateway is up.
"""


def _port_answers(endpoint: str) -> bool:
    """One quick TCP probe so a user who forgot the gateway is told at once (the bot retries anyway)."""
    from bot.channels.wechaty.channel import split_endpoint

    try:
        with socket.create_connection(split_endpoint(endpoint), timeout=1):
            return True
    except (OSError, ValueError):
        return False


def _hold_data_dir(config: AppConfig) -> InstanceLock:
    """This process's lock on data_dir (kept until exit); a second bot on it gets DataDirInUse."""
    return instance_lock.acquire(config.data_dir)


def cmd_run(args: argparse.Namespace) -> int:
    from bot.channels.wechaty.channel import WechatyChannel
    from bot.runtime.app import add_console, build_app

    config, config_error = _load_config(args.config)
    lock = _hold_data_dir(config)  # noqa: F841 - held for the life of the process
    secrets = Secrets.from_env()
    endpoint = secrets.puppet_endpoint or config.wechaty.endpoint
    if not endpoint:  # no WeChat gateway configured: serve the local playground instead
        return cmd_playground(args, connect_hint=True, loaded=(config, config_error))
    if not _port_answers(endpoint):
        print(GATEWAY_DOWN_HELP.format(endpoint=endpoint), file=sys.stderr)
    channel = WechatyChannel(endpoint, secrets.puppet_token, config.wechaty)
    # the file actually loaded, so edits to it are watched and written back
    app = build_app(config, secrets, channel, config_path=config_path(args.config))
    add_console(app, secrets)
    if config_error:
        app.config_watcher.pending_notice = config_error
    return _serve(app)


def _serve(app) -> int:  # noqa: ANN001 - bot.runtime.app.Application, imported lazily
    async def main() -> None:
        loop = asyncio.get_running_loop()
        threads = ThreadPoolExecutor(thread_name_prefix="xiaoai")
        loop.set_default_executor(threads)  # asyncio.to_thread's pool, held here to bound the wait for it
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, app.stop)
        await app.run()
        await _leave_busy_threads(threads)

    asyncio.run(main())
    return 0


async def _leave_busy_threads(threads: ThreadPoolExecutor) -> None:
    """Exit once everything has stopped, without waiting for a thread still loading weights or
    embedding examples: a thread cannot be stopped, and a SIGTERM must not wait minutes for one."""
    idle = threading.Event()
    threading.Thread(target=lambda: (threads.shutdown(wait=True), idle.set()), daemon=True).start()
    deadline = time.monotonic() + STOP_GRACE_S
    while not idle.is_set():
        if time.monotonic() > deadline:
            logger.warning("stopped; a loading thread still busy after {:g} s is left behind", STOP_GRACE_S)
            await logger.complete()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        await asyncio.sleep(0.05)


def cmd_serve_video(args: argparse.Namespace) -> int:
    from bot.hosts.serve_video import serve
    from bot.jobs.kinds import TOKEN_ENV, video_token

    token = video_token()
    if not token:
        print(f"serve-video needs a shared secret: export {TOKEN_ENV}=<long random string> (the bot uses the "
              "same value with video.backend: remote)", file=sys.stderr)
        return 2
    serve(_load_config(args.config)[0], token, args.host, args.port)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery GPU worker for `jobs.backend: celery` (see README "More GPUs")."""
    from bot.hosts.celery_worker import run_worker
    from bot.jobs.broker import BrokerUrlError
    from generators.parallel import ParallelSplitError

    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    try:
        gpus = [int(g) for g in args.gpus.split(",") if g.strip()] if args.gpus else []
        if len(set(gpus)) != len(gpus) or any(g < 0 for g in gpus):
            raise ValueError(f"--gpus takes distinct GPU numbers like 0,1; got {args.gpus}")
        return run_worker(_load_config(args.config)[0], gpu=args.gpu, queues=queues, gpus=gpus)
    except (BrokerUrlError, ParallelSplitError, ValueError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2


def cmd_check_config(args: argparse.Namespace) -> int:
    load(args.path)
    print(f"{args.path}：没有问题")
    return 0


def cmd_playground(args: argparse.Namespace, *, connect_hint: bool = False,
                   loaded: tuple[AppConfig, str | None] | None = None) -> int:
    """Serve the local web playground (a simulated WeChat group) through the same app and router."""
    from bot.runtime.playground import build_playground

    config, config_error = loaded or _load_config(args.config)
    lock = None if loaded else _hold_data_dir(config)  # noqa: F841 - `run` holds it already
    port = getattr(args, "port", None)
    if port is not None:
        playground = config.offline.playground.model_copy(update={"port": port})
        offline = config.offline.model_copy(update={"playground": playground})
        config = config.model_copy(update={"offline": offline})
    built = build_playground(config, Secrets.from_env(), config_path(args.config))
    if config_error:
        built.app.config_watcher.pending_notice = config_error
    url = built.channel.bind()
    print(f"\n  小爱 playground: {url}  (open it in a browser; Ctrl+C stops)\n", flush=True)
    if config.console.enabled:
        print(f"  admin console: {url}admin/\n", flush=True)
    for line in ([NO_PUPPET_HELP] if connect_hint else []) + built.notes:
        print(line, flush=True)
    return _serve(built.app)


def cmd_doctor(args: argparse.Namespace) -> int:
    """The console's status checks on the command line: each green or red with its one-line fix."""
    from bot.console.doctor import doctor_checks

    config, _error = _load_config(args.config)
    checks = doctor_checks(config, Secrets.from_env())
    print("\n".join(check.line(args.lang) for check in checks))
    return 0 if all(check.ok for check in checks) else 1


def cmd_eval_intents(args: argparse.Namespace) -> int:
    """Accuracy, confusion table and per-message latency of a classifier on a labelled TSV set."""
    from bench.intent_eval import run

    data = args.data
    if data is not None and not data.is_file():
        print(f"no labelled set at {data}: pass --data PATH (a TSV of label<TAB>text)", file=sys.stderr)
        return 2
    config, _error = _load_config(args.config)
    result = run(args.classifier, data, config, Secrets.from_env())
    return 0 if result.samples else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xiaoai", description="小爱: a WeChat group assistant.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the bot (WeChat through the puppet-service gateway)")
    run.add_argument("--config", type=Path, default=None, help="config file (default ./config.yaml)")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("path", type=Path)
    check.set_defaults(func=cmd_check_config)
    from bench.cli import add_parser as add_bench_parser

    add_bench_parser(sub)
    playground = sub.add_parser("playground", help="try the bot in a local web page that looks like a group")
    playground.add_argument("--config", type=Path, default=None, help="config file (default ./config.yaml)")
    playground.add_argument("--port", type=int, default=None, help="web port (default: offline.playground)")
    playground.set_defaults(func=cmd_playground)
    doctor = sub.add_parser("doctor", help="check LLM, AMap, weights, GPU, memory, disk, workers, console")
    doctor.add_argument("--config", type=Path, default=None, help="config file (default ./config.yaml)")
    doctor.add_argument("--lang", choices=("zh", "en"), default="zh",
                        help="language of the report (default zh)")
    doctor.set_defaults(func=cmd_doctor)
    evaluate = sub.add_parser("eval-intents", help="accuracy and confusion table of an intent classifier")
    evaluate.add_argument("--classifier", choices=("embedded", "llm"), default="embedded")
    evaluate.add_argument("--data", type=Path, default=None,
                          help="one labelled TSV: label<TAB>text (default: every set in tests/data, the "
                               "follow-ups and the slot sets)")
    evaluate.add_argument("--config", type=Path, default=None, help="config file (default ./config.yaml)")
    evaluate.set_defaults(func=cmd_eval_intents)
    serve_video = sub.add_parser("serve-video", help="run the video generator as an HTTP service (GPU host)")
    serve_video.add_argument("--config", type=Path, default=None, help="config file (default ./config.yaml)")
    serve_video.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve_video.add_argument("--port", type=int, default=8000)
    serve_video.set_defaults(func=cmd_serve_video)
    worker = sub.add_parser("worker", help="render video/image jobs on one GPU (jobs.backend: celery)")
    worker.add_argument("--config", type=Path, default=None, help="config file (default ./config.yaml)")
    worker.add_argument("--gpu", type=int, default=None, help="the one GPU it uses (default: CPU/all)")
    worker.add_argument("--gpus", default=None, help="several GPUs, e.g. 0,1: each video on all of them "
                        "(video.parallel cfg: 2, cfg+ulysses: 4 or 6)")
    worker.add_argument("--queues", default="video,image", help="job kinds to take (default video,image)")
    worker.set_defaults(func=cmd_worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"配置有错误：{exc}", file=sys.stderr)
        return 2
    except DataDirInUse as exc:
        logger.error("{}", exc)
        print(f"not started: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
