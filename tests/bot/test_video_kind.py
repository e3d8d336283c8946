"""The `video` job kind itself (bot/jobs/kinds/video.py): what it hands the MP4 encoder. No model:
a fake generator."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from bot.config import VideoConfig
from bot.jobs import JobRequest
from bot.jobs.kinds import VideoKind
from bot.messages import ChatRef


class FramesGenerator:
    """Returns 9 black frames, like CogVideoXGenerator.generate's VideoResult."""

    def generate(self, request: Any, on_step: Any, should_stop: Any) -> Any:
        return SimpleNamespace(frames=np.zeros((9, 16, 16, 3), dtype=np.uint8), fps=8)


def test_local_run_encodes_with_the_configured_x264_preset(tmp_path: Path, monkeypatch):
    config = VideoConfig(x264_preset="medium", height=16, width=16, num_frames=9)
    kind = VideoKind(lambda: config)
    kind._generator, kind._built_for = FramesGenerator(), kind._generator_settings(config)
    request = JobRequest(kind="video", params={"prompt": "a cat", "num_frames": 9, "height": 16, "width": 16},
                         seed=1, asker_id="alice", asker_name="妈妈", chat=ChatRef("family@chatroom", True),
                         message_id="m1")
    seen: dict[str, Any] = {}

    def record(frames: Any, path: Path, fps: float, bitrate_kbps: int, max_bytes: int,
               preset: str = "default") -> Path:
        seen.update(fps=fps, preset=preset, max_bytes=max_bytes)
        Path(path).write_bytes(b"mp4")
        return Path(path)

    monkeypatch.setattr("generators.mp4.encode_mp4", record)
    path = kind.run(request, tmp_path / "000001-1", lambda *_: None, lambda: False)
    assert path == tmp_path / "000001-1.mp4"
    assert seen == {"fps": 8, "preset": "medium", "max_bytes": 3_000_000}


def test_queue_only_edits_keep_the_loaded_generator_but_model_edits_rebuild_it() -> None:
    current = {"config": VideoConfig()}
    kind = VideoKind(lambda: current["config"])
    first = kind.generator
    current["config"] = current["config"].model_copy(update={"max_pending_per_user": 5, "show_prompt": False})
    assert kind.generator is first  # no weight reload for a queue setting
    current["config"] = current["config"].model_copy(update={"memory_mode": "cpu"})
    assert kind.generator is not first
