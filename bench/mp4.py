"""`xiaoai bench mp4`: time the production MP4 encoder (generators.mp4.encode_mp4) on the CPU."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def sample_video(frames: int = 49, height: int = 480, width: int = 720, seed: int = 0) -> Any:
    """uint8 (T, H, W, 3): moving colour gradients plus mild noise, harder to encode than a flat video
    and easier than pure noise, like a generated clip."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        phase = t / max(frames - 1, 1) * 2 * np.pi
        red = 128 + 100 * np.sin(x / 60 + phase)
        green = 128 + 100 * np.sin(y / 45 - phase)
        blue = 128 + 100 * np.sin((x + y) / 80 + 2 * phase)
        noise = rng.normal(0, 6, (height, width, 1))
        video[t] = np.clip(np.stack([red, green, blue], -1) + noise, 0, 255).astype(np.uint8)
    return video


def run(presets: list[str], frames: int = 49, height: int = 480, width: int = 720, repeats: int = 2,
        out: Path | None = None) -> list[dict[str, Any]]:
    """Encode the sample video once per preset (best of `repeats`); JSON line per row, markdown table."""
    from generators.mp4 import encode_mp4
    from generators.settings import VideoEncode, VideoSampling

    sampling, encode = VideoSampling(), VideoEncode()
    video = sample_video(frames, height, width)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            times = []
            path = Path(tmp) / f"{preset}.mp4"
            for _ in range(repeats):
                begin = time.perf_counter()
                encode_mp4(video, path, fps=sampling.fps, bitrate_kbps=encode.bitrate_kbps,
                           max_bytes=int(encode.max_mp4_mb * 1_000_000), preset=preset)
                times.append(time.perf_counter() - begin)
            row = {"row": f"mp4:{preset}", "frames": [frames, height, width],
                   "encode_s": round(min(times), 3), "bytes": path.stat().st_size, "cpus": os.cpu_count(),
                   "default": preset == encode.x264_preset}
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = ["| x264 preset | encode (s) | MP4 bytes | CPU cores |", "|---|---|---|---|"]
    lines += [f"| {r['row'][4:]}{' (default)' if r['default'] else ''} | {r['encode_s']} | {r['bytes']} | "
              f"{r['cpus']} |" for r in rows]
    table = "\n".join(lines)
    print("\n" + table, flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "mp4.md").write_text(table + "\n", encoding="utf-8")
        (out / "mp4.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows
