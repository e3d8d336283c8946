"""The gate photos pass: every photo in an allowed chat is kept (`bot.pipeline.photos.PhotoStore`),
silently; a photo that answers the bot's "把照片发给我吧" becomes the asker's request again, now with
the photo; and an addressed text message carries the asker's latest photo in this room (within
`video.photo.max_age_minutes`), so "@小爱 让这张照片动起来" finds the one just posted.

Something that is no photo (a PDF, a broken or huge file) is answered kindly only when the sender was
asked for a photo or addressed the bot; otherwise it is dropped like any picture posted without an @.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from loguru import logger

from bot.messages import MessageKind, Reply
from bot.pipeline.gates import ReplyFn, Turn
from bot.pipeline.photos import PhotoStore
from generators.photos import NOT_A_PHOTO, UNREADABLE, PhotoRefused

if TYPE_CHECKING:
    from bot.pipeline.dispatch import FollowUps, Pending

PHOTO_HINT = "收到照片啦📷 想让它动起来，就跟我说「让这张照片动起来」。"
PHOTO_SLOT = "photo"  # what the open question asks for when the bot asked for a photo
REQUEST_SLOT = "request"  # the words of the request that is waiting for the photo


@dataclass
class PhotoGate:
    """Keeps photos and hands them to the request that waits for one."""

    store: PhotoStore
    followups: FollowUps
    reply: ReplyFn

    def waiting(self, turn: Turn) -> Pending | None:
        pending = self.followups.open_question(turn.message)
        return pending if pending is not None and pending.asked == PHOTO_SLOT else None

    async def __call__(self, turn: Turn) -> Turn | None:
        msg = turn.message
        if msg.kind is MessageKind.TEXT:
            return self._with_latest_photo(turn) if msg.mentioned else turn
        if msg.kind not in (MessageKind.PHOTO, MessageKind.FILE):
            return turn
        pending = self.waiting(turn)
        try:
            if msg.kind is MessageKind.FILE:
                raise PhotoRefused(NOT_A_PHOTO)
            if msg.attachment is None:  # the channel could not download it, even on the retry
                raise PhotoRefused(UNREADABLE)
            stored = await asyncio.to_thread(self.store.save, msg.chat, msg.sender_id, msg.attachment,
                                             msg.timestamp)
        except PhotoRefused as exc:
            logger.info("message {}: not kept as a photo: {}", msg.id, exc)
            if pending is not None or msg.mentioned:
                await self.reply(msg, Reply(str(exc)))
            return None
        logger.info("message {}: photo kept ({} bytes)", msg.id, len(msg.attachment or b""))
        if pending is None:  # kept for a later request; only a photo sent to the bot itself is answered
            if msg.mentioned:
                await self.reply(msg, Reply(PHOTO_HINT))
            return None
        request = pending.slots.get(REQUEST_SLOT, "")
        answered = replace(msg, kind=MessageKind.TEXT, text=request, mentioned=True, photo=stored.path,
                           attachment=None)
        return replace(turn, message=answered)

    def _with_latest_photo(self, turn: Turn) -> Turn:
        msg, config = turn.message, turn.settings.config
        since = time.time() - config.video.photo.max_age_minutes * 60
        latest = self.store.latest(msg.chat, msg.sender_id, since)
        return turn if latest is None else replace(turn, message=replace(msg, photo=latest.path))
