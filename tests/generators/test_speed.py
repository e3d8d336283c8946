"""CPU checks for the speed switches: the FA3 processor's math, its fallback, the cache hooks' plumbing
through the production generator, and how presets resolve on a machine without a GPU."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from loguru import logger

from bot.config import VideoConfig
from bot.config.legacy import nest
from generators.cogvideox import CogVideoXGenerator, VideoRequest
from generators.fa3 import FA3CogVideoXAttnProcessor, sdpa_bshd, use_fa3_attention
from generators.presets import resolve_preset
from generators.random_models import _transformer_shape
from generators.step_cache import cache_gib, cache_hook_config, fastercache_gib, fixed_schedule
from tests.generators.conftest import TINY_SIZE

REQUEST = VideoRequest("a panda plays the guitar", num_frames=9, steps=4, seed=3, **TINY_SIZE)


def flat_video(**settings):  # noqa: ANN003, ANN201 - these tests name the switches the flat way
    return VideoConfig(**nest("video", settings))


def _attention(rope: bool, fused: bool = False) -> tuple[object, dict]:
    """One tiny CogVideoX attention layer and its inputs (text + video tokens, optional rotary)."""
    from diffusers.models.attention_processor import Attention, CogVideoXAttnProcessor2_0

    torch.manual_seed(0)
    attn = Attention(query_dim=32, dim_head=16, heads=2, bias=True, qk_norm="layer_norm", eps=1e-6,
                     out_bias=True, processor=CogVideoXAttnProcessor2_0()).eval()
    if fused:
        attn.fuse_projections()
    text, video = torch.randn(2, 5, 32), torch.randn(2, 12, 32)
    inputs = {"hidden_states": video, "encoder_hidden_states": text}
    if rope:
        angles = torch.randn(12, 8).repeat_interleave(2, dim=-1)
        inputs["image_rotary_emb"] = (angles.cos(), angles.sin())
    return attn, inputs


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_fa3_processor_matches_diffusers_processor(rope: bool, fused: bool) -> None:
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

    attn, inputs = _attention(rope, fused)
    with torch.no_grad():
        want_video, want_text = CogVideoXAttnProcessor2_0()(attn, **inputs)
        got_video, got_text = FA3CogVideoXAttnProcessor(sdpa_bshd)(attn, **inputs)
    torch.testing.assert_close(got_video, want_video, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_text, want_text, rtol=1e-5, atol=1e-5)


def test_fa3_processor_passes_bshd_layout_to_the_kernel() -> None:
    attn, inputs = _attention(rope=True)
    seen: list[tuple[int, ...]] = []

    def kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(q.shape))
        return sdpa_bshd(q, k, v)

    with torch.no_grad():
        FA3CogVideoXAttnProcessor(kernel)(attn, **inputs)
    assert seen == [(2, 17, 2, 16)]  # batch, text + video tokens, heads, head dim


def test_a_wrong_layout_is_caught() -> None:
    """The comparison above can fail: a kernel that attends over heads instead of tokens differs."""
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

    attn, inputs = _attention(rope=True)

    def wrong(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)  # treats S as heads

    with torch.no_grad():
        want, _ = CogVideoXAttnProcessor2_0()(attn, **inputs)
        got, _ = FA3CogVideoXAttnProcessor(wrong)(attn, **inputs)
    assert not torch.allclose(got, want, atol=1e-3)


def test_fa3_without_gpu_keeps_sdpa_and_logs_why(generator_2b: CogVideoXGenerator,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    transformer = generator_2b.pipeline.transformer
    before = {type(p) for p in transformer.attn_processors.values()}
    handler = logger.add(caplog.handler, level="INFO", format="{message}")
    try:
        with caplog.at_level(logging.INFO):
            note = use_fa3_attention(transformer)
    finally:
        logger.remove(handler)
    assert note is not None and "no CUDA GPU" in note and "SDPA" in note
    assert "video.attention=fa3" in caplog.text
    assert {type(p) for p in transformer.attn_processors.values()} == before


def test_attention_fa3_on_cpu_renders_the_plain_frames(tiny_cogvideox_2b: Path,
                                                       generator_2b: CogVideoXGenerator) -> None:
    generator = CogVideoXGenerator(flat_video(model_path=tiny_cogvideox_2b, attention="fa3", **TINY_SIZE))
    frames = generator.generate(REQUEST).frames
    assert "SDPA" in (generator.info.note or "")
    np.testing.assert_array_equal(frames, generator_2b.generate(REQUEST).frames)


@pytest.mark.parametrize("kind", ["cachedit", "fastercache", "pab"])
def test_cache_hooks_skip_work_and_repeat_per_request(kind: str, tiny_cogvideox_2b: Path,
                                                      generator_2b: CogVideoXGenerator) -> None:
    request = VideoRequest("a panda plays the guitar", num_frames=9, steps=12, seed=3, **TINY_SIZE)
    generator = CogVideoXGenerator(flat_video(model_path=tiny_cogvideox_2b, cache=kind,
                                               cache_timesteps=[-1, 999], **TINY_SIZE))
    calls = {"n": 0}
    first = generator.generate(request).frames
    attention = generator.pipeline.transformer.transformer_blocks[0].attn1
    def count(*_args: object) -> None:
        calls["n"] += 1

    handle = attention.processor.__class__  # the hooks wrap forward; count processor calls instead
    original = handle.__call__
    handle.__call__ = lambda self, *a, **k: (count(), original(self, *a, **k))[1]
    try:
        second = generator.generate(request).frames
    finally:
        handle.__call__ = original
    np.testing.assert_array_equal(first, second)  # the reset: the second video starts fresh
    blocks = len(generator.pipeline.transformer.transformer_blocks)
    assert 0 < calls["n"] < blocks * request.steps  # attention computed on some steps only
    plain = generator_2b.generate(request).frames
    assert not np.array_equal(first, plain)  # a cache changes the output (measured in BENCHMARKS.md)


def test_cache_config_takes_the_published_defaults_and_tuning() -> None:
    pipe = type("Pipe", (), {"current_timestep": 500})()
    faster = cache_hook_config(flat_video(cache="fastercache").speed, pipe)
    assert faster.spatial_attention_block_skip_range == 2
    assert tuple(faster.spatial_attention_timestep_skip_range) == (-1, 681)
    assert faster.unconditional_batch_skip_range == 5
    assert faster.attention_weight_callback(None) == 0.3
    assert faster.current_timestep_callback() == 500
    pab = cache_hook_config(flat_video(cache="pab", cache_block_skip=3, cache_timesteps=[50, 900]).speed,
                            pipe)
    assert pab.spatial_attention_block_skip_range == 3
    assert tuple(pab.spatial_attention_timestep_skip_range) == (50, 900)
    assert cache_hook_config(flat_video().speed, pipe) is None


def test_cache_window_must_be_ordered_and_leave_the_first_step_out() -> None:
    for window in ([800, 100], [-1, 1000]):
        with pytest.raises(ValueError, match="时间步窗口"):
            flat_video(cache="pab", cache_timesteps=window)


def test_presets_on_cpu_turn_on_only_what_runs_here() -> None:
    config, notes = resolve_preset(flat_video(preset="fast"), on_gpu=False, memory_mode="cpu")
    assert (config.model.quantization, config.speed.compile, config.speed.attention, config.speed.cache) == (
        "none", "off", "default", "cachedit")
    assert len(notes) == 1 and "video.speed.preset=fast" in notes[0] and "no CUDA GPU" in notes[0]
    exact, none = resolve_preset(flat_video(preset="exact"), on_gpu=False, memory_mode="cpu")
    assert none == [] and exact == flat_video(preset="exact")


def test_a_switch_set_by_the_admin_wins_over_the_preset() -> None:
    config, _ = resolve_preset(flat_video(preset="fast", cache="pab", quantization="int8_weight_only"),
                               on_gpu=False, memory_mode="cpu")
    assert (config.speed.cache, config.model.quantization) == ("pab", "int8_weight_only")


@pytest.mark.parametrize(("variant", "size", "measured_gib"), [
    ("2b", (480, 720, 49), 7.5), ("5b-i2v", (480, 720, 49), 16.98), ("1.5-5b-i2v", (768, 1360, 81), 43.2)])
def test_fastercache_memory_estimate_matches_the_h100(variant: str, size: tuple, measured_gib: float) -> None:
    """Preset fast's peak minus preset default's on an H100 (BENCHMARKS.md), from the released shapes."""
    shape = {"patch_size": 2, "attention_head_dim": 64, "max_text_seq_length": 226}
    shape |= _transformer_shape(variant, "full")  # type: ignore[arg-type]
    estimate = fastercache_gib(shape, *size, guidance=6.0)
    assert abs(estimate - measured_gib) / measured_gib < 0.03
    assert fastercache_gib(shape, *size, guidance=1.0) == pytest.approx(estimate / 2)


@pytest.mark.parametrize(("variant", "measured_gib"), [("2b", 0.89), ("5b", 1.42)])
def test_cachedit_memory_estimate_matches_the_h100(variant: str, measured_gib: float) -> None:
    """Preset fast's peak minus preset default's on an H100 at 480x720x49 (BENCHMARKS.md); CogVideoX1.5 at
    768x1360x81 keeps a few GiB, where FasterCache kept 43."""
    shape = {"patch_size": 2, "attention_head_dim": 64, "max_text_seq_length": 226}
    estimate = cache_gib("cachedit", shape | _transformer_shape(variant, "full"), 480, 720, 49, 6.0)  # type: ignore[arg-type]
    assert estimate is not None and abs(estimate - measured_gib) / measured_gib < 0.1
    big = shape | _transformer_shape("1.5-5b", "full")  # type: ignore[arg-type]
    size = (768, 1360, 81, 6.0)
    assert 2 < cache_gib("cachedit", big, *size) < 5 < cache_gib("fastercache", big, *size)
    assert cache_gib("pab", big, *size) is None


def test_preset_fast_leaves_the_cache_off_where_it_would_not_fit() -> None:
    """A cache that keeps ~43 GiB (FasterCache at CogVideoX1.5's size): fine on 80 GiB, an out-of-memory on
    24 or 48 GiB."""
    fast = flat_video(preset="fast")
    MODE = "model_cpu_offload"  # noqa: N806 - the other switches stop at the mode, before asking CUDA
    roomy, notes = resolve_preset(fast, on_gpu=True, memory_mode=MODE, cache_gib=43.4, gpu_gib=79.2)
    assert roomy.speed.cache == "cachedit"
    assert "speed.cache" not in " ".join(notes)
    for gpu_gib in (24.0, 47.5):
        tight, notes = resolve_preset(fast, on_gpu=True, memory_mode=MODE, cache_gib=43.4, gpu_gib=gpu_gib)
        assert tight.speed.cache == "none"
        assert "speed.cache=cachedit (it keeps about 43 GiB" in notes[0]
        assert f"{gpu_gib:.0f} GiB GPU" in notes[0]
    small, _ = resolve_preset(fast, on_gpu=True, memory_mode=MODE, cache_gib=7.6, gpu_gib=24.0)
    assert small.speed.cache == "cachedit"  # 7.6 GiB fits a 24 GiB card
    chosen, _ = resolve_preset(flat_video(preset="fast", cache="fastercache"), on_gpu=True, memory_mode=MODE,
                               cache_gib=43.4, gpu_gib=24.0)
    assert chosen.speed.cache == "fastercache"  # the admin's own switch is theirs


def test_preset_fast_runs_through_the_generator_on_cpu(tiny_cogvideox_2b: Path) -> None:
    generator = CogVideoXGenerator(flat_video(model_path=tiny_cogvideox_2b, preset="fast", **TINY_SIZE))
    result = generator.generate(REQUEST)
    assert result.frames.shape == (9, 64, 96, 3)
    assert generator.active_config.speed.cache == "cachedit"
    assert "video.speed.preset=fast" in (generator.info.note or "")


@pytest.mark.parametrize("cache", [
    {"cache": "fastercache", "cache_timesteps": [-1, 999], "cache_uncond_timesteps": [-1, 999]},
    {"cache": "cachedit", "cache_warmup_steps": 2, "cache_full_every": 2}])
def test_caches_serve_requests_without_cfg(tiny_cogvideox_2b: Path, cache: dict) -> None:
    """guidance <= 1 renders one batch item, not an unconditional + conditional pair."""
    generator = CogVideoXGenerator(flat_video(model_path=tiny_cogvideox_2b, **cache, **TINY_SIZE))
    for guidance in (0.0, 6.0, 1.0):
        request = VideoRequest("a cat", num_frames=9, steps=8, seed=1, guidance=guidance, **TINY_SIZE)
        assert generator.generate(request).frames.shape == (9, 64, 96, 3)


def test_cachedit_follows_each_requests_steps(tiny_cogvideox_2b: Path) -> None:
    """The schedule is per request: the last block runs on exactly the scheduled full steps, whatever the
    step count, and the same request renders the same frames twice."""
    generator = CogVideoXGenerator(flat_video(model_path=tiny_cogvideox_2b, cache="cachedit",
                                               cache_warmup_steps=2, cache_full_every=3, **TINY_SIZE))
    generator.load()
    full_steps: list[int] = []
    generator.pipeline.transformer.transformer_blocks[-1].register_forward_pre_hook(
        lambda *_: full_steps.append(1))
    for steps in (12, 7, 12):
        full_steps.clear()
        request = VideoRequest("a panda", num_frames=9, steps=steps, seed=5, **TINY_SIZE)
        frames = generator.generate(request).frames
        assert len(full_steps) == sum(fixed_schedule(steps, 2, 3)) < steps
    np.testing.assert_array_equal(frames, generator.generate(
        VideoRequest("a panda", num_frames=9, steps=12, seed=5, **TINY_SIZE)).frames)


def test_cachedit_without_the_package_renders_without_a_cache(tiny_cogvideox_2b: Path,
                                                              generator_2b: CogVideoXGenerator,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cache_dit", None)  # `import cache_dit` raises ImportError
    generator = CogVideoXGenerator(flat_video(model_path=tiny_cogvideox_2b, cache="cachedit", **TINY_SIZE))
    frames = generator.generate(REQUEST).frames
    assert "needs the cache-dit package" in (generator.info.note or "")
    assert generator.active_config.speed.cache == "none"  # what is in force says so
    np.testing.assert_array_equal(frames, generator_2b.generate(REQUEST).frames)


def test_cachedit_that_cannot_wrap_the_transformer_is_a_note_not_a_failed_load(
        tiny_cogvideox_2b: Path, generator_2b: CogVideoXGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    """cache-dit refuses transformers it has no adapter for (xDiT's wrapper): the bot still loads."""
    import cache_dit

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise ValueError("xFuserCogVideoXTransformer3DWrapper is not officially supported")

    monkeypatch.setattr(cache_dit, "enable_cache", refuse)
    generator = CogVideoXGenerator(flat_video(model_path=tiny_cogvideox_2b, preset="fast", **TINY_SIZE))
    frames = generator.generate(REQUEST).frames
    assert "cachedit cannot wrap this transformer" in (generator.info.note or "")
    assert generator.active_config.speed.cache == "none"
    np.testing.assert_array_equal(frames, generator_2b.generate(REQUEST).frames)


def test_preset_fast_leaves_cachedit_off_under_per_layer_offload() -> None:
    for mode in ("group_offload", "sequential_cpu_offload"):
        config, notes = resolve_preset(flat_video(preset="fast"), on_gpu=True, memory_mode=mode)
        assert config.speed.cache == "none" and f"speed.cache=cachedit (memory_mode {mode}" in notes[0]
