"""The round-3 bench tools on CPU: the 8-bit attention candidates' exact rewrites, their refusal where
the kernels are missing, the fixed schedule, and the cache rows on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.attn8 import kernels
from bench.attn8_kernels import hadamard, smooth_and_rotate
from bench.whole import write_whole_summary
from bot.__main__ import main
from generators.fa3 import sdpa_bshd
from generators.step_cache import fixed_schedule
from tests.support.tiny_models import build_cogvideox_folder


def test_the_hadamard_rotation_is_orthogonal_and_fixed() -> None:
    rotation = hadamard(64)
    assert rotation.shape == (64, 64) and rotation.dtype == torch.float32
    assert torch.allclose(rotation @ rotation.T, torch.eye(64), atol=1e-6)
    assert torch.equal(rotation, hadamard(64))  # the same seed, the same frames
    assert not torch.equal(rotation, hadamard(64, seed=1))
    assert set((rotation * 8).abs().round().unique().tolist()) == {1.0}  # +-1/sqrt(64) everywhere
    with pytest.raises(ValueError, match="power-of-two"):
        hadamard(48)


@pytest.mark.parametrize("rotate", [True, False])
def test_smoothing_and_rotating_leave_the_attention_unchanged(rotate: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 40, 3, 16, generator=generator, dtype=torch.float64) for _ in range(3))
    k = k + 3 * torch.randn(1, 1, 3, 16, generator=generator, dtype=torch.float64)  # a channel offset
    q32, k32 = smooth_and_rotate(q, k, hadamard(16) if rotate else None)
    assert q32.dtype == k32.dtype == torch.float32 and q32.shape == q.shape
    expected = sdpa_bshd(q, k, v)
    got = sdpa_bshd(q32.double(), k32.double(), v)
    assert torch.allclose(got, expected, atol=1e-5)
    assert k32.mean(dim=1).abs().max() < 1e-4 if not rotate else True
    # only a shift common to all keys of a head is free: one per key would change the output
    shifted = k.clone()
    shifted[:, ::2] += 1.0
    assert not torch.allclose(sdpa_bshd(q, shifted, v), expected, atol=1e-3)


def test_the_candidates_refuse_clearly_without_their_kernels() -> None:
    factories = kernels()
    for name in ("fa3_fp8_rotated", "int8_comfy"):  # neither wheel is on a CPU test machine
        with pytest.raises(ImportError):
            factories[name]()
    out = factories["sim:v_fp8"]()(*(torch.randn(1, 8, 2, 16) for _ in range(3)))
    assert out.shape == (1, 8, 2, 16) and torch.isfinite(out).all()


def test_the_fixed_schedule_computes_warmup_every_nth_and_the_last_step() -> None:
    mask = fixed_schedule(50, warmup=8, full_every=2)
    assert len(mask) == 50 and mask[:8] == [1] * 8 and mask[-1] == 1
    assert mask[8:12] == [0, 1, 0, 1] and sum(mask) == 8 + 21  # step 49 is one of the 21
    assert sum(fixed_schedule(50, warmup=8, full_every=3)) == 8 + 14  # offsets 2, 5, ..., 41 = the last
    assert sum(fixed_schedule(50, warmup=8, full_every=4)) == 8 + 10 + 1  # preset fast: 19 of 50 in full
    assert fixed_schedule(3, warmup=8, full_every=2) == [1, 1, 1]
    with pytest.raises(ValueError):
        fixed_schedule(0)


def test_the_whole_video_summary_merges_across_processes(tmp_path: Path) -> None:
    write_whole_summary([{"row": "first-fast", "model": "2b", "whole_s": 28.1, "load_s": 14.5}], tmp_path)
    write_whole_summary([{"row": "preset-fast", "model": "2b", "whole_s": 17.7}, {"row": "vae:untiled"}],
                        tmp_path)
    summary = json.loads((tmp_path / "whole_video.json").read_text())
    assert summary == {"first-fast": {"model": "2b", "load_s": 14.5, "whole_s": 28.1},
                       "preset-fast": {"model": "2b", "whole_s": 17.7}}


@pytest.fixture(scope="module")
def tiny_2b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cogvideox_folder(tmp_path_factory.mktemp("round3") / "CogVideoX-2b", "2b")


def test_fixed_schedule_caches_change_the_video_on_the_tiny_model(tiny_2b: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """TaylorSeer must hook CogVideoX's attention (its default patterns matched nothing: identical latents)
    and cache-dit must skip steps; both then move the latents a little, never crash."""
    rows_arg = "plain,ts:taylorseer=2,cd:cachedit=2"
    code = main(["bench", "video", "--model-path", str(tiny_2b), "--steps", "12", "--frames", "9",
                 "--rows", rows_arg])
    rows = {r["row"]: r for r in (json.loads(line) for line in capsys.readouterr().out.splitlines()
                                  if line.startswith("{"))}
    assert code == 0, rows
    assert 0 < rows["ts"]["latent_rel_err"] < 1
    assert 0 < rows["cd"]["latent_rel_err"] < 1
    assert rows["cd"]["active"]["cache"] == "cachedit"  # the earlier rows' name runs the product's cache
