"""Running out of disk, told apart from every other failure.

A full disk is not the asker's fault and not a bug: it needs the admin to free space. Whatever writes a
result (the MP4 writer, the job store) raises `StorageFull`; it is a GeneratorError whose message suits
the group, and it carries the folder and the system's words (`where`, `detail`) for the admin and the log.
"""

from __future__ import annotations

import errno
from pathlib import Path

from generators.base import GeneratorError

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NO_SPACE_WORDS = ("no space left on device", "disk quota exceeded", "file too large",
                  "database or disk is full")
ASKER_TEXT = "服务器的存储空间满了，这次没能保存下来。已经告诉管理员了，清理后再试一次吧～"


class StorageFull(GeneratorError):
    """No space left (or over quota / the file size limit) where a result or the job store is written."""

    def __init__(self, where: Path | str, detail: str) -> None:
        super().__init__(ASKER_TEXT)
        self.where = str(where)
        self.detail = detail

    def admin_text(self) -> str:
        return f"⚠️ 存储空间满了：{self.where} 写不进去（{self.detail}）。请清理磁盘，任务才能继续。"


def is_no_space(error: BaseException | str) -> bool:
    """Whether an OSError, an sqlite3 error or a tool's error output says the disk is full."""
    if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
        return True
    text = str(error).lower()
    return any(words in text for words in NO_SPACE_WORDS)
