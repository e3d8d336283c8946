"""`xiaoai worker --gpus 0,1`: one Celery worker whose video jobs are rendered by a rank group.

Rank 0 is the ordinary worker (bot/hosts/celery_worker.py: queue, heartbeat, progress, cancellation, result);
only its render step changes: a video job is first handed to the other ranks (bot/hosts/rank_group.py),
then all ranks render it together with `video.parallel` (generators/parallel.py). Image jobs render on
rank 0's GPU alone. Without CUDA the ranks run on the CPU over gloo (how the tests run it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from bot.config import AppConfig
from bot.hosts.rank_group import JobHandler, RankGroup
from bot.jobs.types import JobKind, JobRequest, ShouldStop, StepCallback


def check_split(config: AppConfig, world_size: int) -> None:
    """Refuse (ParallelSplitError, a clear message) a `video.parallel` that cannot use these GPUs,
    before any rank starts. Reads the model's config files only."""
    from generators.base import GeneratorError
    from generators.cogvideox import CogVideoXGenerator
    from generators.parallel import ParallelSplitError

    try:
        CogVideoXGenerator(config.video).split_plan(world_size=world_size)
    except ParallelSplitError:
        raise
    except GeneratorError as exc:  # no model folder yet: every video job reports it to its asker
        logger.error("worker: the video model is not usable here: {}", exc)


def video_follower(config: AppConfig, ranks: Any) -> JobHandler:
    """Ranks 1..N-1: load the video model once, then render each job's share with rank 0."""
    from bot.jobs.kinds import VideoKind
    from generators.base import GeneratorError

    kind = VideoKind(lambda: config.video, ranks=ranks)
    try:
        kind.generator.load()
    except GeneratorError as exc:  # rank 0 meets the same error and reports it to the asker
        logger.error("rank {}: the video model is not usable here: {}", ranks.rank, exc)

    def handle(job: Any) -> None:
        params = job.get("params") or {}
        request = kind.request(params, job.get("seed"))
        kind.make_room(request)
        kind.generator_for(request).follow(request)

    return handle


class GroupRender:
    """Rank 0's render step (`render_one`'s replacement): hand a video job to the others, then render
    rank 0's share; the frames come back here."""

    def __init__(self, group: RankGroup) -> None:
        self.group = group

    def __call__(self, kind: JobKind, request: JobRequest, output_stem: Path, on_step: StepCallback,
                 should_stop: ShouldStop) -> Path:
        if getattr(kind, "name", "") == "video" and getattr(kind, "backend", "local") == "local":
            self.group.submit({"kind": "video", "params": dict(request.params), "seed": request.seed})
        return kind.run(request, output_stem, on_step, should_stop)


def start_group(config: AppConfig, gpus: Sequence[int]) -> tuple[RankGroup, Any]:
    """Check the split, spawn the other ranks and join them: (the group, rank 0's RankContext)."""
    check_split(config, len(gpus))
    import torch

    cuda = torch.cuda.is_available()
    if cuda and torch.cuda.device_count() < len(gpus):
        raise ValueError(f"--gpus {','.join(map(str, gpus))}: only {torch.cuda.device_count()} CUDA "
                         "devices are visible")
    if not cuda:
        logger.warning("worker: no CUDA GPU; the {} ranks run on the CPU over gloo", len(gpus))
    group = RankGroup(len(gpus), cuda, functools.partial(video_follower, config))
    return group, group.start()
