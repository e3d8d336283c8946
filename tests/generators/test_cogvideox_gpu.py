"""GPU check: the production generator at the real 2B size (random weights), 480x720x49.

Off by default (`gpu` marker). Run on a CUDA machine:
    python -m pytest -m gpu tests/generators/test_cogvideox_gpu.py -s
It builds a full-size random 2B folder (T5-XXL included) on the GPU, saves it, loads it through the
production loader and renders a few steps, printing s/step, VAE decode time and peak GPU memory
(JSON also written to $GPU_CHECK_OUT/gpu_check.json when set). GPU_CHECK_RUNS lists the loads to
try, as mode:quantization:tiling|notiling:steps, e.g.
GPU_CHECK_RUNS=gpu:none:tiling:5,gpu:fp8_dynamic:tiling:5,model_cpu_offload:none:tiling:3
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

GIB = 1024**3


def _render(generator, steps: int) -> dict:  # noqa: ANN001
    from generators.cogvideox import VideoRequest

    pipe = generator._pipe  # instrumentation only: time the VAE decode the pipeline calls
    original_decode = pipe.vae.decode
    marks: dict[str, float] = {}

    def timed_decode(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        torch.cuda.synchronize()
        started = time.perf_counter()
        out = original_decode(*args, **kwargs)
        torch.cuda.synchronize()
        marks["decode_s"] = marks.get("decode_s", 0.0) + time.perf_counter() - started
        return out

    step_times: list[float] = []

    def on_step(i: int, n: int) -> None:
        torch.cuda.synchronize()
        step_times.append(time.perf_counter())
        if i == n:
            marks["denoise_peak_gib"] = torch.cuda.max_memory_allocated() / GIB
            torch.cuda.reset_peak_memory_stats()

    pipe.vae.decode = timed_decode
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        result = generator.generate(VideoRequest("a panda plays the guitar in a bamboo forest, cinematic",
                                                 num_frames=49, steps=steps, seed=0), on_step=on_step)
    finally:
        pipe.vae.decode = original_decode
    total = time.perf_counter() - started
    gaps = [b - a for a, b in zip(step_times, step_times[1:], strict=False)]
    assert result.frames.shape == (49, 480, 720, 3)
    return {
        "steps": steps,
        "first_step_s": round(step_times[0] - started, 3),
        "s_per_step": round(sum(gaps) / len(gaps), 3) if gaps else None,
        "vae_decode_s": round(marks["decode_s"], 3),
        "total_s": round(total, 2),
        "peak_denoise_gib": round(marks["denoise_peak_gib"], 2),
        "peak_decode_gib": round(torch.cuda.max_memory_allocated() / GIB, 2),
        "frame_std": float(result.frames.std()),
    }


@pytest.mark.timeout(1200)
def test_full_size_2b_random_weights(tmp_path: Path) -> None:
    from bot.config import VideoConfig
    from generators.cogvideox import CogVideoXGenerator
    from tests.support.tiny_models import build_cogvideox_folder

    report: dict = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__,
                    "capability": ".".join(map(str, torch.cuda.get_device_capability(0)))}
    import diffusers

    report["diffusers"] = diffusers.__version__
    started = time.perf_counter()
    folder = build_cogvideox_folder(tmp_path / "cogvideox-2b-random", "2b", "full", device="cuda")
    torch.cuda.empty_cache()
    report["build_and_save_s"] = round(time.perf_counter() - started, 1)
    runs = []  # mode:quantization:tiling|notiling:steps
    for spec in os.environ.get("GPU_CHECK_RUNS", "gpu:none:tiling:5").split(","):
        mode, quantization, tiling, steps = spec.split(":")
        runs.append((mode, quantization, tiling == "tiling", int(steps)))
    report["runs"] = []
    out_dir = os.environ.get("GPU_CHECK_OUT")
    deadline = started + float(os.environ.get("GPU_CHECK_BUDGET_S", "480"))
    for mode, quantization, tiling, steps in runs:
        if time.perf_counter() > deadline:
            report["runs"].append({"mode": mode, "quantization": quantization, "skipped": "time budget"})
            continue
        generator = CogVideoXGenerator(VideoConfig(model={
            "path": folder, "memory_mode": mode, "quantization": quantization, "vae_tiling": tiling}))
        try:
            generator.load()
            entry = {"mode": mode, "quantization": quantization, "vae_tiling": tiling,
                     "load_s": round(generator.info.load_seconds, 1), "dtype": generator.info.dtype,
                     "resident_gib": round(torch.cuda.memory_allocated() / GIB, 2)}
            entry.update(_render(generator, steps))
            entry["status"] = generator.info.summary()
        except Exception as exc:  # noqa: BLE001 - report every mode, then fail below
            entry = {"mode": mode, "quantization": quantization, "error": f"{type(exc).__name__}: {exc}"}
        generator.unload()
        report["runs"].append(entry)
        print(json.dumps(entry, ensure_ascii=False), flush=True)
        if out_dir:
            Path(out_dir, "gpu_check.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    report["gpu_after"] = str(gpu_memory())
    print(json.dumps(report, indent=1, ensure_ascii=False))
    if out_dir:
        Path(out_dir, "gpu_check.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    assert "error" not in report["runs"][0], report["runs"][0]


# -- reporting (this test's own: the product has no use for it) ------------------------------------
@dataclass(frozen=True)
class GpuMemory:
    """One CUDA device's name and memory, in GiB (reported by this test)."""

    name: str
    total_gib: float
    allocated_gib: float
    reserved_gib: float
    peak_allocated_gib: float

    def summary(self) -> str:
        return (f"{self.name}: 已用 {self.allocated_gib:.1f} GiB（保留 {self.reserved_gib:.1f}，"
                f"峰值 {self.peak_allocated_gib:.1f}）/ 共 {self.total_gib:.0f} GiB")


def gpu_memory(device: int = 0) -> GpuMemory | None:
    """Current memory of CUDA device `device`, or None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    gib = 1024**3
    props = torch.cuda.get_device_properties(device)
    return GpuMemory(
        name=props.name,
        total_gib=props.total_memory / gib,
        allocated_gib=torch.cuda.memory_allocated(device) / gib,
        reserved_gib=torch.cuda.memory_reserved(device) / gib,
        peak_allocated_gib=torch.cuda.max_memory_allocated(device) / gib,
    )
