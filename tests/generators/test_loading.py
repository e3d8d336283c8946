"""Model discovery (explicit folder, modelscope cache, Hugging Face cache), dtype and memory-mode choice."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config import VideoConfig
from generators.base import ModelNotFound
from generators.cogvideox import SOURCES, CogVideoXGenerator
from generators.loading import find_model, quantization_config, resolve_dtype, resolve_memory_mode
from tests.support.errors import raises_told, told


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst)
    return dst


def test_missing_explicit_folder_says_so(tmp_path: Path) -> None:
    generator = CogVideoXGenerator(VideoConfig(model={"path": tmp_path / "nope"}))
    with raises_told(ModelNotFound, "nope.*does not exist"):
        generator.load()
    empty = tmp_path / "empty"
    empty.mkdir()
    with raises_told(ModelNotFound, "model_index.json"):
        CogVideoXGenerator(VideoConfig(model={"path": empty})).check_inputs(None)  # type: ignore[arg-type]


def test_nothing_cached_lists_where_it_looked(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    generator = CogVideoXGenerator(VideoConfig(), env=env)
    with pytest.raises(ModelNotFound) as caught:
        generator.locate()
    message = told(caught.value)
    assert "modelscope download --model ZhipuAI/CogVideoX-2b" in message
    assert str(tmp_path / ".cache/modelscope/hub/ZhipuAI/CogVideoX-2b") in message
    assert str(tmp_path / ".cache/huggingface/hub/models--THUDM--CogVideoX-2b") in message
    assert "CogVideoX-5b" in message  # the fallback variant was looked for too
    first_line = message.splitlines()[0]
    assert "没有找到" in first_line and len(first_line) < 150  # short enough for the asker
    assert generator.info is None and not generator.loaded


def test_finds_modelscope_download_under_home(tmp_path: Path, tiny_cogvideox_2b: Path) -> None:
    home = tmp_path / "home"
    target = _copy(tiny_cogvideox_2b, home / ".cache/modelscope/hub/ZhipuAI/CogVideoX-2b")
    generator = CogVideoXGenerator(VideoConfig(), env={"HOME": str(home)})
    assert generator.locate() == target
    generator.load()
    assert generator.info.folder == target and generator.info.variant == "2b"


def test_modelscope_cache_env_and_newer_models_layout(tmp_path: Path, tiny_cogvideox_5b: Path) -> None:
    cache = tmp_path / "ms"
    target = _copy(tiny_cogvideox_5b, cache / "hub/models/ZhipuAI/CogVideoX-5b")
    env = {"HOME": str(tmp_path / "home"), "MODELSCOPE_CACHE": str(cache)}
    assert find_model(None, [SOURCES["2b"], SOURCES["5b"]], env) == target


def test_variant_preference_then_fallback(tmp_path: Path, tiny_cogvideox_2b: Path,
                                          tiny_cogvideox_5b: Path) -> None:
    hub = tmp_path / "home/.cache/modelscope/hub/ZhipuAI"
    two = _copy(tiny_cogvideox_2b, hub / "CogVideoX-2b")
    five = _copy(tiny_cogvideox_5b, hub / "CogVideoX-5b")
    env = {"HOME": str(tmp_path / "home")}
    assert CogVideoXGenerator(VideoConfig(model={"variant": "5b"}), env=env).locate() == five
    assert CogVideoXGenerator(VideoConfig(model={"variant": "2b"}), env=env).locate() == two
    shutil.rmtree(two)
    assert CogVideoXGenerator(VideoConfig(model={"variant": "2b"}), env=env).locate() == five


def test_finds_hugging_face_snapshot_via_hf_home(tmp_path: Path, tiny_cogvideox_2b: Path) -> None:
    repo = tmp_path / "hf/hub/models--THUDM--CogVideoX-2b"
    snapshot = _copy(tiny_cogvideox_2b, repo / "snapshots/0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text("0123abcd")
    env = {"HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf")}
    assert CogVideoXGenerator(VideoConfig(), env=env).locate() == snapshot


def test_explicit_path_wins_over_caches(tmp_path: Path, tiny_cogvideox_2b: Path,
                                        tiny_cogvideox_5b: Path) -> None:
    _copy(tiny_cogvideox_2b, tmp_path / "home/.cache/modelscope/hub/ZhipuAI/CogVideoX-2b")
    env = {"HOME": str(tmp_path / "home")}
    generator = CogVideoXGenerator(VideoConfig(model={"path": tiny_cogvideox_5b}), env=env)
    assert generator.locate() == tiny_cogvideox_5b


def test_dtype_and_memory_mode_choice() -> None:
    torch = pytest.importorskip("torch")
    assert resolve_dtype("auto", "float16", on_gpu=True) == torch.float16
    assert resolve_dtype("auto", "bfloat16", on_gpu=True) == torch.bfloat16
    assert resolve_dtype("auto", "float16", on_gpu=False) == torch.float32
    assert resolve_dtype("bfloat16", "float16", on_gpu=False) == torch.bfloat16
    assert resolve_memory_mode("auto", on_gpu=True) == ("gpu", None)
    assert resolve_memory_mode("auto", on_gpu=False) == ("cpu", None)
    assert resolve_memory_mode("model_cpu_offload", on_gpu=True) == ("model_cpu_offload", None)
    mode, note = resolve_memory_mode("sequential_cpu_offload", on_gpu=False)
    assert mode == "cpu" and "sequential_cpu_offload" in note


def test_config_rejects_unknown_modes() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        VideoConfig(model={"memory_mode": "turbo"})
    with pytest.raises(ValidationError):
        VideoConfig(model={"quantization": "fp6"})


def test_fp8_quantizes_the_denoiser_with_scales_its_dtype_supports(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchao")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (9, 0))
    components = {"transformer": "diffusers", "text_encoder": "transformers"}

    fp16 = quantization_config("fp8_dynamic", components, torch.float16)
    assert set(fp16.quant_mapping) == {"transformer"}  # T5 keeps its dtype
    ao_config = fp16.quant_mapping["transformer"].quant_type
    assert type(ao_config.granularity[0]).__name__ == "PerTensor"  # fp16 output needs per-tensor scales
    assert ao_config.set_inductor_config is False  # torchao's tuning made torch.compile take minutes

    bf16 = quantization_config("fp8_dynamic", components, torch.bfloat16)
    assert type(bf16.quant_mapping["transformer"].quant_type.granularity[0]).__name__ == "PerRow"

    int8 = quantization_config("int8_weight_only", components, torch.float16)
    assert set(int8.quant_mapping) == {"transformer", "text_encoder"}  # weight-only: T5 shrinks too
