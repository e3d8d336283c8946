"""The playground's conversation, kept in SQLite under data_dir so a reload, a reconnect or a restart
replays it instead of showing an empty room.

Events get increasing ids that survive restarts (a page asks for what came after the last id it has).
Only the newest `limit` events are kept. Ids and the in-memory copy are assigned on the event loop;
the disk writes go, in order, to one worker thread so a slow disk never stalls the page.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loguru import logger

DEFAULT_LIMIT = 500


class Transcript:
    """A bounded, persistent list of event dicts; `epoch` changes only when the file is new."""

    def __init__(self, path: Path | None, limit: int = DEFAULT_LIMIT) -> None:
        self.path = path
        self.limit = limit
        self._events: deque[dict[str, Any]] = deque(maxlen=limit)
        self._writer: ThreadPoolExecutor | None = None
        self.epoch = uuid.uuid4().hex[:12]
        self._last_id = 0
        if path is not None:
            self._open(path)

    def _open(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
                db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (self.epoch,))
                self.epoch = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
                rows = db.execute("SELECT id, body FROM events ORDER BY id DESC LIMIT ?", (self.limit,))
                for event_id, body in reversed(rows.fetchall()):
                    self._events.append(json.loads(body))
                    self._last_id = max(self._last_id, event_id)
                last = db.execute("SELECT max(id) FROM events").fetchone()[0]
                self._last_id = max(self._last_id, last or 0)
        except (sqlite3.Error, OSError, ValueError) as exc:
            # an unreadable file must not keep the playground from starting: run in memory, say so
            logger.warning("playground: transcript {} unusable ({}); this session is not kept", path, exc)
            self.path = None
            return
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcript")

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        db = sqlite3.connect(self.path, timeout=5)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def append(self, event: dict[str, Any]) -> None:
        """Keep `event` (it carries its id from `next_id`); written to disk in the background."""
        self._events.append(event)
        if self._writer is not None:
            self._writer.submit(self._write, event)

    def update(self, event: dict[str, Any]) -> None:
        """Rewrite a kept event (e.g. a message that got its media after the text)."""
        if self._writer is not None:
            self._writer.submit(self._write, event)

    def _write(self, event: dict[str, Any]) -> None:
        try:
            with self._connect() as db:
                db.execute("INSERT OR REPLACE INTO events (id, body) VALUES (?, ?)",
                           (event["id"], json.dumps(event, ensure_ascii=False)))
                db.execute("DELETE FROM events WHERE id <= ?", (event["id"] - self.limit,))
        except sqlite3.Error as exc:
            logger.warning("playground: could not keep message {} in the transcript: {}", event["id"], exc)

    def since(self, last_id: int = 0) -> list[dict[str, Any]]:
        """The kept events after `last_id` (all of them for 0), oldest first."""
        return [event for event in self._events if event["id"] > last_id]

    def close(self) -> None:
        """Wait for the pending writes."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
