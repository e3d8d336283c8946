"""The benchmark code paths on CPU with the tiny random CogVideoX (the GPU numbers are in BENCHMARKS.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.fidelity import psnr, relative_error
from bench.report import markdown_table
from bench.video import References, RowSpec, parse_row
from bot.__main__ import main
from bot.config import VideoConfig
from generators.cogvideox import CogVideoXGenerator, VideoRequest
from tests.support.tiny_models import build_cogvideox_folder, build_flux_folder


@pytest.fixture(scope="module")
def tiny_2b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cogvideox_folder(tmp_path_factory.mktemp("bench") / "CogVideoX-2b", "2b")


def test_fidelity_of_identical_inputs_is_perfect() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    assert psnr(frames, frames.copy()) == math.inf
    assert relative_error(frames, frames.copy()) == 0.0


def test_fidelity_measures_a_difference() -> None:
    frames = np.full((2, 4, 4, 3), 100, dtype=np.uint8)
    moved = frames + 1
    assert psnr(frames, moved) == pytest.approx(20 * math.log10(255), rel=1e-9)  # mse 1
    assert relative_error(frames, moved) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(frames, frames[:1])


def test_rows_parse_from_presets_and_custom_settings() -> None:
    assert parse_row("plain", 6) == RowSpec("plain", {}, 6, None)
    assert parse_row("plain", 6).is_reference
    fbc = parse_row("fbc-0.1:steps=20", 6)
    assert (fbc.settings, fbc.steps) == ({"step_cache": 0.1}, 20)
    capped = parse_row("group-offload-4g", 6)
    assert capped.settings == {"memory_mode": "group_offload", "vae_tile_size": [144, 240]}
    assert (capped.cap_gib, capped.is_reference) == (4.0, False)
    mine = parse_row("mine:attention=sage,fuse_qkv=true,vae_tile_size=480x360", 6)
    assert mine.settings == {"attention": "sage", "fuse_qkv": True, "vae_tile_size": [480, 360]}
    with pytest.raises(ValueError, match="unknown row"):
        parse_row("warp-speed", 6)
    with pytest.raises(ValueError, match="not key=value"):
        parse_row("mine:fuse_qkv", 6)


def test_markdown_speedup_is_against_the_first_plain_row() -> None:
    rows = [{"row": "plain", "model": "2b", "steps": 6, "s_per_step": 0.6},
            {"row": "fast", "model": "2b", "steps": 6, "s_per_step": 0.3, "settings": {"compile": "blocks"}},
            {"row": "broken", "model": "2b", "steps": 6, "error": "RuntimeError: boom"}]
    table = markdown_table(rows)
    assert "| 2.00x |" in table and "| 1.00x |" in table and "error: RuntimeError: boom" in table


def test_bench_video_runs_end_to_end_on_the_tiny_model(tiny_2b: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "video", "--model-path", str(tiny_2b), "--steps", "2", "--rows", "plain,fused",
                 "--vae", "untiled", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    rows = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    assert code == 0, rows
    assert [r["row"] for r in rows] == ["plain", "vae:untiled", "fused"]
    plain, untiled, fused = rows
    assert plain["psnr_db"] == "inf" and plain["latent_rel_err"] == 0.0
    for key in ("s_per_step", "est_denoise_50_s", "vae_decode_s", "warmup_s", "card", "load_s"):
        assert key in plain, key
    assert plain["frames"] == [49, 64, 96, 3]
    assert fused["settings"] == {"fuse_qkv": True} and fused["psnr_db"] == "inf" or fused["psnr_db"] > 40
    assert fused["latent_rel_err"] < 1e-3
    assert untiled["psnr_db"] == "inf" or untiled["psnr_db"] > 30  # the tiny model's 64x96 is one tile
    assert "| plain |" in printed and "| vae:untiled |" in printed
    assert len((tmp_path / "video.jsonl").read_text().splitlines()) == 3
    assert "| fused |" in (tmp_path / "video.md").read_text()
    # the whole video: text encode inside the render, then the production MP4 encoder and the handoff
    assert 0 < plain["text_encode_s"] < plain["total_s"]
    assert plain["mp4_s"] > 0 and plain["handoff_s"] >= 0 and plain["mp4_bytes"] > 1000
    assert plain["whole_s"] == pytest.approx(plain["total_s"] + plain["mp4_s"] + plain["handoff_s"], abs=0.01)
    summary = json.loads((tmp_path / "whole_video.json").read_text())
    assert set(summary) == {"plain", "fused"} and summary["plain"]["whole_s"] == plain["whole_s"]


def test_a_failing_row_is_reported_and_the_rest_still_run(tiny_2b: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "video", "--model-path", str(tiny_2b), "--steps", "1", "--frames", "9",
                 "--rows", "bad:memory_mode=warp,plain"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert code == 1
    assert "error" in rows[0] and "memory_mode" in rows[0]["error"]
    assert "error" not in rows[1] and rows[1]["s_per_step"] > 0


def test_a_row_measures_no_weights_of_the_row_before(tiny_2b: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A pipeline sits in reference cycles: unless the bench collects, the previous row's weights are
    still allocated while the next row loads and counts memory."""
    import weakref

    earlier: list[weakref.ref] = []
    alive_at_load: list[int] = []
    load = CogVideoXGenerator.load

    def watched_load(self: CogVideoXGenerator) -> None:
        if self.loaded:  # generate() calls load() again
            return
        alive_at_load.append(sum(ref() is not None for ref in earlier))
        load(self)
        earlier.append(weakref.ref(self.pipeline.transformer))

    monkeypatch.setattr(CogVideoXGenerator, "load", watched_load)
    assert main(["bench", "video", "--model-path", str(tiny_2b), "--steps", "1", "--frames", "9",
                 "--rows", "plain,fused,plain"]) == 0
    capsys.readouterr()
    assert alive_at_load == [0, 0, 0]


def test_gpu_switches_on_cpu_are_skipped_with_a_clear_note(tiny_2b: Path) -> None:
    generator = CogVideoXGenerator(VideoConfig(model={"path": tiny_2b, "memory_mode": "auto"},
                                               speed={"compile": "blocks", "attention": "sage"}))
    generator.load()
    note = generator.info.note
    assert "video.speed.compile=blocks needs a CUDA GPU" in note
    assert "video.speed.attention=sage needs a CUDA GPU" in note
    result = generator.generate(VideoRequest("a panda", num_frames=9, steps=1, seed=1, height=64, width=96))
    assert result.frames.shape == (9, 64, 96, 3)


def test_fused_qkv_on_cpu_gives_the_same_video(tiny_2b: Path) -> None:
    request = VideoRequest("a panda plays the guitar", num_frames=9, steps=2, seed=3, height=64, width=96)
    plain = CogVideoXGenerator(VideoConfig(model={"path": tiny_2b})).generate(request)
    fused_generator = CogVideoXGenerator(VideoConfig(model={"path": tiny_2b}, speed={"fuse_qkv": True}))
    fused = fused_generator.generate(request)
    assert fused_generator.pipeline.transformer.transformer_blocks[0].attn1.fused_projections
    assert psnr(plain.frames, fused.frames) > 40


def test_speed_switches_are_validated() -> None:
    with pytest.raises(ValueError, match="vae_tile_size"):
        VideoConfig(speed={"vae_tile_size": (100, 360)})
    with pytest.raises(ValueError):
        VideoConfig(speed={"step_cache": 1.5})
    with pytest.raises(ValueError):
        VideoConfig(speed={"attention": "warp"})
    tiled = VideoConfig(speed={"vae_tile_size": (480, 360)}, model={"memory_mode": "group_offload"})
    assert tiled.speed.vae_tile_size == (480, 360)


def test_bench_mp4_times_the_production_encoder(tmp_path: Path) -> None:
    from bench.mp4 import run

    rows = run(["ultrafast"], frames=9, height=64, width=96, repeats=1, out=tmp_path)
    assert rows[0]["encode_s"] > 0 and rows[0]["bytes"] > 100
    assert "ultrafast" in (tmp_path / "mp4.md").read_text()


def test_rows_that_compile_or_cache_get_a_warm_up_render() -> None:
    assert parse_row("plain", 50, warmup_steps=10).warmup_steps == 0
    assert parse_row("preset-exact", 50, warmup_steps=10).warmup_steps == 0
    assert parse_row("preset-fast", 50, warmup_steps=10).warmup_steps == 10
    assert parse_row("fp8-compile-fa3", 50, warmup_steps=10).warmup_steps == 10
    assert parse_row("pab:warmup_steps=3", 50, warmup_steps=10).warmup_steps == 3


def test_bench_video_cache_and_preset_rows_on_the_tiny_model(tiny_2b: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "video", "--model-path", str(tiny_2b), "--steps", "12", "--warmup-steps", "2",
                 "--frames", "9", "--rows", "plain,pab,preset-fast"])  # preset fast's cache skips after 8
    rows = {r["row"]: r for r in (json.loads(line) for line in capsys.readouterr().out.splitlines()
                                  if line.startswith("{"))}
    assert code == 0, rows
    assert rows["pab"]["warmup_steps"] == 2 and rows["pab"]["warmup_run_s"] > 0
    assert rows["preset-fast"]["active"]["cache"] == "cachedit"
    assert rows["preset-fast"]["active"]["quantization"] == "none"  # no GPU: the preset leaves fp8 off
    for name in ("pab", "preset-fast"):  # a cache changes the output, and the bench says by how much
        assert 0 < rows[name]["latent_rel_err"] < 1


def test_bench_image_needs_a_model() -> None:
    with pytest.raises(SystemExit, match="--build"):
        main(["bench", "image"])


def test_bench_image_rows_become_the_image_section(tmp_path: Path) -> None:
    from bench.image import PRESETS, image_config

    for name, settings in PRESETS.items():
        spec = parse_row(name, 0, PRESETS)
        config = image_config(tmp_path, 576, 1024, {k: v for k, v in spec.settings.items()
                                                     if k not in ("compile", "attention")})
        assert config.model.path == tmp_path and config.model.memory_mode == "gpu"
        assert (config.sampling.height, config.sampling.width) == (576, 1024)
        assert ("fp8" in settings) == (config.model.quantization == "fp8_dynamic"), name


def test_anchors_are_kept_per_model_and_steps(tmp_path: Path) -> None:
    """2B and 5B latents have the same shape: a 5B row must never be compared with the 2B anchor."""
    refs = References(tmp_path)
    refs.put("2b", 50, np.zeros(3), np.ones(3))
    assert refs.get("5b", 50) is None and References(tmp_path).get("5b", 50) is None
    assert References(tmp_path).get("2b", 50) is not None
    assert refs.get("2b", 50, frames=9) is None  # a short run has anchors of its own


def test_bench_image_runs_end_to_end_on_a_tiny_flux(tmp_path: Path) -> None:
    """The FLUX bench on the CPU: the plain row is its anchor, a changed row is measured against it."""
    from bench.image import run

    folder = build_flux_folder(tmp_path / "FLUX.1-schnell")
    rows = run(["plain", "short:steps=1", "bf16:dtype=bfloat16"], folder, 2, 64, 64, tmp_path)
    by_name = {row["row"]: row for row in rows}
    assert not [row["error"] for row in rows if "error" in row]
    plain = by_name["plain"]
    assert plain["model"] == "flux-schnell" and plain["steps"] == 2
    assert plain["s_per_step"] > 0 and plain["vae_decode_s"] > 0 and plain["peak_gib"] is None  # no CUDA
    assert math.isinf(plain["psnr_db"]) and plain["latent_rel_err"] == 0
    assert by_name["short"]["steps"] == 1  # a row's own steps win; 1 step is an anchor of its own
    bf16 = by_name["bf16"]
    assert bf16["steps"] == 2 and 0 < bf16["latent_rel_err"] < 1 and not math.isinf(bf16["psnr_db"])
    assert len((tmp_path / "image.jsonl").read_text().splitlines()) == 3
