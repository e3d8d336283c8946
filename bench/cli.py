"""The `bench` subcommand's arguments, registered by bot/__main__.py."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks: video and image generation on the GPU, MP4 encoding on "
                           "the CPU")
    modes = bench.add_subparsers(dest="bench_mode", required=True)
    video = modes.add_parser("video", help="time the production CogVideoX generator per configuration row")
    where = video.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-path", type=Path, help="a CogVideoX diffusers folder (real or random)")
    where.add_argument("--build", choices=("2b", "5b", "1.5-5b", "5b-i2v", "1.5-5b-i2v"),
                       help="write a random-weight folder of this variant (-i2v: image-to-video)")
    video.add_argument("--size", choices=("full", "tiny"), default="full",
                       help="--build: the real shapes (full) or the test model (tiny)")
    video.add_argument("--model-dir", type=Path, default=None, help="--build: where (reused if present)")
    video.add_argument("--text-layers", type=int, default=2,
                       help="--build full: T5-XXL depth (default 2: its time is <1%%; saves 8 GiB)")
    video.add_argument("--rows", default="plain", help="comma-separated rows: " + ", ".join(_presets()))
    video.add_argument("--row", action="append", default=[], help="one more row: NAME:key=value,key=value")
    video.add_argument("--steps", type=int, default=6, help="denoising steps per row (default 6)")
    video.add_argument("--frames", type=int, default=None,
                       help="frames per video (default: the model's own, 49 or 81 for 1.5)")
    video.add_argument("--warmup-steps", type=int, default=10,
                       help="rows that compile or cache first render this many steps, timed apart")
    video.add_argument("--vae", default="", help="VAE decode variants on the plain row's latents, e.g. "
                       "untiled,tile=480x360,channels_last,bf16 ('all' for every one)")
    video.add_argument("--ref-dir", type=Path, default=None,
                       help="keep the plain rows' latents/frames here to compare rows from later runs")
    video.add_argument("--compile-cache-dir", type=Path, default=None,
                       help="compile rows keep kernels here (sets video.compile_cache_dir)")
    video.add_argument("--budget-s", type=float, default=None, help="skip rows after this many seconds")
    video.add_argument("--out", type=Path, default=None, help="append video.jsonl and video.md here")
    video.add_argument("--parallel", choices=("cfg", "cfg+ulysses"), default=None,
                       help="one video on several GPUs: 1 GPU vs 2 (cfg) [vs 4 (cfg+ulysses)] per --presets")
    video.add_argument("--presets", default="default,fast", help="--parallel: speed presets to time")
    video.set_defaults(func=cmd_video)
    image = modes.add_parser("image", help="time the production FLUX generator per configuration row")
    image.add_argument("--model-path", type=Path, help="a FLUX diffusers folder (real or random)")
    image.add_argument("--build", choices=("schnell", "dev"), help="write a random-weight folder of the "
                       "released shapes (24 GB; reused if present)")
    image.add_argument("--model-dir", type=Path, default=None, help="--build: where")
    image.add_argument("--text-layers", type=int, default=2, help="--build: T5-XXL depth (default 2)")
    image.add_argument("--rows", default="plain,fp8-compile-fa3", help="comma-separated rows: "
                       "plain, int8, fp8, compile, fa3, fp8-compile, fp8-compile-fa3 (or NAME:key=value,...)")
    image.add_argument("--steps", type=int, default=None, help="default: schnell 4, dev 28")
    image.add_argument("--size", default="1024x576", help="WIDTHxHEIGHT (default 1024x576)")
    image.add_argument("--out", type=Path, default=None, help="append image.jsonl here")
    image.set_defaults(func=cmd_image)
    mp4 = modes.add_parser("mp4", help="time MP4 encoding of a 49-frame 480x720 video on the CPU")
    mp4.add_argument("--presets", default="veryfast,superfast,ultrafast,faster")
    mp4.add_argument("--repeats", type=int, default=2)
    mp4.add_argument("--out", type=Path, default=None)
    mp4.set_defaults(func=cmd_mp4)
    queue = modes.add_parser("queue", help="jobs/min and latency: local vs 1..N celery workers (tiny model)")
    queue.add_argument("--workers", default="1,2", help="worker counts to try (default 1,2)")
    queue.add_argument("--jobs", type=int, default=12, help="jobs per row (default 12)")
    queue.add_argument("--steps", type=int, default=20, help="denoising steps per job (default 20)")
    queue.set_defaults(func=cmd_queue)
    flood = modes.add_parser("flood", help="200 @-mentions in 2 s over 10 rooms through the Node peer: reply "
                             "latency right after start, at rest and during a CPU render")
    flood.add_argument("--phases", default=",".join(_flood_phases()),
                       help="comma-separated: " + ", ".join(_flood_phases()))
    flood.set_defaults(func=cmd_flood)


def _presets() -> list[str]:
    from bench.video import PRESETS

    return list(PRESETS)


def cmd_image(args: argparse.Namespace) -> int:
    from bench.image import build_model, run

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if bool(args.build) == bool(args.model_path):
        raise SystemExit("bench image: give --build schnell|dev or --model-path")
    folder = args.model_path or build_model(
        args.build, args.model_dir or Path(tempfile.gettempdir()) / f"xiaoai-bench-flux-{args.build}",
        args.text_layers)
    width, height = (int(x) for x in args.size.lower().split("x"))
    results = run([r for r in args.rows.split(",") if r.strip()], folder, args.steps, height, width, args.out)
    return 1 if any("error" in r for r in results) else 0


def cmd_video(args: argparse.Namespace) -> int:
    from bench.vae import VAE_VARIANTS
    from bench.video import References, build_model, parse_row, run

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    specs = [parse_row(name, args.steps, warmup_steps=args.warmup_steps)
             for name in args.rows.split(",") if name.strip()]
    specs += [parse_row(text, args.steps, warmup_steps=args.warmup_steps) for text in args.row]
    for spec in specs:
        spec.frames = args.frames
    if args.compile_cache_dir is not None:
        for spec in specs:
            if spec.settings.get("compile") == "blocks":
                spec.settings.setdefault("compile_cache_dir", str(args.compile_cache_dir))
    if args.build:
        folder = args.model_dir or Path(tempfile.gettempdir()) / f"xiaoai-bench-{args.build}-{args.size}"
        folder = build_model(args.build, args.size, folder, args.text_layers if args.size == "full" else None)
    else:
        folder = args.model_path
    if args.parallel:
        from bench.parallel import run as run_parallel

        presets = [p for p in args.presets.split(",") if p.strip()]
        rows = run_parallel(folder, args.parallel, presets, args.steps, args.warmup_steps, args.out)
        return 1 if any("error" in r for r in rows) else 0
    vae = tuple(VAE_VARIANTS) if args.vae == "all" else tuple(v for v in args.vae.split(",") if v)
    results = run(specs, folder, args.out, References(args.ref_dir), vae, args.budget_s)
    return 1 if any("error" in r for r in results) else 0


def cmd_mp4(args: argparse.Namespace) -> int:
    from bench.mp4 import run

    run([p for p in args.presets.split(",") if p], repeats=args.repeats, out=args.out)
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    _repository_on_path()
    from bench.queue import run

    run([int(n) for n in args.workers.split(",") if n.strip()], args.jobs, args.steps)
    return 0


def _flood_phases() -> tuple[str, ...]:
    from bench.flood import PHASES

    return PHASES


def _repository_on_path() -> None:
    """The flood and queue benches drive the test helpers (tests/support); the `xiaoai` script does not
    put the checkout on sys.path, so add the repository that holds bench/."""
    root = str(Path(__file__).resolve().parents[1])
    if (Path(root) / "tests" / "support").is_dir() and root not in sys.path:
        sys.path.insert(0, root)


def cmd_flood(args: argparse.Namespace) -> int:
    _repository_on_path()
    from bench.flood import FLOOD, run

    rows = run([p for p in args.phases.split(",") if p.strip()])
    return 0 if all(row["answered"] == FLOOD for row in rows) else 1
