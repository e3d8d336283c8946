"""The text-to-video flow (`VideoIntent`): the rewriter, the request, the ack and the caption. The plugin
that declares 视频生成 is `intents/video.py`; the photo flow (`intents/photo_video.py`) builds on this class.

The shared flow lives in `intents/generation.py`; the job queue (`bot/jobs/`, the kind in
`bot/jobs/kinds/video.py`) posts the MP4 with @asker later. Everything the asker can fix (bad frame
count, quota reached, a prompt the LLM could not write) comes back as a short reply.
"""

from __future__ import annotations

from typing import Any

from bot.jobs import Receipt
from bot.time_text import eta_text
from intents.generation import GenerationIntent

MIN_WORDS, MAX_WORDS = 40, 110
NO_LLM_REPLY = "做视频前我要先把你的描述整理一下，可我这会儿忙不过来，稍后再@我试试吧🙏"
REWRITE_FAILED_REPLY = "抱歉，我没能理解好你想要的画面，换个说法再试一次吧～"
ACK = "收到，排队第 {position} 位。{eta}"
ACK_NO_WORKER = "收到，排队第 {position} 位。负责做视频的机器现在不在线，等它恢复后就开始做。"
CAPTION = "你要的视频做好啦🎬"


class VideoIntent(GenerationIntent):
    kind = "video"
    probe_prompt = "A panda playing a guitar in a bamboo forest."
    rewriter = "video_rewrite"
    words = (MIN_WORDS, MAX_WORDS)
    no_llm_reply = NO_LLM_REPLY
    failed_reply = REWRITE_FAILED_REPLY
    default_prompt_tokens = 226  # CogVideoX's T5 limit

    def request(self, prompt: str, section: Any, **overrides: Any) -> Any:
        from generators.cogvideox import VideoRequest

        return VideoRequest.from_config(prompt, section.sampling, **overrides)

    def ack(self, receipt: Receipt, shown: str) -> str:
        template = ACK if receipt.live_workers else ACK_NO_WORKER
        return template.format(position=receipt.position, eta=eta_text(receipt.eta_s)) + shown

    def caption(self, seed: int, shown: str, section: Any) -> str:
        return CAPTION + shown
