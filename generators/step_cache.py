"""diffusers' cache hooks on the denoiser: FasterCache and Pyramid Attention Broadcast (PAB).

Both reuse attention outputs of earlier steps on a fixed schedule (every `cache_block_skip`-th step inside
a timestep window), so unlike a threshold cache they save the same work with random and real weights.
FasterCache also approximates the unconditional (CFG) branch from the conditional one on most steps.
Defaults are the published CogVideoX settings (diffusers' docs; FasterCache 1.55x on CogVideoX-5B with
VBench on par, PAB 1.34x); both change the output, and BENCHMARKS.md gives the measured fidelity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PUBLISHED_WINDOWS = {"fastercache": (-1, 681), "pab": (100, 800)}
ACTIVATION_BYTES = 2  # fp16 / bf16


def fastercache_gib(transformer: Mapping[str, Any], height: int, width: int, frames: int, guidance: float,
                    spatial_scale: int = 8, temporal_scale: int = 4) -> float:
    """GPU memory FasterCache keeps for one video: two attention outputs of every block, for the whole
    CFG batch. Within 3 % of what an H100 measured over preset default (2B 7.5, 5B-I2V 17.0 and
    CogVideoX1.5 at 768x1360x81 43.2 GiB; BENCHMARKS.md), so a preset can tell it will not fit."""
    patch, patch_t = transformer.get("patch_size", 2), transformer.get("patch_size_t") or 1
    latent_frames = (frames - 1) // temporal_scale + 1
    latent_frames += -latent_frames % patch_t  # 1.5 pads to whole temporal patches
    rows, columns = height // spatial_scale // patch, width // spatial_scale // patch
    tokens = latent_frames // patch_t * rows * columns
    tokens += transformer.get("max_text_seq_length", 226)
    inner = transformer.get("num_attention_heads", 30) * transformer.get("attention_head_dim", 64)
    batch = 2 if guidance > 1 else 1
    per_block = 2 * batch * tokens * inner * ACTIVATION_BYTES
    return per_block * transformer.get("num_layers", 30) / 2**30


def cache_hook_config(config: Any, pipe: Any) -> Any | None:
    """The diffusers hook config for `config.cache` (None for "none"); timesteps are read from `pipe`."""
    kind = config.cache
    if kind == "none":
        return None
    window = tuple(config.cache_timesteps or PUBLISHED_WINDOWS[kind])

    def current_timestep() -> Any:
        return pipe.current_timestep

    if kind == "pab":
        from diffusers import PyramidAttentionBroadcastConfig

        return PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=config.cache_block_skip,
                                               spatial_attention_timestep_skip_range=window,
                                               current_timestep_callback=current_timestep)
    if kind == "fastercache":
        from diffusers import FasterCacheConfig

        weight = float(config.cache_attention_weight)
        return FasterCacheConfig(
            spatial_attention_block_skip_range=config.cache_block_skip,
            spatial_attention_timestep_skip_range=window, current_timestep_callback=current_timestep,
            attention_weight_callback=lambda _module: weight,
            unconditional_batch_skip_range=config.cache_uncond_skip,
            unconditional_batch_timestep_skip_range=tuple(config.cache_uncond_timesteps),
            tensor_format="BFCHW")
    raise ValueError(f"unknown cache {kind!r}")


def enable_step_cache(pipe: Any, config: Any) -> bool:
    """Register the hooks on `pipe.transformer`; True when a cache is on."""
    hook_config = cache_hook_config(config, pipe)
    if hook_config is None:
        return False
    pipe.transformer.enable_cache(hook_config)
    return True


def reset_step_cache(transformer: Any) -> None:
    """Forget the previous video's cached activations and step counters (the pipeline does not), so
    every request starts from a full step and renders the same frames for the same seed."""
    reset = getattr(transformer, "_reset_stateful_cache", None)
    if reset is not None:
        reset()


def match_guidance(transformer: Any, uses_cfg: bool) -> None:
    """FasterCache approximates the unconditional half of a CFG batch; a request without CFG (guidance
    <= 1) has no such half, and its hooks would index a batch of one as two. Tell them per request (the
    attention reuse still applies)."""
    for module in transformer.modules():
        registry = getattr(module, "_diffusers_hook", None)
        if registry is None:
            continue
        for name in ("faster_cache_denoiser", "faster_cache_block"):
            hook = registry.get_hook(name)
            if hook is not None:
                hook.is_guidance_distilled = not uses_cfg
