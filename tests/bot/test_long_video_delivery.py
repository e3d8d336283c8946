"""A CogVideoX1.5-sized MP4 (768x1360, 8 s at 16 fps) at the default encode settings is over 5 MB, under
the 20 MB cap, and crosses the real Node peer whole through the bot's WeChat channel."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from bot.config import VideoConfig
from bot.messages import ChatRef, Reply
from generators.mp4 import encode_mp4, scaled_bitrate
from tests.support.peer import FAMILY


def long_video(path: Path) -> Path:
    """Noise frames (nothing for H.264 to predict), so the file is as large as the rate allows."""
    encode = VideoConfig(model={"variant": "1.5-5b"}).encode
    frames = np.random.default_rng(0).integers(0, 256, (129, 768, 1360, 3), dtype=np.uint8)
    kbps = scaled_bitrate(encode.bitrate_kbps, 768, 1360)
    return encode_mp4(frames, path, 16, kbps, int(encode.max_mp4_mb * 1e6), preset="ultrafast")


async def test_a_five_megabyte_mp4_crosses_the_peer(running_bot, peer, tmp_path: Path) -> None:
    path = await asyncio.to_thread(long_video, tmp_path / "long.mp4")
    data = path.read_bytes()
    assert 5_000_000 <= len(data) <= 20_000_000
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 129
    async with running_bot() as app:
        await app.channel.send(ChatRef(FAMILY, True), Reply(file=path))
        sent = await asyncio.to_thread(peer.wait_for_sent, lambda m: bool(m.get("file")))
    assert sent["room"] == FAMILY and sent["file"]["mimeType"] == "video/mp4"
    assert sent["file"]["size"] == len(data)
    assert base64.b64decode(sent["file"]["base64"]) == data
