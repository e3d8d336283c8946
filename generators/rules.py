"""The limits a render request must meet, as pure checks shared by the config model (for the admin, at
load time) and `validate_request` (for the asker, per request).

Each check returns None when the value is fine, else a short Chinese reason for the admin's config file;
the request side words its own sentence for the asker. No torch here: the config and the intent handler
use these before any model is loaded.
"""

from __future__ import annotations

from typing import Any

FRAME_STEP = 8  # CogVideoX's VAE compresses 8 frames into one latent frame, plus the first
SIZE_MULTIPLE = 16  # the VAE downsamples 8x, then 2x2 latent patches
VIDEO_MIN_SIDE = 16
IMAGE_MIN_SIDE, IMAGE_MAX_SIDE = 64, 2048
MAX_GUIDANCE = 30.0  # far past any useful scale, but what the config has always accepted
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit number


def is_whole(value: Any) -> bool:
    """An int that is not a bool (YAML `true` must never count as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def frames_problem(frames: Any, step: int = FRAME_STEP) -> str | None:
    """CogVideoX renders 8k+1 frames (9, 17, ..., 49): anything else fails inside the pipeline."""
    if not is_whole(frames) or frames < 1 + step or (frames - 1) % step:
        return f"要是 8k+1 帧（9、17、25、33、41 或 49），现在写的是 {frames!r}"
    return None


def side_problem(value: Any, low: int, high: int | None = None) -> str | None:
    """A height or width: a multiple of 16 within [low, high]."""
    if not is_whole(value) or value % SIZE_MULTIPLE or value < low or (high is not None and value > high):
        bounds = f"在 {low} 到 {high} 之间" if high is not None else f"至少 {low}"
        return f"要是 16 的倍数，{bounds}，现在写的是 {value!r}"
    return None


def steps_problem(steps: Any, max_steps: int) -> str | None:
    """Denoising steps: at least 1, at most the configured max_steps."""
    if not is_whole(steps) or not 1 <= steps <= max_steps:
        return f"要是 1 到 max_steps（{max_steps}）之间的整数，现在写的是 {steps!r}"
    return None


def guidance_problem(guidance: Any) -> str | None:
    """Classifier-free guidance: a number from 0 (off) to MAX_GUIDANCE."""
    if isinstance(guidance, bool) or not isinstance(guidance, int | float) \
            or not 0 <= guidance <= MAX_GUIDANCE:
        return f"要是 0 到 {MAX_GUIDANCE:g} 之间的数字，现在写的是 {guidance!r}"
    return None


def seed_problem(seed: Any) -> str | None:
    """A fixed seed for a repeatable render."""
    if not is_whole(seed) or not 0 <= seed <= MAX_SEED:
        return f"要是 0 到 2^63-1 之间的整数，现在写的是 {seed!r}"
    return None
