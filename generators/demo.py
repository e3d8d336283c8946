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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from generators.heavy_imports import import_heavy

DEMO_VIDEO_LABEL = ("⚠️ 演示模型（随机权重）生成：画面是噪声，只用来走通流程。"
                    "装好真正的 CogVideoX 权重后才有真视频。")
DEMO_IMAGE_LABEL = ("⚠️ 演示模型（随机权重）生成：图是噪声，只用来走通流程。"
                    "装好真正的 FLUX 权重后才有真图。")
MARKER = "XIAOAI_DEMO_RANDOM_WEIGHTS"  # a file in the folder: this is not a real model
_DEMO_MODEL = {"dtype": "float32", "memory_mode": "cpu", "quantization": "none", "vae_tiling": False}
VIDEO_SETTINGS = {"model": _DEMO_MODEL,
                  "sampling": {"height": 160, "width": 240, "num_frames": 9, "steps": 4, "fps": 8}}
IMAGE_SETTINGS = {"model": _DEMO_MODEL, "sampling": {"height": 256, "width": 448, "steps": 4}}


def is_demo_folder(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def _build_cogvideox(path: Path) -> Path:
    """The shared tiny CogVideoX-2b shapes: 2 layers, 226 text tokens like the real model (so real prompts
    fit), any size that is a multiple of 16."""
    from generators.random_models import build_cogvideox_folder

    return build_cogvideox_folder(path, "2b", "tiny")


def _build_flux(path: Path) -> Path:
    """The shared tiny FLUX.1-schnell shapes (CLIP + T5 tokenizers built offline)."""
    from generators.random_models import build_flux_folder

    return build_flux_folder(path, "schnell")


def ensure_demo(root: Path, name: str, build: Callable[[Path], Path]) -> Path:
    """The demo folder `root/name`, built the first time, atomically (a half-built folder is never used)
    and marked as random weights."""
    folder = Path(root) / name
    if is_demo_folder(folder):
        return folder
    staging = folder.with_name(f".{folder.name}-{uuid.uuid4().hex[:8]}")
    import_heavy()  # quietly, and with no progress bars ("Writing model shards") in a log file
    try:
        build(staging)
        (staging / MARKER).write_text("random weights: output is noise\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("demo: built a random-weight model at {}", folder)
    return folder


def _with_demo(section: Any, generator_class: Any, root: Path, name: str, build: Callable[[Path], Path],
               settings: dict[str, dict[str, Any]]) -> tuple[Any, bool]:
    """(section, True) pointing at the demo model when no real weights are found; else (section, False).
    Only for the local backend (or `auto`, which the caller has resolved to local): a remote service or
    an API has its own model."""
    from generators.base import ModelNotFound

    if getattr(section, "backend", "local") not in ("local", "auto"):
        return section, False
    try:
        folder = generator_class(section).locate()
    except ModelNotFound:
        folder = None
    if folder is not None:
        return section, is_demo_folder(folder)  # real weights, or the demo model already set up
    demo = ensure_demo(root, name, build)
    updates = {group: getattr(section, group).model_copy(update=values) for group, values in settings.items()}
    updates["model"] = updates["model"].model_copy(update={"path": demo})
    return section.model_copy(update=updates), True


def demo_video_config(video: Any, root: Path) -> tuple[Any, bool]:
    from generators.cogvideox import CogVideoXGenerator

    return _with_demo(video, CogVideoXGenerator, root, "cogvideox-random", _build_cogvideox, VIDEO_SETTINGS)


def demo_image_config(image: Any, root: Path) -> tuple[Any, bool]:
    from generators.flux import FluxGenerator

    return _with_demo(image, FluxGenerator, root, "flux-random", _build_flux, IMAGE_SETTINGS)
