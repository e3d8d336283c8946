"""Two (or more) real ranks on the gloo backend rendering the tiny CogVideoX with `video.parallel: cfg`,
joined by the production `join_groups`; each rank's outcomes come back through a queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STEPS = 3
REQUEST = {"prompt": "a panda plays the guitar in a bamboo forest", "num_frames": 9, "steps": STEPS,
           "seed": 7, "height": 64, "width": 96}


def record_latents(pipe: Any, store: list[Any]) -> None:
    """Keep the latents after every scheduler step (what each rank holds)."""
    original = pipe.scheduler.step

    def step(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        store.append((out[0] if isinstance(out, tuple) else out.prev_sample).detach().clone().numpy())
        return out

    pipe.scheduler.step = step


def _rank_main(rank: int, world: int, port: int, folder: str, results: Any) -> None:
    from bot.config import VideoConfig
    from bot.hosts.rank_group import GroupSpec, join_groups
    from generators.base import GenerationCancelled, GeneratorError
    from generators.cogvideox import CogVideoXGenerator, VideoRequest

    outcome: dict[str, Any] = {"rank": rank}
    try:
        ranks, _control = join_groups(GroupSpec(world, port, cuda=False, compute_timeout_s=120), rank)
        config = VideoConfig(model={"path": folder}, sampling={"height": 64, "width": 96}, parallel="cfg")
        generator = CogVideoXGenerator(config, ranks=ranks)
        generator.load()
        latents: list[Any] = []
        record_latents(generator.pipeline, latents)
        request = VideoRequest(**REQUEST)
        progress: list[tuple[int, int]] = []
        if ranks.leader:
            result = generator.generate(request, on_step=lambda i, n: progress.append((i, n)))
            outcome["frames"] = result.frames
        else:
            generator.follow(request)
        outcome.update(latents=list(latents), progress=progress)
        latents_before = len(latents)
        polls = [0]

        def stop_after_first_step() -> bool:  # polled before the run, then after each step
            polls[0] += 1
            return polls[0] >= 2

        try:
            if ranks.leader:
                generator.generate(request, should_stop=stop_after_first_step)
            else:
                generator.follow(request)
            outcome["cancel"] = "finished"
        except GenerationCancelled as exc:
            outcome["cancel"] = f"cancelled: {exc}"
        outcome["steps_after_cancel"] = len(latents) - latents_before
        try:
            generator.follow(VideoRequest(**{**REQUEST, "guidance": 1.0})) if not ranks.leader else \
                generator.generate(VideoRequest(**{**REQUEST, "guidance": 1.0}))
            outcome["no_cfg"] = "rendered"
        except GeneratorError as exc:
            outcome["no_cfg"] = str(exc)
        import torch.distributed as dist

        dist.destroy_process_group()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        import traceback

        outcome["error"] = f"{exc!r}\n{traceback.format_exc()}"
    results.put(outcome)


def run_ranks(folder: Path, world: int = 2, timeout: float = 240) -> list[dict[str, Any]]:
    """Run the ranks to the end; their outcomes sorted by rank."""
    from bot.hosts import rank_group

    outcomes = rank_group.run_ranks(_rank_main, world, (str(folder),), timeout)
    return sorted(outcomes, key=lambda o: o["rank"])
