"""Photos people post, kept a while so "@小爱 让这张照片动起来" can find the asker's latest one in the room.

Each photo is checked by Pillow (`generators.photos.open_photo`: JPEG/PNG/WebP/GIF's first frame, at most
20 MB, the decompression-bomb limit, EXIF orientation applied) and stored upright as one JPEG file in
`media_dir/photos/`, named by hashes of the room and the sender and the time it arrived: no ids or names
in paths, and no index to keep in step. The job queue's retention removes files older than
`video.photo.keep_hours` like any other media (`JobQueue.keep_files`).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bot.messages import ChatRef

FOLDER = "photos"  # under the job queue's media folder: the same retention sweeps it


def _tag(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class StoredPhoto:
    """One received photo: its file and when it arrived."""

    path: Path
    at: float


class PhotoStore:
    """The photos of every room, newest per (room, sender) found by file name."""

    def __init__(self, media_dir: Path) -> None:
        self.folder = media_dir / FOLDER

    @staticmethod
    def _prefix(chat: ChatRef, sender_id: str) -> str:
        return f"{_tag(chat.key)}-{_tag(sender_id)}-"

    def save(self, chat: ChatRef, sender_id: str, data: bytes, at: float | None = None) -> StoredPhoto:
        """Check `data` and keep it; raises PhotoRefused (a kind sentence) for anything but a photo.
        Blocking (decode and write): call it in a thread."""
        from generators.photos import open_photo

        image = open_photo(data)
        at = time.time() if at is None else at
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self._prefix(chat, sender_id)}{int(at * 1000):013d}.jpg"
        partial = path.with_name(f".{path.name}.partial")
        image.save(partial, format="JPEG", quality=95)
        os.replace(partial, path)
        os.utime(path, (at, at))  # retention reads the arrival time from the file
        return StoredPhoto(path, at)

    def latest(self, chat: ChatRef, sender_id: str, since: float) -> StoredPhoto | None:
        """The sender's newest photo in `chat` that arrived at `since` or later, else None."""
        if not self.folder.is_dir():
            return None
        prefix = self._prefix(chat, sender_id)
        newest: StoredPhoto | None = None
        for path in self.folder.glob(f"{prefix}*.jpg"):
            try:
                at = int(path.stem.removeprefix(prefix)) / 1000
            except ValueError:
                continue
            if at >= since and (newest is None or at > newest.at):
                newest = StoredPhoto(path, at)
        return newest
