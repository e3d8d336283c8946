"""Speed switches for a loaded CogVideoX pipeline, each measured in BENCHMARKS.md.

`apply_speedups(pipe, config, on_gpu)` runs after loading and memory placement; it returns notes for
switches that cannot apply here (no GPU, an offload mode, no FA3) instead of failing, and raises
GeneratorError only for a switch that was asked for and is broken (sageattention missing).
`speed_context(config, pipe)` wraps each pipeline call: PyTorch's SDPA uses the chosen kernel (also while
torch.compile traces) and a step cache starts the video fresh. torch and diffusers import lazily.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from generators.base import went_wrong
from generators.fa3 import use_fa3_attention
from generators.step_cache import enable_step_cache, reset_step_cache

if TYPE_CHECKING:
    from generators.settings import VideoSettings

Attention = Literal["default", "flash", "cudnn", "efficient", "sage", "fa3", "fa3_fp8"]
SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION"}
COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def apply_speedups(pipe: Any, config: VideoSettings, on_gpu: bool, memory_mode: str) -> list[str]:
    """Switch on what `config` asks for, in a safe order (fuse -> attention -> caches -> compile).

    Returns one note per switch skipped, saying why (for the log and the admin status)."""
    notes: list[str] = []
    transformer = pipe.transformer
    if config.speed.fuse_qkv:
        if config.model.quantization != "none":
            notes.append("video.speed.fuse_qkv is skipped with quantization (quantized weights cannot be "
                         "fused)")
        else:
            pipe.fuse_qkv_projections()
    if config.speed.attention != "default":
        if not on_gpu:
            notes.append(f"video.speed.attention={config.speed.attention} needs a CUDA GPU; using the "
                         "default kernel")
        elif config.speed.attention == "sage":
            use_sage_attention(transformer)
    if config.speed.attention in ("fa3", "fa3_fp8"):
        note = use_fa3_attention(transformer, fp8=config.speed.attention == "fa3_fp8")
        if note:
            notes.append(note)
    hooked = False
    if config.speed.step_cache > 0:
        from diffusers.hooks import FirstBlockCacheConfig

        transformer.enable_cache(FirstBlockCacheConfig(threshold=config.speed.step_cache))
        hooked = True
    if config.speed.cache != "none":
        if hooked:
            notes.append(f"video.speed.cache={config.speed.cache} skipped: video.speed.step_cache is on "
                         "(one at a time)")
        else:
            try:
                hooked = enable_step_cache(pipe, config.speed, config.sampling.steps)
            except Exception as exc:  # noqa: BLE001 - a cache that cannot attach is a note, never a failed load
                if config.speed.cache != "cachedit":
                    raise
                why = ("needs the cache-dit package (pip install 'cache-dit>=1.5.3,<1.6')"
                       if isinstance(exc, ImportError) else f"cannot wrap this transformer ({exc})")
                notes.append(f"video.speed.cache=cachedit {why}; running without a cache")
    vae = getattr(pipe, "vae", None)
    if config.speed.vae_tile_size is not None and vae is not None and config.model.vae_tiling:
        height, width = config.speed.vae_tile_size
        vae.enable_tiling(tile_sample_min_height=height, tile_sample_min_width=width)
    if config.speed.compile == "blocks":
        if not on_gpu:
            notes.append("video.speed.compile=blocks needs a CUDA GPU; running without torch.compile")
        elif memory_mode != "gpu":
            notes.append(f"video.speed.compile=blocks needs memory_mode gpu (offload hooks break the "
                         f"compiled graph); running {memory_mode} without torch.compile")
        else:
            compile_blocks(transformer, config.speed.compile_cache_dir, fullgraph=not hooked)
    if config.speed.vae_compile and vae is not None:
        if not on_gpu or memory_mode != "gpu":
            notes.append("video.speed.vae_compile needs a CUDA GPU and memory_mode gpu; decoding without it")
        else:
            compile_vae_decoder(vae, config.speed.compile_cache_dir)
    return notes


def compile_vae_decoder(vae: Any, cache_dir: Path | None = None) -> None:
    """torch.compile the VAE decoder: its norms, activations and padding fuse around cuDNN's convolutions.
    Each tile shape compiles once (the first video pays; inductor's cache keeps it for later starts)."""
    import torch

    _use_cache_dir(cache_dir)
    # one graph per (tile shape, first/next frame batch); diffusers' tiles give up to 8 shapes
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)
    vae.decoder.compile(dynamic=False)


def _use_cache_dir(cache_dir: Path | None) -> None:
    if cache_dir is not None:
        Path(cache_dir).expanduser().mkdir(parents=True, exist_ok=True)
        os.environ[COMPILE_CACHE_ENV] = str(Path(cache_dir).expanduser())


def compile_blocks(transformer: Any, cache_dir: Path | None = None, fullgraph: bool = True) -> None:
    """Regional torch.compile: the repeated transformer blocks share one compiled graph, so the warm-up
    is one block's compile (~20 s), not the whole model's. `cache_dir` keeps the kernels for the next
    start (inductor's default cache in /tmp also survives restarts, but not a reboot). Cache hooks need
    `fullgraph=False`: their step counters break the graph between the cached and computed paths."""
    _use_cache_dir(cache_dir)
    if not getattr(transformer, "_repeated_blocks", None):
        # diffusers 0.42 does not declare CogVideoX's repeated block; the class name is all it needs
        blocks = getattr(transformer, "transformer_blocks", None)
        if not blocks:
            raise went_wrong("video.speed.compile=blocks: this transformer has no blocks to compile",
                             "speed:compile-blocks")
        transformer._repeated_blocks = [type(blocks[0]).__name__]
    transformer.compile_repeated_blocks(fullgraph=fullgraph)


@contextlib.contextmanager
def speed_context(config: VideoSettings, pipe: Any) -> Iterator[None]:
    """Around one pipeline call: the SDPA kernel choice, and a step cache reset to a fresh video."""
    if pipe is not None and (config.speed.cache != "none" or config.speed.step_cache > 0):
        reset_step_cache(pipe.transformer)
    with attention_context(config.speed.attention):
        yield


@contextlib.contextmanager
def attention_context(kind: Attention) -> Iterator[None]:
    """Restrict SDPA to one kernel (flash / cudnn / efficient) for the duration; no-op otherwise."""
    name = SDPA_BACKENDS.get(kind)
    if name is None:
        yield
        return
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not torch.cuda.is_available():
        yield
        return
    # the math kernel stays as the fallback for calls the chosen one refuses (T5's masked attention);
    # set_priority makes the chosen kernel win wherever it can run (the transformer's unmasked attention)
    with sdpa_kernel([getattr(SDPBackend, name), SDPBackend.MATH], set_priority=True):
        yield


def use_sage_attention(transformer: Any) -> None:
    """Replace every attention processor with one calling SageAttention (8-bit QK, Triton kernels)."""
    try:
        from sageattention import sageattn  # noqa: F401 - checked here so the error names the fix
    except ImportError as exc:
        raise went_wrong("video.speed.attention=sage needs the sageattention package (pip install "
                         "sageattention) and Triton; or set video.speed.attention: default",
                         "speed:sage-missing") from exc
    sage_op()
    transformer.set_attn_processor(SageCogVideoXAttnProcessor())


_SAGE_OP: Any = None


def sage_op() -> Any:
    """sageattn as a torch custom op, so torch.compile(fullgraph=True) treats it as one opaque call."""
    global _SAGE_OP
    if _SAGE_OP is None:
        import torch
        from sageattention import sageattn

        @torch.library.custom_op("xiaoai::sageattn", mutates_args=(),
                                 schema="(Tensor query, Tensor key, Tensor value) -> Tensor")
        def _sage(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            return sageattn(query.contiguous(), key.contiguous(), value.contiguous(), tensor_layout="HND",
                            is_causal=False)

        @_sage.register_fake
        def _(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            return torch.empty_like(query)

        _SAGE_OP = _sage
    return _SAGE_OP


class SageCogVideoXAttnProcessor:
    """diffusers' CogVideoXAttnProcessor2_0 (and its fused-QKV twin) with sageattn in place of SDPA."""

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any,
                 attention_mask: Any = None, image_rotary_emb: Any = None) -> Any:
        import torch

        text_seq_length = encoder_hidden_states.size(1)
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch_size = hidden_states.shape[0]
        if attention_mask is not None:
            raise went_wrong("sage attention does not take an attention mask; set video.speed.attention: "
                             "default", "attention:sage-mask")
        if getattr(attn, "fused_projections", False) and hasattr(attn, "to_qkv"):
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
                             for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            from diffusers.models.embeddings import apply_rotary_emb

            query[:, :, text_seq_length:] = apply_rotary_emb(query[:, :, text_seq_length:], image_rotary_emb)
            if not attn.is_cross_attention:
                key[:, :, text_seq_length:] = apply_rotary_emb(key[:, :, text_seq_length:], image_rotary_emb)
        hidden_states = sage_op()(query, key, value)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        encoder_hidden_states, hidden_states = hidden_states.split(
            [text_seq_length, hidden_states.size(1) - text_seq_length], dim=1)
        return hidden_states, encoder_hidden_states
