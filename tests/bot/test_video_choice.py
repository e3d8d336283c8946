"""`video.backend: auto`: local with weights and a CUDA GPU, else the hosted API whose key is set, else
local (the playground's demo model); `xiaoai doctor` says which and why, never the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config import VideoConfig
from bot.jobs import video_choice
from bot.jobs.video_choice import choose

ZHIPU = {"zhipu": "zk-test-0123456789"}


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    folder = tmp_path / "cogvideox"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "CogVideoXPipeline"}))
    return folder


def video(path: Path, **section) -> VideoConfig:
    return VideoConfig(model={"path": str(path)}, **section)


def test_weights_and_a_gpu_render_here(weights, monkeypatch):
    monkeypatch.setattr(video_choice, "cuda_gpu_present", lambda: True)
    choice = choose(video(weights), ZHIPU)
    assert (choice.backend, choice.provider) == ("local", None) and "CUDA GPU" in choice.reason


def test_weights_without_a_gpu_go_to_the_api_when_a_key_is_set(weights, monkeypatch):
    monkeypatch.setattr(video_choice, "cuda_gpu_present", lambda: False)
    choice = choose(video(weights), ZHIPU)
    assert (choice.backend, choice.provider) == ("api", "zhipu")
    assert choice.reason == "no CUDA GPU here, ZHIPUAI_API_KEY is set" and ZHIPU["zhipu"] not in choice.reason


def test_no_weights_and_only_the_other_providers_key(tmp_path, monkeypatch):
    monkeypatch.setattr(video_choice, "cuda_gpu_present", lambda: True)
    missing = tmp_path / "none"
    assert choose(video(missing), {"dashscope": "sk-1"}).provider == "dashscope"  # no provider named
    named = video(missing, api={"provider": "zhipu"})
    assert choose(named, {"dashscope": "sk-1"}).backend == "local"  # zhipu named, its key missing


def test_nothing_set_falls_back_to_local_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(video_choice, "cuda_gpu_present", lambda: False)
    choice = choose(video(tmp_path / "none"), {})
    assert choice.backend == "local" and "neither ZHIPUAI_API_KEY or DASHSCOPE_API_KEY" in choice.reason


def test_an_explicit_backend_is_kept(tmp_path):
    assert choose(video(tmp_path, backend="local"), ZHIPU).backend == "local"
    assert choose(video(tmp_path, backend="api"), {}).text == "api (zhipu)"


def test_the_playground_demo_model_is_not_built_when_the_api_makes_videos(tmp_path):
    from bot.config import AppConfig
    from bot.runtime.playground import with_demo_models

    config = AppConfig(data_dir=tmp_path, video={"model": {"path": str(tmp_path / "none")}},
                       image={"backend": "api"})
    same, labels = with_demo_models(config, ZHIPU)
    assert labels == {} and same.video == config.video
    assert not (tmp_path / "demo-models").exists()


def test_doctor_says_where_videos_go_and_why(tmp_path, monkeypatch, capsys):
    from bot.__main__ import main

    monkeypatch.setenv("ZHIPUAI_API_KEY", ZHIPU["zhipu"])
    path = tmp_path / "config.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\nvideo:\n  model:\n    path: {tmp_path / 'none'}\n",
                    encoding="utf-8")
    main(["doctor", "--config", str(path)])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("[OK ] 视频:"))
    assert line.startswith("[OK ] 视频: 云端 智谱 CogVideoX（没有模型权重")
    assert "已设置 ZHIPUAI_API_KEY" in line and ZHIPU["zhipu"] not in out
    assert "视频模型文件" not in out  # the API makes the videos: missing weights are no problem
    if not video_choice.cuda_gpu_present():  # nor is the missing GPU
        assert "[OK ] 显卡: 这台机器没有，视频在别处生成" in out
    main(["doctor", "--config", str(path), "--lang", "en"])
    english = capsys.readouterr().out
    assert "[OK ] videos: auto -> api (zhipu): no CogVideoX weights" in english
    assert "ZHIPUAI_API_KEY is set" in english
