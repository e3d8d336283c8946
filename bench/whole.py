"""The whole video, timed stage by stage as the bot runs it: text encode (inside `generate`), denoise, VAE
decode (`bench.timing.watching_decode`), then what `bot.jobs.kinds.video.VideoKind.run` does after the
render (`encode_mp4` to a file) and the delivery handoff (the file read and base64-encoded, as the
Wechaty FileBox and the remote worker's result carry it). Also a bench-only row switch for cache-dit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def watching_text_encode(pipe: Any, clock: Any) -> Iterator[dict[str, float]]:
    """Within the block the pipeline's `encode_prompt` adds its seconds to the yielded dict."""
    marks = {"text_encode_s": 0.0}
    original = pipe.encode_prompt

    def timed(*args: Any, **kwargs: Any) -> Any:
        begin = clock.now()
        out = original(*args, **kwargs)
        marks["text_encode_s"] += clock.now() - begin
        return out

    pipe.encode_prompt = timed
    try:
        yield marks
    finally:
        del pipe.encode_prompt  # the class's method again


def deliver(frames: Any, fps: int, encode: Any) -> dict[str, Any]:
    """MP4 encode (the production encoder and settings) and the handoff; seconds, bytes, or the error."""
    from generators.mp4 import encode_mp4

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            begin = time.perf_counter()
            path = encode_mp4(frames, Path(tmp) / "video.mp4", fps, encode.bitrate_kbps,
                              int(encode.max_mp4_mb * 1e6), preset=encode.x264_preset)
            out["mp4_s"] = round(time.perf_counter() - begin, 3)
            begin = time.perf_counter()
            payload = base64.b64encode(Path(path).read_bytes())
            out["handoff_s"] = round(time.perf_counter() - begin, 4)
            out["mp4_bytes"] = len(payload) * 3 // 4
        except Exception as exc:  # noqa: BLE001 - no ffmpeg on the GPU image: say so, time the rest
            out["mp4_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return out


def whole_figures(row: dict[str, Any], delivered: dict[str, Any]) -> dict[str, Any]:
    """The row's whole-video seconds: the render (`total_s`) plus MP4 and handoff where measured."""
    figures = dict(delivered)
    if "mp4_s" in delivered:
        figures["whole_s"] = round(row["total_s"] + delivered["mp4_s"] + delivered["handoff_s"], 2)
    return figures


WHOLE_KEYS = ("model", "card", "settings", "load_s", "warmup_run_s", "text_encode_s", "denoise_s",
              "vae_decode_s", "total_s", "mp4_s", "handoff_s", "whole_s")


def write_whole_summary(rows: list[dict[str, Any]], out: Path) -> None:
    """OUT/whole_video.json: row label -> the whole-video seconds of each stage, merged with what earlier
    processes wrote there (a first video after a restart is a process of its own). A small data file the
    bot's status can quote instead of constants."""
    path = out / "whole_video.json"
    summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for row in rows:
        if "whole_s" in row:
            summary[row["row"]] = {key: row[key] for key in WHOLE_KEYS if key in row}
    if summary:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


COGVIDEOX_ATTENTION = r"transformer_blocks\.\d+\.attn1"  # diffusers' default TaylorSeer patterns miss `attn1`


def enable_taylorseer(pipe: Any, interval: int, warmup: int = 3) -> None:
    """diffusers' TaylorSeer hook on every CogVideoX attention layer (bench only, eager): after `warmup`
    full steps, attention is computed every `interval`-th step and extrapolated (first order) in between.
    Its default module patterns match nothing in CogVideoX (BENCHMARKS.md, round 3): name the layers."""
    from diffusers import TaylorSeerCacheConfig

    transformer = pipe.transformer
    transformer.enable_cache(TaylorSeerCacheConfig(
        cache_interval=interval, disable_cache_before_step=warmup, max_order=1,
        taylor_factors_dtype=transformer.dtype, cache_identifiers=[COGVIDEOX_ATTENTION]))
