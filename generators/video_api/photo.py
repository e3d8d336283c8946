"""A photo fitted to a provider's rules before it is sent as base64: orientation from EXIF applied, no
alpha, each side within [min_side, max_side] (aspect kept; a panorama too long for both is centre-cropped),
re-encoded as JPEG at falling quality until it is under the byte limit."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from generators.video_api.errors import ApiFailure, Failure

MIN_QUALITY = 40


@dataclass(frozen=True)
class PhotoRules:
    formats: tuple[str, ...]  # Pillow format names the provider takes as they are
    max_bytes: int
    min_side: int
    max_side: int


class PhotoUnreadable(ApiFailure):
    def __init__(self, detail: str) -> None:
        super().__init__(Failure.BAD_PHOTO, detail)


def _open(data: bytes):  # noqa: ANN202 - PIL.Image.Image, imported lazily
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PhotoUnreadable(f"the photo does not open: {exc}") from exc
    return image, ImageOps.exif_transpose(image)


def _resized(image, rules: PhotoRules):  # noqa: ANN001, ANN202
    width, height = image.size
    scale = 1.0
    if min(width, height) < rules.min_side:
        scale = rules.min_side / min(width, height)
    if max(width, height) * scale > rules.max_side:
        scale = rules.max_side / max(width, height)
    if scale != 1.0:
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))))
    width, height = image.size
    if min(width, height) < rules.min_side:  # a panorama: bring the short side up, crop the long one
        scale = rules.min_side / min(width, height)
        image = image.resize((round(width * scale), round(height * scale)))
        width, height = image.size
        crop_w, crop_h = min(width, rules.max_side), min(height, rules.max_side)
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        image = image.crop((left, top, left + crop_w, top + crop_h))
    return image


def fit_photo(photo: bytes | Path, rules: PhotoRules) -> tuple[str, str]:
    """(mime type, base64) of the photo as the provider accepts it. Blocking (Pillow): run in a thread."""
    try:
        data = Path(photo).read_bytes() if isinstance(photo, Path) else photo
    except OSError as exc:  # the photo was cleaned up (retention) or never saved
        raise PhotoUnreadable(f"the photo cannot be read: {exc}") from exc
    original, image = _open(data)
    width, height = image.size
    fits = (original.format in rules.formats and len(data) <= rules.max_bytes and image is original
            and rules.min_side <= min(width, height) and max(width, height) <= rules.max_side
            and image.mode in ("RGB", "L"))
    if fits:
        mime = "image/png" if original.format == "PNG" else "image/jpeg"
        return mime, base64.b64encode(data).decode()
    image = _resized(image.convert("RGB"), rules)
    for quality in (92, 85, 75, 60, MIN_QUALITY):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        if buffer.tell() <= rules.max_bytes:
            return "image/jpeg", base64.b64encode(buffer.getvalue()).decode()
    raise PhotoUnreadable(f"the photo stays over {rules.max_bytes} bytes even at JPEG quality {MIN_QUALITY}")
