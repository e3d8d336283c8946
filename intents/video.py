"""视频生成: rewrite the chat into an English CogVideoX prompt, check it, queue the render, ack at once.

The shared flow lives in `intents/generation.py`; the job queue (`bot/jobs/`, the kind in
`bot/jobs/kinds/video.py`) posts the MP4 with @asker later. Everything the asker can fix (bad frame
count, quota reached, a prompt the LLM could not write) comes back as a short reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.context import Context
from bot.jobs import Receipt
from intents.generation import (
    GenerationIntent,
    RewriteRejected,
    clean_prompt,
    estimate_tokens,
    fit_tokens,
    requested_overrides,
    rewrite,
)

__all__ = ["RewriteRejected", "clean_prompt", "estimate_tokens", "fit_tokens", "requested_overrides",
           "rewrite_prompt", "handle"]

MIN_WORDS, MAX_WORDS = 40, 110
NO_LLM_REPLY = "做视频要先把你的描述改写成英文提示词，可我的语言模型现在连不上，稍后再@我试试吧🙏"
REWRITE_FAILED_REPLY = "抱歉，我没能把你的描述写成合格的英文视频提示词（{reason}），换个说法再试一次吧～"
ACK = "收到，排队第 {position} 位，预计 {eta} 秒。"
ACK_NO_WORKER = "收到，排队第 {position} 位。现在没有在线的 GPU，等它恢复后就开始做。"
CAPTION = "你要的视频做好啦🎬（种子 {seed}）"


async def rewrite_prompt(ctx: Context, limit: int, count: Callable[[str], int]) -> str:
    """The English CogVideoX prompt for ctx's request, at most `limit` tokens by `count`."""
    return await rewrite(
        ctx, prompt_name="video_rewrite", check=lambda answer: fit_tokens(clean_prompt(answer), limit, count),
        failed_reply=REWRITE_FAILED_REPLY, no_llm_reply=NO_LLM_REPLY,
        min_words=MIN_WORDS, max_words=MAX_WORDS,
    )


class VideoIntent(GenerationIntent):
    kind = "video"
    feature = "视频生成"
    probe_prompt = "A panda playing a guitar in a bamboo forest."

    def request(self, prompt: str, section: Any, **overrides: Any) -> Any:
        from generators.cogvideox import VideoRequest

        return VideoRequest.from_config(prompt, section.sampling, **overrides)

    async def rewrite_prompt(self, ctx: Context, limit: int | None, count: Callable[[str], int]) -> str:
        return await rewrite_prompt(ctx, limit or 226, count)

    def ack(self, receipt: Receipt, shown: str) -> str:
        template = ACK if receipt.live_workers else ACK_NO_WORKER
        return template.format(position=receipt.position, eta=int(receipt.eta_s)) + shown

    def caption(self, seed: int, shown: str, section: Any) -> str:
        return CAPTION.format(seed=seed) + shown


handle = VideoIntent().handle
