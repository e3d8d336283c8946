"""How benchmark results are reported: the machine line, one JSON line per row, and a markdown table."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any

GIB = 1024**3


def environment() -> dict[str, Any]:
    """The card and the software versions, stamped on every row."""
    import diffusers
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["card"] = torch.cuda.get_device_name(0)
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        info["gpu_gib"] = round(torch.cuda.get_device_properties(0).total_memory / GIB, 1)
    else:
        info["card"] = f"CPU ({platform.processor() or platform.machine()})"
    return info


def error_text(exc: BaseException) -> str:
    """A failed row's `error` cell: the type and the first 300 characters on one line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def round_value(value: float, digits: int = 2) -> float | str:
    return "inf" if math.isinf(value) else round(value, digits)


COLUMNS = [("row", "row"), ("settings", "settings"), ("s_per_step", "s/step"),
           ("denoise_s", "denoise (s)"),
           ("est_denoise_50_s", "50 steps (s)"), ("vae_decode_s", "VAE decode (s)"),
           ("est_total_50_s", "50 steps + decode (s)"), ("peak_denoise_gib", "peak denoise GiB"),
           ("peak_decode_gib", "peak decode GiB"), ("decode_work_gib", "decode work GiB"),
           ("peak_gib", "peak GiB"), ("first_decode_s", "first decode (s)"),
           ("warmup_s", "warm-up (s)"), ("warmup_run_s", "warm-up run (s)"),
           ("psnr_db", "PSNR dB"), ("latent_rel_err", "latent rel. err"),
           ("speedup", "vs plain")]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One markdown table; a speed-up column against the plain row of the same model and steps."""
    anchors: dict[tuple[Any, Any], float] = {}
    for r in rows:  # the first plain row per (model, steps) is the anchor
        if r.get("row") == "plain" and r.get("s_per_step"):
            anchors.setdefault((r.get("model"), r.get("steps")), r["s_per_step"])
    used = [c for c in COLUMNS if any(c[0] in r for r in rows) or c[0] == "speedup"]
    lines = ["| " + " | ".join(h for _, h in used) + " |", "|" + "---|" * len(used)]
    for r in rows:
        anchor = anchors.get((r.get("model"), r.get("steps")))
        cells = []
        for key, _ in used:
            if key == "speedup":
                value = f"{anchor / r['s_per_step']:.2f}x" if anchor and r.get("s_per_step") else ""
            elif key == "settings":
                settings = dict(r.get("settings") or {})
                if r.get("cap_gib"):
                    settings["cap_gib"] = r["cap_gib"]
                value = ", ".join(f"{k}={v}" for k, v in settings.items()) or "(defaults)"
            else:
                value = r.get(key, "")
            cells.append(str(value if value is not None else ""))
        if "error" in r:
            cells[-1] = f"error: {r['error'][:120]}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def emit(row: dict[str, Any], out: Path | None, name: str) -> None:
    """One result: a JSON line on stdout and, with `out`, appended to `out/name`."""
    line = json.dumps(row, ensure_ascii=False)
    print(line, flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with (out / name).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def print_table(results: list[dict[str, Any]], env: dict[str, Any]) -> str:
    """The results as a markdown table under the machine's line; returns the table."""
    table = markdown_table(results)
    print(f"\n{env['card']} | torch {env['torch']} | diffusers {env['diffusers']}\n\n{table}", flush=True)
    return table
