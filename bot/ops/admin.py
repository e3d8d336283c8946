"""Admin commands, only from the contact ids in `bot.admins`; for anyone else "#..." is a normal message.

    #状态  #队列  #取消 <任务号>  #重载  #允许本群  #禁用本群  #帮助

The dispatcher's admin gate runs `AdminCommands.run` before the room and private-chat gates, so an
admin can switch a room on (#允许本群) and talk to the bot privately even with `bot.private_chat: false`.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bot.config import AppConfig, ConfigError
from bot.messages import IncomingMessage, MessageKind, Reply
from bot.time_text import duration_text

if TYPE_CHECKING:
    from bot.config.watch import ConfigWatcher
    from bot.jobs import JobQueue
    from bot.ops.scheduler import Scheduler

HELP_TEXT = """管理员命令：
#状态 — 运行时间、微信连接、队列、模型和显存
#队列 — 正在生成和排队的任务
#取消 任务号 — 取消一个任务，如 #取消 12
#重载 — 立即重新读取 config.yaml
#允许本群 / #禁用本群 — 在本群开通或关闭小爱（写回 config.yaml）
#帮助 — 显示这段说明"""

_COMMAND = re.compile(r"^[#＃]\s*(\S+?)(?:[\s\u2005\u3000]+(.*))?$", re.S)



@dataclass(frozen=True)
class AdminTools:
    """What the admin commands use, and nothing else."""

    config: Callable[[], AppConfig]
    reply: Callable[[IncomingMessage, Reply], Awaitable[bool]]
    jobs: JobQueue
    scheduler: Scheduler
    watcher: ConfigWatcher
    started_at: float
    checks: Callable[[], Awaitable[list[Any]]]  # the console's checks (WeChat, LLM, AMap ...): one source
    workers: Callable[[], list[dict[str, Any]]] | None = None  # GPU workers' heartbeats (jobs.backend celery)
    intents: tuple[tuple[str, str], ...] = ()  # (name, label) of every intent this bot has, for #帮助
    # whether a kind's model is loaded where it renders when that is not this process (a render process);
    # None: ask the kind's own generator
    model_loaded: Callable[[str], bool | None] = lambda kind: None


Command = Callable[[AdminTools, IncomingMessage, str], Awaitable[str]]


def parse_command(text: str) -> tuple[str, str] | None:
    """("取消", "12") for "#取消 12"; None when the text is not a command shape."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    name, arg = match.group(1), (match.group(2) or "").strip()
    if name not in COMMANDS and not arg:  # "#取消12": a command run together with its task number
        known = next((n for n in COMMANDS if re.fullmatch(rf"{n}[#＃]?\d+", name)), None)
        if known is not None:
            return known, name[len(known):]
    return name, arg


class AdminCommands:
    def __init__(self, tools: AdminTools) -> None:
        self.tools = tools

    async def run(self, msg: IncomingMessage) -> bool:
        """Run an admin's command and reply; False (nothing done) for anything else or anyone else."""
        return await run_command(self.tools, msg)


async def run_command(tools: AdminTools, msg: IncomingMessage) -> bool:
    if msg.kind is not MessageKind.TEXT or msg.sender_id not in tools.config().bot.admins:
        return False
    parsed = parse_command(msg.text)
    if parsed is None or parsed[0] not in COMMANDS:
        return False
    name, arg = parsed
    logger.info("admin command #{} {!r} from {} in {}", name, arg, msg.sender_id, msg.chat.key)
    try:
        text = await COMMANDS[name](tools, msg, arg)
    except Exception as exc:  # noqa: BLE001 - an admin gets the reason, never silence
        logger.exception("admin command #{} failed", name)
        text = f"命令没能完成：{exc}"
    await tools.reply(msg, Reply(text))
    return True


# -- #状态 ------------------------------------------------------------------------------------------


def _gpu_line() -> str:
    """GPU memory, only when torch is already loaded (importing it here would cost seconds)."""
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return "显存：模型未加载"
    try:
        if not torch.cuda.is_available():
            return "显存：没有 GPU（CPU 运行）"
        free, total = torch.cuda.mem_get_info()
        return f"显存：已用 {(total - free) / 2**30:.1f} / {total / 2**30:.1f} GiB"
    except Exception as exc:  # noqa: BLE001 - status must not fail on a driver hiccup
        return f"显存：读不到（{exc}）"


def _queue_lines(jobs: JobQueue) -> list[str]:
    status = jobs.status()
    running = status.get("running", [])
    parts = [f"#{r['id']} {jobs.label(r['kind'])} {r['step']}/{r['steps']}" for r in running]
    return [f"队列：{len(running)} 个生成中（{'，'.join(parts) or '无'}），{status.get('queued', 0)} 个排队"]


def _worker_lines(workers: Callable[[], list[dict[str, Any]]] | None, jobs: JobQueue) -> list[str]:
    """One line per live GPU worker: host, GPU, what it renders now."""
    if workers is None:
        return []
    live = workers()
    lines = [f"GPU 工作进程：{len(live)} 个在线" + ("（新任务会排队等待）" if not live else "")]
    for worker in live:
        gpu = worker.get("gpu")
        job = worker.get("job")
        doing = "空闲"
        if job:
            _kind, _, number = str(job.get("task", "")).rpartition(":")
            progress = f" {job.get('step', 0)}/{job['steps']}" if job.get("steps") else ""
            doing = f"生成中 {jobs.label(job.get('kind', ''))} #{number}{progress}"
        device = f"GPU {gpu}" if gpu is not None else "CPU"
        lines.append(f"· {worker.get('host', '?')} {device}：{doing}")
    return lines


def _model_lines(jobs: JobQueue, loaded_elsewhere: Callable[[str], bool | None] = lambda kind: None
                 ) -> list[str]:
    """One line per job kind: which generator, and whether its weights are in memory — in the process
    that renders it (`loaded_elsewhere`, for a render process: this one's generator never loads)."""
    lines = []
    for name, kind in sorted(jobs.kinds.items()):
        try:
            generator = getattr(kind, "generator", None)
        except Exception as exc:  # noqa: BLE001 - building a generator may fail on bad config
            lines.append(f"{jobs.label(name)}：不可用（{exc}）")
            continue
        if generator is None:
            lines.append(jobs.label(name))
            continue
        variant = getattr(getattr(generator, "config", None), "variant", "")
        loaded = loaded_elsewhere(name)
        if loaded is None:
            loaded = getattr(generator, "loaded", None)
        state = "状态未知" if loaded is None else ("已加载" if loaded else "未加载（首次使用时加载）")
        lines.append(f"{jobs.label(name)}：{variant}，{state}".replace("：，", "："))
    return lines or ["模型：无"]


async def status_command(tools: AdminTools, msg: IncomingMessage, arg: str) -> str:
    from bot.logs import redactor

    config, watcher = tools.config(), tools.watcher
    checks = [check.status_line() for check in await tools.checks()]  # the same list as the console's
    lines = [
        f"{config.bot.name} 状态",
        f"运行：{duration_text(time.time() - tools.started_at)}",
        *_queue_lines(tools.jobs),
        *_worker_lines(tools.workers, tools.jobs),
        *_model_lines(tools.jobs, tools.model_loaded),
        _gpu_line(),
        f"定时任务：{len(tools.scheduler.jobs())} 个",
        f"配置：{watcher.path or '内置默认设置'}（已热更新 {watcher.reloads} 次）",
        "检查：",
        *checks,
    ]
    return redactor().redact("\n".join(lines))


# -- #队列 #取消 --------------------------------------------------------------------------------------
async def queue_command(tools: AdminTools, msg: IncomingMessage, arg: str) -> str:
    from bot.jobs import describe

    jobs = tools.jobs
    pending = jobs.list()
    if not pending:
        return "队列是空的。"
    return "\n".join(describe(job, jobs.label(job.request.kind)) for job in pending)


async def cancel_command(tools: AdminTools, msg: IncomingMessage, arg: str) -> str:
    jobs = tools.jobs
    number = arg.lstrip("#＃").strip()
    if not number.isdigit():
        return "请写上任务号，例如：#取消 12（用 #队列 查看任务号）"
    job = await jobs.cancel(int(number))
    if job is None:
        return f"没有找到等待中或生成中的任务 #{number}。"
    return f"已取消任务 #{number}（{jobs.label(job.request.kind)}，{job.request.asker_name}）。"


# -- #重载 ------------------------------------------------------------------------------------------
async def reload_command(tools: AdminTools, msg: IncomingMessage, arg: str) -> str:
    watcher = tools.watcher
    if watcher.path is None:
        return "没有配置文件（用的是内置默认设置），无从重载。"
    applied, message = await watcher.reload(force=True, notify=False)
    return "已重新加载 config.yaml。" if applied else f"没有重载，仍用原来的设置：{message}"


# -- #允许本群 #禁用本群 ------------------------------------------------------------------------------
def _flow_list(values: list[str]) -> CommentedSeq:
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def _set_room(doc: CommentedMap, room_id: str, topic: str | None, *, allow: bool) -> None:
    """Edit groups.allow / groups.deny in the YAML document so the room is (not) served."""
    names = {room_id, topic} - {None}
    label = topic or room_id  # the topic is what the admin reads; wechat4u room ids change per login
    groups = doc.get("groups")
    if groups is None:
        groups = doc["groups"] = CommentedMap()
    allow_list = groups.get("allow")
    if allow_list is None:  # absent means the default ["*"]
        allow_list = groups["allow"] = _flow_list(["*"])
    deny_list = groups.get("deny")
    if allow:
        if deny_list is not None:
            for item in [i for i in deny_list if i in names]:
                deny_list.remove(item)
        if "*" not in allow_list and not names & set(allow_list):
            allow_list.append(label)
    else:
        for item in [i for i in allow_list if i in names]:
            allow_list.remove(item)
        if "*" in allow_list:
            if deny_list is None:
                deny_list = groups["deny"] = _flow_list([])
            if not names & set(deny_list):
                deny_list.append(label)


async def _switch_room(tools: AdminTools, msg: IncomingMessage, *, allow: bool) -> str:
    if not msg.chat.is_room:
        return "这个命令要在想开通或关闭的群里发。"
    watcher = tools.watcher
    if watcher.path is None:
        return "没有配置文件（用的是内置默认设置），没法写回。请用 --config 指定 config.yaml。"
    room_id, topic = msg.chat.chat_id, msg.room_topic
    if tools.config().groups.allows(room_id, topic) == allow:
        return f"本群已经{'开通' if allow else '关闭'}了，不用改。"
    try:
        config = await watcher.update(lambda doc: _set_room(doc, room_id, topic, allow=allow))
    except ConfigError as exc:
        return f"没有改：config.yaml 现在有错误，先修好它吧。{exc}"
    if config.groups.allows(room_id, topic) != allow:
        return "已写回 config.yaml，但本群仍未按要求切换，请检查 groups 的设置。"
    name = topic or room_id
    if allow:
        return f"好的，小爱在「{name}」开通啦（已写入 config.yaml 的 groups.allow）。"
    return f"好的，小爱在「{name}」休息了，只听管理员命令（已写入 config.yaml 的 groups）。"


async def allow_command(tools: AdminTools, msg: IncomingMessage, arg: str) -> str:
    return await _switch_room(tools, msg, allow=True)


async def deny_command(tools: AdminTools, msg: IncomingMessage, arg: str) -> str:
    return await _switch_room(tools, msg, allow=False)


async def help_command(tools: AdminTools, msg: IncomingMessage, arg: str) -> str:
    """The commands, and the intents on in this chat (a room's `intents:` switches some off)."""
    if not tools.intents:
        return HELP_TEXT
    settings = tools.config().for_chat(msg.chat, msg.room_topic)
    on = [f"{label}（{name}）" for name, label in tools.intents if settings.intent_enabled(name)]
    return HELP_TEXT + "\n\n这里开通的功能：" + ("、".join(on) or "（无）")


COMMANDS: dict[str, Command] = {
    "状态": status_command,
    "队列": queue_command,
    "取消": cancel_command,
    "重载": reload_command,
    "允许本群": allow_command,
    "禁用本群": deny_command,
    "帮助": help_command,
}
