"""Caches that reuse work of earlier denoising steps, each on a fixed schedule, so unlike a threshold
cache they save the same work with random and real weights (which is how BENCHMARKS.md can time them).

cachedit  cache-dit's DBCache: after `cache_warmup_steps` full steps, every `cache_full_every`-th step runs
          every block; the others run the first block and add the rest's residual, extrapolated by a
          first-order TaylorSeer. The schedule needs the step count, so it is set again per request.
fastercache, pab  diffusers' hooks: attention outputs reused every `cache_block_skip`-th step inside a
          timestep window (published CogVideoX settings: FasterCache 1.55x on 5B with VBench on par, PAB
          1.34x); FasterCache also approximates the unconditional (CFG) branch on most steps.
All change the output; BENCHMARKS.md gives the measured fidelity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PUBLISHED_WINDOWS = {"fastercache": (-1, 681), "pab": (100, 800)}
ACTIVATION_BYTES = 2  # fp16 / bf16
# cachedit's activations for one video, counted in hidden states of the whole CFG batch: the first block's
# output and residual, the cached residual and TaylorSeer's factors; fitted to the H100's peaks over preset
# default (2B +0.9 GiB, 5B +1.4 GiB; BENCHMARKS.md)
CACHEDIT_HIDDEN_STATES = 7


def fixed_schedule(steps: int, warmup: int = 8, full_every: int = 4) -> list[int]:
    """1 = run the step in full, 0 = reuse: the first `warmup` steps, then every `full_every`-th step, and
    the last step always in full."""
    if steps < 1 or warmup < 0 or full_every < 1:
        raise ValueError(f"fixed_schedule needs steps >= 1, warmup >= 0, full_every >= 1; got {steps}, "
                         f"{warmup}, {full_every}")
    return [1 if i < warmup or (i - warmup) % full_every == full_every - 1 or i == steps - 1 else 0
            for i in range(steps)]


def cache_gib(kind: str, transformer: Mapping[str, Any], height: int, width: int, frames: int,
              guidance: float, spatial_scale: int = 8) -> float | None:
    """GPU memory the cache `kind` keeps for one video (None where not estimated), so a preset can tell
    that it would not fit beside the model."""
    if kind == "fastercache":
        return fastercache_gib(transformer, height, width, frames, guidance, spatial_scale)
    if kind == "cachedit":
        hidden = _hidden_state_gib(transformer, height, width, frames, guidance, spatial_scale)
        return CACHEDIT_HIDDEN_STATES * hidden
    return None


def fastercache_gib(transformer: Mapping[str, Any], height: int, width: int, frames: int, guidance: float,
                    spatial_scale: int = 8) -> float:
    """GPU memory FasterCache keeps for one video: two attention outputs of every block, for the whole
    CFG batch. Within 3 % of what an H100 measured over preset default (2B 7.5, 5B-I2V 17.0 and
    CogVideoX1.5 at 768x1360x81 43.2 GiB; BENCHMARKS.md)."""
    hidden = _hidden_state_gib(transformer, height, width, frames, guidance, spatial_scale)
    return 2 * hidden * transformer.get("num_layers", 30)


def _hidden_state_gib(transformer: Mapping[str, Any], height: int, width: int, frames: int, guidance: float,
                      spatial_scale: int, temporal_scale: int = 4) -> float:
    """One hidden state (video and text tokens x inner width) for the whole CFG batch, in GiB."""
    patch, patch_t = transformer.get("patch_size", 2), transformer.get("patch_size_t") or 1
    latent_frames = (frames - 1) // temporal_scale + 1
    latent_frames += -latent_frames % patch_t  # 1.5 pads to whole temporal patches
    rows, columns = height // spatial_scale // patch, width // spatial_scale // patch
    tokens = latent_frames // patch_t * rows * columns
    tokens += transformer.get("max_text_seq_length", 226)
    inner = transformer.get("num_attention_heads", 30) * transformer.get("attention_head_dim", 64)
    batch = 2 if guidance > 1 else 1
    return batch * tokens * inner * ACTIVATION_BYTES / 2**30


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


def cachedit_config(config: Any, steps: int) -> Any:
    """cache-dit's DBCache for a `steps`-step render on `fixed_schedule` (static: no threshold decides)."""
    from cache_dit import DBCacheConfig

    mask = fixed_schedule(steps, config.cache_warmup_steps, config.cache_full_every)
    return DBCacheConfig(Fn_compute_blocks=1, Bn_compute_blocks=0, max_warmup_steps=config.cache_warmup_steps,
                         enable_separate_cfg=False, num_inference_steps=steps, steps_computation_mask=mask,
                         steps_computation_policy="static")


def cachedit_attached(transformer: Any) -> bool:
    """Whether cache-dit wraps `transformer` (it marks the transformers it wraps)."""
    return bool(getattr(transformer, "_is_cached", False))


def schedule_steps(transformer: Any, config: Any, steps: int) -> None:
    """Before each cachedit render: the schedule for this request's steps, and a fresh cache (the same
    seed renders the same frames). Nothing to do where the cache could not be switched on."""
    if not cachedit_attached(transformer):
        return
    import cache_dit

    cache_dit.refresh_context(transformer, cache_config=cachedit_config(config, steps), verbose=False)


def enable_step_cache(pipe: Any, config: Any, steps: int = 50) -> bool:
    """Register the cache on `pipe`'s transformer; True when a cache is on. cachedit's schedule is for
    `steps` until `schedule_steps` sets it per request. Raises ImportError without cache-dit."""
    if config.cache == "cachedit":
        import cache_dit
        from cache_dit import TaylorSeerCalibratorConfig

        cache_dit.enable_cache(pipe.transformer, cache_config=cachedit_config(config, steps),
                               calibrator_config=TaylorSeerCalibratorConfig(taylorseer_order=1))
        return True
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
