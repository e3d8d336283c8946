"""ImageApiGenerator against a fake OpenAI-compatible images server on loopback, through the real
`openai` client: b64_json and url answers, the request it sends, a refused prompt, failures."""

from __future__ import annotations

import pytest

from bot.config import ImageConfig
from bot.jobs.kinds import image_api_key
from generators.base import GenerationCancelled, GeneratorError
from generators.flux import ImageRequest
from generators.image_api import REFUSED_REPLY, ImageApiGenerator
from tests.support.errors import raises_told
from tests.support.fake_images import FakeImages, png_bytes

PROMPT = "A Shiba Inu sitting in deep snow, soft winter light."


def generator(images: FakeImages, key: str | None = "img-key", **api) -> ImageApiGenerator:
    return ImageApiGenerator(ImageConfig(backend="api", api={"base_url": images.base_url, "model": "flux-pro",
                                                             "retries": 0, "timeout_s": 5, **api}), key)


def test_b64_answer_becomes_the_picture_and_the_request_is_openai_shaped(images: FakeImages) -> None:
    images.picture = png_bytes(40, 24, (10, 200, 30))
    steps: list[tuple[int, int]] = []
    result = generator(images, size="1024x1024", response_format="b64_json").generate(
        ImageRequest(PROMPT, seed=3), on_step=lambda i, n: steps.append((i, n)))
    assert result.image.size == (40, 24) and result.image.getpixel((0, 0)) == (10, 200, 30)
    assert steps == [(1, 1)] and result.seed == 3
    [sent] = images.requests
    assert sent == {"model": "flux-pro", "prompt": PROMPT, "n": 1, "size": "1024x1024",
                    "response_format": "b64_json"}
    assert images.headers[0]["authorization"] == "Bearer img-key"


def test_defaults_leave_size_and_format_to_the_endpoint(images: FakeImages) -> None:
    generator(images).generate(ImageRequest(PROMPT))
    assert set(images.requests[0]) == {"model", "prompt", "n"}


def test_url_answer_is_fetched(images: FakeImages) -> None:
    images.reset("url")
    result = generator(images).generate(ImageRequest(PROMPT))
    assert result.image.size == (48, 32) and images.downloads == 1


def test_refused_prompt_gets_a_clear_message(images: FakeImages) -> None:
    images.reset("refuse")
    with pytest.raises(GeneratorError) as refused:
        generator(images).generate(ImageRequest(PROMPT))
    assert str(refused.value) == REFUSED_REPLY


@pytest.mark.parametrize("mode, message", [("error", "HTTP 500"), ("garbage", "不是一张能打开的图片")])
def test_failures_get_clear_messages(images: FakeImages, mode: str, message: str) -> None:
    images.reset(mode)
    with pytest.raises(GeneratorError, match=message):
        generator(images).generate(ImageRequest(PROMPT))


def test_unreachable_endpoint_and_missing_key(images: FakeImages) -> None:
    api = {"base_url": "http://127.0.0.1:9/v1", "retries": 0, "timeout_s": 2}
    closed = ImageApiGenerator(ImageConfig(backend="api", api=api), "key")
    with raises_told(GeneratorError, "连不上图片服务"):
        closed.generate(ImageRequest(PROMPT))
    with raises_told(GeneratorError, "XIAOAI_IMAGE_API_KEY"):
        generator(images, key=None).check_inputs(ImageRequest(PROMPT))
    assert images.requests == []


def test_stop_before_sending_sends_nothing(images: FakeImages) -> None:
    with pytest.raises(GenerationCancelled):
        generator(images).generate(ImageRequest(PROMPT), should_stop=lambda: True)
    assert images.requests == []


def test_key_comes_from_its_own_variable_then_openai_key() -> None:
    assert image_api_key({"XIAOAI_IMAGE_API_KEY": "a", "OPENAI_API_KEY": "b"}) == "a"
    assert image_api_key({"OPENAI_API_KEY": "b"}) == "b"
    assert image_api_key({}) is None


def test_bad_api_size_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="尺寸要写成 1024x1024"):
        ImageConfig(api={"size": "big"})
