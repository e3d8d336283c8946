"""Drive one Application's router without a transport: say a line as a family member, get the reply.

For intent tests that need the real classifier wiring, history and LLM client (against the fake LLM)
but not the Node peer. The bot's replies are recorded in the history, as the channel would.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from bot.config import AppConfig, Secrets
from bot.messages import ChatRef, IncomingMessage, Reply
from bot.ops.notices import Told
from bot.pipeline.context import Context
from bot.pipeline.conversation import HistoryEntry
from bot.pipeline.dispatch import transcript
from bot.pipeline.gates import Turn
from bot.runtime.app import Application, build_app
from services.amap import AmapClient
from tests.conftest import test_config_data

FAMILY_ROOM = ChatRef("family@chatroom", is_room=True)
_ids = itertools.count(1)


def family_context(llm: Any, text: str, earlier: tuple[str, str], jobs: Any = None) -> Context:
    """A Context for testing a handler's parts: 妈妈 says `text` in the family room right after `earlier`
    (sender name, text); replies go nowhere, and `jobs` is whatever the test passes."""
    msg = IncomingMessage(id="m1", chat=FAMILY_ROOM, sender_id="alice", sender_name="妈妈", text=text,
                          mentioned=True)
    history = [HistoryEntry(*earlier, False, 0.0), HistoryEntry("妈妈", text, False, 0.0)]
    config = AppConfig()

    async def say(reply: Reply) -> bool:
        return True

    async def notify_admins(text: str, key: str | None = None) -> Told:
        return Told.NO_ADMINS  # the default config has no bot.admins

    return Context(message=msg, settings=config.for_chat(FAMILY_ROOM), config=config, history=history,
                   transcript=transcript(msg, history[:1], config.history.max_messages), llm=llm, jobs=jobs,
                   amap=AmapClient(config.amap, None), say=say,
                   notify_admins=notify_admins)


@dataclass
class ChatDriver:
    app: Application
    replies: list[Reply] = field(default_factory=list)

    @classmethod
    def create(cls, fake_llm: Any, data_dir: Any, overrides: dict[str, Any] | None = None) -> ChatDriver:
        config = AppConfig.model_validate(test_config_data(data_dir, overrides))
        secrets = Secrets(openai_api_key="test-key", openai_base_url=fake_llm.base_url,
                          puppet_endpoint=None, puppet_token=None)
        return cls(build_app(config, secrets, channel=None))  # type: ignore[arg-type]

    async def say(self, text: str, sender_id: str = "alice", sender_name: str = "妈妈") -> str:
        msg = IncomingMessage(id=f"m{next(_ids)}", chat=FAMILY_ROOM, sender_id=sender_id,
                              sender_name=sender_name, text=text, mentioned=True, room_topic="相亲相爱一家人")
        app = self.app
        app.dispatcher.history.add(msg.chat.key, msg.sender_name, msg.text, timestamp=msg.timestamp)
        ctx = replace(app.dispatcher.context(Turn(msg, app.live_config().for_chat(msg.chat, msg.room_topic))),
                      say=self._record)
        reply = await app.dispatcher.handle(ctx)
        if reply is None:
            return ""
        await self._record(reply)
        return reply.text

    async def _record(self, reply: Reply) -> bool:
        self.replies.append(reply)
        bot_name = self.app.live_config().bot.name
        self.app.dispatcher.history.add(FAMILY_ROOM.key, bot_name, reply.text, from_bot=True)
        return True

    async def close(self) -> None:
        await self.app.close()
