"""Health checks, each green or red with the one line that fixes it: the console's status page, `#状态` and
`xiaoai doctor` all show this one list, so they never disagree.

Every text comes in Chinese and English (the console's switch); what is shown passes the log's redaction.
Cheap by design (file stats, the secrets, /proc, one `nvidia-smi`, one read of the job store's timings):
nothing here imports torch or loads weights, so the page can poll it while the bot serves.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.channels.base import LoginStatus
from bot.config import AppConfig, Secrets
from bot.console.check import Check
from bot.console.words import Text

MIN_FREE_MEMORY_GIB = 2.0
MIN_FREE_DISK_GIB = 5.0
AMAP_KEY_ENV = "AMAP_KEY"
SET_IN_CONSOLE = ("在管理台「密钥」页填写", "enter it on the console's Keys page")


def llm_check(config: AppConfig, secrets: Secrets) -> Check:
    name = ("语言模型", "LLM")
    base = secrets.openai_base_url or config.llm.base_url
    if not (secrets.openai_api_key or base):
        return Check("llm", False, name,
                     ("没有配置：不能闲聊，画图和视频直接用原话；消息分类用内置的小模型",
                      "not configured: no chat, pictures and videos use the asker's own words, the embedded "
                      "classifier routes messages"),
                     ("在管理台「密钥」页填语言模型的密钥（本机模型填服务地址）",
                      "enter the LLM key on the console's Keys page (a local server: its address)"))
    where = base or "api.openai.com"
    key = ("", "") if secrets.openai_api_key else ("（没有密钥：本机模型不需要）",
                                                   " (no key: fine for a local server)")
    return Check("llm", True, name, (f"{config.llm.model}，地址 {where}{key[0]}",
                                      f"{config.llm.model} at {where}{key[1]}"))


def llm_summary(config: AppConfig, secrets: Secrets) -> str:
    """The LLM line of #状态: the model only when one is configured."""
    check = llm_check(config, secrets)
    return check.as_dict("zh")["detail"] if check.ok else "未配置（不能闲聊；在管理台「密钥」页填写）"


def amap_check(secrets: Secrets) -> Check:
    name = ("高德地图", "AMap")
    if secrets.get(AMAP_KEY_ENV):
        return Check("amap", True, name, ("密钥已设置：天气、路线、地点都能用",
                                          "key set: weather, routes and places are on"))
    return Check("amap", False, name, ("没有密钥：问天气、路线、地点时会说还没开通",
                                       "no key: weather, routes and places answer that they are not set up"),
                 ("到 console.amap.com 申请「Web服务」密钥，填在管理台「密钥」页",
                  "get a Web Service key at console.amap.com and enter it on the Keys page"))


def _weights_check(key: str, name: Text, section: Any, setting: str, sources: dict[str, Any],
                   demo_fallback: bool) -> Check:
    from generators.base import GeneratorError
    from generators.demo import MARKER
    from generators.loading import find_model

    model = section.model
    order = [model.variant] + [v for v in sources if v != model.variant]
    try:
        folder = find_model(model.path, [sources[v] for v in order], setting=setting)
    except GeneratorError as exc:
        if demo_fallback:
            return Check(key, True, name,
                         ("没找到真的模型文件：试玩页面用随机的演示模型（画面是噪声）",
                          "no real weights: the playground uses a random demo model (noise)"),
                         ("接微信之前按 README「模型权重」下载一次", "download the weights once before "
                          "connecting WeChat (README: model weights)"))
        first = (exc.admin_detail or str(exc)).splitlines()[0]  # the admin's detail: which folder
        return Check(key, False, name, (f"没找到：{first}", f"not found: {first}"),
                     (f"按 README「模型权重」下载一次，再在设置里填 {setting}",
                      f"download the weights once (README: model weights) and set {setting}"))
    if (Path(folder) / MARKER).exists():
        return Check(key, True, name, ("随机的演示模型（画面是噪声，只用来走通流程）",
                                       "a random demo model (noise, just to try the flow)"))
    return Check(key, True, name, (f"{model.variant}，在 {folder}", f"{model.variant} at {folder}"))


def weights_checks(config: AppConfig, demo_fallback: bool = False) -> list[Check]:
    from generators.cogvideox import SOURCES as VIDEO_SOURCES
    from generators.flux import SOURCES as IMAGE_SOURCES

    checks = []
    if config.video.backend == "local":
        checks.append(_weights_check("video_weights", ("视频模型文件", "video weights"), config.video,
                                     "video.model.path", VIDEO_SOURCES, demo_fallback))
    if config.image.backend == "local":
        checks.append(_weights_check("image_weights", ("图片模型文件", "image weights"), config.image,
                                     "image.model.path", IMAGE_SOURCES, demo_fallback))
    return checks


def _nvidia_smi() -> list[tuple[str, float, float]] | None:
    """(name, free GiB, total GiB) per GPU, or None without the tool."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        query = ["--query-gpu=name,memory.free,memory.total", "--format=csv,noheader,nounits"]
        out = subprocess.run([tool, *query], capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        name, free, total = (part.strip() for part in line.rsplit(",", 2))
        gpus.append((name, float(free) / 1024, float(total) / 1024))
    return gpus


def gpu_check(config: AppConfig) -> Check:
    name = ("显卡", "GPU")
    gpus = _nvidia_smi()
    torch: Any = sys.modules.get("torch")  # only when the bot already loaded it
    if gpus is None and torch is not None and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        gpus = [(torch.cuda.get_device_name(0), free / 2**30, total / 2**30)]
    if gpus:
        zh = "；".join(f"{gpu}：空闲 {free:.1f} / {total:.1f} GiB" for gpu, free, total in gpus)
        en = "; ".join(f"{gpu}: {free:.1f} of {total:.1f} GiB free" for gpu, free, total in gpus)
        return Check("gpu", True, name, (zh, en))
    if config.video.backend != "local":
        return Check("gpu", True, name, ("这台机器没有，视频在别处生成",
                                         "none here; videos render elsewhere"))
    return Check("gpu", False, name,
                 ("没找到 NVIDIA 显卡：视频和图片用 CPU 生成（非常慢）",
                  "no NVIDIA GPU found: videos and pictures render on the CPU (very slow)"),
                 ("换一台有 NVIDIA 显卡和驱动的机器，或者用视频服务（video.backend）",
                  "run on a machine with an NVIDIA GPU and its driver, or use a video service"))


def _mem_available_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_check() -> Check:
    name = ("内存", "memory")
    free = _mem_available_gib()
    if free is None:
        return Check("memory", True, name, ("这个系统读不到空闲内存", "free memory unknown on this system"))
    if free < MIN_FREE_MEMORY_GIB:
        return Check("memory", False, name, (f"只剩 {free:.1f} GiB", f"{free:.1f} GiB free"),
                     ("关掉别的程序，或者用更小的模型 / memory_mode: sequential_cpu_offload",
                      "close other programs, or use a smaller model / memory_mode: sequential_cpu_offload"))
    return Check("memory", True, name, (f"空闲 {free:.1f} GiB", f"{free:.1f} GiB free"))


def disk_check(data_dir: Path) -> Check:
    name = ("磁盘", "disk")
    folder = data_dir if data_dir.exists() else Path(".")
    free = shutil.disk_usage(folder).free / 2**30
    where = folder.resolve()
    detail = (f"{where} 所在的盘空闲 {free:.1f} GiB", f"{free:.1f} GiB free under {where}")
    if free < MIN_FREE_DISK_GIB:
        return Check("disk", False, name, detail, ("清理一些空间，或者调小 video.queue.media_max_age_hours",
                                                  "free some space, or keep finished media shorter"))
    return Check("disk", True, name, detail)


def workers_check(config: AppConfig, live_workers: Callable[[], int] | None) -> Check | None:
    """The serve-video workers, only when videos go to one."""
    if config.video.backend != "remote":
        return None
    name = ("视频工作机", "video workers")
    url = config.video.remote.url
    if live_workers is not None and live_workers() == 0:
        return Check("workers", False, name, (f"{url} 没有应答", f"no worker answers at {url}"),
                     ("在显卡机器上运行 xiaoai serve-video，用同一个 XIAOAI_VIDEO_TOKEN",
                      "start `xiaoai serve-video` on the GPU host with the same XIAOAI_VIDEO_TOKEN"))
    return Check("workers", True, name, (f"视频交给 {url} 生成", f"videos go to {url}"))


def console_check(config: AppConfig, secrets: Secrets) -> Check:
    from bot.console.auth import is_loopback

    name = ("管理台", "console")
    address = f"http://{config.console.host}:{config.console.port}/admin/"
    if secrets.admin_password:
        return Check("console", True, name, (f"已设密码；{address}", f"password set; {address}"))
    if is_loopback(config.console.host):
        return Check("console", True, name,
                     ("没设密码：只有这台机器能打开", "no password: open to this machine only"),
                     ("要从别的设备打开，先设置环境变量 XIAOAI_ADMIN_PASSWORD",
                      "export XIAOAI_ADMIN_PASSWORD=... to require a login"))
    return Check("console", False, name, (f"没设密码，不肯在 {config.console.host} 上开放",
                                         f"refuses to listen on {config.console.host} without a password"),
                 ("设置环境变量 XIAOAI_ADMIN_PASSWORD，或者把 console.host 改成 127.0.0.1",
                  "export XIAOAI_ADMIN_PASSWORD=..., or set console.host: 127.0.0.1"))


@dataclass(frozen=True)
class StatusChecks:
    """The list the console shows, `#状态` sends and `xiaoai doctor` prints, read from the running config.

    `wechat` gives the WeChat line: the running channel's state, or doctor's own probe of the gateway.
    `demo_fallback`: the run falls back to demo models when no weights are found (the playground)."""

    config: Callable[[], AppConfig]
    secrets: Secrets
    live_workers: Callable[[], int] | None = None
    wechat: Callable[[], Check | None] | None = None
    demo_fallback: bool = False
    jobs: Any = None  # the job queue, for today's spend on a hosted video API (bot.jobs.JobQueue)

    def run(self) -> list[Check]:
        """Blocking (file stats, nvidia-smi): call through `asyncio.to_thread` in the bot."""
        from bot.console.timings import timing_checks
        from bot.console.video_backend import resolved, video_check  # video.backend auto, as it chose

        config = self.config()
        seen = resolved(config, self.secrets)  # the weights and GPU lines judge the backend auto picked
        checks: Sequence[Check | None] = [
            self.wechat() if self.wechat is not None else None,
            llm_check(config, self.secrets), amap_check(self.secrets),
            *weights_checks(seen, self.demo_fallback),
            gpu_check(seen), memory_check(), disk_check(config.data_dir),
            workers_check(config, self.live_workers), *timing_checks(config),
            console_check(config, self.secrets), video_check(config, self.secrets, self.jobs),
        ]
        return [check for check in checks if check is not None]

    async def run_async(self) -> list[Check]:
        return await asyncio.to_thread(self.run)


def wechat_check(status: LoginStatus) -> Check:
    """The WeChat line from a channel's login state (the running bot's, or doctor's short probe)."""
    from bot.console.channel_link import phase

    name = ("微信", "WeChat")
    key, words = phase(status)
    ok = key in ("serving", "playground")
    fix: Text = ("", "")
    if key in ("waiting_for_scan", "logged_out"):
        fix = ("在管理台首页用微信扫码", "scan the QR code on the console's first page")
    elif key == "refused":
        fix = ("把 WECHATY_PUPPET_SERVICE_TOKEN 设成网关用的 token（网关启动时会打印）",
               "set WECHATY_PUPPET_SERVICE_TOKEN to the token the gateway prints at start")
    elif key in ("down", "connecting"):
        fix = ("先启动网关（make gateway），再检查 WECHATY_PUPPET_SERVICE_ENDPOINT",
               "start the gateway (make gateway), then check WECHATY_PUPPET_SERVICE_ENDPOINT")
    return Check("wechat", ok, name, words, fix)


def checks_for(channel: Any, config: Callable[[], AppConfig], secrets: Secrets,
               live_workers: Callable[[], int] | None = None, jobs: Any = None) -> StatusChecks:
    """The checks of a running bot on `channel`: what the console and `#状态` both show."""
    from bot.console.channel_link import login_status

    playground = getattr(channel, "name", "") == "playground"
    return StatusChecks(config, secrets, live_workers, wechat=lambda: wechat_check(login_status(channel)),
                        demo_fallback=playground and config().offline.playground.demo_models, jobs=jobs)
