"""`xiaoai bench image`: time the PRODUCTION FLUX generator at 1024x576, one row per configuration.

Each row builds `ImageConfig(model_path=folder, **settings)`, loads it with `FluxGenerator`, renders one
warm-up image and then the timed one through `generate`, timing every step, the VAE decode and peak GPU
memory. Two settings are the benchmark's own, applied to the loaded pipeline because the image section
has no such switches yet: `compile=blocks` (regional torch.compile of FLUX's two block types) and
`attention=fa3` (diffusers' FlashAttention-3 backend, the same kernel as `video.attention: fa3`).
The row without settings is the anchor the others are compared with (PSNR of the image, latent error).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.fidelity import psnr, relative_error
from bench.report import emit, environment, error_text, print_table
from bench.timing import Clock, end_row, watching_decode
from bench.video import PRESETS as VIDEO_PRESETS
from bench.video import parse_row

PROMPT = "a shiba inu in the snow, golden hour, detailed fur"
# the video bench's rows that apply to FLUX too (same switch names, same meaning)
PRESETS: dict[str, str] = {name: VIDEO_PRESETS[name] for name in (
    "plain", "int8", "fp8", "compile", "fa3", "fp8-compile", "fp8-compile-fa3")}
BENCH_ONLY = ("compile", "attention")


def build_model(variant: str, folder: Path, text_layers: int) -> Path:
    """A random-weight FLUX.1 folder of the released shapes (reused when already there)."""
    if (folder / "model_index.json").is_file():
        return folder
    import torch

    from generators.random_models import build_flux_folder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return build_flux_folder(folder, variant, size="full", device=device,  # type: ignore[arg-type]
                             text_layers=text_layers)


def use_diffusers_fa3(transformer: Any) -> None:
    """diffusers' `_flash_3` attention backend. diffusers looks for a distribution named flash_attn_3;
    the tokenspeed-fa3 wheel ships the same module under another name, so it is pointed at it here."""
    from diffusers.models import attention_dispatch as dispatch
    from flash_attn_interface import flash_attn_func, flash_attn_varlen_func

    if not dispatch._CAN_USE_FLASH_ATTN_3:
        dispatch._CAN_USE_FLASH_ATTN_3 = True
        dispatch.flash_attn_3_func = flash_attn_func
        dispatch.flash_attn_3_varlen_func = flash_attn_varlen_func
    transformer.set_attention_backend("_flash_3")


def image_config(folder: Path, height: int, width: int, settings: dict[str, Any],
                 memory_mode: str = "gpu") -> Any:
    """The `image:` section a row runs with (settings in their flat spelling, as rows write them)."""
    from bot.config import ImageConfig
    from bot.config.legacy import nest

    flat = {"model_path": folder, "memory_mode": memory_mode, "height": height, "width": width, **settings}
    return ImageConfig.model_validate(nest("image", flat))


def run_row(text: str, folder: Path, steps: int | None, height: int, width: int,
            refs: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:

    from generators.flux import FluxGenerator, ImageRequest

    spec = parse_row(text, 0, PRESETS)
    bench = {key: spec.settings.pop(key) for key in BENCH_ONLY if key in spec.settings}
    row: dict[str, Any] = {"row": spec.label, "settings": {**spec.settings, **bench}, **env}
    clock = Clock()
    clock.collect_previous_row()
    generator = None
    try:
        memory_mode = "gpu" if clock.cuda else "cpu"  # the CPU runs a tiny model: the bench's own test
        generator = FluxGenerator(image_config(folder, height, width, spec.settings, memory_mode))
        started = time.perf_counter()
        generator.load()
        pipe = generator.pipeline
        if bench.get("attention") == "fa3":
            use_diffusers_fa3(pipe.transformer)
        if bench.get("compile") == "blocks":
            pipe.transformer.compile_repeated_blocks(fullgraph=True)
        row["load_s"] = round(time.perf_counter() - started, 2)
        row["model"] = f"flux-{generator.limits.variant}"
        request = ImageRequest(PROMPT, steps=spec.steps or steps, seed=0, height=height, width=width)
        begin = clock.now()
        generator.generate(request)
        row["warmup_run_s"] = round(clock.now() - begin, 2)
        ends: list[float] = []
        clock.reset_peak()
        with watching_decode(pipe, clock) as marks:
            begin = clock.now()
            result = generator.generate(request, on_step=lambda _i, _n: ends.append(clock.now()))
            row["total_s"] = round(time.perf_counter() - begin, 3)
        gaps = [b - a for a, b in zip(ends, ends[1:], strict=False)]
        per_step = statistics.fmean(gaps) if gaps else ends[0] - begin
        row.update({"steps": result.steps, "s_per_step": round(per_step, 4),
                    "denoise_s": round(ends[-1] - begin, 3), "vae_decode_s": round(marks["decode_s"], 3),
                    "peak_gib": clock.peak_gib()})
        import numpy as np

        pixels = np.asarray(result.image)
        key = f"{row['model']}-{result.steps}"
        if not spec.settings and not bench and key not in refs:
            refs[key] = (marks["latents"], pixels)
        if key in refs:
            row["psnr_db"] = round(psnr(refs[key][1], pixels), 2)
            row["latent_rel_err"] = round(relative_error(refs[key][0], marks["latents"]), 6)
    except Exception as exc:  # noqa: BLE001 - a failing switch is a result: report it, go on
        row["error"] = error_text(exc)
    finally:
        end_row(generator, clock)
    return row


def run(rows: list[str], folder: Path, steps: int | None, height: int, width: int,
        out: Path | None) -> list[dict[str, Any]]:
    env = environment()
    refs: dict[str, Any] = {}
    results = []
    for text in rows:
        row = run_row(text, folder, steps, height, width, refs, env)
        emit(row, out, "image.jsonl")
        results.append(row)
    print_table(results, env)
    return results
