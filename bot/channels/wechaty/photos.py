"""A WeChat photo's bytes, as the puppet service hands them over.

`message.to_file_box()` asks for the artwork (the original). Wechaty's PuppetServer hands any file over
20 KB to the client as a stream reference that python-wechaty 0.10 cannot read (`ValueError: unknown
file_box json object`), i.e. every camera photo; then the bytes come through the puppet's
`MessageImageStream` RPC instead, which any puppet service answers. A failed download is logged and
tried once more; after that the photo message carries no bytes and the photo gate says so kindly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from loguru import logger

from generators.photos import MAX_PHOTO_BYTES

ARTWORK = 3  # wechaty's ImageType.Artwork: the original file
ATTEMPTS = 2


async def photo_bytes(msg: Any, puppet: Any) -> bytes | None:
    """The photo of image message `msg`, or None when two tries failed (logged)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await _download(msg, puppet)
        except Exception as exc:  # noqa: BLE001 - any puppet failure: try again, then report
            logger.warning("wechaty: downloading photo {} failed (try {} of {}): {}: {}", msg.message_id,
                           attempt, ATTEMPTS, type(exc).__name__, exc)
    return None


async def _download(msg: Any, puppet: Any) -> bytes:
    try:
        box = await msg.to_file_box()
    except ValueError:  # over 20 KB: a stream reference python-wechaty cannot read
        return await _stream(puppet, msg.message_id)
    with tempfile.TemporaryDirectory(prefix="xiaoai-photo-") as folder:
        path = Path(folder) / "photo"
        await box.to_file(str(path), overwrite=True)  # to_base64() is empty for streamed boxes
        return path.read_bytes()


async def _stream(puppet: Any, message_id: str) -> bytes:
    """The streamed file; past the size any photo may have, only its start (the photo check refuses it
    for its size: reading on would only fill memory)."""
    chunks: list[bytes] = []
    size = 0
    async for response in puppet.puppet_stub.message_image_stream(id=message_id, type=ARTWORK):
        data = response.file_box_chunk.data
        if data:
            chunks.append(data)
            size += len(data)
            if size > MAX_PHOTO_BYTES:
                break
    if not chunks:
        raise ValueError("the image stream carried no data")
    return b"".join(chunks)
