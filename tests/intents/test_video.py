"""视频生成 handler parts: the English prompt rewriter (through the real LLM client and the fake OpenAI
server), its checks, the token fitting and the numbers an asker can give."""

from __future__ import annotations

import pytest

from bot.config import LLMConfig, Secrets
from bot.llm import LLM
from bot.pipeline.context import Context
from intents.base import UserInputError
from intents.generation import RewriteRejected, clean_prompt, estimate_tokens, fit_tokens, requested_overrides
from intents.video import NO_LLM_REPLY, rewrite_prompt
from tests.support.chat_driver import family_context

GOOD = ("A gentle medium shot at eye level in soft morning light. A fluffy giant panda sits on a mossy rock "
        "holding a small wooden guitar. It strums the strings with its paw and sways its head. Tall green "
        "bamboo rises around it in light mist. The mood is calm and playful.")


def context(llm: LLM, text: str = "生成一个熊猫在竹林里弹吉他的视频") -> Context:
    return family_context(llm, text, earlier=("爸爸", "昨天去动物园看了大熊猫"))


def test_clean_prompt_strips_wrappers_and_accepts_english():
    assert clean_prompt(f'Prompt: "{GOOD}"') == GOOD
    assert clean_prompt(f"```\n{GOOD}\n```") == GOOD
    assert clean_prompt(GOOD.replace(". ", ".\n")) == GOOD  # lines joined into one paragraph


@pytest.mark.parametrize("answer, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("一只熊猫在竹林里弹吉他，镜头缓慢推进。", "Chinese"),
    (GOOD + " 熊猫", "Chinese"),
    ("Sure! Here is your prompt: " + GOOD, "talks to the user"),
    ("Here's a prompt for CogVideoX:\n" + GOOD, "talks to the user"),
    (GOOD + "\nLet me know if you want changes.", "talks to the user"),
    ("- camera: slow pan\n- subject: a panda", "talks to the user"),
    ("A panda.", "too short"),
])
def test_clean_prompt_rejects_unusable_answers(answer, reason):
    with pytest.raises(RewriteRejected, match=reason):
        clean_prompt(answer)


def test_estimate_is_conservative_for_plain_english():
    # the tiny test tokenizer spells unknown words letter by letter; real T5 needs ~1.3 tokens a word
    assert estimate_tokens(GOOD) > len(GOOD.split()) * 1.3
    assert estimate_tokens("") == 1


def test_fit_tokens_keeps_whole_sentences():
    words = len
    assert fit_tokens(GOOD, 1000, words) == GOOD
    fitted = fit_tokens(GOOD, 130, words)
    assert GOOD.startswith(fitted) and fitted.endswith(".") and len(fitted) <= 130
    with pytest.raises(RewriteRejected, match="first sentence"):
        fit_tokens(GOOD, 10, words)


def test_requested_overrides():
    wanted = {"seed": 42, "num_frames": 17, "steps": 20}
    assert requested_overrides("生成熊猫的视频，种子 42，17帧，20步") == wanted
    assert requested_overrides("seed=7 的视频") == {"seed": 7}
    assert requested_overrides("生成一个熊猫的视频") == {}


async def test_rewriter_asks_with_the_recipe_and_chat_context(fake_llm, llm):
    fake_llm.add("CogVideoX prompt writer", GOOD)
    prompt = await rewrite_prompt(context(llm), 226, estimate_tokens)
    assert prompt == GOOD
    [call] = fake_llm.calls()
    system, user = (m["content"] for m in call["messages"])
    assert "camera language" in system and "English only" in system
    assert "昨天去动物园看了大熊猫" in user and "熊猫在竹林里弹吉他" in user


async def test_rewriter_answering_chinese_is_retried_once_with_the_reason(fake_llm, llm):
    fake_llm.add("CogVideoX prompt writer", "一只熊猫在竹林里弹吉他。", times=1)
    fake_llm.add("previous answer was rejected", GOOD)
    assert await rewrite_prompt(context(llm), 226, estimate_tokens) == GOOD
    assert len(fake_llm.calls()) == 2
    assert "contains Chinese" in fake_llm.calls()[1]["messages"][1]["content"]


async def test_rewriter_failing_twice_gives_a_clear_reply(fake_llm, llm):
    fake_llm.add("CogVideoX prompt writer", "好的！这是提示词：一只熊猫。")
    with pytest.raises(UserInputError, match="没能理解好你想要的画面"):
        await rewrite_prompt(context(llm), 226, estimate_tokens)
    assert len(fake_llm.calls()) == 2


async def test_rewriter_too_long_is_cut_at_a_sentence_end(fake_llm, llm):
    fake_llm.add("CogVideoX prompt writer", " ".join([GOOD] * 6))
    prompt = await rewrite_prompt(context(llm), 226, estimate_tokens)
    assert estimate_tokens(prompt) <= 226 and prompt.endswith(".") and prompt.startswith(GOOD[:40])


async def test_rewriter_without_llm_says_so(fake_llm):
    unconfigured = LLM(LLMConfig(), Secrets(None, None, None, None))
    with pytest.raises(UserInputError) as caught:
        await rewrite_prompt(context(unconfigured), 226, estimate_tokens)
    assert str(caught.value) == NO_LLM_REPLY
    fake_llm.fail_all(500)
    broken = LLM(LLMConfig(timeout_s=2, retries=0), Secrets(None, fake_llm.base_url, None, None))
    with pytest.raises(UserInputError, match="忙不过来"):
        await rewrite_prompt(context(broken), 226, estimate_tokens)
    await broken.close()
    await unconfigured.close()
