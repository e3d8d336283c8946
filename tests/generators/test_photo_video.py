"""Image-to-video and CogVideoX1.5 on tiny random folders shaped like the released CogVideoX-5b-I2V,
CogVideoX1.5-5B-I2V and CogVideoX1.5-5B, loaded through the production loader (CPU)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.config import VideoConfig
from generators.base import GeneratorError
from generators.cogvideox import (
    CogVideoXGenerator,
    CogVideoXPhotoGenerator,
    VideoRequest,
    model_limits,
    photo_view,
    validate_request,
)
from generators.cogvideox_models import ModelLimits, photo_size
from generators.photos import PhotoRefused, decode_photo, encode_photo, fit_photo, open_photo
from tests.support.tiny_models import build_cogvideox_folder

PROMPT = "the girl smiles and waves, her hair moving gently in the wind"


def picture(width: int, height: int, colour: tuple[int, int, int] = (200, 80, 40)) -> Image.Image:
    """A photo-like picture: a coloured field with a bright square in the middle (to see crops)."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:] = colour
    pixels[height // 3: 2 * height // 3, width // 3: 2 * width // 3] = 255
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("i2v")
    return {variant: build_cogvideox_folder(root / variant, variant)
            for variant in ("5b-i2v", "1.5-5b-i2v", "1.5-5b")}


def photo_generator(folder: Path, variant: str, **sampling: int) -> CogVideoXPhotoGenerator:
    config = VideoConfig(photo={"model": {"path": folder, "variant": variant}, "sampling": sampling})
    return CogVideoXPhotoGenerator(photo_view(config))


def test_folders_are_told_apart_by_their_transformer_config(folders: dict[str, Path]) -> None:
    five = model_limits(folders["5b-i2v"])
    assert (five.variant, five.image_input, five.frame_step, five.native_size) \
        == ("5b-i2v", True, 8, (64, 96))
    i2v15 = model_limits(folders["1.5-5b-i2v"])
    assert (i2v15.variant, i2v15.image_input, i2v15.frame_step) == ("1.5-5b-i2v", True, 16)
    t2v15 = model_limits(folders["1.5-5b"])
    assert (t2v15.variant, t2v15.image_input, t2v15.frame_step, t2v15.max_frames) \
        == ("1.5-5b", False, 16, 161)
    config = json.loads((folders["1.5-5b-i2v"] / "transformer" / "config.json").read_text())
    assert (config["in_channels"], config["patch_size_t"], config["ofs_embed_dim"]) == (8, 2, 8)
    assert (folders["5b-i2v"] / "model_index.json").read_text().count("CogVideoXImageToVideoPipeline") == 1


def test_five_b_i2v_renders_from_the_photo(folders: dict[str, Path]) -> None:
    generator = photo_generator(folders["5b-i2v"], "5b-i2v", height=64, width=96, num_frames=9, steps=2)
    red = encode_photo(picture(300, 400, (220, 30, 30)))
    blue = encode_photo(picture(300, 400, (30, 30, 220)))
    request = VideoRequest(PROMPT, num_frames=9, steps=2, seed=3, height=64, width=96, image=red)
    first = generator.generate(request)
    assert first.frames.shape == (9, 64, 96, 3) and first.fps == 8
    assert generator.info is not None and generator.info.variant == "5b-i2v"
    again = generator.generate(request)
    other = generator.generate(VideoRequest(**{**request.to_dict(), "image": blue}))
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)  # the photo reaches the model


def test_one_point_five_i2v_pads_latent_frames_and_keeps_the_count(folders: dict[str, Path]) -> None:
    generator = photo_generator(folders["1.5-5b-i2v"], "1.5-5b-i2v", height=96, width=96, num_frames=17,
                                steps=1)
    request = VideoRequest(PROMPT, num_frames=17, steps=1, seed=1, height=64, width=96,
                           image=encode_photo(picture(120, 160)))
    result = generator.generate(request)
    assert result.frames.shape == (17, 64, 96, 3) and result.fps == 16
    with pytest.raises(GeneratorError, match="16 的倍数加 1"):
        generator.check_inputs(VideoRequest(**{**request.to_dict(), "num_frames": 25}))


def test_one_point_five_text_to_video(folders: dict[str, Path]) -> None:
    config = VideoConfig(model={"path": folders["1.5-5b"], "variant": "1.5-5b"},
                         sampling={"height": 64, "width": 96, "num_frames": 17, "steps": 1})
    assert config.sampling.fps == 16
    generator = CogVideoXGenerator(config)
    result = generator.generate(VideoRequest(PROMPT, num_frames=17, steps=1, seed=2, height=64, width=96))
    assert result.frames.shape == (17, 64, 96, 3)


def test_text_model_refuses_a_photo_and_photo_model_needs_one(folders: dict[str, Path]) -> None:
    limits = model_limits(folders["5b-i2v"])
    with pytest.raises(GeneratorError, match="照片"):
        validate_request(VideoRequest(PROMPT, num_frames=9, height=64, width=96), limits)
    text = model_limits(folders["1.5-5b"])
    with pytest.raises(GeneratorError):
        validate_request(VideoRequest(PROMPT, num_frames=17, height=64, width=96, image="abc"), text)


def test_released_sizes_and_frames() -> None:
    i2v = ModelLimits("1.5-5b-i2v", (768, 1360), 161, 226, frame_step=16, image_input=True)
    validate_request(VideoRequest(PROMPT, num_frames=81, height=768, width=1360, image="x"), i2v)
    validate_request(VideoRequest(PROMPT, num_frames=161, height=1360, width=768, image="x"), i2v)
    for height, width in ((720, 1360), (768, 1376)):
        with pytest.raises(GeneratorError, match="短边 768"):
            validate_request(VideoRequest(PROMPT, num_frames=81, height=height, width=width, image="x"), i2v)
    t2v = ModelLimits("1.5-5b", (768, 1360), 161, 226, frame_step=16)
    with pytest.raises(GeneratorError, match="768x1360"):
        validate_request(VideoRequest(PROMPT, num_frames=81, height=1360, width=768), t2v)
    with pytest.raises(GeneratorError, match="最多 161"):
        validate_request(VideoRequest(PROMPT, num_frames=177, height=768, width=1360), t2v)
    # a portrait photo turns the 1.5 photo model's frame upright; the 1.0 model has one size only
    assert photo_size(i2v, 768, 1360, photo_width=900, photo_height=1600) == (1360, 768)
    five = ModelLimits("5b-i2v", (480, 720), 49, 226, image_input=True)
    assert photo_size(five, 480, 720, photo_width=900, photo_height=1600) == (480, 720)


def test_variant_defaults_and_frame_rules_in_config() -> None:
    config = VideoConfig(model={"variant": "1.5-5b"}, photo={"model": {"variant": "1.5-5b-i2v"}})
    assert (config.sampling.height, config.sampling.width, config.sampling.num_frames, config.sampling.fps) \
        == (768, 1360, 81, 16)
    assert config.photo.sampling.num_frames == 81 and config.photo.max_age_minutes == 30
    assert VideoConfig().photo.sampling.num_frames == 49
    with pytest.raises(ValueError, match="16N\\+1"):
        VideoConfig(model={"variant": "1.5-5b"}, sampling={"num_frames": 41})
    with pytest.raises(ValueError, match="8N\\+1 frames up to 49"):
        VideoConfig(photo={"sampling": {"num_frames": 57}})


def test_fit_keeps_aspect_and_cuts_the_middle() -> None:
    tall = picture(300, 600)
    fitted = fit_photo(tall, 480, 720)
    assert fitted.size == (720, 480)
    pixels = np.asarray(fitted)
    # scaled by 720/300 = 2.4 (not stretched), the middle 480 of 1440 rows remain: that is the white
    # square's band (rows 200-400 -> 480-960), edge to edge; left and right of it the red field
    assert pixels[240, 360].tolist() == [255, 255, 255]
    assert pixels[20, 360].tolist() == [255, 255, 255]
    assert pixels[240, 100].tolist() == [200, 80, 40]


def test_photo_checks() -> None:
    buffer = io.BytesIO()
    picture(40, 30).save(buffer, format="PNG")
    assert open_photo(buffer.getvalue()).size == (40, 30)
    with pytest.raises(PhotoRefused, match="不是照片"):
        open_photo(b"%PDF-1.4 not a picture")
    with pytest.raises(PhotoRefused, match="打不开"):
        open_photo(buffer.getvalue()[:60])  # truncated
    with pytest.raises(PhotoRefused, match="20 MB"):
        open_photo(b"\xff" * 20_000_001)
    with pytest.raises(PhotoRefused):
        decode_photo("not base64 at all!")
    # EXIF orientation 6 (rotate 90 clockwise to view): a 40x30 file shows as 30x40
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = io.BytesIO()
    picture(40, 30).save(rotated, format="JPEG", exif=exif.tobytes())
    assert open_photo(rotated.getvalue()).size == (30, 40)


@pytest.mark.parametrize("variant", ["5b-i2v", "1.5-5b-i2v"])
def test_preset_fast_renders_a_photo_with_its_step_cache(folders: dict[str, Path], variant: str) -> None:
    """Preset fast's cache (cache-dit on a fixed schedule) on the image-to-video transformers: steps after
    the warm-up run the last block only on the scheduled ones, and the video still comes out."""
    frames = 9 if variant == "5b-i2v" else 17
    config = VideoConfig(photo={"model": {"path": folders[variant], "variant": variant},
                                "sampling": {"height": 64, "width": 96, "num_frames": frames, "steps": 6}},
                         speed={"preset": "fast", "cache_warmup_steps": 2, "cache_full_every": 3})
    generator = CogVideoXPhotoGenerator(photo_view(config))
    generator.load()
    assert generator.active_config.speed.cache == "cachedit"
    full_steps: list[int] = []
    generator.pipeline.transformer.transformer_blocks[-1].register_forward_pre_hook(
        lambda *_: full_steps.append(1))
    request = VideoRequest(PROMPT, num_frames=frames, steps=6, seed=4, height=64, width=96,
                           image=encode_photo(picture(300, 400)))
    assert generator.generate(request).frames.shape == (frames, 64, 96, 3)
    assert len(full_steps) == 4  # steps 0, 1, 4 and the last of 6
