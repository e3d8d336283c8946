"""`video.parallel`: the split rules (pure), and CFG-parallel on two real gloo ranks against one process."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bot.config import VideoConfig
from generators.cogvideox import CogVideoXGenerator, VideoRequest
from generators.parallel import ParallelSplitError, SplitPlan, plan_split
from tests.support.parallel_ranks import REQUEST, STEPS, record_latents, run_ranks

REAL_2B = {"heads": 30, "latent_height": 60}
REAL_5B = {"heads": 48, "latent_height": 60}


@pytest.mark.parametrize(("mode", "world", "shape", "expected"), [
    ("none", 1, REAL_2B, SplitPlan("none")),
    ("cfg", 2, REAL_2B, SplitPlan("cfg", cfg=2)),
    ("cfg+ulysses", 4, REAL_2B, SplitPlan("cfg+ulysses", cfg=2, ulysses=2)),
    ("cfg+ulysses", 6, REAL_2B, SplitPlan("cfg+ulysses", cfg=2, ulysses=3)),
    ("cfg+ulysses", 4, REAL_5B, SplitPlan("cfg+ulysses", cfg=2, ulysses=2)),
    ("cfg+ulysses", 6, REAL_5B, SplitPlan("cfg+ulysses", cfg=2, ulysses=3)),
])
def test_possible_splits(mode: str, world: int, shape: dict, expected: SplitPlan) -> None:
    plan = plan_split(mode, world, guidance=6.0, **shape)
    assert plan == expected and plan.world_size == world
    assert plan.needs_library == (mode == "cfg+ulysses")


@pytest.mark.parametrize(("mode", "world", "guidance", "shape", "message"), [
    ("cfg", 2, 1.0, REAL_2B, "guidance is 1"),
    ("cfg", 2, 0.0, REAL_2B, "guidance"),
    ("cfg+ulysses", 4, 1.0, REAL_2B, "guidance"),
    ("cfg", 3, 6.0, REAL_2B, "exactly 2 GPUs"),
    ("cfg", 4, 6.0, REAL_2B, "exactly 2 GPUs"),
    ("cfg", 1, 6.0, REAL_2B, "exactly 2 GPUs"),
    ("none", 2, 6.0, REAL_2B, "video.parallel is none"),
    ("cfg+ulysses", 2, 6.0, REAL_2B, "ulysses >= 2"),
    ("cfg+ulysses", 5, 6.0, REAL_2B, "2 x ulysses x ring"),
    ("cfg+ulysses", 8, 6.0, REAL_2B, "does not divide the model's 30 attention heads"),
    ("cfg+ulysses", 8, 6.0, REAL_5B, "does not divide the latent height 60"),
    ("cfg+ulysses", 10, 6.0, REAL_5B, "does not divide the model's 48 attention heads"),
    ("sideways", 2, 6.0, REAL_2B, "none, cfg or cfg+ulysses"),
    ("cfg", 0, 6.0, REAL_2B, "positive integer"),
])
def test_impossible_splits_are_refused_clearly(mode: str, world: int, guidance: float, shape: dict,
                                               message: str) -> None:
    with pytest.raises(ParallelSplitError, match=re.escape(message)) as caught:
        plan_split(mode, world, guidance=guidance, **shape)
    assert "video.parallel" in str(caught.value)


def test_refusal_names_the_gpu_counts_that_fit() -> None:
    with pytest.raises(ParallelSplitError, match="use 4 or 6 GPUs"):
        plan_split("cfg+ulysses", 8, guidance=6.0, **REAL_5B)


def test_the_generator_checks_the_split_from_the_model_folder(tiny_cogvideox_2b: Path) -> None:
    generator = CogVideoXGenerator(VideoConfig(model={"path": tiny_cogvideox_2b}, parallel="cfg"))
    assert generator.split_plan(world_size=2) == SplitPlan("cfg", cfg=2)
    with pytest.raises(ParallelSplitError, match="exactly 2"):
        generator.split_plan(world_size=3)
    assert generator.split_plan() == SplitPlan("none")  # no rank group: one device, nothing to check


@pytest.fixture(scope="module")
def two_ranks(tiny_cogvideox_2b: Path) -> list[dict]:
    outcomes = run_ranks(tiny_cogvideox_2b, world=2)
    errors = [o["error"] for o in outcomes if "error" in o]
    assert not errors, errors
    return outcomes


def test_two_gloo_ranks_hold_the_latents_of_one_process(two_ranks: list[dict],
                                                        generator_2b: CogVideoXGenerator) -> None:
    reference: list = []
    pipe = generator_2b.pipeline
    original = pipe.scheduler.step
    record_latents(pipe, reference)
    try:
        single = generator_2b.generate(VideoRequest(**REQUEST))
    finally:
        pipe.scheduler.step = original
    assert len(reference) == STEPS
    for outcome in two_ranks:
        assert len(outcome["latents"]) == STEPS
        for mine, theirs in zip(outcome["latents"], reference, strict=True):
            assert mine.shape == theirs.shape
            assert float(np.abs(mine - theirs).max()) < 1e-5
    rank0, rank1 = two_ranks
    assert all(np.array_equal(a, b) for a, b in zip(rank0["latents"], rank1["latents"], strict=True))
    assert rank0["frames"].shape == single.frames.shape == (9, 64, 96, 3)
    assert int(np.abs(rank0["frames"].astype(int) - single.frames.astype(int)).max()) <= 1
    assert rank0["progress"] == [(1, STEPS), (2, STEPS), (3, STEPS)]  # rank 0 reports
    assert rank1["progress"] == [] and "frames" not in rank1  # the other rank neither reports nor decodes


def test_cancellation_on_rank_zero_stops_both_ranks_after_the_same_step(two_ranks: list[dict]) -> None:
    for outcome in two_ranks:
        assert outcome["cancel"] == "cancelled: stopped after step 1 of 3"
        assert outcome["steps_after_cancel"] == 1


def test_a_request_without_guidance_is_refused_on_every_rank(two_ranks: list[dict]) -> None:
    for outcome in two_ranks:
        assert "guidance is 1" in outcome["no_cfg"]
