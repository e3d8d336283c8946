"""FluxGenerator on tiny random FLUX folders (schnell-like and dev-like) saved with `save_pretrained` and
loaded through the production loader (`generators/loading.py`): defaults per variant, determinism,
progress, cancellation, input checks, cache discovery, torchao quantization, and the saved file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.config import ImageConfig
from generators.base import GenerationCancelled, GeneratorError, ModelNotFound
from generators.flux import FluxGenerator, ImageRequest, flux_limits, save_image
from tests.support.errors import raises_told, told
from tests.support.tiny_models import build_flux_folder

TINY = {"height": 64, "width": 96}


@pytest.fixture(scope="module")
def schnell_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_flux_folder(tmp_path_factory.mktemp("flux") / "FLUX.1-schnell", "schnell")


@pytest.fixture(scope="module")
def schnell(schnell_folder: Path) -> FluxGenerator:
    generator = FluxGenerator(ImageConfig(model={"path": schnell_folder}, sampling=TINY))
    generator.load()
    return generator


def request(**overrides) -> ImageRequest:
    return ImageRequest(**({"prompt": "a shiba inu in the snow", "seed": 7, "steps": 2} | TINY | overrides))


def test_loads_through_the_production_loader_with_schnell_defaults(schnell: FluxGenerator) -> None:
    assert schnell.loaded and schnell.info is not None
    assert schnell.info.variant == "FLUX.1-schnell" and schnell.info.memory_mode == "cpu"
    assert schnell.info.dtype == "float32"  # half types are for GPUs
    assert schnell.limits.max_prompt_tokens == 256
    assert schnell.resolved(ImageRequest("x")) == (4, 0.0)
    assert "FLUX.1-schnell" in schnell.info.summary()


def test_dev_folder_is_recognised_with_dev_defaults(tmp_path: Path) -> None:
    folder = build_flux_folder(tmp_path / "FLUX.1-dev", "dev")
    limits = flux_limits(folder)
    assert (limits.variant, limits.default_steps, limits.default_guidance) == ("dev", 28, 3.5)
    generator = FluxGenerator(ImageConfig(model={"path": folder}, sampling=TINY))
    result = generator.generate(request(steps=2, guidance=3.5))
    assert result.size == (64, 96) and result.steps == 2


def test_same_seed_same_pixels_other_seed_other_pixels(schnell: FluxGenerator) -> None:
    first = np.asarray(schnell.generate(request()).image)
    again = np.asarray(schnell.generate(request()).image)
    other = np.asarray(schnell.generate(request(seed=8)).image)
    assert first.shape == (64, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.std() > 0  # a real render, not a blank


def test_defaults_come_from_the_variant_and_progress_is_reported(schnell: FluxGenerator) -> None:
    steps: list[tuple[int, int]] = []
    result = schnell.generate(request(steps=None), on_step=lambda i, n: steps.append((i, n)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert result.steps == 4 and result.seed == 7


def test_cancellation_stops_the_run(schnell: FluxGenerator) -> None:
    steps: list[int] = []
    with pytest.raises(GenerationCancelled, match="after step 1"):
        schnell.generate(request(steps=3), on_step=lambda i, n: steps.append(i),
                         should_stop=lambda: bool(steps))
    assert steps == [1]
    with pytest.raises(GenerationCancelled, match="before the first step"):
        schnell.generate(request(), should_stop=lambda: True)


@pytest.mark.parametrize("overrides, message", [
    ({"prompt": "  "}, "描述是空的"),
    ({"height": 72}, "高度必须是 16 的倍数"),
    ({"width": 100}, "宽度必须是 16 的倍数"),
    ({"width": 32}, "宽度必须是 16 的倍数"),
    ({"height": 4096}, "高度必须是 16 的倍数"),
    ({"steps": 0}, "步数必须是 1 到 60"),
    ({"steps": 61}, "步数必须是 1 到 60"),
    ({"steps": 2.5}, "步数"),
    ({"guidance": -1}, "引导强度"),
    ({"guidance": 35}, "引导强度"),
    ({"seed": -3}, "随机数"),
    ({"prompt": "snow " * 300}, "描述太长了"),
])
def test_bad_inputs_get_clear_errors(schnell: FluxGenerator, overrides: dict, message: str) -> None:
    with pytest.raises(GeneratorError, match=message):
        schnell.check_inputs(request(**overrides))


def test_found_in_the_modelscope_cache_and_missing_model_is_clear(schnell_folder: Path,
                                                                  tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home")}
    with pytest.raises(ModelNotFound) as missing:
        FluxGenerator(ImageConfig(), env=env).locate()
    text = told(missing.value)
    assert "modelscope download --model black-forest-labs/FLUX.1-schnell" in text
    assert "image.model.path" in text and "FLUX.1-dev" in text
    # modelscope writes dots as ___: ~/.cache/modelscope/hub/black-forest-labs/FLUX___1-dev
    target = tmp_path / "home/.cache/modelscope/hub/black-forest-labs/FLUX___1-dev"
    shutil.copytree(schnell_folder, target)
    assert FluxGenerator(ImageConfig(model={"variant": "dev"}), env=env).locate() == target
    with raises_told(ModelNotFound, "模型文件夹 .* does not exist.*image.model.path"):
        FluxGenerator(ImageConfig(model={"path": tmp_path / "nowhere"})).locate()


def test_int8_weight_only_quantization_via_torchao(schnell_folder: Path) -> None:
    pytest.importorskip("torchao")
    generator = FluxGenerator(ImageConfig(model={"path": schnell_folder, "quantization": "int8_weight_only"},
                                          sampling=TINY))
    result = generator.generate(request())
    assert generator.info is not None and generator.info.quantization == "int8_weight_only"
    assert result.size == (64, 96)
    weight = generator._pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert "Int8" in type(weight).__name__ or "Affine" in type(weight).__name__


def test_fp8_is_refused_without_a_capable_gpu(schnell_folder: Path) -> None:
    pytest.importorskip("torchao")
    import torch

    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    with raises_told(GeneratorError, "compute capability >= 8.9"):
        FluxGenerator(ImageConfig(model={"path": schnell_folder, "quantization": "fp8_dynamic"},
                                  sampling=TINY)).load()


@pytest.mark.parametrize("fmt, suffix, kind", [("jpeg", ".jpg", "JPEG"), ("png", ".png", "PNG")])
def test_saved_file_decodes(schnell: FluxGenerator, tmp_path: Path, fmt: str, suffix: str, kind: str) -> None:
    result = schnell.generate(request())
    path = save_image(result.image, tmp_path / "000001-7", fmt)
    assert path.suffix == suffix
    with Image.open(path) as decoded:
        assert decoded.format == kind and decoded.size == (96, 64)
