"""Demo model for trying the flow on a laptop: a tiny CogVideoX pipeline with RANDOM weights.

When no real CogVideoX weights are found, the playground (`xiaoai playground`, or `xiaoai run` with no
WeChat gateway) can point the `video` section at this folder, so "生成一个视频" runs end to end — ack,
progress, an MP4 in the chat — in a few seconds on a CPU. Its frames are noise; every reply that carries
one is labelled so. Nothing is downloaded: the tokenizer and the weights are made here (~1 MB on disk).

`tests/support/tiny_models.py` builds the same shapes for tests (and full-size ones for GPU checks).
"""

from __future__ import annotations

import gc
import shutil
import string
import uuid
from pathlib import Path
from typing import Any

from loguru import logger

DEMO_VIDEO_LABEL = ("⚠️ 演示模型（随机权重）生成：画面是噪声，只用来走通流程。"
                    "装好真正的 CogVideoX 权重后才有真视频。")
MARKER = "XIAOAI_DEMO_RANDOM_WEIGHTS"  # a file in the folder: this is not a real model
VIDEO_SETTINGS = {"height": 160, "width": 240, "num_frames": 9, "steps": 4, "fps": 8, "dtype": "float32",
                  "memory_mode": "cpu", "quantization": "none", "vae_tiling": False}

# Whole-word pieces for common prompt words; anything else is spelled out letter by letter.
_WORDS = """a an the and or of in on at to with from by for into over under is are it its this that as while
slowly gently camera shot close up wide view light soft warm golden sunset sunrise night scene cinematic
panda cat dog bird child girl boy man woman family fish horse rabbit plays playing guitar piano dances
dancing walks walking runs running flies flying swims swimming forest bamboo tree garden park river lake
sea ocean beach mountain sky clouds city street snow rain water flowers red blue green white happy little
big""".split()


def is_demo_folder(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def build_tokenizer(path: Path) -> int:
    """Save an offline T5 tokenizer folder at `path`; returns its vocabulary size."""
    from transformers import T5Tokenizer

    specials = ["<pad>", "</s>", "<unk>"]
    pieces = ["▁" + w for w in dict.fromkeys(_WORDS)]
    pieces += ["▁"] + list(string.ascii_letters + string.digits + string.punctuation)
    vocab = [(p, 0.0) for p in specials] + [(p, -1.0 - i * 0.001) for i, p in enumerate(pieces)]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    tokenizer.save_pretrained(str(path))
    return len(tokenizer)


def build_demo_cogvideox(path: Path | str, seed: int = 0) -> Path:
    """Write a tiny random CogVideoX-2b-layout pipeline folder at `path`; returns the path.

    Shapes from ../shared/notes/cogvideox.md: 2 layers, 226 text tokens like the real model (so real
    prompts fit), any size that is a multiple of 16."""
    import torch
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_size = build_tokenizer(path / "tokenizer")
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=max(64, vocab_size), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu"))
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4, time_embed_dim=8,
        text_embed_dim=32, num_layers=2, sample_width=12, sample_height=8, sample_frames=9, patch_size=2,
        max_text_seq_length=226, use_rotary_positional_embeddings=False)
    vae = AutoencoderKLCogVideoX(block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1,
                                 norm_num_groups=2, scaling_factor=1.15258426)
    scheduler = CogVideoXDDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        num_train_timesteps=1000, prediction_type="v_prediction", rescale_betas_zero_snr=True,
        set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing", snr_shift_scale=3.0)
    pipe = CogVideoXPipeline(
        tokenizer=AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True),
        text_encoder=text_encoder.eval(), vae=vae.eval(), transformer=transformer.eval(), scheduler=scheduler)
    pipe.save_pretrained(str(path))
    (path / MARKER).write_text("random weights: output is noise\n", encoding="utf-8")
    del pipe, text_encoder, vae, transformer
    gc.collect()
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
    if folder is not None and not is_demo_folder(folder):
        return video, False
    demo = ensure_demo_cogvideox(root)
    return video.model_copy(update={"model_path": demo, **VIDEO_SETTINGS}), True
