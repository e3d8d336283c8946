"""图生视频: "@小爱 让这张照片动起来" animates the asker's latest photo in this room.

A request of the video intent that speaks of a photo ("这张照片", "把这张图做成视频", "让照片里的人笑一下")
comes here. The photo is the one the photo gate attached (the asker's newest in this room within
`video.photo.max_age_minutes`, so one sent a few seconds before the @ counts); with none the bot asks
"把照片发给我吧" and the asker's next photo in this room answers (a follow-up the dispatcher owns), so
one sent a few seconds after the @ counts too. The photo
is fitted to the photo model's frame and travels inside the job; the rewriter writes an English prompt
about the motion, and with `llm.vision: true` it sees the photo too.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from bot.messages import Reply
from bot.pipeline.context import Context
from bot.pipeline.gates import PHOTO_SLOT, REQUEST_SLOT
from bot.pipeline.photos import PhotoStore
from intents.video_flow import VideoIntent

ASK_PHOTO = "把照片发给我吧📷 发到群里就行，我收到就开始做。"
NO_LLM_REPLY = "让照片动起来前我要先想好怎么动，可我这会儿忙不过来，稍后再@我试试吧🙏"
REWRITE_FAILED_REPLY = "抱歉，我没能理解好你想让照片怎么动，换个说法再试一次吧～"
CAPTION = "照片动起来啦🎬"
WHOLE_PHOTO_SIDE = 2048  # a hosted API's photo: its providers take up to 2000-4096 px and fit it again

_PHOTO = re.compile(r"照片|相片|这张图|那张图|这幅图|这个图|图片|合影|自拍|这张|那张")
_MOTION = re.compile(r"动起来|动一动|动一下|活起来|视频|笑|眨眼|挥手|转头|回头|跳舞|走路|说话|飘|动")


def wants_photo_video(text: str) -> bool:
    """"让这张照片动起来", "把这张图做成视频", "让照片里的人笑一下": a photo and some motion."""
    return bool(_PHOTO.search(text) and _MOTION.search(text))


def prepare_photo(path: Path, section: Any, whole: bool = False) -> dict[str, Any]:
    """The job's photo fields: the photo fitted to the frame the photo model renders (a portrait photo
    turns CogVideoX1.5-I2V's frame upright), as base64 JPEG. `whole` (a hosted API renders it): the
    whole photo, only scaled down to WHOLE_PHOTO_SIDE, since the provider fits it to its own frame and a
    crop to the local model's landscape frame would cut a portrait's faces. Blocking (decode, resize)."""
    from generators.cogvideox_models import photo_size, released_photo_limits
    from generators.photos import encode_photo, fit_photo, open_photo

    image = open_photo(path.read_bytes())
    sampling = section.photo.sampling
    height, width = photo_size(released_photo_limits(section.photo.model.variant), sampling.height,
                               sampling.width, photo_width=image.width, photo_height=image.height)
    if whole:
        image.thumbnail((WHOLE_PHOTO_SIDE, WHOLE_PHOTO_SIDE))
        return {"image": encode_photo(image), "height": height, "width": width}
    return {"image": encode_photo(fit_photo(image, height, width)), "height": height, "width": width}


class PhotoVideoIntent(VideoIntent):
    """The video flow with a photo: its own sampling defaults, rewriter and caption."""

    rewriter = "photo_video_rewrite"
    no_llm_reply = NO_LLM_REPLY
    failed_reply = REWRITE_FAILED_REPLY
    probe_prompt = "The person in the photo smiles and waves slowly."

    def request(self, prompt: str, section: Any, **overrides: Any) -> Any:
        from generators.cogvideox import VideoRequest

        return VideoRequest.from_config(prompt, section.photo.sampling, **overrides)

    async def prepare(self, ctx: Context, section: Any) -> dict[str, Any] | Reply:
        photo = the_photo(ctx)
        if photo is None:
            return ctx.ask({REQUEST_SLOT: ctx.message.text}, PHOTO_SLOT, ASK_PHOTO)
        from generators.photos import PhotoRefused

        try:
            whole = ctx.jobs.kinds[self.kind].backend == "api"
            return await asyncio.to_thread(prepare_photo, photo, section, whole)
        except (PhotoRefused, OSError):  # removed by retention meanwhile, or unreadable
            return ctx.ask({REQUEST_SLOT: ctx.message.text}, PHOTO_SLOT, ASK_PHOTO)

    async def rewrite_prompt(self, ctx: Context, limit: int | None = None, count: Any = None) -> str:
        from intents.generation import estimate_tokens, rewrite

        request = ctx.message.text or ""
        limit = limit or self.default_prompt_tokens
        counter = count or estimate_tokens

        def check(answer: str) -> str:
            return self.check_answer(answer, request, limit, counter)

        image = None
        photo = the_photo(ctx) if ctx.config.llm.vision else None
        if photo is not None:
            image = await asyncio.to_thread(_small_jpeg, photo)
        low, high = self.words
        return await rewrite(ctx, prompt_name=self.rewriter, check=check, failed_reply=self.failed_reply,
                             no_llm_reply=self.no_llm_reply, max_tokens=self.rewrite_max_tokens,
                             image=image, min_words=low, max_words=high,
                             seen="You can see the photo." if image else "You cannot see the photo.")

    def caption(self, seed: int, shown: str, section: Any) -> str:
        return CAPTION + shown


def the_photo(ctx: Context) -> Path | None:
    """The photo a request is about: the one it came with (the answer to "把照片发给我吧"), else the asker's
    latest in this room within `video.photo.max_age_minutes` (a photo posted just before the @)."""
    if ctx.message.photo is not None:
        return ctx.message.photo
    since = time.time() - ctx.config.video.photo.max_age_minutes * 60
    latest = PhotoStore(ctx.jobs.media_dir).latest(ctx.message.chat, ctx.message.sender_id, since)
    return None if latest is None else latest.path


def _small_jpeg(path: Path, side: int = 768) -> str:
    """The photo at most `side` pixels on its long side, as base64 JPEG for the vision model."""
    from generators.photos import encode_photo, open_photo

    image = open_photo(path.read_bytes())
    image.thumbnail((side, side))
    return encode_photo(image, quality=85)


_intent = PhotoVideoIntent()
handle = _intent.handle
