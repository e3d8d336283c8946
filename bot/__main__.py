"""`xiaoai` command line: parse arguments, load config, build the app, run it. Nothing more."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from loguru import logger

from bot.config import AppConfig, ConfigError, Secrets, load

NO_PUPPET_HELP = """\
小爱 needs a WeChat gateway to talk to, and none is configured.

Connect to WeChat:
  1. start the gateway we ship (it shows a QR code to scan with the WeChat app):
       make gateway
  2. point the bot at it, with the token the gateway printed:
       export WECHATY_PUPPET_SERVICE_ENDPOINT=127.0.0.1:8788
       export WECHATY_PUPPET_SERVICE_TOKEN=<token>
  3. make run

Also set OPENAI_API_KEY (and OPENAI_BASE_URL for any OpenAI-compatible server) for the LLM.
"""


def _load_config(path: Path | None) -> AppConfig:
    if path is None and Path("config.yaml").is_file():
        path = Path("config.yaml")
    config = load(path)
    logger.info("config: {}", path or "embedded defaults")
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from bot.app import build_app
    from bot.channels.wechaty import WechatyChannel

    config = _load_config(args.config)
    secrets = Secrets.from_env()
    endpoint = secrets.puppet_endpoint or config.wechaty.endpoint
    if not endpoint:
        print(NO_PUPPET_HELP)
        return 0
    channel = WechatyChannel(
        endpoint,
        secrets.puppet_token,
        names=lambda: [app.config.bot.name, *app.config.bot.aliases],
        reconnect_initial_s=config.wechaty.reconnect_initial_s,
        reconnect_max_s=config.wechaty.reconnect_max_s,
        health_interval_s=config.wechaty.health_interval_s,
        plugin_port=config.wechaty.port,
    )
    app = build_app(config, secrets, channel, config_path=args.config)
    return _serve(app)


def _serve(app) -> int:  # noqa: ANN001 - bot.app.Application, imported lazily
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, app.stop)
        await app.run()

    asyncio.run(main())
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    load(args.path)
    print(f"{args.path}: OK")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xiaoai", description="小爱: a WeChat group assistant.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the bot (WeChat through the puppet-service gateway)")
    run.add_argument("--config", type=Path, default=None, help="config file (default ./config.yaml)")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("path", type=Path)
    check.set_defaults(func=cmd_check_config)
    # more subcommands (playground, serve-video, bench, ...) are added below this line
    return parser


def main(argv: list[str] | None = None) -> int:
    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{time:HH:mm:ss.SSS} {level: <7} {message}")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
