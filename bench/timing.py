"""Timing a render from outside the pipeline: a clock that waits for the GPU, and the VAE decode watched
for one render (its input latents, its time, the memory peak) with the pipeline restored after."""

from __future__ import annotations

import contextlib
import gc
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
