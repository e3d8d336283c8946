"""FlashAttention-3 at CogVideoX's attention shapes, through the same ops the bot uses
(`generators.fa3`): time per call against PyTorch's SDPA, error against float32 math, and a check that
the custom op runs inside torch.compile(fullgraph=True). Needs a Hopper GPU and the FA3 wheel.

python3 -m bench.fa3_kernel [--out DIR]  -> prints one JSON line per case, writes DIR/fa3_kernel.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHAPES = {"2b": ((2, 17776, 30, 64), "float16"), "5b": ((2, 17776, 48, 64), "bfloat16")}


def main(argv: list[str] | None = None) -> None:
    import torch
    from triton.testing import do_bench

    from generators.fa3 import fa3_kernel, fa3_unavailable_reason, sdpa_bshd

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    reason = fa3_unavailable_reason()
    if reason:
        raise SystemExit(reason)
    rows = []
    for model, (shape, dtype_name) in SHAPES.items():
        dtype = getattr(torch, dtype_name)
        q, k, v = (torch.randn(shape, device="cuda", dtype=dtype) for _ in range(3))
        heads = slice(0, 2)
        reference = sdpa_bshd(*(t[:, :, heads].float() for t in (q, k, v)))
        flops = 4 * shape[0] * shape[2] * shape[1] ** 2 * shape[3]
        kernels = {"sdpa": sdpa_bshd, "fa3": fa3_kernel(), "fa3_fp8": fa3_kernel(fp8=True),
                   "fa3_compiled": torch.compile(fa3_kernel(), fullgraph=True),
                   "fa3_fp8_compiled": torch.compile(fa3_kernel(fp8=True), fullgraph=True)}
        for name, kernel in kernels.items():
            out = kernel(q, k, v)
            got = out[:, :, heads].float()
            err = ((got - reference).norm() / reference.norm()).item()
            ms = do_bench(lambda kernel=kernel, q=q, k=k, v=v: kernel(q, k, v), warmup=50, rep=300,
                          return_mode="median")
            row = {"model": model, "kernel": name, "shape_bshd": list(shape), "dtype": dtype_name,
                   "ms": round(ms, 3), "tflops": round(flops / ms / 1e9, 1), "rel_err_vs_fp32": err,
                   "finite": bool(torch.isfinite(out).all()), "card": torch.cuda.get_device_name(0)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / "fa3_kernel.jsonl").open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    main()
