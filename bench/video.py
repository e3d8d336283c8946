"""`xiaoai bench video`: time the PRODUCTION CogVideoX generator, one row per configuration.

Each row builds the `video` section from `model_path=folder` and its flat settings (the first release's
key names, read through `bot.config.legacy.nest`), loads it with `CogVideoXGenerator` and renders one
seeded request through `generate` (the same code the bot runs), timing every denoising step, the VAE
decode (by wrapping `vae.decode`), peak GPU memory and the warm-up (first step minus a warm step: compile
time shows here). A row with no settings is the plain path, the anchor: its latents and frames are the
reference the other rows with the same step count are compared with (PSNR, relative error). Random
weights time the same compute as the released ones (`--build` writes such a folder), but their outputs
are noise: fidelity numbers say how far the math moved, not how a real video looks.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.fidelity import psnr, relative_error
from bench.report import GIB, emit, environment, error_text, print_table, round_value
from bench.timing import Clock, cap_memory, end_row, step_figures, watching_decode
from bench.whole import (
    deliver,
    enable_taylorseer,
    watching_text_encode,
    whole_figures,
    write_whole_summary,
)

PROMPT = "a panda plays the guitar in a bamboo forest, soft sunlight, cinematic"

# name -> settings; a row is "NAME" or "NAME:key=value,key=value" (known names add their settings)
PRESETS: dict[str, str] = {
    "plain": "",
    "fused": "fuse_qkv=true",
    "attn-flash": "attention=flash",
    "attn-cudnn": "attention=cudnn",
    "attn-efficient": "attention=efficient",
    "attn-sage": "attention=sage",
    "compile": "compile=blocks",
    "compile-fused": "compile=blocks,fuse_qkv=true",
    "compile-sage": "compile=blocks,attention=sage",
    "compile-cudnn": "compile=blocks,attention=cudnn",
    "int8": "quantization=int8_weight_only",
    "fp8": "quantization=fp8_dynamic",
    "fp8-sage": "quantization=fp8_dynamic,attention=sage",
    "fp8-compile": "quantization=fp8_dynamic,compile=blocks",
    "bf16": "dtype=bfloat16",
    "fp8-compile-bf16": "dtype=bfloat16,quantization=fp8_dynamic,compile=blocks",
    "fbc-0.05": "step_cache=0.05",
    "fbc-0.1": "step_cache=0.1",
    "model-offload": "memory_mode=model_cpu_offload",
    "group-offload-4g": "memory_mode=group_offload,vae_tile_size=144x240,cap_gib=4",
    "seq-offload-4g": "memory_mode=sequential_cpu_offload,vae_tile_size=144x240,cap_gib=4",
    "fa3": "attention=fa3",
    "compile-fa3": "compile=blocks,attention=fa3",
    "fp8-compile-fa3": "quantization=fp8_dynamic,compile=blocks,attention=fa3",
    "fp8-compile-fa3fp8": "quantization=fp8_dynamic,compile=blocks,attention=fa3_fp8",
    "fastercache": "cache=fastercache",
    "pab": "cache=pab",
    "fp8-compile-fa3-pab": "quantization=fp8_dynamic,compile=blocks,attention=fa3,cache=pab",
    "preset-exact": "preset=exact",
    "preset-default": "preset=default",
    "preset-fast": "preset=fast",
}
WARMED = ("compile", "cache", "preset", "vae_compile")  # rows that render a short warm-up video first


@dataclass
class RowSpec:
    """One row: a label, VideoConfig overrides, and the benchmark's own settings."""

    label: str
    settings: dict[str, Any] = field(default_factory=dict)
    steps: int = 6
    cap_gib: float | None = None
    warmup_steps: int = 0  # render this many steps first (compiles, cache branches) and time it apart
    frames: int | None = None  # None: the model's own length (49, 1.5: 81); fewer for quick runs

    @property
    def is_reference(self) -> bool:
        """The plain path (no switches, no cap): what other rows are compared with."""
        return not self.settings and self.cap_gib is None


def _value(text: str) -> Any:
    if "x" in text and all(part.isdigit() for part in text.split("x")):
        return [int(part) for part in text.split("x")]  # 480x360 -> [480, 360]
    lowered = text.lower()
    if lowered in ("true", "false", "null", "none"):
        return {"true": True, "false": False}.get(lowered)
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_row(text: str, default_steps: int, presets: dict[str, str] | None = None,
              warmup_steps: int = 0) -> RowSpec:
    """"fp8", "plain:steps=20" or "mine:attention=sage,compile=blocks" -> RowSpec. Rows that compile or
    cache get `warmup_steps` (unless they say `warmup_steps=N` themselves)."""
    presets = PRESETS if presets is None else presets
    label, _, extra = text.strip().partition(":")
    if not label:
        raise ValueError(f"row {text!r} has no name")
    if not extra and label not in presets:
        raise ValueError(f"unknown row {label!r}; known: {', '.join(presets)} (or NAME:key=value,...)")
    pairs = [p for p in (presets.get(label, "") + "," + extra).split(",") if p.strip()]
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"row {text!r}: {pair!r} is not key=value")
        settings[key.strip()] = _value(raw.strip())
    steps = int(settings.pop("steps", default_steps))
    cap = settings.pop("cap_gib", None)
    warmed = any(key in settings and settings[key] not in ("off", "none", "exact", False) for key in WARMED)
    warmup = int(settings.pop("warmup_steps", warmup_steps if warmed else 0))
    return RowSpec(label, settings, steps, float(cap) if cap is not None else None, warmup)


@dataclass
class References:
    """Plain-path latents and frames per (model, step count), in memory and optionally on disk (`folder`)
    so a later process (a compile second start) can compare against the same anchor. The model is part
    of the key: 2B and 5B latents have the same shape, so a step count alone would mix their anchors."""

    folder: Path | None = None
    rows: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @staticmethod
    def key(model: str, steps: int, frames: int = 49) -> str:
        return f"{model}-{steps}" + (f"-{frames}f" if frames != 49 else "")

    def get(self, model: str, steps: int, frames: int = 49) -> tuple[Any, Any] | None:
        key = self.key(model, steps, frames)
        if key not in self.rows and self.folder is not None:
            path = self.folder / f"reference-{key}.npz"
            if path.is_file():
                import numpy as np

                data = np.load(path)
                self.rows[key] = (data["latents"], data["frames"])
        return self.rows.get(key)

    def put(self, model: str, steps: int, latents: Any, frames: Any, count: int = 49) -> None:
        key = self.key(model, steps, count)
        self.rows[key] = (latents, frames)
        if self.folder is not None:
            import numpy as np

            self.folder.mkdir(parents=True, exist_ok=True)
            np.savez(self.folder / f"reference-{key}.npz", latents=latents, frames=frames)


def build_model(variant: str, size: str, folder: Path, text_layers: int | None) -> Path:
    """A random-weight pipeline folder of the released shapes (reused when already there)."""
    if (folder / "model_index.json").is_file():
        return folder
    try:
        from generators.random_models import build_cogvideox_folder
    except ImportError as exc:
        raise SystemExit("--build needs the repository's tests/support (run from the repo root), or pass "
                         "--model-path to a CogVideoX folder") from exc
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return build_cogvideox_folder(folder, variant, size, device=device,  # type: ignore[arg-type]
                                  text_layers=text_layers)


@contextlib.contextmanager
def recording_cache_decisions(store: list[float]) -> Iterator[None]:
    """Record first-block cache's measure (relative change of the first block's residual since the last
    fully computed step) at every step: with it a threshold can be chosen, and it shows why random
    weights skip nothing."""
    from diffusers.hooks import first_block_cache

    hook_class = first_block_cache.FBCHeadBlockHook
    original = hook_class._should_compute_remaining_blocks

    def recording(self: Any, residual: Any) -> bool:
        previous = self.state_manager.get_state().head_block_residual
        if previous is not None:
            store.append(round(((residual - previous).abs().mean() / previous.abs().mean()).item(), 4))
        return original(self, residual)

    import torch

    hook_class._should_compute_remaining_blocks = torch.compiler.disable(recording)
    try:
        yield
    finally:
        hook_class._should_compute_remaining_blocks = original


def sample_photo(height: int, width: int) -> str:
    """A deterministic photo-like picture (smooth gradients and a disc) as a job's `image` parameter,
    in the 3:4 portrait shape phones take, so the fitting (crop) is part of what is timed."""
    import numpy as np
    from PIL import Image

    from generators.photos import encode_photo

    rows, cols = np.mgrid[0:4 * height // 3, 0:width]
    red = (rows * 255 // max(1, rows.max())).astype(np.uint8)
    green = (cols * 255 // max(1, cols.max())).astype(np.uint8)
    disc = ((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2 < (min(height, width) / 4) ** 2) * 200
    picture = np.stack([red, green, disc.astype(np.uint8)], axis=-1)
    return encode_photo(Image.fromarray(picture))


def production_generator(folder: Path, limits: Any, settings: dict[str, Any]) -> Any:
    """The bot's generator for `folder` with the row's flat settings: the photo model (read through
    `photo_view`, as the bot does) for an image-to-video folder, else the text-to-video one."""
    from bot.config import VideoConfig
    from bot.config.legacy import nest
    from generators.cogvideox import CogVideoXGenerator, CogVideoXPhotoGenerator, photo_view
    from generators.settings import PhotoModelSettings

    config = VideoConfig.model_validate(nest("video", {"model_path": folder, **settings}))
    if not limits.image_input:
        return CogVideoXGenerator(config)
    photo_model = PhotoModelSettings(**(config.model.model_dump(exclude={"variant"})
                                        | {"variant": limits.variant}))
    config = config.model_copy(update={"photo": config.photo.model_copy(update={"model": photo_model})})
    return CogVideoXPhotoGenerator(photo_view(config))


def run_row(spec: RowSpec, folder: Path, refs: References, env: dict[str, Any],
            vae_variants: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Render once with `spec` through the production generator; returns its row (plus VAE rows)."""

    from generators.cogvideox import VideoRequest, model_limits
    from generators.cogvideox_models import variant_defaults

    sync = Clock()
    sync.collect_previous_row()
    limits = model_limits(folder)
    row: dict[str, Any] = {"row": spec.label, "model": limits.variant, "settings": spec.settings,
                           "steps": spec.steps, "cap_gib": spec.cap_gib, **env}
    extra_rows: list[dict[str, Any]] = []
    # the anchor is the plain path whatever the shipped preset is; rows name the preset they time
    settings = {"memory_mode": "gpu" if sync.cuda else "cpu", "preset": "exact"} | spec.settings
    if "cachedit" in settings:  # the earlier rows' name for `cache=cachedit,cache_full_every=N`
        settings |= {"cache": "cachedit", "cache_full_every": int(settings.pop("cachedit"))}
    # bench only: diffusers' TaylorSeer (eager)
    bench_only = {name: settings.pop(name, None) for name in ("taylorseer",)}
    generator = None
    step_ends: list[float] = []
    try:
        cap_memory(spec.cap_gib, sync)
        generator = production_generator(folder, limits, settings)
        row.update(_load(generator, sync))
        pipe = generator.pipeline
        denoise_peak: list[float | None] = []

        def on_step(index: int, total_steps: int) -> None:
            step_ends.append(sync.now())
            if index == total_steps:
                denoise_peak.append(sync.peak_gib())
                sync.reset_peak()

        height, width = limits.native_size
        frames = min(spec.frames or variant_defaults(limits.variant)["num_frames"], limits.max_frames)
        photo = sample_photo(height, width) if limits.image_input else None
        request = VideoRequest(PROMPT, num_frames=frames, steps=spec.steps, seed=0, height=height,
                               width=width, image=photo)
        row["size"] = f"{height}x{width}x{frames}"
        if spec.warmup_steps:
            _warm_up(generator, replace(request, steps=spec.warmup_steps, seed=1), row, sync)
        # after the warm-up: the schedule is for this render's steps, and compiled blocks stay as compiled
        if bench_only.get("taylorseer"):
            enable_taylorseer(pipe, int(bench_only["taylorseer"]))
        row["active"] = _active(generator.active_config)
        result, marks, begin = _timed_render(generator, request, spec, row, sync, on_step)
        row.update(step_figures(step_ends, begin, marks, result.frames, denoise_peak, sync))
        new_reference = _against_reference(row, refs, spec, limits.variant, frames, marks["latents"],
                                           result.frames)
        if vae_variants and new_reference:
            from bench.vae import run_vae_variants

            extra_rows = run_vae_variants(pipe, marks["latents"], result.frames, vae_variants, row, sync)
    except Exception as exc:  # noqa: BLE001 - a failing switch is a result: report it, go on
        row["error"] = error_text(exc)
        row["steps_done"] = len(step_ends)
    finally:
        end_row(generator, sync)
    return [row, *extra_rows]


def _load(generator: Any, sync: Clock) -> dict[str, Any]:
    """Load the weights, timed: the load's time and note, and the memory the weights hold."""
    import torch

    started = time.perf_counter()
    generator.load()
    return {"load_s": round(time.perf_counter() - started, 2),
            "note": generator.info.note if generator.info else None,
            "resident_gib": round(torch.cuda.memory_allocated() / GIB, 2) if sync.cuda else None}


def _active(config: Any) -> dict[str, Any]:
    """The switches the loaded generator really uses (a preset or the hardware may have changed them)."""
    speed = config.speed
    return {"quantization": config.model.quantization, "compile": speed.compile, "attention": speed.attention,
            "cache": speed.cache, "vae_compile": speed.vae_compile}


def _warm_up(generator: Any, request: Any, row: dict[str, Any], sync: Clock) -> None:
    """A first render that pays for compiling and caching, so the timed one measures the steady state."""
    begin = sync.now()
    generator.generate(request)
    row["warmup_run_s"] = round(sync.now() - begin, 2)
    row["warmup_steps"] = request.steps


def _timed_render(generator: Any, request: Any, spec: RowSpec, row: dict[str, Any], sync: Clock,
                  on_step: Any) -> tuple[Any, dict[str, Any], float]:
    """The measured render: (its result, the decode marks, when it began); the whole-video figures and
    the step cache's decisions go into `row`."""
    sync.reset_peak()
    cache_changes: list[float] = []
    recorder = (recording_cache_decisions(cache_changes) if spec.settings.get("step_cache")
                else contextlib.nullcontext())
    pipe = generator.pipeline
    with watching_decode(pipe, sync) as marks, recorder, watching_text_encode(pipe, sync) as text:
        begin = sync.now()
        result = generator.generate(request, on_step=on_step)
        row["total_s"] = round(time.perf_counter() - begin, 3)
    row["text_encode_s"] = round(text["text_encode_s"], 3)
    row.update(whole_figures(row, deliver(result.frames, result.fps, generator.config.encode)))
    if cache_changes:
        threshold = float(spec.settings["step_cache"])
        row["cache_changes"] = cache_changes
        row["steps_skipped"] = sum(change <= threshold for change in cache_changes)
    return result, marks, begin


def _against_reference(row: dict[str, Any], refs: References, spec: RowSpec, variant: str, frames: int,
                       latents: Any, video: Any) -> bool:
    """PSNR and latent error against the anchor for this model, steps and length (kept from this row
    when it is the first reference row); True when this row became the anchor."""
    reference = refs.get(variant, spec.steps, frames)
    new_reference = spec.is_reference and reference is None
    if new_reference:
        refs.put(variant, spec.steps, latents, video, frames)
        reference = refs.get(variant, spec.steps, frames)
    if reference is not None:
        row["psnr_db"] = round_value(psnr(reference[1], video))
        row["latent_rel_err"] = round_value(relative_error(reference[0], latents), 6)
    return new_reference


def run(rows: list[RowSpec], folder: Path, out: Path | None, refs: References,
        vae_variants: tuple[str, ...] = (), budget_s: float | None = None) -> list[dict[str, Any]]:
    """Run every row in order (skipping those past `budget_s`), printing a JSON line per row and the
    markdown table at the end; appends to OUT/video.jsonl and writes OUT/video.md when `out` is set."""
    env = environment()
    deadline = time.perf_counter() + budget_s if budget_s else math.inf
    results: list[dict[str, Any]] = []
    for spec in rows:
        if time.perf_counter() > deadline:
            produced = [{"row": spec.label, "settings": spec.settings, "skipped": "time budget", **env}]
        else:
            produced = run_row(spec, folder, refs, env, vae_variants)
        for row in produced:
            emit(row, out, "video.jsonl")
        results.extend(produced)
    table = print_table(results, env)
    if out is not None:
        write_whole_summary(results, out)
        with (out / "video.md").open("a", encoding="utf-8") as handle:
            handle.write(f"\n{env['card']}, torch {env['torch']}, diffusers {env['diffusers']}\n\n{table}\n")
    return results
