"""A video request is checked once, typed, before the LLM: the shared generation flow through a real
`JobQueue` (its store in a temporary folder) with a video kind that counts its checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.jobs import JobRequest
from bot.messages import Reply
from generators.base import GeneratorError
from generators.cogvideox import VideoRequest
from intents.base import UserInputError
from intents.video_flow import VideoIntent
from tests.intents.test_video import GOOD, context
from tests.support.job_doubles import make_queue


class CountingVideoKind:
    """The `video` kind's interface without a model: typed requests from plain params, checks counted,
    ten frames refused (as CogVideoX refuses them)."""

    name = "video"

    def __init__(self) -> None:
        self.checked: list[Any] = []

    def request(self, params: Any, seed: int | None) -> VideoRequest:
        return VideoRequest.from_dict({**params, "seed": seed})

    def check(self, request: Any) -> None:
        self.checked.append(request)
        if request.num_frames == 10:
            raise GeneratorError("帧数必须是 8 的倍数加 1，收到 10。")

    def run(self, request: JobRequest, output_stem: Path, on_step: Any, should_stop: Any) -> Path:
        raise AssertionError("the queue is not started in these tests")

    def max_prompt_tokens(self) -> int:
        return 226

    def count_tokens(self, prompt: str) -> None:
        return None  # no tokenizer here: the flow estimates


@pytest.fixture
def queue_and_kind(tmp_path: Path):
    kind = CountingVideoKind()
    return make_queue(tmp_path, kinds=[kind], label="视频"), kind


async def test_a_video_request_is_checked_once_and_travels_typed(fake_llm, llm, queue_and_kind):
    queue, kind = queue_and_kind
    fake_llm.add("CogVideoX prompt writer", GOOD)
    said: list[Reply] = []

    async def say(reply: Reply) -> bool:
        said.append(reply)
        return True

    ctx = replace(context(llm, "生成一个熊猫在竹林里弹吉他的视频，种子 42，17帧"), jobs=queue, say=say)
    assert await VideoIntent().handle(ctx) is None
    [checked] = kind.checked  # once, before the LLM, and not again when the job was submitted
    assert isinstance(checked, VideoRequest) and checked.seed == 42 and checked.num_frames == 17
    [job] = queue.list()
    assert job.request.params["prompt"] == GOOD and job.request.params["num_frames"] == 17
    assert job.request.seed == 42 and "seed" not in job.request.params
    assert said and "排队第 1 位" in said[0].text


async def test_a_bad_parameter_is_refused_before_the_llm_is_asked(fake_llm, llm, queue_and_kind):
    queue, kind = queue_and_kind
    fake_llm.add("CogVideoX prompt writer", GOOD)
    ctx = replace(context(llm, "生成一个熊猫弹吉他的视频，10帧"), jobs=queue)
    with pytest.raises(UserInputError, match="8 的倍数加 1"):
        await VideoIntent().handle(ctx)
    assert len(kind.checked) == 1 and not fake_llm.calls() and not queue.list()


async def test_plain_params_from_outside_are_checked_once_at_submit(queue_and_kind):
    queue, kind = queue_and_kind
    from bot.messages import ChatRef

    plain = JobRequest("video", {"prompt": GOOD, "num_frames": 10}, 7, "api", "api",
                       ChatRef("api", is_room=False), "m-plain")
    with pytest.raises(GeneratorError, match="8 的倍数加 1"):
        await queue.submit(plain)
    receipt = await queue.submit(replace(plain, params={"prompt": GOOD, "num_frames": 9}))
    assert len(kind.checked) == 2 and kind.checked[-1].seed == 7 and receipt.position == 1
