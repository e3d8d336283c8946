"""8-bit attention candidates measured by `bench.attn8` (none ships: BENCHMARKS.md, round 3), in the
(B, S, H, D) layout of `generators.fa3.FA3CogVideoXAttnProcessor`.

`fa3_fp8_rotated_kernel`: FlashAttention-3's fp8 path with the inputs prepared so that e4m3 loses less:
K minus its mean over tokens (softmax(Q Kᵀ) is unchanged: every score of a query moves by the same
q·mean), then Q and K multiplied by one orthogonal matrix (a Hadamard matrix with random signs:
Q R (K R)ᵀ = Q Kᵀ), which spreads outlier channels over all of them before the per-(batch, head) scales.
`comfy_int8_kernel`: comfy-kitchen's INT8 attention (int8 Q/K/V, uint8 P, fp32 softmax, its own
block-Hadamard rotation and key shift), a torch custom op with a fake implementation.
"""

from __future__ import annotations

import random
from typing import Any

HADAMARD_SEED = 20241207  # one fixed rotation: the same seed gives the same output


def hadamard(dim: int, seed: int = HADAMARD_SEED) -> Any:
    """A (dim, dim) float32 orthogonal matrix on the CPU: Sylvester's Hadamard matrix over sqrt(dim), its
    rows' signs drawn from `seed` (plain Python, so a compiled kernel sees a constant). dim: a power of 2."""
    import torch

    if dim < 1 or dim & (dim - 1):
        raise ValueError(f"a Hadamard rotation needs a power-of-two head dim, not {dim}")
    matrix = torch.ones(1, 1, dtype=torch.float64)
    while matrix.shape[0] < dim:
        matrix = torch.cat([torch.cat([matrix, matrix], 1), torch.cat([matrix, -matrix], 1)], 0)
    rng = random.Random(seed)
    signs = torch.tensor([rng.choice((-1.0, 1.0)) for _ in range(dim)], dtype=torch.float64)
    return (signs[:, None] * matrix / dim**0.5).float()


def smooth_and_rotate(query: Any, key: Any, rotation: Any | None) -> tuple[Any, Any]:
    """(Q R, (K - mean over tokens of K) R) in float32 for (B, S, H, D) inputs: the same attention,
    easier to quantize. `rotation` None: smoothing alone."""
    query32 = query.float()
    key32 = key.float()
    key32 = key32 - key32.mean(dim=1, keepdim=True)
    if rotation is not None:
        rotation = rotation.to(query32.device)
        query32 = query32 @ rotation
        key32 = key32 @ rotation
    return query32, key32


def fa3_fp8_rotated_kernel(rotate: bool = True, dim: int = 64) -> Any:
    """(q, k, v) in (B, S, H, D) -> FA3 fp8 attention of the smoothed (and rotated) inputs."""
    from generators.fa3 import fa3_fp8_op, quantize_fp8_per_head

    op8 = fa3_fp8_op()
    rotation = hadamard(dim) if rotate else None

    def kernel(query: Any, key: Any, value: Any) -> Any:
        query32, key32 = smooth_and_rotate(query, key, rotation)
        (q8, qd), (k8, kd), (v8, vd) = (quantize_fp8_per_head(t) for t in (query32, key32, value))
        return op8(q8, k8, v8, qd, kd, vd).to(query.dtype)

    return kernel


def comfy_int8_kernel() -> Any:
    """(q, k, v) in (B, S, H, D) -> comfy-kitchen's INT8 attention, which wants (B, H, S, D) with a
    contiguous last dim: the transposed views are that."""
    import comfy_kitchen  # noqa: F401 - registers torch.ops.comfy_kitchen
    import torch

    op = torch.ops.comfy_kitchen.int8_attention

    def kernel(query: Any, key: Any, value: Any) -> Any:
        out = op(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), None)
        return out.transpose(1, 2)

    return kernel
