"""The provider's MP4 on our disk: streamed with a size cap, checked to be a real MP4 that decodes to the
frames its header claims, and re-encoded under `video.encode.max_mp4_mb` when it is larger (the gateway
and WeChat cap what they carry)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import httpx

from generators.mp4 import bitrate_for
from generators.storage import StorageFull, is_no_space
from generators.video_api.errors import ApiFailure, Failure

GONE_STATUSES = (403, 404, 410)  # a signed result URL that expired (DashScope keeps them 24 h)
MAX_LONG_SIDE = 1280  # a re-encode under the size cap also scales 1080p/4K down to this
MIN_FRAME_SHARE = 0.9  # a file decoding to fewer of the frames its header claims is truncated


async def download(client: httpx.AsyncClient, url: str, path: Path, max_bytes: int) -> Path:
    """Stream `url` into `path` (via a partial file): GONE for an expired link, TOO_BIG over `max_bytes`,
    BUSY for anything a retry may fix."""
    partial = path.with_name(f".{path.name}.download")
    try:
        async with client.stream("GET", url) as answer:
            if answer.status_code in GONE_STATUSES:
                raise ApiFailure(Failure.GONE, f"the result URL answered HTTP {answer.status_code}",
                                 status=answer.status_code)
            if answer.status_code != 200:
                raise ApiFailure(Failure.BUSY, f"the result URL answered HTTP {answer.status_code}",
                                 status=answer.status_code)
            declared = int(answer.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise ApiFailure(Failure.TOO_BIG, f"the result is {declared} bytes (cap {max_bytes})")
            size = 0
            out = await asyncio.to_thread(open, partial, "wb")  # disk writes off the event loop
            try:
                async for chunk in answer.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ApiFailure(Failure.TOO_BIG, f"the result is over {max_bytes} bytes")
                    await asyncio.to_thread(out.write, chunk)
            finally:
                await asyncio.to_thread(out.close)
        os.replace(partial, path)
        return path
    except httpx.HTTPError as exc:
        raise ApiFailure(Failure.BUSY, f"downloading the result failed: {exc!r}") from exc
    except OSError as exc:
        if is_no_space(exc):
            raise StorageFull(path.parent, str(exc)) from exc
        raise
    finally:
        partial.unlink(missing_ok=True)


def _claimed_frames(path: Path) -> tuple[int, float]:
    """(frames, fps) the header claims: duration x fps from ffmpeg's reading of the container."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    finally:
        reader.close()
    fps = float(meta.get("fps") or 0)
    duration = float(meta.get("duration") or 0)
    return int(round(duration * fps)), fps


def check_mp4(path: Path) -> tuple[int, float]:
    """(decoded frames, fps) of a real MP4 whose frames all decode; BAD_ANSWER otherwise. Blocking."""
    import imageio_ffmpeg

    with open(path, "rb") as head:
        start = head.read(12)
    if len(start) < 12 or start[4:8] != b"ftyp":
        raise ApiFailure(Failure.BAD_ANSWER, f"the result is not an MP4 (starts {start[:12]!r})")
    try:
        claimed, fps = _claimed_frames(path)
        frames, _seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError, StopIteration, ValueError) as exc:
        raise ApiFailure(Failure.BAD_ANSWER, f"the MP4 does not decode: {str(exc)[-300:]}") from exc
    if frames <= 0 or fps <= 0 or frames < claimed * MIN_FRAME_SHARE:
        raise ApiFailure(Failure.BAD_ANSWER, f"the MP4 decodes to {frames} of the {claimed} frames it claims")
    return frames, fps


def shrink_mp4(source: Path, target: Path, frames: int, fps: float, max_bytes: int, bitrate_kbps: int,
               preset: str) -> Path:
    """Re-encode `source` into `target` as H.264 under `max_bytes` (lower bitrate on each try). Blocking."""
    import imageio_ffmpeg

    kbps = bitrate_for(frames, fps, bitrate_kbps, max_bytes)
    partial = target.with_name(f".{target.name}.partial")
    scale = f"scale='if(gt(iw,ih),min({MAX_LONG_SIDE},iw),-2)':'if(gt(iw,ih),-2,min({MAX_LONG_SIDE},ih))'"
    try:
        for _ in range(3):
            command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(source), "-an",
                       "-vf", scale, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-b:v", f"{kbps}k",
                       "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k", "-preset", preset,
                       "-movflags", "+faststart", "-f", "mp4", str(partial)]
            done = subprocess.run(command, capture_output=True, check=False)
            if done.returncode != 0:
                detail = done.stderr.decode("utf-8", "replace")[-300:]
                if is_no_space(detail):
                    raise StorageFull(target.parent, detail)
                raise ApiFailure(Failure.BAD_ANSWER, f"re-encoding the result failed: {detail}")
            size = partial.stat().st_size
            if size <= max_bytes:
                check_mp4(partial)
                os.replace(partial, target)
                return target
            kbps = max(50, int(kbps * max_bytes / size * 0.8))
    finally:
        partial.unlink(missing_ok=True)
    raise ApiFailure(Failure.TOO_BIG, f"the result stays over {max_bytes} bytes after re-encoding")
