"""The `video` and `image` job kinds (bot/jobs/kinds/): what the MP4 encoder is handed (a fake
generator), and which config edits rebuild the generator (reloading its weights) and which keep it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bot.config import VideoConfig
from bot.jobs import JobRequest
from bot.jobs.kinds import VideoKind
from bot.messages import ChatRef


@pytest.fixture(scope="module")
def tiny_2b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_models import build_cogvideox_folder

    return build_cogvideox_folder(tmp_path_factory.mktemp("cogvideox") / "tiny-2b")


class FramesGenerator:
    """Returns 9 black frames, like CogVideoXGenerator.generate's VideoResult."""

    def generate(self, request: Any, on_step: Any, should_stop: Any) -> Any:
        return SimpleNamespace(frames=np.zeros((9, 16, 16, 3), dtype=np.uint8), fps=8)


def test_local_run_encodes_with_the_configured_x264_preset(tmp_path: Path, monkeypatch):
    config = VideoConfig(encode={"x264_preset": "medium"},
                         sampling={"height": 16, "width": 16, "num_frames": 9})
    kind = VideoKind(lambda: config)
    kind._generator, kind._built_for = FramesGenerator(), kind.built_from(config)
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
    assert seen == {"fps": 8, "preset": "medium", "max_bytes": 20_000_000}


def edited(config: Any, section: str, **values: Any) -> Any:
    """`config` with keys of one sub-section changed (`section=""`: the section's own keys)."""
    if not section:
        return config.model_copy(update=values)
    return config.model_copy(update={section: getattr(config, section).model_copy(update=values)})


def test_job_path_edits_keep_the_loaded_generator_and_model_edits_rebuild_it(tiny_2b: Path) -> None:
    from generators.base import GeneratorError
    from generators.cogvideox import VideoRequest

    current = {"config": VideoConfig(model={"path": tiny_2b})}
    kind = VideoKind(lambda: current["config"])
    first = kind.generator
    for section, values in (("queue", {"max_pending_per_user": 5, "seconds_per_job": 9}),
                            ("", {"show_prompt": False, "load_at_start": True}),
                            ("encode", {"x264_preset": "medium"}),
                            ("sampling", {"max_steps": 10})):
        current["config"] = edited(current["config"], section, **values)
        assert kind.generator is first, section  # no weight reload for a job-path setting
    # the kept generator reads the edited sampling limits at once
    with pytest.raises(GeneratorError, match="1 到 10 之间"):
        kind.generator.check_inputs(VideoRequest("a panda", num_frames=9, steps=20, height=64, width=96))
    current["config"] = edited(current["config"], "model", memory_mode="cpu")
    second = kind.generator
    assert second is not first
    current["config"] = edited(current["config"], "speed", fuse_qkv=True)
    assert kind.generator is not second


def test_image_kind_reloads_for_the_model_not_for_encoding_or_queue() -> None:
    from bot.config import ImageConfig
    from bot.jobs.kinds import ImageKind

    current = {"config": ImageConfig()}
    kind = ImageKind(lambda: current["config"], api_key=lambda: "key")
    first = kind.generator
    current["config"] = edited(edited(current["config"], "encode", format="png"), "queue", seconds_per_job=5)
    assert kind.generator is first
    current["config"] = edited(current["config"], "model", quantization="int8_weight_only")
    local = kind.generator
    assert local is not first
    current["config"] = edited(current["config"], "", backend="api")
    assert type(kind.generator).__name__ == "ImageApiGenerator"
    current["config"] = edited(current["config"], "api", timeout_s=3)
    assert kind.generator.config.api.timeout_s == 3
