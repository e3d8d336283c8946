"""Frames -> MP4 that WeChat plays inline: H.264, yuv420p, +faststart, and a size cap.

ffmpeg runs as a subprocess of its own here (imageio-ffmpeg supplies the binary) so that its exit status
and error output are seen: a write that failed half way (a full disk) must never count as a video. The
file is written under a temporary name, probed (every frame decodes), then renamed into place.

The file must cross the gateway (64 MB messages) and WeChat (web puppets refuse videos over 20 MB), so
the bitrate is bounded by `max_bytes` over the video's duration: at the defaults a 6-second 480x720 video
at 2 Mbit/s is about 1.6 MB, a 10-second 768x1360 one at 6 Mbit/s about 7.5 MB, and no setting produces
a file over the cap (it is re-encoded at a lower rate, or refused clearly).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from loguru import logger

from generators.base import GeneratorError, went_wrong
from generators.storage import StorageFull, is_no_space

DEFAULT_BITRATE_KBPS = 2000
DEFAULT_MAX_BYTES = 3_000_000
DEFAULT_PRESET = "veryfast"  # x264 speed preset: at a fixed bitrate, 4x faster than "medium" here
CONTAINER_HEADROOM = 0.85  # share of the cap given to the video stream; the rest covers MP4 overhead


REFERENCE_AREA = 480 * 720  # the size `bitrate_kbps` is set for


def scaled_bitrate(bitrate_kbps: int, height: int, width: int) -> int:
    """The wanted rate for a height x width video: `bitrate_kbps` is for 480x720, larger frames (1.5's
    768x1360) get proportionally more so they look as clean; `bitrate_for` still caps it by size."""
    return max(bitrate_kbps, round(bitrate_kbps * height * width / REFERENCE_AREA))


def bitrate_for(num_frames: int, fps: float, bitrate_kbps: int = DEFAULT_BITRATE_KBPS,
                max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """kbit/s to encode with: the wanted rate, lowered so `num_frames` at `fps` fit in `max_bytes`."""
    duration = max(num_frames / fps, 1 / fps)
    ceiling = int(max_bytes * 8 * CONTAINER_HEADROOM / duration / 1000)
    return max(50, min(bitrate_kbps, ceiling))


def _as_uint8_frames(frames: Any) -> Any:
    import numpy as np

    if isinstance(frames, Sequence) and frames and not isinstance(frames[0], np.ndarray):
        frames = [np.asarray(frame.convert("RGB")) for frame in frames]  # PIL images
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
        raise went_wrong(f"mp4: expected frames shaped (T, H, W, 3), got {array.shape}", "mp4:shape")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            array = np.clip(np.rint(array * 255.0), 0, 255)
        array = array.astype(np.uint8)
    height, width = array.shape[1:3]
    if height % 2 or width % 2:
        raise went_wrong(f"mp4: H.264 yuv420p needs an even frame size, got {height}x{width}", "mp4:odd-size")
    return array


def _ffmpeg_command(width: int, height: int, fps: float, kbps: int, preset: str, path: Path) -> list[str]:
    import imageio_ffmpeg

    return [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-vcodec", "rawvideo",
            "-s", f"{width}x{height}", "-pix_fmt", "rgb24", "-r", str(Fraction(fps).limit_denominator()),
            "-i", "-", "-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-b:v", f"{kbps}k",
            "-preset", preset, "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k", "-movflags", "+faststart",
            "-f", "mp4", str(path)]


def _write(array: Any, path: Path, fps: float, kbps: int, preset: str) -> None:
    """Encode into `path`; raises unless ffmpeg exits 0 and the file decodes to every frame."""
    import imageio_ffmpeg

    height, width = array.shape[1:3]
    try:
        done = subprocess.run(_ffmpeg_command(width, height, fps, kbps, preset, path),
                              input=array.tobytes(), capture_output=True, check=False)
    except OSError as exc:
        raise _failure(path, str(exc), exc) from exc
    errors = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise _failure(path, f"ffmpeg exited with {done.returncode}: {errors[-500:]}", errors)
    try:
        frames, _seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError) as exc:
        raise _failure(path, f"the MP4 does not decode: {str(exc)[-500:]}", exc) from exc
    if frames != len(array):
        raise _failure(path, f"the MP4 decodes to {frames} of {len(array)} frames", errors)


def _failure(path: Path, detail: str, cause: BaseException | str) -> GeneratorError:
    logger.error("mp4: writing {} failed: {}", path, detail)
    if is_no_space(cause) or is_no_space(detail):
        return StorageFull(path.parent, detail)
    return GeneratorError("视频编码失败了，请稍后再试一次。")


def encode_mp4(frames: Any, path: Path | str, fps: float = 8, bitrate_kbps: int = DEFAULT_BITRATE_KBPS,
               max_bytes: int = DEFAULT_MAX_BYTES, preset: str = DEFAULT_PRESET) -> Path:
    """Write `frames` (uint8 or [0,1] float array (T, H, W, 3), or PIL images) to `path` as MP4.

    Blocking (ffmpeg subprocess, ~2 s for 49 frames of 480x720 on 2 cores with "veryfast"): call from a
    worker thread. Returns the path once ffmpeg exited cleanly and the file decodes to every frame;
    raises StorageFull when the disk is full, GeneratorError for any other failure."""
    array = _as_uint8_frames(frames)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _failure(path, str(exc), exc) from exc
    kbps = bitrate_for(len(array), fps, bitrate_kbps, max_bytes)
    partial = path.with_name(f".{path.name}.partial")  # the final name only ever holds a checked file
    try:
        for _ in range(3):
            _write(array, partial, fps, kbps, preset)
            size = partial.stat().st_size
            if size <= max_bytes:
                os.replace(partial, path)
                return path
            kbps = max(50, int(kbps * max_bytes / size * 0.8))
    finally:
        partial.unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    raise GeneratorError(f"视频文件超过 {max_bytes / 1e6:.1f} MB 上限，没能压缩下来。")
