"""An experiment, not used by the bot: 8-bit attention for CogVideoX on Hopper (SageAttention2-style).

Measured with `python3 -m bench.attention` on an H100 (BENCHMARKS.md): 10.9-11.1 ms a call (TMA loads)
against 11.6-11.7 ms for PyTorch's default (cuDNN) SDPA at the 2B shape, 3-7% faster for a cosine similarity
of 0.9993, and about 1% end to end inside the compiled blocks; so it is kept here as the starting point for
a faster kernel (softmax/matmul overlap across warp groups), not wired into the bot.

Why: at 480x720x49 CogVideoX spends ~55% of a denoising step in attention over (B, H, 17776, 64) tensors,
and cuDNN's fp16 SDPA is already the fastest stock kernel. Hopper's wgmma runs int8 and fp8 dots at twice
the fp16 rate, so this kernel does both matmuls of attention in 8 bits with fp32 softmax and accumulation.

What changes numerically (versus fp16/bf16 SDPA):
  * K is "smoothed": its mean over the sequence (per batch, head, channel) is subtracted first. That adds
    the same constant to every score of a query row, so softmax is unchanged, but the quantization range
    shrinks to K's spread instead of its offset.
  * Q and K are quantized per token (one scale per row) to int8 (default, round to nearest) or fp8 e4m3;
    QK^T is an exact int32 dot (int8) or an fp8 dot, dequantized by q_scale[i] * k_scale[j].
  * P = exp2(s - rowmax) is scaled by 448 into e4m3's range and cast to e4m3; V is quantized per channel
    (scale = max|v[:, :, :, d]| / 448, optionally after subtracting V's channel mean, `smooth_v`) to e4m3
    and stored transposed (B, H, D, S) so the fp8 dot's B operand is K-major, as Triton needs on Hopper.
    Each block's P.V dot starts from zero and is added to the fp32 accumulator outside the tensor core
    (Hopper's fp8 wgmma accumulates with ~22-bit floats; this keeps that error to one block).
  * The row sum l uses the unquantized fp32 P; the output is acc * v_scale / l (+ V's mean), in the input
    dtype. Expected error on N(0, 1) inputs: cosine similarity > 0.999 against an fp32 reference.

`fp8_attention(q, k, v)` takes (B, H, S, D) fp16/bf16 tensors (any strides with a contiguous last dim),
D in {64, 128}, any S; non-causal, no mask, softmax scale 1/sqrt(D). Needs triton + CUDA (or
TRITON_INTERPRET=1 with CPU tensors).
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

try:
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - triton < 3.4
    TensorDescriptor = None

PAD = 128  # the quantized buffers are padded to a multiple of the largest block, so loads need no masks
FP8_MAX = 448.0  # largest finite e4m3 (float8e4nv) value
LOG2_FP8_MAX = math.log2(FP8_MAX)
MAGIC_I = 0x4B400000  # bit pattern of 1.5 * 2**23: int32 + MAGIC_I read as float32 is 12582912 + int
MAGIC_F = 12582912.0
LOG2E = 1.4426950408889634


@triton.jit
def _load_tile(X, stride_b, stride_h, stride_s, H, S, D: tl.constexpr, BLOCK_S: tl.constexpr):
    """This program's (BLOCK_S, D) tile of one (batch, head) in fp32, zeros past S, and where it lies."""
    pid_s = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    cols = tl.arange(0, D)
    valid = rows < S
    ptrs = X + b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h + rows[:, None].to(tl.int64) * stride_s
    x = tl.load(ptrs + cols[None, :], mask=valid[:, None], other=0.0).to(tl.float32)
    return x, bh, rows, cols, valid


@triton.jit
def _quant_rows_kernel(X, stride_xb, stride_xh, stride_xs, Mean, Out, Scale, H, S, S_pad, extra_scale,
                       D: tl.constexpr, BLOCK_S: tl.constexpr, SUB_MEAN: tl.constexpr, TO_FP8: tl.constexpr):
    """Per-token quantization of Q or K rows (optionally minus K's channel mean) into a padded buffer."""
    x, bh, rows, cols, valid = _load_tile(X, stride_xb, stride_xh, stride_xs, H, S, D, BLOCK_S)
    if SUB_MEAN:
        mean = tl.load(Mean + bh * D + cols)
        x = tl.where(valid[:, None], x - mean[None, :], 0.0)
    amax = tl.maximum(tl.max(tl.abs(x), 1), 1e-8)
    if TO_FP8:
        scale = amax / 448.0
        xq = (x * (1.0 / scale)[:, None]).to(tl.float8e4nv)
    else:
        scale = amax / 127.0
        xs = x * (1.0 / scale)[:, None]
        xq = (xs + tl.where(xs >= 0, 0.5, -0.5)).to(tl.int8)
    base = bh.to(tl.int64) * S_pad + rows
    tl.store(Out + base[:, None] * D + cols[None, :], xq)
    tl.store(Scale + base, scale * extra_scale)


@triton.jit
def _quant_v_kernel(V, stride_vb, stride_vh, stride_vs, Mean, InvScale, Out, H, S, S_pad,
                    D: tl.constexpr, BLOCK_S: tl.constexpr, SUB_MEAN: tl.constexpr):
    """Per-channel e4m3 quantization of V, written transposed to (B*H, D, S_pad) with zeros past S."""
    v, bh, rows, cols, valid = _load_tile(V, stride_vb, stride_vh, stride_vs, H, S, D, BLOCK_S)
    if SUB_MEAN:
        v = v - tl.load(Mean + bh * D + cols)[None, :]
    inv = tl.load(InvScale + bh * D + cols)
    vq = tl.where(valid[:, None], v * inv[None, :], 0.0).to(tl.float8e4nv)
    out_ptrs = Out + (bh.to(tl.int64) * D + cols[None, :]) * S_pad + rows[:, None]
    tl.store(out_ptrs, vq)


@triton.jit
def _attn_inner(acc, l_i, m_i, q, qs, k_ptrs, v_ptrs, ks_ptrs, desc_k, desc_v, row0, vrow0, lo, hi, S,
                HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, MASK: tl.constexpr, QK_FP8: tl.constexpr,
                USE_TMA: tl.constexpr):
    """Online softmax over key blocks [lo, hi); MASK sets scores of keys >= S to -inf (the tail block).

    k_ptrs (HEAD_DIM, BLOCK_N), v_ptrs (BLOCK_N, HEAD_DIM) and ks_ptrs (BLOCK_N) point at key block 0."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in tl.range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        if USE_TMA:
            k_t = desc_k.load([row0 + start_n, 0]).T
        else:
            k_t = tl.load(k_ptrs + start_n * HEAD_DIM)
        ks = tl.load(ks_ptrs + start_n)
        if QK_FP8:
            x = tl.dot(q, k_t) * ks[None, :]
        else:
            qk = tl.dot(q, k_t)  # int32, |qk| <= D * 127 * 127 < 2**22
            # exact int32 -> fp32 by the magic-number trick (an integer add, no I2F), dequant in one FMA
            x = (qk + 0x4B400000).to(tl.float32, bitcast=True) * ks[None, :] - (ks * 12582912.0)[None, :]
        if MASK:
            x = tl.where((start_n + offs_n)[None, :] < S, x, float("-inf"))
        m_ij = tl.maximum(m_i, tl.max(x, 1) * qs)  # qs > 0 and includes sm_scale * log2(e)
        # p scaled by 448 (= 2**8.807...) so the row max lands on e4m3's largest value
        p = tl.math.exp2(x * qs[:, None] - (m_ij - 8.807354922057604)[:, None])
        l_ij = tl.sum(p, 1)
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + l_ij
        if USE_TMA:
            v = desc_v.load([vrow0, start_n]).T
        else:
            v = tl.load(v_ptrs + start_n)
        pv = tl.dot(p.to(tl.float8e4nv), v)  # from zero: Hopper's fp8 accumulator is not full fp32
        acc = acc * alpha[:, None] + pv
        m_i = m_ij
    return acc, l_i, m_i


def _tma_pre_hook(nargs: dict) -> None:
    """Set the TMA descriptors' block shapes for the config being run."""
    if nargs["USE_TMA"]:
        bm, bn, d = nargs["BLOCK_M"], nargs["BLOCK_N"], nargs["HEAD_DIM"]
        nargs["desc_q"].block_shape = [bm, d]
        nargs["desc_k"].block_shape = [bn, d]
        nargs["desc_v"].block_shape = [d, bn]


def _configs() -> list[triton.Config]:
    """A handful of Hopper configs: (BLOCK_M, BLOCK_N, num_warps, num_stages)."""
    # like Triton's fused-attention tutorial, no 8-warp config with BLOCK_M * BLOCK_N < 128 * 128 on Hopper
    shapes = [(128, 128, 8, 2), (128, 128, 8, 3), (128, 128, 8, 4), (128, 128, 4, 2), (128, 128, 4, 3),
              (128, 64, 4, 3), (128, 64, 4, 4), (64, 128, 4, 3), (64, 64, 4, 4)]
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s, pre_hook=_tma_pre_hook)
            for bm, bn, w, s in shapes]


@triton.jit
def _attn_fwd(Qq, Kq, VT, desc_q, desc_k, desc_v, QS, KS, VS, VM, Out, stride_ob, stride_oh, stride_os,
              H, S, S_pad, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              QK_FP8: tl.constexpr, SMOOTH_V: tl.constexpr, USE_TMA: tl.constexpr):
    """One (BLOCK_M queries, batch*head) tile: 8-bit QK^T, fp32 online softmax, fp8 P.V."""
    start_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    row0 = bh * S_pad  # first row of this head in the padded (B*H*S_pad, D) buffers
    vrow0 = bh * HEAD_DIM  # first row of this head in the transposed (B*H*D, S_pad) V buffer
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    if USE_TMA:
        q = desc_q.load([row0 + start_m * BLOCK_M, 0])
    else:
        q = tl.load(Qq + (row0 + offs_m).to(tl.int64)[:, None] * HEAD_DIM + offs_d[None, :])
    qs = tl.load(QS + row0 + offs_m)
    m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - float("inf")
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    offs_n = tl.arange(0, BLOCK_N)
    k_ptrs = Kq + row0.to(tl.int64) * HEAD_DIM + (offs_n[None, :] * HEAD_DIM + offs_d[:, None])
    v_ptrs = VT + vrow0.to(tl.int64) * S_pad + (offs_d[None, :] * S_pad + offs_n[:, None])
    ks_ptrs = KS + row0 + offs_n
    n_full = (S // BLOCK_N) * BLOCK_N
    acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, qs, k_ptrs, v_ptrs, ks_ptrs, desc_k, desc_v, row0, vrow0,
                                0, n_full, S, HEAD_DIM, BLOCK_N, False, QK_FP8, USE_TMA)
    if n_full < S:
        acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, qs, k_ptrs, v_ptrs, ks_ptrs, desc_k, desc_v, row0,
                                    vrow0, n_full, n_full + BLOCK_N, S, HEAD_DIM, BLOCK_N, True, QK_FP8,
                                    USE_TMA)
    vs = tl.load(VS + bh * HEAD_DIM + offs_d)
    out = acc * (1.0 / l_i)[:, None] * vs[None, :]
    if SMOOTH_V:
        out += tl.load(VM + bh * HEAD_DIM + offs_d)[None, :]
    o_ptrs = (Out + b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
              + offs_m.to(tl.int64)[:, None] * stride_os + offs_d[None, :])
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=(offs_m < S)[:, None])


_attn_fwd_tuned = triton.autotune(configs=_configs(), key=["S", "HEAD_DIM", "QK_FP8", "SMOOTH_V", "USE_TMA"])(
    _attn_fwd)


def quantize(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, qk_dtype: str = "int8",
             smooth_v: bool = False) -> dict[str, torch.Tensor]:
    """The pre-pass: smoothed, per-token 8-bit Q and K, per-channel e4m3 V^T, and their fp32 scales."""
    B, H, S, D = query.shape
    s_pad = triton.cdiv(S, PAD) * PAD
    dev = query.device
    to_fp8 = qk_dtype == "fp8"
    qk_torch = torch.float8_e4m3fn if to_fp8 else torch.int8
    k_mean = key.mean(dim=2, dtype=torch.float32).contiguous()
    v_min, v_max = torch.aminmax(value, dim=2)
    if smooth_v:
        v_mean = value.mean(dim=2, dtype=torch.float32).contiguous()
        v_amax = torch.maximum(v_max.float() - v_mean, v_mean - v_min.float())
    else:
        v_mean = None
        v_amax = torch.maximum(v_max.float(), -v_min.float())
    v_scale = (v_amax.clamp_min(1e-8) / FP8_MAX).contiguous()
    q8 = torch.empty(B * H * s_pad, D, device=dev, dtype=qk_torch)
    k8 = torch.empty_like(q8)
    q_scale = torch.empty(B * H * s_pad, device=dev, dtype=torch.float32)
    k_scale = torch.empty_like(q_scale)
    vt8 = torch.empty(B * H * D, s_pad, device=dev, dtype=torch.float8_e4m3fn)
    block_s = 64
    grid = (s_pad // block_s, B * H)
    sm_scale = LOG2E / math.sqrt(D)
    _quant_rows_kernel[grid](query, query.stride(0), query.stride(1), query.stride(2), k_mean, q8, q_scale,
                             H, S, s_pad, sm_scale, D=D, BLOCK_S=block_s, SUB_MEAN=False, TO_FP8=to_fp8)
    _quant_rows_kernel[grid](key, key.stride(0), key.stride(1), key.stride(2), k_mean, k8, k_scale,
                             H, S, s_pad, 1.0, D=D, BLOCK_S=block_s, SUB_MEAN=True, TO_FP8=to_fp8)
    v_inv = (1.0 / v_scale).contiguous()
    _quant_v_kernel[grid](value, value.stride(0), value.stride(1), value.stride(2),
                          v_mean if v_mean is not None else v_scale, v_inv, vt8, H, S, s_pad,
                          D=D, BLOCK_S=block_s, SUB_MEAN=smooth_v)
    out = {"q": q8, "k": k8, "vt": vt8, "q_scale": q_scale, "k_scale": k_scale, "v_scale": v_scale}
    if v_mean is not None:
        out["v_mean"] = v_mean
    return out


def _check(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Validate shapes/dtypes; give each tensor a contiguous last dim."""
    if query.dim() != 4 or query.shape != key.shape or query.shape != value.shape:
        raise ValueError(f"fp8_attention wants equal (B, H, S, D) shapes, got {tuple(query.shape)}, "
                         f"{tuple(key.shape)}, {tuple(value.shape)}")
    if query.shape[-1] not in (64, 128):
        raise ValueError(f"fp8_attention supports head dim 64 or 128, not {query.shape[-1]}")
    if query.dtype not in (torch.float16, torch.bfloat16) or not key.dtype == value.dtype == query.dtype:
        raise ValueError(f"fp8_attention wants fp16 or bf16 inputs of one dtype, got {query.dtype}, "
                         f"{key.dtype}, {value.dtype}")
    return tuple(t if t.stride(-1) == 1 else t.contiguous() for t in (query, key, value))


def fp8_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, qk_dtype: str = "int8",
                  smooth_v: bool = False, use_tma: bool = False,
                  config: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(D)) V with 8-bit Q K^T and fp8 P V; (B, H, S, D) in, same shape/dtype out.

    qk_dtype: "int8" (default) or "fp8" (e4m3) for Q and K. smooth_v: subtract V's channel mean before
    quantizing (helps V with large channel offsets). use_tma: load tiles with Hopper TMA descriptors.
    config: (BLOCK_M, BLOCK_N, num_warps, num_stages) to skip autotuning (tests, the interpreter)."""
    if qk_dtype not in ("int8", "fp8"):
        raise ValueError(f"qk_dtype must be 'int8' or 'fp8', not {qk_dtype!r}")
    query, key, value = _check(query, key, value)
    B, H, S, D = query.shape
    qz = quantize(query, key, value, qk_dtype, smooth_v)
    out = torch.empty_like(query)  # keeps query's memory layout (e.g. diffusers' (B, S, H, D) view)
    if use_tma:
        if TensorDescriptor is None:
            raise RuntimeError("use_tma needs triton >= 3.4 (triton.tools.tensor_descriptor)")
        dq = TensorDescriptor.from_tensor(qz["q"], [64, D])
        dk = TensorDescriptor.from_tensor(qz["k"], [64, D])
        dv = TensorDescriptor.from_tensor(qz["vt"], [D, 64])
    else:
        dq, dk, dv = qz["q"], qz["k"], qz["vt"]
    args = (qz["q"], qz["k"], qz["vt"], dq, dk, dv, qz["q_scale"], qz["k_scale"], qz["v_scale"],
            qz.get("v_mean", qz["v_scale"]), out, out.stride(0), out.stride(1), out.stride(2),
            H, S, qz["vt"].shape[1])
    flags = {"HEAD_DIM": D, "QK_FP8": qk_dtype == "fp8", "SMOOTH_V": smooth_v, "USE_TMA": use_tma}
    if config is None and os.environ.get("TRITON_INTERPRET") == "1":
        config = (64, 64, 4, 2)
    if config is not None:
        bm, bn, warps, stages = config
        if use_tma:
            _tma_pre_hook({**flags, "BLOCK_M": bm, "BLOCK_N": bn, "desc_q": dq, "desc_k": dk, "desc_v": dv})
        grid = (triton.cdiv(S, bm), B * H)
        _attn_fwd[grid](*args, **flags, BLOCK_M=bm, BLOCK_N=bn, num_warps=warps, num_stages=stages)
    else:
        def grid(meta: dict) -> tuple[int, int]:
            return (triton.cdiv(S, meta["BLOCK_M"]), B * H)

        _attn_fwd_tuned[grid](*args, **flags)
    return out
