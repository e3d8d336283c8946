"""8-bit attention at CogVideoX's shapes: time per call and error against float32 math, per kernel and
input kind: the bot's FA3 ops (`generators.fa3`) and the candidates in `bench.attn8_kernels`.

Inputs: `randn` (Q, K, V standard normal: flat softmax, the hardest case for a relative error) and
`outliers` (K with a per-channel offset and a few channels of Q and K 8x larger, as trained DiTs have;
what smoothing and rotation are for). Rows named `sim:*` are no kernels: SDPA in float32 on inputs
quantized to e4m3 and back, to show which operand's rounding the error comes from.

python3 -m bench.attn8 [--out DIR]  -> one JSON line per row, DIR/attn8.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHAPES = {"2b": ((2, 17776, 30, 64), "float16"), "5b": ((2, 17776, 48, 64), "bfloat16")}
HEADS = slice(0, 2)  # the float32 reference is computed on these heads


def make_inputs(shape: tuple[int, ...], dtype: Any, kind: str, seed: int = 0) -> tuple[Any, Any, Any]:
    import torch

    generator = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v = (torch.randn(shape, device="cuda", generator=generator) for _ in range(3))
    if kind == "outliers":
        dim = shape[-1]
        offset = torch.randn(1, 1, shape[2], dim, device="cuda", generator=generator) * 2.0
        k = k + offset
        channels = torch.randperm(dim, device="cuda", generator=generator)[:4]
        q[..., channels] *= 8.0
        k[..., channels] *= 8.0
        q, k = q * 0.5, k * 0.5  # keep the score scale near the randn case
    return q.to(dtype), k.to(dtype), v.to(dtype)


def _fp8_roundtrip(tensor: Any) -> Any:
    from generators.fa3 import quantize_fp8_per_head

    quantized, scale = quantize_fp8_per_head(tensor)
    return quantized.float() * scale[:, None, :, None]


def kernels() -> dict[str, Callable[[], Callable[..., Any]]]:
    """name -> factory of a (q, k, v) -> out kernel (factories raise when the kernel is missing)."""
    import torch

    from bench import attn8_kernels as candidates
    from generators.fa3 import fa3_kernel, sdpa_bshd

    def sim(which: str) -> Callable[..., Any]:
        def kernel(q: Any, k: Any, v: Any) -> Any:
            q, k, v = (_fp8_roundtrip(t) if name in which else t.float() for name, t in zip("qkv", (q, k, v),
                                                                                               strict=True))
            return sdpa_bshd(q, k, v)
        return kernel

    return {
        "sdpa": lambda: sdpa_bshd,
        "fa3": fa3_kernel,
        "fa3_fp8": lambda: fa3_kernel(fp8=True),
        "fa3_fp8_smooth": lambda: candidates.fa3_fp8_rotated_kernel(rotate=False),
        "fa3_fp8_rotated": candidates.fa3_fp8_rotated_kernel,
        "fa3_fp8_rotated_compiled": lambda: torch.compile(candidates.fa3_fp8_rotated_kernel(),
                                                          fullgraph=True),
        "int8_comfy": candidates.comfy_int8_kernel,
        "int8_comfy_compiled": lambda: torch.compile(candidates.comfy_int8_kernel(), fullgraph=True),
        "sim:qk_fp8": lambda: sim("qk"),
        "sim:v_fp8": lambda: sim("v"),
        "sim:qkv_fp8": lambda: sim("qkv"),
    }


def run_case(model: str, kind: str, names: list[str]) -> list[dict[str, Any]]:
    import torch
    from triton.testing import do_bench

    from generators.fa3 import sdpa_bshd

    shape, dtype_name = SHAPES[model]
    q, k, v = make_inputs(shape, getattr(torch, dtype_name), kind)
    reference = sdpa_bshd(*(t[:, :, HEADS].float() for t in (q, k, v)))
    flops = 4 * shape[0] * shape[2] * shape[1] ** 2 * shape[3]
    rows = []
    factories = kernels()
    for name in names:
        row: dict[str, Any] = {"model": model, "inputs": kind, "kernel": name, "shape_bshd": list(shape),
                               "dtype": dtype_name, "card": torch.cuda.get_device_name(0)}
        try:
            kernel = factories[name]()
            if name.startswith("sim:"):
                out = kernel(*(t[:, :, HEADS] for t in (q, k, v)))
                got = out.float()
            else:
                out = kernel(q, k, v)
                got = out[:, :, HEADS].float()
                ms = do_bench(lambda kernel=kernel: kernel(q, k, v), warmup=50, rep=300, return_mode="median")
                row.update(ms=round(ms, 3), tflops=round(flops / ms / 1e9, 1))
            row["rel_err_vs_fp32"] = float(((got - reference).norm() / reference.norm()).item())
            row["finite"] = bool(torch.isfinite(got).all())
        except Exception as exc:  # noqa: BLE001 - a missing kernel is a row, not the end of the table
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--kernels", default=",".join(k for k in kernels()),
                        help="comma-separated kernel names")
    parser.add_argument("--models", default="2b,5b")
    parser.add_argument("--inputs", default="randn,outliers")
    args = parser.parse_args(argv)
    names = [n for n in args.kernels.split(",") if n]
    rows = []
    for model in args.models.split(","):
        for kind in args.inputs.split(","):
            rows += run_case(model, kind, names)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / "attn8.jsonl").open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows)
    print("\n| model | inputs | kernel | ms | rel. err vs fp32 |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['inputs']} | {r['kernel']} | {r.get('ms', '-')} | "
              f"{r.get('rel_err_vs_fp32', r.get('error', '-'))} |")


if __name__ == "__main__":
    main()
