"""Attention microbenchmark at CogVideoX's shape: stock SDPA kernels vs SageAttention vs our fp8_attention.

    python3 -m bench.attention [--heads 30 --seq 17776 --dim 64 --dtype fp16 --iters 20]

Needs only torch + triton (sageattention optional). q, k, v ~ N(0, 1) like the model's (q and k leave a
LayerNorm). Prints a markdown table (ms per call, TFLOP/s = 4*B*H*S*S*D / time, speedup vs cuDNN SDPA, and
the error against an fp32 math reference on a slice of heads), and writes it as JSON lines to
$OUT/attention.jsonl when OUT is set. Each row is guarded: one failure prints its error, the rest run.
`--device cpu` (with TRITON_INTERPRET=1 and a tiny --seq) smoke-tests the script without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
ALL_ROWS = ("sdpa-default", "sdpa-cudnn", "sdpa-flash", "sageattention", "fp8", "fp8-tma", "fp8-fp8qk",
            "fp8-fp8qk-tma", "fp8-smoothv", "fp8-prepass")
DEFAULT_ROWS = ("sdpa-default", "sdpa-cudnn", "sdpa-flash", "sageattention", "fp8", "fp8-tma", "fp8-fp8qk",
                "fp8-prepass")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are CogVideoX-2B at 480x720x49."""
    ap = argparse.ArgumentParser(prog="python3 -m bench.attention", description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--heads", type=int, default=30)
    ap.add_argument("--seq", type=int, default=17776)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    ap.add_argument("--iters", type=int, default=20, help="timed calls per row")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls first (autotuning happens here)")
    ap.add_argument("--ref-heads", type=int, default=2, help="heads of batch 0 checked against fp32 math")
    ap.add_argument("--layout", choices=("hnd", "nhd"), default="hnd",
                    help="memory layout of the (B,H,S,D) inputs: contiguous, or diffusers' (B,S,H,D) view")
    ap.add_argument("--rows", default=",".join(DEFAULT_ROWS), help="comma-separated: " + ", ".join(ALL_ROWS))
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test under TRITON_INTERPRET=1")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def make_inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random N(0, 1) q, k, v of shape (B, H, S, D) in the chosen dtype and memory layout."""
    gen = torch.Generator(device=args.device).manual_seed(args.seed)
    shape = (args.batch, args.heads, args.seq, args.dim)
    if args.layout == "nhd":
        shape = (args.batch, args.seq, args.heads, args.dim)
    out = []
    for _ in range(3):
        t = torch.randn(shape, generator=gen, device=args.device, dtype=torch.float32).to(DTYPES[args.dtype])
        out.append(t.transpose(1, 2) if args.layout == "nhd" else t)
    return out[0], out[1], out[2]


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """fp32 math attention (no TF32) for batch 0, heads [0, heads), one head at a time."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        outs = []
        for h in range(heads):
            qh, kh, vh = (t[0, h].float() for t in (q, k, v))
            p = torch.softmax((qh @ kh.T) * scale, dim=-1)
            outs.append(p @ vh)
            del p
        return torch.stack(outs)[None]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def errors(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """max abs error, mean relative error (mean|o-r| / mean|r|) and cosine similarity, over the slice."""
    o = out[:1, : ref.shape[1]].float().flatten()
    r = ref.flatten()
    diff = (o - r).abs()
    return {"max_abs_err": diff.max().item(), "mean_rel_err": (diff.mean() / r.abs().mean()).item(),
            "cosine": torch.nn.functional.cosine_similarity(o, r, dim=0).item()}


@contextlib.contextmanager
def sdpa_backend(name: str | None) -> Iterator[None]:
    """Force one SDPA backend (no fallback), or leave PyTorch's choice when name is None."""
    if name is None:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([getattr(SDPBackend, name)]):
        yield


def sdpa_row(backend: str | None) -> Callable[..., torch.Tensor]:
    """An SDPA call under a forced backend."""
    def call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with sdpa_backend(backend):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return call


def sage_row() -> Callable[..., torch.Tensor]:
    """sageattention.sageattn in HND layout (raises ImportError when not installed)."""
    from sageattention import sageattn

    def call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return sageattn(q, k, v, tensor_layout="HND", is_causal=False)
    return call


def fp8_row(**kwargs: Any) -> Callable[..., torch.Tensor]:
    """bench.fp8_attention with the given options."""
    from bench.fp8_attention import fp8_attention

    def call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return fp8_attention(q, k, v, **kwargs)
    return call


def prepass_row() -> Callable[..., torch.Tensor]:
    """Only the quantization pre-pass of fp8_attention (its share of the fp8 row's time)."""
    from bench.fp8_attention import quantize

    def call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return quantize(q, k, v)["q"]
    return call


def build_row(name: str) -> Callable[..., torch.Tensor]:
    """The callable for one row name."""
    table: dict[str, Callable[[], Callable[..., torch.Tensor]]] = {
        "sdpa-default": lambda: sdpa_row(None),
        "sdpa-cudnn": lambda: sdpa_row("CUDNN_ATTENTION"),
        "sdpa-flash": lambda: sdpa_row("FLASH_ATTENTION"),
        "sageattention": sage_row,
        "fp8": lambda: fp8_row(),
        "fp8-tma": lambda: fp8_row(use_tma=True),
        "fp8-fp8qk": lambda: fp8_row(qk_dtype="fp8"),
        "fp8-fp8qk-tma": lambda: fp8_row(qk_dtype="fp8", use_tma=True),
        "fp8-smoothv": lambda: fp8_row(smooth_v=True),
        "fp8-prepass": prepass_row,
    }
    if name not in table:
        raise ValueError(f"unknown row {name!r}; choose from {', '.join(ALL_ROWS)}")
    return table[name]()


def time_call(fn: Callable[[], torch.Tensor], iters: int, warmup: int,
              device: str) -> tuple[float, torch.Tensor]:
    """Mean ms per call after `warmup` untimed calls (CUDA events on GPU, perf_counter on CPU)."""
    out = fn()
    for _ in range(max(warmup - 1, 0)):
        out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            out = fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / iters, out
    t0 = time.perf_counter()
    for _ in range(iters):
        out = fn()
    return (time.perf_counter() - t0) * 1000 / iters, out


def best_config(name: str) -> str:
    """The autotuner's pick for an fp8 row, if it ran."""
    if not name.startswith("fp8") or name == "fp8-prepass":
        return ""
    try:
        from bench.fp8_attention import _attn_fwd_tuned

        cfg = _attn_fwd_tuned.best_config
        return "" if cfg is None else (f"BM={cfg.kwargs['BLOCK_M']} BN={cfg.kwargs['BLOCK_N']} "
                                       f"w={cfg.num_warps} s={cfg.num_stages}")
    except Exception:  # noqa: BLE001 - informational only
        return ""


def run_row(name: str, qkv: tuple[torch.Tensor, ...], ref: torch.Tensor, args: argparse.Namespace,
            flops: float) -> dict[str, Any]:
    """Time one row and measure its error; failures come back as {'error': ...}."""
    row: dict[str, Any] = {"kernel": name}
    try:
        fn = build_row(name)
        ms, out = time_call(lambda: fn(*qkv), args.iters, args.warmup, args.device)
        row.update(ms=ms, tflops=flops / ms / 1e9)
        if name != "fp8-prepass":
            if out.shape != qkv[0].shape or out.dtype != qkv[0].dtype:
                raise RuntimeError(f"bad output {tuple(out.shape)} {out.dtype}")
            row.update(errors(out, ref))
        cfg = best_config(name)
        if cfg:
            row["config"] = cfg
        del out
    except Exception as exc:  # noqa: BLE001 - one failing row must not stop the others
        row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        traceback.print_exc(file=sys.stderr)
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """The result table, with speedups relative to PyTorch's default SDPA (cuDNN on Hopper)."""
    base = next((r["ms"] for r in rows if r["kernel"] == "sdpa-default" and "ms" in r), None)
    lines = ["| kernel | ms per call | TFLOP/s | vs SDPA | max abs err | mean rel err | cosine | note |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        if "ms" not in r:
            lines.append(f"| {r['kernel']} | - | - | - | - | - | - | {r.get('error', '')} |")
            continue
        speed = f"{base / r['ms']:.2f}x" if base else "-"
        err = [f"{r[k]:.3e}" if k in r else "-" for k in ("max_abs_err", "mean_rel_err")]
        cos = f"{r['cosine']:.6f}" if "cosine" in r else "-"
        note = r.get("config", "") or r.get("error", "")
        lines.append(f"| {r['kernel']} | {r['ms']:.3f} | {r['tflops']:.1f} | {speed} | {err[0]} | {err[1]} | "
                     f"{cos} | {note} |")
    return "\n".join(lines)


def environment(args: argparse.Namespace) -> dict[str, str]:
    """Card and library versions."""
    env = {"torch": torch.__version__, "python": platform.python_version()}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = "missing"
    try:
        from importlib.metadata import version

        import sageattention  # noqa: F401

        env["sageattention"] = version("sageattention")
    except Exception:  # noqa: BLE001
        env["sageattention"] = "missing"
    if args.device.startswith("cuda"):
        env["card"] = torch.cuda.get_device_name()
        env["cuda"] = str(torch.version.cuda)
        env["cudnn"] = str(torch.backends.cudnn.version())
    else:
        env["card"] = "cpu"
    return env


def main(argv: list[str] | None = None) -> int:
    """Run the rows, print the table, write $OUT/attention.jsonl when OUT is set."""
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU (or --device cpu with TRITON_INTERPRET=1)")
        return 2
    env = environment(args)
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    B, H, S, D = args.batch, args.heads, args.seq, args.dim
    print(f"shape (B,H,S,D)=({B},{H},{S},{D}) {args.dtype} layout={args.layout} iters={args.iters} "
          f"warmup={args.warmup} reference: fp32 math on batch 0, heads 0..{min(args.ref_heads, H) - 1}")
    qkv = make_inputs(args)
    ref = reference(*qkv, heads=min(args.ref_heads, H))
    flops = 4.0 * B * H * S * S * D
    rows = []
    for name in [r.strip() for r in args.rows.split(",") if r.strip()]:
        row = run_row(name, qkv, ref, args, flops)
        rows.append(row)
        print(f"  {name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in row.items() if k != "kernel"), flush=True)
    print()
    print(markdown(rows))
    out_dir = os.environ.get("OUT")
    if out_dir:
        path = Path(out_dir) / "attention.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        base = next((r["ms"] for r in rows if r["kernel"] == "sdpa-cudnn" and "ms" in r), None)
        with path.open("a", encoding="utf-8") as fh:
            for r in rows:
                rec = {**r, "B": B, "H": H, "S": S, "D": D, "dtype": args.dtype, "layout": args.layout,
                       "iters": args.iters, **env}
                if base and "ms" in r:
                    rec["vs_cudnn"] = base / r["ms"]
                fh.write(json.dumps(rec) + "\n")
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
