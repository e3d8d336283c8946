"""FlashAttention-3 for CogVideoX's joint attention (text + video tokens), with an SDPA fallback.

FA3 (`flash_attn_interface` from the `tokenspeed-fa3` wheel, Hopper only) takes (batch, seq, heads, dim),
which is what the Q/K/V projections give before any transpose, and is ~1.3x cuDNN's SDPA at CogVideoX's
head dim 64 (BENCHMARKS.md). `use_fa3_attention(transformer)` swaps every attention processor for
`FA3CogVideoXAttnProcessor`: the same math as diffusers' `CogVideoXAttnProcessor2_0` (rotary embedding
on the video tokens only), the kernel wrapped as a torch custom op so regional torch.compile keeps one
graph per block. Where the wheel or a Hopper GPU is missing the processors stay diffusers' own (the plain
path) and a log line says why. `fp8=True` quantizes Q/K/V to e4m3 with one scale per (batch, head) and
passes the descales to the kernel; it changes the output more (opt-in, measured). torch imports lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from generators.base import went_wrong

FP8_MAX = 448.0  # largest finite float8 e4m3 value
Kernel = Callable[[Any, Any, Any], Any]  # (q, k, v) in (B, S, H, D) -> (B, S, H, D)

_OPS: dict[str, Any] = {}


def fa3_unavailable_reason() -> str | None:
    """Why FA3 cannot run here (no CUDA, not Hopper, wheel missing), or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU"
    major, minor = torch.cuda.get_device_capability()
    if major != 9:
        return f"FlashAttention-3 needs a Hopper GPU (compute capability 9.0), this one is {major}.{minor}"
    try:
        import flash_attn_interface  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"the FlashAttention-3 wheel is not installed (pip install '.[hopper]'): {exc}"
    return None


def sdpa_bshd(query: Any, key: Any, value: Any) -> Any:
    """PyTorch's SDPA on (B, S, H, D) tensors: the reference the FA3 kernel is checked against."""
    import torch.nn.functional as F

    out = F.scaled_dot_product_attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2))
    return out.transpose(1, 2)


def _first(result: Any) -> Any:
    return result[0] if isinstance(result, tuple | list) else result


def fa3_op() -> Any:
    """FA3's forward as the custom op `xiaoai::fa3` (opaque to torch.compile, shape known to it)."""
    if "fa3" not in _OPS:
        import torch
        from flash_attn_interface import flash_attn_func

        @torch.library.custom_op("xiaoai::fa3", mutates_args=(), device_types="cuda",
                                 schema="(Tensor query, Tensor key, Tensor value) -> Tensor")
        def _fa3(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            return _first(flash_attn_func(query, key, value)).contiguous()

        @_fa3.register_fake
        def _(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            return torch.empty_like(query)

        _OPS["fa3"] = _fa3
    return _OPS["fa3"]


def fa3_fp8_op() -> Any:
    """FA3's fp8 forward as `xiaoai::fa3_fp8`: e4m3 Q/K/V plus their (B, H) float32 descales."""
    if "fa3_fp8" not in _OPS:
        import torch
        from flash_attn_interface import flash_attn_func

        @torch.library.custom_op("xiaoai::fa3_fp8", mutates_args=(), device_types="cuda", schema=(
            "(Tensor query, Tensor key, Tensor value, Tensor q_descale, Tensor k_descale, "
            "Tensor v_descale) -> Tensor"))
        def _fa3_fp8(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, q_descale: torch.Tensor,
                     k_descale: torch.Tensor, v_descale: torch.Tensor) -> torch.Tensor:
            out = flash_attn_func(query, key, value, q_descale=q_descale, k_descale=k_descale,
                                  v_descale=v_descale)
            return _first(out).to(torch.bfloat16).contiguous()

        @_fa3_fp8.register_fake
        def _(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, q_descale: torch.Tensor,
              k_descale: torch.Tensor, v_descale: torch.Tensor) -> torch.Tensor:
            return torch.empty(query.shape, dtype=torch.bfloat16, device=query.device)

        _OPS["fa3_fp8"] = _fa3_fp8
    return _OPS["fa3_fp8"]


def quantize_fp8_per_head(tensor: Any) -> tuple[Any, Any]:
    """(B, S, H, D) -> (e4m3 tensor, float32 (B, H) descale), one scale per batch item and head, so that
    a head's largest value maps to e4m3's largest (a plain cast clips and loses small heads)."""
    import torch

    amax = tensor.abs().amax(dim=(1, 3)).float().clamp(min=1e-6)  # (B, H)
    scale = amax / FP8_MAX
    quantized = (tensor.float() / scale[:, None, :, None]).to(torch.float8_e4m3fn)
    return quantized, scale


def fa3_kernel(fp8: bool = False) -> Kernel:
    """The (B, S, H, D) attention kernel calling FA3 (needs the wheel and a Hopper GPU)."""
    if not fp8:
        op = fa3_op()
        return lambda q, k, v: op(q, k, v)
    op8 = fa3_fp8_op()

    def kernel(query: Any, key: Any, value: Any) -> Any:
        (q8, qd), (k8, kd), (v8, vd) = (quantize_fp8_per_head(t) for t in (query, key, value))
        return op8(q8, k8, v8, qd, kd, vd).to(query.dtype)

    return kernel


def _bshd_ready(tensor: Any) -> Any:
    # the kernels read the head dim contiguously; a fused QKV chunk is strided on the last axis otherwise
    return tensor if tensor.stride(-1) == 1 else tensor.contiguous()


class FA3CogVideoXAttnProcessor:
    """diffusers' CogVideoXAttnProcessor2_0 (and its fused-QKV twin) in (B, S, H, D) layout, calling
    `kernel` for the attention itself: FA3 in production, SDPA in the tests."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any,
                 attention_mask: Any = None, image_rotary_emb: Any = None) -> Any:
        import torch

        if attention_mask is not None:
            raise went_wrong("FlashAttention-3 does not take an attention mask; set video.speed.attention: "
                             "default", "attention:fa3-mask")
        text_seq_length = encoder_hidden_states.size(1)
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        if getattr(attn, "fused_projections", False) and hasattr(attn, "to_qkv"):
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.unflatten(-1, (attn.heads, head_dim)) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)  # LayerNorm over the head dim: the same in either layout
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            from diffusers.models.embeddings import apply_rotary_emb

            query = torch.cat([query[:, :text_seq_length], apply_rotary_emb(
                query[:, text_seq_length:], image_rotary_emb, sequence_dim=1)], dim=1)
            if not attn.is_cross_attention:
                key = torch.cat([key[:, :text_seq_length], apply_rotary_emb(
                    key[:, text_seq_length:], image_rotary_emb, sequence_dim=1)], dim=1)
        hidden_states = self.kernel(_bshd_ready(query), _bshd_ready(key), _bshd_ready(value))
        hidden_states = hidden_states.flatten(2, 3).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        encoder_hidden_states, hidden_states = hidden_states.split(
            [text_seq_length, hidden_states.size(1) - text_seq_length], dim=1)
        return hidden_states, encoder_hidden_states


def use_fa3_attention(transformer: Any, fp8: bool = False, setting: str = "video.attention") -> str | None:
    """Put FA3 into every attention layer of a CogVideoX transformer; returns a note (and logs it) when
    it cannot run here and the default SDPA stays."""
    reason = fa3_unavailable_reason()
    if reason is None:
        import torch

        dtype = getattr(transformer, "dtype", None)
        if dtype not in (torch.float16, torch.bfloat16):
            reason = f"FlashAttention-3 needs float16 or bfloat16 weights, not {dtype}"
    if reason is not None:
        note = f"{setting}={'fa3_fp8' if fp8 else 'fa3'}: {reason}; using PyTorch's SDPA"
        logger.info(note)
        return note
    transformer.set_attn_processor(FA3CogVideoXAttnProcessor(fa3_kernel(fp8)))
    return None
