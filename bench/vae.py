"""VAE decode variants, timed on the plain row's latents (`xiaoai bench video --vae ...`): tile sizes,
memory layouts, dtypes, cuDNN's algorithm search and a compiled decoder, each with its working memory and
PSNR against the production decode."""

from __future__ import annotations

from typing import Any

from bench.fidelity import frames_uint8, psnr
from bench.report import GIB, round_value
from bench.timing import Clock

VAE_VARIANTS = ("untiled", "tile=240x360", "tile=480x360", "tile=240x720", "channels_last", "bf16",
                "cudnn_benchmark", "untiled+cudnn_benchmark", "compile+untiled", "channels_last_3d",
                "channels_last_3d+tile=288x480")


def run_vae_variants(pipe: Any, latents: Any, frames: Any, variants: tuple[str, ...], base: dict[str, Any],
                     sync: Clock) -> list[dict[str, Any]]:
    """Decode the plain row's latents again per VAE variant: time, working memory, PSNR vs production."""
    import torch

    vae = pipe.vae
    saved = (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width, vae.dtype)
    saved_benchmark = torch.backends.cudnn.benchmark
    rows = []
    for variant in variants:
        row = {"row": f"vae:{variant}", "model": base["model"], "card": base["card"], "steps": base["steps"],
               "settings": {"vae": variant}}
        try:
            compiled = _set_up(vae, variant)
            z = torch.from_numpy(latents).to(pipe._execution_device, vae.dtype)
            if torch.backends.cudnn.benchmark or compiled:
                begin = sync.now()
                with torch.no_grad():
                    vae.decode(z)
                row["first_decode_s"] = round(sync.now() - begin, 3)
            sync.reset_peak()
            before = torch.cuda.memory_allocated() / GIB if sync.cuda else 0.0
            begin = sync.now()
            with torch.no_grad():
                video = vae.decode(z).sample
            row["vae_decode_s"] = round(sync.now() - begin, 3)
            if sync.cuda:
                row["decode_work_gib"] = round(torch.cuda.max_memory_allocated() / GIB - before, 2)
            got = pipe.video_processor.postprocess_video(video=video.float(), output_type="np")[0]
            row["psnr_db"] = round_value(psnr(frames, frames_uint8(got)))
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            _undo(vae, saved, saved_benchmark)
        rows.append(row)
    return rows


def _set_up(vae: Any, variant: str) -> bool:
    """Put `vae` in the variant's state; True when its decoder was compiled (the first decode compiles)."""
    import torch

    options = variant.split("+")
    compiled = "compile" in options
    if compiled:
        from generators.speedups import compile_vae_decoder

        compile_vae_decoder(vae)
        options.remove("compile")
        variant = "+".join(options) or "tile=default"
    if "cudnn_benchmark" in options:
        # cuDNN times its convolution algorithms once per shape: the first decode pays for it
        torch.backends.cudnn.benchmark = True
        options.remove("cudnn_benchmark")
        variant = "+".join(options) or "tile=default"
    if variant == "tile=default":
        pass
    elif variant == "untiled":
        vae.disable_tiling()
    elif variant.startswith("tile="):
        height, width = (int(x) for x in variant.removeprefix("tile=").split("x"))
        vae.enable_tiling(tile_sample_min_height=height, tile_sample_min_width=width)
    elif variant == "channels_last":
        _channels_last_weights(vae)
    elif variant.startswith("channels_last_3d"):
        _set_up(vae, variant.removeprefix("channels_last_3d").removeprefix("+") or "tile=default")
        _channels_last_3d(vae)
    elif variant == "bf16":
        vae.to(torch.bfloat16)
    else:
        raise ValueError(f"unknown VAE variant {variant!r}")
    return compiled


def _channels_last_3d(vae: Any) -> None:
    """Weights and every convolution's input in channels_last_3d: CogVideoX's causal padding (`F.pad`,
    `torch.cat` of the cached frames) hands each convolution a contiguous tensor, so a pre-hook turns it
    back (a copy per convolution, which the timing includes). Removed again by `_undo`."""
    import torch

    def to_channels_last(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0].contiguous(memory_format=torch.channels_last_3d), *args[1:])

    _channels_last_weights(vae)
    vae._bench_layout_hooks = [module.register_forward_pre_hook(to_channels_last)
                               for module in vae.modules() if isinstance(module, torch.nn.Conv3d)]


def _channels_last_weights(vae: Any) -> None:
    """Every 3-D convolution's weights in channels_last_3d (`_undo` makes them contiguous again)."""
    import torch

    for module in vae.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.weight.data = module.weight.data.to(memory_format=torch.channels_last_3d)


def _undo(vae: Any, saved: tuple[Any, ...], saved_benchmark: bool) -> None:
    """Back to the production decoder for the next variant: no compile, tiling, layout and dtype as saved."""
    import torch

    for handle in getattr(vae, "_bench_layout_hooks", ()):
        handle.remove()
    vae._bench_layout_hooks = []
    vae.decoder._compiled_call_impl = None
    torch.backends.cudnn.benchmark = saved_benchmark
    vae.to(saved[3])
    for module in vae.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.weight.data = module.weight.data.contiguous()
    vae.enable_tiling(tile_sample_min_height=saved[1], tile_sample_min_width=saved[2])
    if not saved[0]:
        vae.disable_tiling()
