"""The console's action routes: keys (set, cleared, tested), the log page, and the 重新连接微信 /
重新加载配置 buttons. Mounted by `build_console` on its app, behind the same session and CSRF checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from loguru import logger
from pydantic import BaseModel, Field

from bot.config.secret_store import SETTABLE, SETTABLE_NAMES, shown
from bot.console.channel_link import reconnect
from bot.console.log_tail import LEVELS, TAIL
from bot.console.providers import TESTABLE, run_test
from bot.console.words import error, pick

if TYPE_CHECKING:
    from bot.console.deps import ConsoleDeps


class KeysBody(BaseModel):
    values: dict[str, str | None]  # name -> new value; "" or null clears it


class LogQuery(BaseModel):
    after: int = Field(default=0, ge=0)
    level: str = "INFO"


def add_actions(app: FastAPI, deps: ConsoleDeps, session_of: Callable[..., Any], changing: Callable[..., Any],
                lang: Callable[[Request], str]) -> None:
    TAIL.install()

    @app.get("/api/keys", dependencies=[Depends(session_of)])
    async def keys(request: Request) -> dict[str, Any]:
        language, secrets = lang(request), deps.secrets
        rows = []
        for setting in SETTABLE:
            value = secrets.get(setting.name) if secrets else None
            rows.append({"name": setting.name, "provider": setting.provider,
                         "what": pick((setting.zh, setting.en), language), "set": bool(value),
                         "shown": shown(value, is_url=setting.is_url),
                         "from_env": bool(secrets and secrets.from_environment(setting.name))})
        return {"keys": rows, "testable": list(TESTABLE),
                "writable": secrets is not None and secrets.file is not None}

    @app.post("/api/keys", dependencies=[Depends(changing)])
    async def save_keys(body: KeysBody, request: Request) -> dict[str, Any]:
        language, secrets = lang(request), deps.secrets
        if secrets is None or secrets.file is None:
            raise HTTPException(409, error("no_data_dir", language))
        for name in body.values:
            if name not in SETTABLE_NAMES:
                raise HTTPException(422, error("unknown_secret", language, name=name))
            if secrets.from_environment(name):
                raise HTTPException(409, error("env_wins", language, name=name))
        for name, value in body.values.items():
            await asyncio.to_thread(secrets.set, name, value)
        logger.info("console: keys saved: {}", ", ".join(sorted(body.values)))
        return {"saved": sorted(body.values)}

    @app.post("/api/keys/test/{provider}", dependencies=[Depends(changing)])
    async def test_key(provider: str, request: Request) -> dict[str, Any]:
        if provider not in TESTABLE or deps.secrets is None:
            raise HTTPException(404)
        result = await run_test(provider, deps.config(), deps.secrets)
        return result.as_dict(lang(request))

    @app.get("/api/logs", dependencies=[Depends(session_of)])
    async def logs(query: LogQuery = Depends()) -> dict[str, Any]:  # noqa: B008
        lines = TAIL.lines(after=query.after, level=query.level)
        return {"lines": [{"seq": line.seq, "level": line.level, "text": line.text} for line in lines],
                "levels": list(LEVELS)}

    @app.post("/api/reconnect", dependencies=[Depends(changing)])
    async def reconnect_wechat(request: Request) -> dict[str, Any]:
        done = deps.channel is not None and await reconnect(deps.channel)
        logger.info("console: reconnect WeChat asked{}", "" if done else " (nothing to reconnect)")
        text = (("正在重新连接微信", "reconnecting WeChat") if done
                else ("这里没有接微信（本地试玩页面），不用重连", "no WeChat here (the playground)"))
        return {"done": done, "text": pick(text, lang(request))}

    @app.post("/api/reload", dependencies=[Depends(changing)])
    async def reload_config(request: Request) -> dict[str, Any]:
        applied, message = await deps.watcher.reload(force=True, notify=False)
        return {"applied": applied, "text": message}
