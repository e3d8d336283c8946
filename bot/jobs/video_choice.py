"""Which backend renders videos when `video.backend` is `auto` (the default), and why.

Local when real CogVideoX weights and a CUDA GPU are both here; else a hosted API when a key is set
(ZHIPUAI_API_KEY for 智谱, DASHSCOPE_API_KEY for 通义万相; the configured provider first, the other one
when only its key is set and no provider was named); else local anyway, which is the labelled demo model
in the playground and a "not set up yet" answer with the admin told the fix elsewhere. Cheap after the
first call: the GPU probe runs once per process, the weights lookup once per `video.model`.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.config import VideoConfig
from generators.video_api import KEY_ENVS


@dataclass(frozen=True)
class VideoChoice:
    backend: str  # local | remote | api
    provider: str | None  # with api: zhipu | dashscope
    reason: str  # English, for `xiaoai doctor` and the console
    reason_zh: str  # for #状态

    @property
    def text(self) -> str:
        return f"{self.backend}" + (f" ({self.provider})" if self.provider else "")


@functools.cache
def cuda_gpu_present() -> bool:
    """An NVIDIA GPU with a working driver (nvidia-smi lists one), or torch already sees CUDA."""
    torch: Any = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return True
        except Exception:  # noqa: BLE001 - a broken driver is "no GPU" here
            pass
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return False
    try:
        listed = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


@functools.lru_cache(maxsize=8)
def real_weights(model: Any) -> bool:
    """Whether `video.model` finds real CogVideoX weights (not the playground's random demo folder)."""
    from generators.base import GeneratorError
    from generators.cogvideox import SOURCES
    from generators.demo import is_demo_folder
    from generators.loading import find_model

    order = [model.variant] + [v for v in SOURCES if v != model.variant]
    try:
        folder = find_model(model.path, [SOURCES[v] for v in order])
    except GeneratorError:
        return False
    return not is_demo_folder(folder)


def choose(video: VideoConfig, keys: Mapping[str, str | None]) -> VideoChoice:
    """The backend for `video` with these API keys ({provider: key}); see the module docstring."""
    if video.backend != "auto":
        provider = video.api.provider if video.backend == "api" else None
        return VideoChoice(video.backend, provider, "set in config (video.backend)", "配置文件指定")
    weights, gpu = real_weights(video.model), cuda_gpu_present()
    if weights and gpu:
        return VideoChoice("local", None, "CogVideoX weights and a CUDA GPU are here", "本机有模型权重和显卡")
    missing = "no CUDA GPU" if weights else "no CogVideoX weights" + ("" if gpu else " and no CUDA GPU")
    missing_zh = "没有显卡" if weights else "没有模型权重" + ("" if gpu else "也没有显卡")
    providers = [video.api.provider]
    if "provider" not in video.api.model_fields_set:
        providers += [p for p in KEY_ENVS if p != video.api.provider]
    for provider in providers:
        if keys.get(provider):
            return VideoChoice("api", provider, f"{missing} here, {KEY_ENVS[provider]} is set",
                               f"{missing_zh}，已设置 {KEY_ENVS[provider]}")
    envs = " or ".join(KEY_ENVS.values())
    return VideoChoice("local", None, f"{missing} here and neither {envs} is set: the demo model in the "
                       "playground, else videos are not set up",
                       f"{missing_zh}，也没有设置 {' / '.join(KEY_ENVS.values())}（试玩页用演示模型）")
