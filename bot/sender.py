"""Sending: the one path every reply, job result, alert and schedule takes to the channel.

It records the bot's own lines in the chat history (the prompts read them) and reports a failed send
as False instead of raising, so callers decide whether to retry (the job outbox does).
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from bot.channels.base import Channel
from bot.history import History
from bot.messages import ChatRef, IncomingMessage, Reply


class Sender:
    def __init__(self, channel: Channel, history: History, bot_name: Callable[[], str]) -> None:
        self._channel = channel
        self._history = history
        self._bot_name = bot_name

    @property
    def connected(self) -> bool:
        return self._channel.connected

    async def send(self, chat: ChatRef, reply: Reply) -> bool:
        """Send and record the bot's line in the history; False (logged) when the channel failed."""
        try:
            await self._channel.send(chat, reply)
        except Exception as exc:  # noqa: BLE001 - callers decide whether to retry
            logger.warning("send to {} failed: {}", chat.key, exc)
            return False
        if reply.text:
            self._history.add(chat.key, self._bot_name(), reply.text, from_bot=True)
        return True

    async def reply(self, msg: IncomingMessage, reply: Reply) -> bool:
        """Answer `msg` in its chat, @-mentioning the asker in rooms."""
        if msg.chat.is_room and not reply.mention_ids:
            reply = Reply(reply.text, reply.file, (msg.sender_id,))
        return await self.send(msg.chat, reply)
