"""A photo as an image-to-video render takes it: checked, upright, fitted to the model's size, and carried
inside the job as base64 JPEG so local, remote and Celery workers all get the same pixels.

Pillow does the work: `ImageOps.exif_transpose` (a phone photo's orientation tag), `ImageOps.fit` (scale
until the frame is covered, keeping the aspect, then cut the middle: nothing is stretched), and its
decompression-bomb limit (a small file that would unpack into gigapixels is refused).
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING

from generators.base import GeneratorError

if TYPE_CHECKING:
    from PIL import Image

MAX_PHOTO_BYTES = 20_000_000
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "MPO")  # MPO: what some phones' JPEGs open as
UNREADABLE = "这张照片我打不开，换一张 JPG 或 PNG 照片试试吧。"
TOO_LARGE = "这张照片太大了（超过 20 MB），换一张小一点的吧。"
NOT_A_PHOTO = "这个文件不是照片，发一张 JPG、PNG、WebP 或 GIF 图片给我吧。"


class PhotoRefused(GeneratorError):
    """A file that cannot be used as a photo; the message suits the sender."""


def open_photo(data: bytes) -> Image.Image:
    """The photo in `data` as an upright RGB image (a GIF's first frame); PhotoRefused otherwise."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoRefused(TOO_LARGE)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ACCEPTED_FORMATS:
                raise PhotoRefused(NOT_A_PHOTO)
            image.seek(0)
            upright = ImageOps.exif_transpose(image)
            return upright.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise PhotoRefused(NOT_A_PHOTO) from None
    except (OSError, ValueError, SyntaxError, EOFError):  # truncated or corrupt pixel data
        raise PhotoRefused(UNREADABLE) from None


def fit_photo(image: Image.Image, height: int, width: int) -> Image.Image:
    """`image` scaled to cover height x width with its aspect kept, the middle cut out."""
    from PIL import Image, ImageOps

    if image.size == (width, height):
        return image
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def encode_photo(image: Image.Image, quality: int = 95) -> str:
    """`image` as base64 JPEG text (what a job's `image` parameter holds)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_photo(text: str) -> Image.Image:
    """A job's `image` parameter back to an RGB image; PhotoRefused if it is not one."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise PhotoRefused(UNREADABLE) from None
    return open_photo(data)
