"""A config.yaml of the first release keeps working: its flat `video:` / `image:` keys are read in their
nested place with one deprecation line each, the same setting in both spellings is refused, and the
command line, hot reload and the bot's own comment-keeping writes all go through the same mapping."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from ruamel.yaml import YAML

from bot.config import AppConfig, ConfigError, load, parse
from bot.config.legacy import LEGACY_KEYS, nest
from tests.bot.ops_doubles import make_app
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]
RELEASE_0_1 = REPO / "tests" / "data" / "config-0.1.yaml"


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    seen: list[str] = []
    sink = logger.add(lambda message: seen.append(message.record["message"]), level="WARNING")
    yield seen
    logger.remove(sink)


def test_the_first_releases_file_loads_unchanged_and_means_what_the_new_template_means(warnings) -> None:
    old = load(RELEASE_0_1)
    template = load(REPO / "config.yaml")  # the shipped template, rewritten nested, says the same ...
    shown = {"show_prompt": True}  # ... except that seeds and English text are no longer shown to everyone
    # and that video.backend is auto now (local with weights and a GPU, else a hosted API): a file that
    # chose local keeps local
    assert (old.video.backend, template.video.backend) == ("local", "auto")
    video = template.video.model_copy(update={**shown, "backend": "local"})
    template = template.model_copy(update={"video": video, "image": template.image.model_copy(update=shown)})
    assert old == template
    flat = YAML(typ="safe").load(RELEASE_0_1.read_text(encoding="utf-8"))
    moved = [(section, key) for section in ("video", "image") for key in flat[section]
             if key in LEGACY_KEYS[section]]
    assert len(moved) == 52
    new = {(section, key): ".".join((section, *LEGACY_KEYS[section][key])) for section, key in moved}
    assert warnings == [f"config: {section}.{key} is deprecated, use {new[section, key]}"
                        for section, key in moved]
    assert "config: video.model_path is deprecated, use video.model.path" in warnings


def test_every_first_release_key_is_mapped_or_kept() -> None:
    flat = YAML(typ="safe").load(RELEASE_0_1.read_text(encoding="utf-8"))
    for section in ("video", "image"):
        model = type(getattr(AppConfig(), section))
        for key in flat[section]:
            if key in LEGACY_KEYS[section]:
                group, new = LEGACY_KEYS[section][key]
                assert new in type(getattr(getattr(AppConfig(), section), group)).model_fields, (section, key)
            else:
                assert key in model.model_fields, f"{section}.{key} is neither mapped nor a field any more"


VIDEO_FAMILIES = {
    "model": ({"model_path": "/weights/cogvideox-5b", "variant": "5b", "dtype": "bfloat16",
               "memory_mode": "group_offload", "vae_tiling": False, "vae_slicing": True,
               "quantization": "fp8_dynamic"},
              {"path": Path("/weights/cogvideox-5b"), "variant": "5b", "dtype": "bfloat16",
               "memory_mode": "group_offload", "vae_tiling": False, "vae_slicing": True,
               "quantization": "fp8_dynamic"}),
    "sampling": ({"num_frames": 17, "steps": 20, "guidance": 4.5, "fps": 16, "height": 240, "width": 352,
                  "max_steps": 40}, None),
    "encode": ({"bitrate_kbps": 900, "max_mp4_mb": 1.5, "x264_preset": "medium"}, None),
    "speed": ({"compile": "blocks", "compile_cache_dir": "/cache/inductor", "fuse_qkv": True,
               "attention": "cudnn", "step_cache": 0.05, "vae_tile_size": [144, 240]},
              {"compile": "blocks", "compile_cache_dir": Path("/cache/inductor"), "fuse_qkv": True,
               "attention": "cudnn", "step_cache": 0.05, "vae_tile_size": (144, 240)}),
    "remote": ({"remote_url": "http://gpu-box:8000", "remote_timeout_s": 600, "remote_poll_s": 0.5},
               {"url": "http://gpu-box:8000", "timeout_s": 600, "poll_s": 0.5}),
    "queue": ({"max_pending_per_user": None, "seconds_per_job": 90, "media_max_age_hours": 24}, None),
}
IMAGE_FAMILIES = {
    "model": ({"model_path": "/weights/flux-dev", "variant": "dev", "dtype": "float16",
               "memory_mode": "model_cpu_offload", "vae_tiling": True, "vae_slicing": True,
               "quantization": "int8_weight_only"},
              {"path": Path("/weights/flux-dev"), "variant": "dev", "dtype": "float16",
               "memory_mode": "model_cpu_offload", "vae_tiling": True, "vae_slicing": True,
               "quantization": "int8_weight_only"}),
    "sampling": ({"steps": 8, "guidance": 3.5, "height": 512, "width": 512, "max_steps": 30}, None),
    "encode": ({"format": "png", "jpeg_quality": 80}, None),
    "api": ({"api_base_url": "https://images.example/v1", "api_model": "dall-e-3", "api_size": "1792x1024",
             "api_response_format": "url", "api_timeout_s": 30, "api_retries": 3},
            {"base_url": "https://images.example/v1", "model": "dall-e-3", "size": "1792x1024",
             "response_format": "url", "timeout_s": 30, "retries": 3}),
    "queue": ({"max_pending_per_user": 1, "seconds_per_job": 5, "media_max_age_hours": 12}, None),
}
FAMILIES = [("video", group, old, new) for group, (old, new) in VIDEO_FAMILIES.items()] + [
    ("image", group, old, new) for group, (old, new) in IMAGE_FAMILIES.items()]


@pytest.mark.parametrize("section, group, old, new", FAMILIES, ids=[f"{s}.{g}" for s, g, _, _ in FAMILIES])
def test_each_family_of_old_keys_lands_in_its_sub_section(section: str, group: str, old: dict[str, Any],
                                                          new: dict[str, Any] | None, warnings) -> None:
    text = f"{section}:\n" + "".join(f"  {key}: {yaml_value(value)}\n" for key, value in old.items())
    config = parse(text)
    assert getattr(getattr(config, section), group).model_dump() == (
        getattr(getattr(AppConfig(), section), group).model_dump() | (new or old))
    assert len(warnings) == len(old)
    assert all(f"use {section}.{group}." in line for line in warnings)


def yaml_value(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def test_old_and_new_keys_together_mix_per_sub_section(warnings) -> None:
    config = parse("video:\n  steps: 12\n  sampling:\n    fps: 16\n  remote_url: http://box:1\n")
    assert (config.video.sampling.steps, config.video.sampling.fps) == (12, 16)
    assert config.video.remote.url == "http://box:1"
    assert config.video.sampling.num_frames == 49 and len(warnings) == 2


def test_the_same_setting_in_both_spellings_is_an_error() -> None:
    text = "video:\n  model_path: /a\n  model:\n    path: /b\nimage:\n  api_model: x\n  api: {model: y}\n"
    with pytest.raises(ConfigError) as caught:
        parse(text)
    message = str(caught.value)
    assert "video.model_path（第 2 行）和 video.model.path（第 4 行）是同一个设置" in message
    assert "只留 video.model.path" in message
    assert "image.api_model（第 6 行）和 image.api.model（第 7 行）" in message


def test_a_bad_value_under_an_old_key_names_the_key_and_line_as_written() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("llm:\n  model: m\nvideo:\n  steps: 0\n  vae_tile_size: [100, 100]\n")
    message = str(caught.value)
    assert "video.steps（第 4 行）" in message and "不能小于 1" in message
    assert "video.vae_tile_size（第 5 行）" in message and "48 的倍数" in message


def test_a_remote_backend_without_its_url_is_refused_in_either_layout() -> None:
    for text in ("video:\n  backend: remote\n", "video:\n  backend: remote\n  remote_poll_s: 1\n"):
        with pytest.raises(ConfigError, match="video.remote.url"):
            parse(text)


def test_a_partial_queue_keeps_its_kinds_defaults() -> None:
    config = parse("video:\n  queue: {seconds_per_job: 30}\nimage:\n  media_max_age_hours: 1\n")
    assert config.video.queue.max_pending_per_user == 2 and config.video.queue.seconds_per_job == 30
    assert config.image.queue.max_pending_per_user == 3 and config.image.queue.seconds_per_job == 20


def test_nest_reads_flat_settings_for_tools() -> None:
    assert nest("video", {"compile": "blocks", "memory_mode": "gpu", "steps": 4, "show_prompt": False}) == {
        "speed": {"compile": "blocks"}, "model": {"memory_mode": "gpu"}, "sampling": {"steps": 4},
        "show_prompt": False}
    with pytest.raises(ValueError, match="same setting"):
        nest("video", {"steps": 4, "sampling": {"steps": 5}})


def test_check_config_accepts_the_first_releases_file_and_names_each_deprecated_key() -> None:
    done = subprocess.run([sys.executable, "-m", "bot", "check-config", str(RELEASE_0_1)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "没有问题" in done.stdout
    assert "config: video.model_path is deprecated, use video.model.path" in done.stderr
    assert "config: image.api_model is deprecated, use image.api.model" in done.stderr


async def test_hot_reload_and_the_bots_own_writes_go_through_the_mapping(tmp_path: Path) -> None:
    app, _channel = make_app(tmp_path, "bot:\n  admins: [alice]\n")
    watcher = app.config_watcher
    await watcher.start()
    await asyncio.sleep(0.3)
    try:
        old = RELEASE_0_1.read_text(encoding="utf-8").replace("  steps: 50 ", "  steps: 7  ")
        watcher.path.write_text(old, encoding="utf-8")
        await wait_until(lambda: app.live_config().video.sampling.steps == 7, within=3.0)
        assert app.live_config().image.api.model == "gpt-image-1"
        # what #禁用本群 does: edit the document, validate it (old keys and all), write it keeping comments
        await watcher.update(lambda doc: doc["groups"]["deny"].append("吵闹群"))
    finally:
        await watcher.stop()
    assert app.live_config().groups.deny == ("吵闹群",) and app.live_config().video.sampling.steps == 7
    written = watcher.path.read_text(encoding="utf-8")
    assert "  model_path: null        # a diffusers CogVideoX folder" in written  # untouched, comment kept
