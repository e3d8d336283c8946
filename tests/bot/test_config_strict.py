"""`check-config` is as strict as the code that runs later: the generators' own limits, plain words for
the common type slips, the file and line of a YAML syntax error, and the key that was probably meant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, parse

REPO_ROOT = Path(__file__).resolve().parents[2]


def check_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "bot", "check-config", str(path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, "config.yaml")
    return str(caught.value)


@pytest.mark.parametrize("frames", [50, 8, 1, 48])
def test_video_frames_must_be_eight_k_plus_one(frames: int) -> None:
    message = problem(f"video:\n  sampling:\n    num_frames: {frames}\n")
    assert "video.sampling.num_frames（第 3 行）" in message
    assert "8k+1" in message and "49" in message


@pytest.mark.parametrize("frames", [9, 17, 49])
def test_video_frames_of_the_form_eight_k_plus_one_pass(frames: int) -> None:
    assert parse(f"video:\n  sampling:\n    num_frames: {frames}\n").video.sampling.num_frames == frames


@pytest.mark.parametrize("section,key", [("video", "height"), ("video", "width"),
                                         ("image", "height"), ("image", "width")])
def test_sizes_must_be_multiples_of_16(section: str, key: str) -> None:
    message = problem(f"{section}:\n  sampling:\n    {key}: 470\n")
    assert f"{section}.sampling.{key}（第 3 行）" in message and "16 的倍数" in message


@pytest.mark.parametrize("section", ["video", "image"])
def test_steps_above_max_steps_are_refused(section: str) -> None:
    message = problem(f"{section}:\n  sampling:\n    steps: 80\n    max_steps: 40\n")
    assert f"{section}.sampling.steps（第 3 行）" in message and "max_steps" in message and "40" in message


def test_image_side_out_of_range_is_refused() -> None:
    message = problem("image:\n  sampling:\n    height: 32\n")
    assert "image.sampling.height（第 3 行）" in message and "64" in message


def test_config_and_request_share_the_frame_rule() -> None:
    from generators.base import GeneratorError
    from generators.cogvideox import VideoRequest, validate_request
    from generators.rules import frames_problem

    for frames in (8, 9, 17, 50):
        refused_by_request = True
        try:
            validate_request(VideoRequest("a cat", num_frames=frames))
        except GeneratorError:
            pass
        else:
            refused_by_request = False
        assert (frames_problem(frames) is not None) == refused_by_request


def test_a_word_where_a_list_belongs_says_so() -> None:
    message = problem("bot:\n  name: 小爱\n  admins: mom\n")
    assert "bot.admins（第 3 行）：应该是一个列表，比如 [mom]" in message
    assert "valid tuple" not in message


def test_a_word_where_a_number_belongs_says_so() -> None:
    message = problem("llm:\n  timeout_s: soon\n")
    assert "llm.timeout_s（第 2 行）：应该是数字，比如 20" in message and "'soon'" in message
    message = problem("video:\n  sampling:\n    steps: many\n")
    assert "video.sampling.steps（第 3 行）：应该是整数，比如 50" in message


def test_a_word_where_true_or_false_belongs_says_so() -> None:
    message = problem("video:\n  model:\n    vae_tiling: maybe\n")
    assert "video.model.vae_tiling（第 3 行）：应该是 true 或 false" in message


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    message = problem("llm:\n  model: [x\n")
    assert "<unicode string>" not in message
    assert message.startswith("config.yaml 第 2 行") and "括号没有配对" in message  # where "[" was opened


@pytest.mark.parametrize("text,line,meant", [
    ("llm:\n  timeot_s: 3\n", "llm.timeot_s（第 2 行）", "是不是想写 timeout_s？"),
    ("vidoe:\n  backend: local\n", "vidoe（第 1 行）", "是不是想写 video？"),
    ("video:\n  sampling:\n    num_frame: 9\n", "video.sampling.num_frame（第 3 行）",
     "是不是想写 num_frames？"),
])
def test_an_unknown_key_suggests_the_one_probably_meant(text: str, line: str, meant: str) -> None:
    message = problem(text)
    assert line in message and "没有这个设置" in message and meant in message


def test_an_unknown_key_with_nothing_close_gets_no_guess() -> None:
    message = problem("llm:\n  zzzzqqq: 3\n")
    assert "llm.zzzzqqq（第 2 行）：没有这个设置" in message and "是不是想写" not in message


def test_check_config_prints_the_friendly_problems(tmp_path: Path) -> None:
    result = check_config(tmp_path, "bot:\n  admins: mom\nllm:\n  timeot_s: 3\n"
                                    "video:\n  sampling:\n    num_frames: 50\n")
    assert result.returncode != 0, result.stdout
    assert "bot.admins（第 2 行）：应该是一个列表，比如 [mom]" in result.stderr
    assert "是不是想写 timeout_s？" in result.stderr
    assert "video.sampling.num_frames（第 7 行）" in result.stderr and "8k+1" in result.stderr


def test_check_config_names_the_file_in_a_syntax_error(tmp_path: Path) -> None:
    result = check_config(tmp_path, "llm:\n  model: [x\n")
    assert result.returncode != 0
    assert f"{tmp_path / 'config.yaml'} 第 2 行" in result.stderr and "<unicode string>" not in result.stderr


def test_check_config_accepts_a_config_within_every_limit(tmp_path: Path) -> None:
    result = check_config(tmp_path, "video:\n  sampling: {num_frames: 17, steps: 20, height: 64, width: 96}\n"
                                    "image:\n  sampling: {steps: 4, height: 512, width: 512}\n")
    assert result.returncode == 0, result.stderr
