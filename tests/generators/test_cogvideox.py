"""CogVideoXGenerator on tiny random 2B-like/5B-like folders, loaded by the production loader (CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from bot.config import VideoConfig
from bot.hosts import child_environment
from generators.base import GenerationCancelled, GeneratorError
from generators.cogvideox import (
    RELEASED_2B_LIMITS,
    CogVideoXGenerator,
    VideoRequest,
    model_limits,
    validate_request,
)
from generators.cpu_share import render_threads
from tests.support.errors import raises_told

PROMPT = "a panda plays the guitar in a bamboo forest, soft morning light"


def tiny_request(**overrides) -> VideoRequest:  # noqa: ANN003
    values = {"prompt": PROMPT, "num_frames": 9, "steps": 2, "seed": 7, "height": 64, "width": 96}
    return VideoRequest(**(values | overrides))


@pytest.mark.parametrize("variant", ["2b", "5b"])
def test_renders_requested_frames_with_progress(variant: str, request: pytest.FixtureRequest) -> None:
    generator: CogVideoXGenerator = request.getfixturevalue(f"generator_{variant}")
    steps: list[tuple[int, int]] = []
    result = generator.generate(tiny_request(steps=3), on_step=lambda i, n: steps.append((i, n)))
    assert result.frames.shape == (9, 64, 96, 3)
    assert result.frames.dtype == np.uint8
    assert result.frames.std() > 0  # real pixels, not a blank placeholder
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert (result.fps, result.seed, result.steps) == (8, 7, 3)
    assert generator.info is not None and generator.info.variant == variant
    assert generator.info.dtype == "float32" and generator.info.memory_mode == "cpu"


def test_five_b_like_folder_is_detected_by_its_config(tiny_cogvideox_5b: Path,
                                                      tiny_cogvideox_2b: Path) -> None:
    assert model_limits(tiny_cogvideox_5b).variant == "5b"
    limits = model_limits(tiny_cogvideox_2b)
    assert (limits.variant, limits.native_size, limits.max_prompt_tokens) == ("2b", (64, 96), 226)
    assert not limits.released


def test_seventeen_frames_at_another_size(generator_2b: CogVideoXGenerator) -> None:
    result = generator_2b.generate(tiny_request(num_frames=17, height=48, width=80, steps=1))
    assert result.frames.shape == (17, 48, 80, 3)


def test_same_seed_same_frames_other_seed_differs(generator_2b: CogVideoXGenerator) -> None:
    first = generator_2b.generate(tiny_request(seed=123))
    again = generator_2b.generate(tiny_request(seed=123))
    other = generator_2b.generate(tiny_request(seed=124))
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)


def test_no_seed_picks_one_that_reproduces(generator_2b: CogVideoXGenerator) -> None:
    first = generator_2b.generate(tiny_request(seed=None, steps=1))
    again = generator_2b.generate(tiny_request(seed=first.seed, steps=1))
    assert np.array_equal(first.frames, again.frames)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"num_frames": 10}, "8 的倍数加 1"),
        ({"num_frames": 0}, "8 的倍数加 1"),
        ({"num_frames": -7}, "8 的倍数加 1"),
        ({"num_frames": 1}, "8 的倍数加 1"),
        ({"num_frames": 57}, "最多 49"),
        ({"num_frames": 9.0}, "8 的倍数加 1"),
        ({"steps": 0}, "步数"),
        ({"steps": 101}, "步数"),
        ({"steps": True}, "步数"),
        ({"guidance": -1}, "guidance"),
        ({"guidance": 50}, "guidance"),
        ({"seed": -1}, "随机数"),
        ({"seed": "42"}, "随机数"),
        ({"height": 72}, "16 的倍数"),
        ({"width": 88}, "16 的倍数"),
        ({"width": 0}, "16 的倍数"),
        ({"prompt": "   "}, "空"),
        ({"prompt": ""}, "空"),
    ],
)
def test_bad_parameters_are_refused_clearly(generator_2b: CogVideoXGenerator, overrides: dict,
                                            expected: str) -> None:
    with pytest.raises(GeneratorError, match=expected):
        generator_2b.check_inputs(tiny_request(**overrides))


def test_bad_request_fails_before_any_step(generator_2b: CogVideoXGenerator) -> None:
    steps: list[int] = []
    with pytest.raises(GeneratorError, match="8 的倍数加 1"):
        generator_2b.generate(tiny_request(num_frames=12), on_step=lambda i, n: steps.append(i))
    assert steps == []


def test_prompt_over_the_token_limit_is_refused(generator_2b: CogVideoXGenerator) -> None:
    assert generator_2b.prompt_tokens(PROMPT) < 30
    long_prompt = " ".join(["panda"] * 300)
    with pytest.raises(GeneratorError, match="太长"):
        generator_2b.check_inputs(tiny_request(prompt=long_prompt))


def test_released_weights_allow_480x720_only() -> None:
    validate_request(VideoRequest(PROMPT), RELEASED_2B_LIMITS)  # the defaults pass
    with pytest.raises(GeneratorError, match="480x720"):
        validate_request(VideoRequest(PROMPT, height=720, width=480), RELEASED_2B_LIMITS)
    with pytest.raises(GeneratorError, match="最多 49"):
        validate_request(VideoRequest(PROMPT, num_frames=57), RELEASED_2B_LIMITS)


def test_cancellation_stops_mid_run_and_generator_still_works(generator_2b: CogVideoXGenerator) -> None:
    seen: list[int] = []
    with pytest.raises(GenerationCancelled):
        generator_2b.generate(tiny_request(steps=20), on_step=lambda i, n: seen.append(i),
                              should_stop=lambda: len(seen) >= 2)
    assert seen == [1, 2]
    assert generator_2b.generate(tiny_request(steps=1)).num_frames == 9


def test_cancel_before_start_runs_no_step(generator_2b: CogVideoXGenerator) -> None:
    seen: list[int] = []
    with pytest.raises(GenerationCancelled):
        generator_2b.generate(tiny_request(), on_step=lambda i, n: seen.append(i), should_stop=lambda: True)
    assert seen == []


def test_request_is_plain_serialisable_data() -> None:
    config = VideoConfig(sampling={"num_frames": 17, "steps": 30})
    req = VideoRequest.from_config(PROMPT, config.sampling, seed=5)
    with pytest.raises(TypeError, match="none of the video request's fields"):
        VideoRequest.from_config(PROMPT, config)  # the section, not its sampling settings
    assert (req.num_frames, req.steps, req.seed, req.height, req.width) == (17, 30, 5, 480, 720)
    assert VideoRequest.from_dict(asdict(req)) == req
    with raises_told(GeneratorError, "unknown"):
        VideoRequest.from_dict(asdict(req) | {"fps": 8})
    assert replace(req, seed=None).to_dict()["seed"] is None


def test_loads_once_across_threads(tiny_cogvideox_2b: Path) -> None:
    generator = CogVideoXGenerator(VideoConfig(model={"path": tiny_cogvideox_2b}))
    assert not generator.loaded
    assert generator.info is None
    pipes: list[int] = []
    barrier = threading.Barrier(4)

    def load() -> None:
        barrier.wait()
        generator.load()
        pipes.append(id(generator._pipe))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert generator.loaded and len(set(pipes)) == 1
    status = generator.info.summary()
    assert "2b" in status and "float32" in status and "cpu" in status
    generator.unload()
    assert not generator.loaded


def test_offload_mode_without_gpu_falls_back_to_cpu(tiny_cogvideox_2b: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("only meaningful without a GPU")
    model = {"path": tiny_cogvideox_2b, "memory_mode": "model_cpu_offload", "dtype": "float32"}
    generator = CogVideoXGenerator(VideoConfig(model=model))
    result = generator.generate(tiny_request(steps=1))
    assert result.num_frames == 9
    assert generator.info.memory_mode == "cpu" and "needs a CUDA GPU" in generator.info.note


def test_int8_weight_only_quantization_on_cpu(tiny_cogvideox_2b: Path) -> None:
    model = {"path": tiny_cogvideox_2b, "quantization": "int8_weight_only"}
    generator = CogVideoXGenerator(VideoConfig(model=model))
    result = generator.generate(tiny_request(steps=2))
    assert result.frames.shape == (9, 64, 96, 3)
    weight = generator._pipe.transformer.transformer_blocks[0].ff.net[2].weight
    assert "int8" in str(getattr(weight, "qdata", weight).dtype) or "Int8" in type(weight).__name__
    assert generator.info.quantization == "int8_weight_only"


def test_fp8_dynamic_needs_a_recent_gpu(tiny_cogvideox_2b: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9):
        pytest.skip("this machine supports fp8")
    model = {"path": tiny_cogvideox_2b, "quantization": "fp8_dynamic"}
    generator = CogVideoXGenerator(VideoConfig(model=model))
    with raises_told(GeneratorError, "8.9"):
        generator.load()
    assert not generator.loaded


def test_a_cpu_render_leaves_a_core_to_the_event_loop(generator_2b: CogVideoXGenerator) -> None:
    import torch

    seen: list[int] = []
    counts: list[int] = []

    def render() -> None:  # the worker thread a job runs on
        counts.append(torch.get_num_threads())
        generator_2b.generate(tiny_request(steps=2),
                              on_step=lambda i, n: seen.append(torch.get_num_threads()))
        counts.append(torch.get_num_threads())

    thread = threading.Thread(target=render)
    thread.start()
    thread.join(120)
    assert seen == [min(counts[0], render_threads())] * 2
    assert counts[1] == counts[0]  # as many as before for whatever the thread runs next


def test_one_core_is_left_to_the_loop() -> None:
    assert [render_threads(cpus) for cpus in (1, 2, 16)] == [1, 1, 15]


def printed_by(code: str) -> list[str]:
    """What a fresh interpreter prints (scheduling policy is per process: not to be changed in this one)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=child_environment())
    return done.stdout.split()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_a_process_at_idle_priority_renders_on_every_core() -> None:
    """The render process: the scheduler gives a core back to the bot at once, so it keeps none aside."""
    lowered = printed_by("from generators.cpu_share import *; import os; lower_priority(); print("
                         "at_idle_priority(), os.sched_getscheduler(0) == os.SCHED_IDLE, render_threads(16))")
    assert lowered == ["True", "True", "16"]
    # a bot an admin started under `chrt -i` is not the render process: its event loop keeps a core
    assert printed_by("import os; os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0)); "
                      "from generators.cpu_share import render_threads; print(render_threads(16))") == ["15"]
