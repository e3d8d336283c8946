"""Demo model for trying the flow on a laptop: a tiny CogVideoX pipeline with RANDOM weights.

When no real CogVideoX weights are found, the playground (`xiaoai playground`, or `xiaoai run` with no
WeChat gateway) can point the `video` section at this folder, so "生成一个视频" runs end to end — ack,
progress, an MP4 in the chat — in a few seconds on a CPU. Its frames are noise; every reply that carries
one is labelled so. Nothing is downloaded: the tokenizer and the weights are made here (~1 MB on disk).

The folder is built by `generators/random_models.py`, which also builds the tests' and the benchmark's.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from loguru import logger

DEMO_VIDEO_LABEL = ("⚠️ 演示模型（随机权重）生成：画面是噪声，只用来走通流程。"
                    "装好真正的 CogVideoX 权重后才有真视频。")
MARKER = "XIAOAI_DEMO_RANDOM_WEIGHTS"  # a file in the folder: this is not a real model
VIDEO_SETTINGS = {"height": 160, "width": 240, "num_frames": 9, "steps": 4, "fps": 8, "dtype": "float32",
                  "memory_mode": "cpu", "quantization": "none", "vae_tiling": False}


def is_demo_folder(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def build_demo_cogvideox(path: Path | str, seed: int = 0) -> Path:
    """Write a tiny random CogVideoX-2b-layout pipeline folder at `path`, marked as noise; returns it.

    The shared tiny shapes (`generators/random_models.py`): 2 layers, 226 text tokens like the real model
    (so real prompts fit), any size that is a multiple of 16."""
    from generators.random_models import build_cogvideox_folder

    path = build_cogvideox_folder(path, "2b", "tiny", seed=seed)
    (path / MARKER).write_text("random weights: output is noise\n", encoding="utf-8")
    return path


def ensure_demo_cogvideox(root: Path) -> Path:
    """The demo folder under `root` (built the first time, atomically: a half-built folder is never used)."""
    folder = Path(root) / "cogvideox-random"
    if is_demo_folder(folder):
        return folder
    staging = folder.with_name(f".{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        build_demo_cogvideox(staging)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("demo: built a random-weight CogVideoX at {}", folder)
    return folder


def demo_video_config(video: Any, root: Path) -> tuple[Any, bool]:
    """(video config, True) pointing at the demo model when no real weights are found; else (video, False).

    Only for the local backend: a remote video service has its own weights."""
    from generators.base import ModelNotFound
    from generators.cogvideox import CogVideoXGenerator

    if getattr(video, "backend", "local") != "local":
        return video, False
    try:
        folder = CogVideoXGenerator(video).locate()
    except ModelNotFound:
        folder = None
    if folder is not None:
        return video, is_demo_folder(folder)  # real weights, or the demo model already set up
    demo = ensure_demo_cogvideox(root)
    return video.model_copy(update={"model_path": demo, **VIDEO_SETTINGS}), True
