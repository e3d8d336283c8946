"""`video.speed.preset`: one word for the speed switches, resolved against what this machine can run.

exact   the plain path (every switch as the admin set it; the shipped switches are all off).
default fp8 linears (torchao) + regional torch.compile + FlashAttention-3: close to exact (BENCHMARKS.md).
fast    default + cache-dit's block cache on a fixed schedule (after 8 full steps, every 4th step runs every
        block; the others run the first block and extrapolate the rest): 2B 9.1 s, 5B 21.1 s of denoising
        on an H100 as shipped, closer to exact than FasterCache was (BENCHMARKS.md). Where a cache's
        activations would not fit beside the model on this GPU, fast leaves the cache off and says so.

A preset only turns on switches the admin left off; a switch set to anything else keeps its value. What
the machine cannot run (no GPU, an offload memory mode, fp8 below compute capability 8.9, FA3 without
the wheel or a Hopper GPU) is left off with a note, so a preset never stops the bot from loading.
"""

from __future__ import annotations

from typing import Any, Literal

from generators.loading import FP8_MIN_CAPABILITY

Preset = Literal["exact", "default", "fast"]
PLAIN: dict[str, Any] = {"quantization": "none", "compile": "off", "attention": "default", "cache": "none"}
SECTION = {"quantization": "model", "compile": "speed", "attention": "speed", "cache": "speed"}
MODEL_AND_WORK_GIB = 12.0  # what a 5B model needs besides the cache (preset default peaked at 8.4-11 GiB)
PRESETS: dict[str, dict[str, Any]] = {
    "exact": {},
    "default": {"quantization": "fp8_dynamic", "compile": "blocks", "attention": "fa3"},
    "fast": {"quantization": "fp8_dynamic", "compile": "blocks", "attention": "fa3", "cache": "cachedit"},
}


def preset_cache(config: Any) -> str:
    """The cache `config`'s preset would turn on ("none" where it turns on none)."""
    speed = getattr(config, "speed", None)
    return PRESETS[getattr(speed, "preset", "exact")].get("cache", "none")


def cache_too_big(cache_gib: float | None, gpu_gib: float | None) -> str | None:
    """Why the cache's activations would not fit beside the model on this GPU, or None."""
    if cache_gib is None or gpu_gib is None or cache_gib + MODEL_AND_WORK_GIB <= gpu_gib:
        return None
    return (f"it keeps about {cache_gib:.0f} GiB of activations at this video size, too much beside the "
            f"model on this {gpu_gib:.0f} GiB GPU")


OFFLOAD_MODES = ("group_offload", "sequential_cpu_offload")  # hooks that move weights per layer


def _blocker(key: str, on_gpu: bool, memory_mode: str, too_big: str | None) -> str | None:
    """Why switch `key` of a preset cannot run here, or None."""
    if key == "cache":
        if memory_mode in OFFLOAD_MODES:
            return f"memory_mode {memory_mode} (cache-dit does not support per-layer offload hooks)"
        return too_big
    if not on_gpu:
        return "no CUDA GPU"
    import torch

    if key == "attention":
        from generators.fa3 import fa3_unavailable_reason

        return fa3_unavailable_reason()
    if memory_mode != "gpu":
        return f"memory_mode {memory_mode} (needs gpu)"
    if key == "quantization" and torch.cuda.get_device_capability() < FP8_MIN_CAPABILITY:
        major, minor = torch.cuda.get_device_capability()
        return f"fp8 needs compute capability >= 8.9, this GPU has {major}.{minor}"
    return None


def resolve_preset(config: Any, on_gpu: bool, memory_mode: str, setting: str = "video", *,
                   cache_gib: float | None = None, gpu_gib: float | None = None) -> tuple[Any, list[str]]:
    """(`config` with the preset's switches filled in, notes on the switches left off and why).

    `cache_gib`: what the preset's cache would keep for the configured video; `gpu_gib`: this GPU's memory."""
    too_big = cache_too_big(cache_gib, gpu_gib) if on_gpu else None
    speed = getattr(config, "speed", None)
    preset = getattr(speed, "preset", "exact")
    changes: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for key, value in PRESETS[preset].items():
        section = SECTION[key]
        if getattr(getattr(config, section), key) != PLAIN[key]:
            continue  # the admin chose this switch explicitly
        why = _blocker(key, on_gpu, memory_mode, too_big)
        if why is None:
            changes.setdefault(section, {})[key] = value
        else:
            skipped.append(f"{section}.{key}={value} ({why})")
    notes = [f"{setting}.speed.preset={preset}: left off " + "; ".join(skipped)] if skipped else []
    update = {section: getattr(config, section).model_copy(update=values)
              for section, values in changes.items()}
    return (config.model_copy(update=update) if update else config), notes
