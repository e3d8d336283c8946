"""Health checks, each green or red with the one line that fixes it: the console's status page and
`xiaoai doctor` run the same list.

Cheap by design (file stats, environment, /proc, one `nvidia-smi`): nothing here imports torch or loads
weights, so the page can poll it while the bot serves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bot.config import AppConfig, Secrets

MIN_FREE_MEMORY_GIB = 2.0
MIN_FREE_DISK_GIB = 5.0
AMAP_KEY_ENV = "AMAP_KEY"


@dataclass(frozen=True)
class Check:
    """One line of the status page: what, green or red, the detail, and (when red) how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        mark = "OK " if self.ok else "BAD"
        return f"[{mark}] {self.name}: {self.detail}" + (f"\n      fix: {self.fix}" if self.fix else "")


def llm_check(config: AppConfig, secrets: Secrets) -> Check:
    base = secrets.openai_base_url or config.llm.base_url
    if not (secrets.openai_api_key or base):
        return Check("LLM", False, "not configured: chat and prompt rewriting are off, the embedded "
                     "classifier routes messages", "export OPENAI_API_KEY=... (and OPENAI_BASE_URL for "
                     "another OpenAI-compatible endpoint)")
    where = base or "api.openai.com"
    key = "" if secrets.openai_api_key else " (no OPENAI_API_KEY: fine for a local server)"
    return Check("LLM", True, f"{config.llm.model} at {where}{key}")


def llm_summary(config: AppConfig, secrets: Secrets) -> str:
    """The LLM line of #状态: the model only when one is configured."""
    check = llm_check(config, secrets)
    return check.detail if check.ok else "未配置（闲聊和提示词润色不可用；设置 OPENAI_API_KEY）"


def amap_check(env: Any) -> Check:
    if env.get(AMAP_KEY_ENV):
        return Check("AMap", True, "key set: weather, routes and places are on")
    return Check("AMap", False, "no key: weather, routes and places answer that they are not set up",
                 f"export {AMAP_KEY_ENV}=<a 高德「Web服务」key from console.amap.com>")


def _weights_check(name: str, section: Any, setting: str, sources: dict[str, Any]) -> Check:
    from generators.base import GeneratorError
    from generators.loading import find_model

    model = section.model
    order = [model.variant] + [v for v in sources if v != model.variant]
    try:
        folder = find_model(model.path, [sources[v] for v in order], setting=setting)
    except GeneratorError as exc:
        first = (exc.admin_detail or str(exc)).splitlines()[0]  # the admin's detail: which folder
        return Check(name, False, first,
                     f"download the weights once (README: model weights) and set {setting}")
    return Check(name, True, f"{model.variant} at {folder}")


def weights_checks(config: AppConfig) -> list[Check]:
    from generators.cogvideox import SOURCES as VIDEO_SOURCES
    from generators.flux import SOURCES as IMAGE_SOURCES

    checks = []
    if config.video.backend in ("local", "auto"):  # auto without weights: the API or the demo model
        checks.append(_weights_check("video weights", config.video, "video.model.path", VIDEO_SOURCES))
    if config.image.backend == "local":
        checks.append(_weights_check("image weights", config.image, "image.model.path", IMAGE_SOURCES))
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
    gpus = _nvidia_smi()
    torch: Any = sys.modules.get("torch")  # only when the bot already loaded it
    if gpus is None and torch is not None and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        gpus = [(torch.cuda.get_device_name(0), free / 2**30, total / 2**30)]
    if gpus:
        text = "; ".join(f"{name}: {free:.1f} of {total:.1f} GiB free" for name, free, total in gpus)
        return Check("GPU", True, text)
    if config.video.backend == "remote":
        return Check("GPU", True, "none here; videos render on the serve-video host")
    return Check("GPU", False, "no NVIDIA GPU found: videos and pictures render on the CPU (very slow)",
                 "run on a machine with an NVIDIA GPU and its driver, or set video.backend: remote")


def _mem_available_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_check() -> Check:
    free = _mem_available_gib()
    if free is None:
        return Check("memory", True, "free memory unknown on this system")
    if free < MIN_FREE_MEMORY_GIB:
        return Check("memory", False, f"{free:.1f} GiB free", "close other programs, or use a smaller "
                     "model / memory_mode: sequential_cpu_offload")
    return Check("memory", True, f"{free:.1f} GiB free")


def disk_check(data_dir: Path) -> Check:
    folder = data_dir if data_dir.exists() else Path(".")
    usage = shutil.disk_usage(folder)
    free = usage.free / 2**30
    if free < MIN_FREE_DISK_GIB:
        return Check("disk", False, f"{free:.1f} GiB free under {folder.resolve()}",
                     "free some space, or lower video.queue.media_max_age_hours")
    return Check("disk", True, f"{free:.1f} GiB free under {folder.resolve()}")


def workers_check(config: AppConfig, live_workers: Callable[[], int] | None) -> Check | None:
    """The serve-video workers, only when videos go to one."""
    if config.video.backend != "remote":
        return None
    url = config.video.remote.url
    workers = live_workers() if live_workers is not None else None
    if workers == 0:
        return Check("job workers", False, f"no worker answers at {url}",
                     "start `xiaoai serve-video` on the GPU host with the same XIAOAI_VIDEO_TOKEN")
    return Check("job workers", True, f"videos go to {url}")


def console_check(config: AppConfig, secrets: Secrets) -> Check:
    from bot.console.auth import is_loopback

    if secrets.admin_password:
        return Check("console", True, f"password set; http://{config.console.host}:{config.console.port}/admin/")
    if is_loopback(config.console.host):
        return Check("console", True, "no password: open to anyone on this machine only",
                     "export XIAOAI_ADMIN_PASSWORD=... to require a login")
    return Check("console", False, f"refuses to listen on {config.console.host} without a password",
                 "export XIAOAI_ADMIN_PASSWORD=..., or set console.host: 127.0.0.1")


@dataclass(frozen=True)
class StatusChecks:
    """The list the console shows and `xiaoai doctor` prints, read from the running config."""

    config: Callable[[], AppConfig]
    secrets: Secrets
    live_workers: Callable[[], int] | None = None
    env: Any = None  # the environment to read keys from; None = os.environ
    jobs: Any = None  # the job queue, for the video backend line's spend today (bot.jobs.JobQueue)

    def run(self) -> list[Check]:
        """Blocking (file stats, nvidia-smi): call through `asyncio.to_thread` in the bot."""
        from bot.console.video_backend import gpu_or_api_check, video_backend_check  # videos: API or GPU
        config = self.config()
        checks: Sequence[Check | None] = [
            llm_check(config, self.secrets),
            amap_check(os.environ if self.env is None else self.env), *weights_checks(config),
            gpu_or_api_check(config, self.secrets), memory_check(), disk_check(config.data_dir),
            workers_check(config, self.live_workers), console_check(config, self.secrets),
            video_backend_check(config, self.secrets, self.jobs),  # videos: where (auto resolved), why, spend
        ]
        return [check for check in checks if check is not None]

    async def run_async(self) -> list[Check]:
        return await asyncio.to_thread(self.run)
