"""MP4 encoding: decoded back with imageio to check codec, frame count, size, fps, faststart and size cap."""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from generators.base import GeneratorError
from generators.cogvideox import CogVideoXGenerator, VideoRequest
from generators.mp4 import bitrate_for, encode_mp4


def _probe(path: Path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(height, width, 3) for buf in reader]
    return meta, frames


def _gradient(num_frames: int, height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    frames = [np.stack([(xs + 4 * t) % 256, (ys * 2) % 256, np.full_like(xs, 30 * t % 256)], -1)
              for t in range(num_frames)]
    return np.asarray(frames, dtype=np.uint8)


def test_encodes_h264_yuv420p_with_faststart(tmp_path: Path) -> None:
    frames = _gradient(9, 64, 96)
    path = encode_mp4(frames, tmp_path / "out/v.mp4", fps=8)
    meta, decoded = _probe(path)
    assert len(decoded) == 9 and decoded[0].shape == (64, 96, 3)
    assert meta["fps"] == pytest.approx(8)
    assert "h264" in meta["codec"] and "yuv420p" in meta["pix_fmt"]
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: the index comes first
    assert np.abs(decoded[4].astype(int) - frames[4]).mean() < 12  # the picture survives encoding


def test_six_second_480x720_noise_stays_under_the_cap(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (49, 480, 720, 3), dtype=np.uint8)  # worst case for the encoder
    path = encode_mp4(noise, tmp_path / "noise.mp4", fps=8, bitrate_kbps=20_000, max_bytes=3_000_000)
    assert path.stat().st_size < 3_000_000
    meta, decoded = _probe(path)
    assert len(decoded) == 49 and meta["size"] == (720, 480)


def test_tight_cap_is_met_or_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (17, 240, 320, 3), dtype=np.uint8)
    try:
        path = encode_mp4(noise, tmp_path / "small.mp4", fps=8, max_bytes=150_000)
    except GeneratorError as exc:
        assert "上限" in str(exc)
        assert not (tmp_path / "small.mp4").exists()
    else:
        assert path.stat().st_size <= 150_000


def test_bitrate_is_lowered_to_fit_the_cap() -> None:
    assert bitrate_for(49, 8) == 2000  # defaults: 2 Mbit/s x 6.1 s ~ 1.5 MB, under 3 MB
    fitted = bitrate_for(49, 8, bitrate_kbps=50_000, max_bytes=3_000_000)
    assert fitted * 1000 / 8 * 49 / 8 < 3_000_000


def test_accepts_float_frames_and_pil_images(tmp_path: Path) -> None:
    floats = _gradient(9, 32, 48).astype(np.float32) / 255.0
    _, decoded = _probe(encode_mp4(floats, tmp_path / "f.mp4"))
    assert len(decoded) == 9
    images = [Image.fromarray(frame) for frame in _gradient(9, 32, 48)]
    _, decoded = _probe(encode_mp4(images, tmp_path / "p.mp4"))
    assert len(decoded) == 9 and decoded[0].shape == (32, 48, 3)


@pytest.mark.parametrize("frames", [np.zeros((9, 33, 48, 3), np.uint8), np.zeros((9, 32, 48), np.uint8),
                                    np.zeros((0, 32, 48, 3), np.uint8)])
def test_bad_frames_are_refused(tmp_path: Path, frames: np.ndarray) -> None:
    with pytest.raises(GeneratorError):
        encode_mp4(frames, tmp_path / "bad.mp4")


def test_generator_output_to_mp4(generator_2b: CogVideoXGenerator, tmp_path: Path) -> None:
    result = generator_2b.generate(VideoRequest("a panda plays the guitar", num_frames=17, steps=2, seed=3,
                                                height=64, width=96))
    encode = generator_2b.config.encode
    path = encode_mp4(result.frames, tmp_path / "video.mp4", fps=result.fps, bitrate_kbps=encode.bitrate_kbps,
                      max_bytes=int(encode.max_mp4_mb * 1_000_000), preset=encode.x264_preset)
    meta, decoded = _probe(path)
    assert len(decoded) == 17 and meta["size"] == (96, 64) and meta["fps"] == pytest.approx(8)
