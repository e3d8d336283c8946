"""Timing a render from outside the pipeline: a clock that waits for the GPU, and the VAE decode watched
for one render (its input latents, its time, the memory peak) with the pipeline restored after."""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Iterator
from typing import Any

from bench.report import GIB


class Clock:
    """perf_counter after the queued GPU work is done; peaks in GiB (None without CUDA)."""

    def __init__(self) -> None:
        import torch

        self.cuda = torch.cuda.is_available()
        self.torch = torch

    def now(self) -> float:
        if self.cuda:
            self.torch.cuda.synchronize()
        return time.perf_counter()

    def peak_gib(self) -> float | None:
        return round(self.torch.cuda.max_memory_allocated() / GIB, 2) if self.cuda else None

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()


    def collect_previous_row(self) -> None:
        """Free what the last row left behind before this one measures anything. A diffusers pipeline
        sits in reference cycles, so a row's weights outlive its function (and the collection its
        `unload` ran while the row still held the pipeline) until the next collection: without this, a
        row's resident and peak memory included the previous row's weights."""
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()


def end_row(generator: Any, clock: Clock) -> None:
    """Whatever the row did: its model unloaded, the memory cap lifted, compiled graphs dropped. The
    memory itself is collected by the next row's `collect_previous_row`, once this row's locals are gone."""
    if generator is not None:
        generator.unload()
    if clock.cuda:
        clock.torch.cuda.set_per_process_memory_fraction(1.0)  # a `cap_gib` row set it
    clock.torch._dynamo.reset()


@contextlib.contextmanager
def watching_decode(pipe: Any, clock: Clock) -> Iterator[dict[str, Any]]:
    """Within the block `pipe.vae.decode` fills the yielded dict: `latents` (what it decoded, as numpy),
    `decode_s` and `decode_peak`; the pipeline's own decode is back afterwards."""
    marks: dict[str, Any] = {}
    original = pipe.vae.decode
    own = "decode" in vars(pipe.vae)  # usually the class's method: then restoring is deleting ours

    def timed_decode(latents: Any, *args: Any, **kwargs: Any) -> Any:
        marks["latents"] = latents.detach().float().cpu().numpy()
        begin = clock.now()
        out = original(latents, *args, **kwargs)
        marks["decode_s"] = clock.now() - begin
        marks["decode_peak"] = clock.peak_gib()
        return out

    pipe.vae.decode = timed_decode
    try:
        yield marks
    finally:
        if own:
            pipe.vae.decode = original
        else:
            del pipe.vae.decode  # assigning the bound method back would tie the VAE to itself


def cap_memory(cap_gib: float | None, clock: Clock) -> None:
    """Hold the process to `cap_gib` of GPU memory (a smaller card on a big one); None: no cap."""
    if cap_gib is None:
        return
    if not clock.cuda:
        raise RuntimeError("cap_gib needs a CUDA GPU")
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * GIB / total))


def step_figures(step_ends: list[float], begin: float, marks: dict[str, Any], frames: Any,
                 denoise_peak: list[float | None], clock: Clock) -> dict[str, Any]:
    """A render's timings from its step ends and decode marks (`watching_decode`), and its memory peaks."""
    import torch

    gaps = [b - a for a, b in zip(step_ends, step_ends[1:], strict=False)]
    first = step_ends[0] - begin
    per_step = statistics.fmean(gaps) if gaps else first
    return {
        "frames": list(frames.shape),
        "first_step_s": round(first, 3),
        "s_per_step": round(per_step, 4),
        "warmup_s": round(max(0.0, first - per_step), 2),
        "denoise_s": round(step_ends[-1] - begin, 3),
        "est_denoise_50_s": round(per_step * 50, 2),
        "vae_decode_s": round(marks["decode_s"], 3),
        "est_total_50_s": round(per_step * 50 + marks["decode_s"], 2),
        "peak_denoise_gib": denoise_peak[-1] if denoise_peak else None,
        "peak_decode_gib": marks.get("decode_peak"),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 2) if clock.cuda else None,
    }
