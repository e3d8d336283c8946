"""`video.speed.preset`: one word for the speed switches, resolved against what this machine can run.

exact   the plain path (every switch as the admin set it; the shipped switches are all off).
default fp8 linears (torchao) + regional torch.compile + FlashAttention-3: close to exact (BENCHMARKS.md).
fast    default + FasterCache (diffusers' cache hooks): about twice as fast, a measured output change.

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
PRESETS: dict[str, dict[str, Any]] = {
    "exact": {},
    "default": {"quantization": "fp8_dynamic", "compile": "blocks", "attention": "fa3"},
    "fast": {"quantization": "fp8_dynamic", "compile": "blocks", "attention": "fa3", "cache": "fastercache"},
}


def _blocker(key: str, on_gpu: bool, memory_mode: str) -> str | None:
    """Why switch `key` of a preset cannot run here, or None."""
    if key == "cache":
        return None
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


def resolve_preset(config: Any, on_gpu: bool, memory_mode: str,
                   setting: str = "video") -> tuple[Any, list[str]]:
    """(`config` with the preset's switches filled in, notes on the switches left off and why)."""
    speed = getattr(config, "speed", None)
    preset = getattr(speed, "preset", "exact")
    changes: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for key, value in PRESETS[preset].items():
        section = SECTION[key]
        if getattr(getattr(config, section), key) != PLAIN[key]:
            continue  # the admin chose this switch explicitly
        why = _blocker(key, on_gpu, memory_mode)
        if why is None:
            changes.setdefault(section, {})[key] = value
        else:
            skipped.append(f"{section}.{key}={value} ({why})")
    notes = [f"{setting}.speed.preset={preset}: left off " + "; ".join(skipped)] if skipped else []
    update = {section: getattr(config, section).model_copy(update=values)
              for section, values in changes.items()}
    return (config.model_copy(update=update) if update else config), notes
