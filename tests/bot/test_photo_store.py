"""The photo store: checked photos kept upright per room and sender, the newest found by time, and the
job queue's retention sweeping them with the other media."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image

from bot.jobs.retention import Retention
from bot.jobs.store import JobStore
from bot.messages import ChatRef
from bot.pipeline.photos import PhotoStore
from generators.photos import PhotoRefused

FAMILY, OTHER = ChatRef("family@chatroom", True), ChatRef("work@chatroom", True)


def jpeg(width: int = 60, height: int = 40, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def test_latest_photo_per_room_and_sender(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "media")
    now = time.time()
    older = store.save(FAMILY, "alice", jpeg(), at=now - 120)
    newest = store.save(FAMILY, "alice", jpeg(orientation=6), at=now - 10)
    store.save(OTHER, "alice", jpeg(), at=now)  # another room: never Alice's photo here
    store.save(FAMILY, "bob", jpeg(), at=now)
    assert store.latest(FAMILY, "alice", since=now - 600).path == newest.path
    assert store.latest(FAMILY, "alice", since=now - 600).path != older.path
    assert store.latest(FAMILY, "alice", since=now - 5) is None  # both too old
    assert store.latest(FAMILY, "carol", since=0) is None
    with Image.open(newest.path) as image:
        assert image.size == (40, 60)  # EXIF orientation applied when stored
    assert "alice" not in newest.path.name and "family" not in newest.path.name


def test_non_photos_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "media")
    for data in (b"%PDF-1.7", jpeg()[:100], b""):
        with pytest.raises(PhotoRefused):
            store.save(FAMILY, "alice", data)
    assert not store.folder.exists() or not any(store.folder.iterdir())


def test_retention_removes_old_photos(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "media")
    now = time.time()
    old = store.save(FAMILY, "alice", jpeg(), at=now - 3 * 3600)
    fresh = store.save(FAMILY, "alice", jpeg(), at=now - 60)
    retention = Retention(JobStore(tmp_path / "jobs.sqlite3"), tmp_path / "media")
    retention.keep("photos", lambda: 2 * 3600)
    assert retention.cleanup(now) == 1
    assert not old.path.exists() and fresh.path.exists()
