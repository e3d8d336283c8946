"""`xiaoai bench video --parallel cfg|cfg+ulysses`: one video on 1 GPU vs 2 (CFG) vs 4 (CFG x Ulysses).

Each row runs in fresh processes: rank 0 plus the other ranks joined by the production rank group code
(`bot.hosts.rank_group.join_groups`: NCCL on GPUs, gloo on the CPU), each loading the production
`CogVideoXGenerator` with `video.parallel` and a speed preset, then rendering one seeded request (rank 0
`generate`, the others `follow`) after a warm-up video. Rank 0 times every step and the decode; its
latents and frames are compared with the 1-GPU row of the same preset (fidelity: how far the split moved
the math). A row needing more GPUs than visible is reported as skipped, never faked.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.fidelity import psnr, relative_error
from bench.report import emit, error_text
from bench.timing import Clock, watching_decode
from bench.video import PROMPT, environment

LAYOUTS = {  # --parallel -> (row name, ranks, video.parallel)
    "cfg": [("1gpu", 1, "none"), ("cfg2", 2, "cfg")],
    "cfg+ulysses": [("1gpu", 1, "none"), ("cfg2", 2, "cfg"), ("cfg2-ulysses2", 4, "cfg+ulysses")],
}


def _row_main(rank: int, world: int, port: int, folder: str, parallel: str, preset: str, steps: int,
              warmup_steps: int, results: Any) -> None:
    import torch

    from bot.config import VideoConfig
    from generators.cogvideox import CogVideoXGenerator, VideoRequest, model_limits

    row: dict[str, Any] = {"rank": rank}
    try:
        ranks = None
        if world > 1:
            from bot.hosts.rank_group import GroupSpec, join_groups

            ranks, _control = join_groups(GroupSpec(world, port, cuda=torch.cuda.is_available()), rank)
        elif torch.cuda.is_available():
            torch.cuda.set_device(0)
        limits = model_limits(Path(folder))
        height, width = limits.native_size
        mode = "gpu" if torch.cuda.is_available() else "cpu"
        config = VideoConfig(model={"path": folder, "memory_mode": mode},
                             sampling={"height": height, "width": width}, speed={"preset": preset},
                             parallel=parallel)
        generator = CogVideoXGenerator(config, ranks=ranks)
        started = time.perf_counter()
        generator.load()
        row["load_s"] = round(time.perf_counter() - started, 2)
        frames = min(49, limits.max_frames)

        def request(count: int, seed: int) -> Any:
            return VideoRequest(PROMPT, num_frames=frames, steps=count, seed=seed, height=height, width=width)

        clock = Clock()
        leader = ranks is None or ranks.leader
        if warmup_steps:
            begin = clock.now()
            warmup = request(warmup_steps, 1)
            generator.generate(warmup) if leader else generator.follow(warmup)
            row["warmup_run_s"] = round(clock.now() - begin, 2)
        if not leader:
            generator.follow(request(steps, 0))
            results.put(row)
            return
        ends: list[float] = []
        with watching_decode(generator.pipeline, clock) as marks:
            begin = clock.now()
            result = generator.generate(request(steps, 0), on_step=lambda i, n: ends.append(clock.now()))
        gaps = [b - a for a, b in zip(ends, ends[1:], strict=False)]
        per_step = statistics.fmean(gaps) if gaps else ends[0] - begin
        row.update({"s_per_step": round(per_step, 4), "denoise_s": round(ends[-1] - begin, 3),
                    "est_denoise_50_s": round(per_step * 50, 2), "vae_decode_s": round(marks["decode_s"], 3),
                    "est_total_50_s": round(per_step * 50 + marks["decode_s"], 2),
                    "peak_denoise_gib": clock.peak_gib(),
                    "latents": marks["latents"], "frames_array": result.frames})
    except Exception as exc:  # noqa: BLE001 - a failing row is a result: report it
        row["error"] = error_text(exc)
    results.put(row)


def run_row(folder: Path, name: str, world: int, parallel: str, preset: str, steps: int,
            warmup_steps: int, timeout_s: float = 3600) -> dict[str, Any]:
    """One row in `world` fresh processes; rank 0's measurements (with its latents and frames)."""
    from bot.hosts.rank_group import run_ranks

    rows = run_ranks(_row_main, world, (str(folder), parallel, preset, steps, warmup_steps), timeout_s,
                     join_s=60)
    errors = [r["error"] for r in rows if "error" in r]
    row = next(r for r in rows if r["rank"] == 0)
    if errors:
        row["error"] = errors[0]
    row.pop("rank", None)
    return row


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run(folder: Path, mode: str, presets: list[str], steps: int, warmup_steps: int,
        out: Path | None) -> list[dict[str, Any]]:
    """Every layout of `mode` x every preset; prints a JSON line per row and the table."""
    from generators.cogvideox import model_limits

    env = environment()
    variant = model_limits(folder).variant
    gpus = _visible_gpus()
    rows: list[dict[str, Any]] = []
    for preset in presets:
        anchor: dict[str, Any] | None = None
        for name, world, parallel in LAYOUTS[mode]:
            row: dict[str, Any] = {"row": f"{name}-{preset}", "model": variant, "steps": steps, "gpus": world,
                                   "settings": {"parallel": parallel, "preset": preset}, **env}
            if gpus and world > gpus:
                row["skipped"] = f"needs {world} GPUs, {gpus} visible"
            else:
                row.update(run_row(folder, name, world, parallel, preset, steps, warmup_steps))
            latents, frames = row.pop("latents", None), row.pop("frames_array", None)
            if world == 1 and latents is not None:
                anchor = {"latents": latents, "frames": frames, "s_per_step": row["s_per_step"]}
            elif anchor is not None and latents is not None:
                row["latent_rel_err"] = round(relative_error(anchor["latents"], latents), 6)
                row["psnr_db"] = round(min(psnr(anchor["frames"], frames), 999.0), 2)
                row["vs_1gpu"] = round(anchor["s_per_step"] / row["s_per_step"], 2)
            emit(row, out, "video-parallel.jsonl")
            rows.append(row)
    print(f"\n{env['card']} x{gpus or 'CPU'} | torch {env['torch']}\n\n{table(rows)}", flush=True)
    return rows


COLUMNS = [("row", "row"), ("gpus", "GPUs"), ("s_per_step", "s/step"), ("est_denoise_50_s", "50 steps (s)"),
           ("vae_decode_s", "VAE decode (s)"), ("est_total_50_s", "50 steps + decode (s)"),
           ("vs_1gpu", "vs 1 GPU"), ("psnr_db", "PSNR dB vs 1 GPU"), ("latent_rel_err", "latent rel. err"),
           ("warmup_run_s", "warm-up run (s)"), ("peak_denoise_gib", "peak GiB (rank 0)")]


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " | note |", "|" + "---|" * (len(COLUMNS) + 1)]
    for r in rows:
        cells = [str(r.get(key, "") if r.get(key) is not None else "") for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + f" | {r.get('error') or r.get('skipped') or ''} |")
    return "\n".join(lines)
