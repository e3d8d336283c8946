"""视频生成: rewrite the chat into an English CogVideoX prompt, check it, queue the render, ack at once;
a request about a photo ("让这张照片动起来") goes to the photo flow (`intents/photo_video.py`).
The text flow is `intents/video_flow.py`.
"""

from __future__ import annotations

from bot.messages import Reply
from bot.pipeline.context import Context
from bot.plugin import IntentSpec
from intents.video_flow import NO_LLM_REPLY, VideoIntent

__all__ = ["INTENT", "NO_LLM_REPLY", "handle", "rewrite_prompt"]

_intent = VideoIntent()
rewrite_prompt = _intent.rewrite_prompt


async def handle(ctx: Context) -> Reply | None:
    """A request about a photo is the photo flow's; any other, the text flow's."""
    from intents.photo_video import handle as photo_video
    from intents.photo_video import wants_photo_video

    if wants_photo_video(ctx.message.text):
        return await photo_video(ctx)
    return await _intent.handle(ctx)



INTENT = IntentSpec(name="video", label="视频生成", handler=handle, follow_up="clip",
                    describe="要求生成、制作一段视频或动画，或让刚发的照片动起来（如“让这张照片动起来”"
                             "“让照片里的人笑一下”）")
