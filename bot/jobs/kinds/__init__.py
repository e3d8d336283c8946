"""The job kinds this process hosts: `video` (CogVideoX) and `image` (FLUX or an images API)."""

from bot.jobs.kinds.base import GeneratorKind
from bot.jobs.kinds.image import PRIORITY as IMAGE_PRIORITY
from bot.jobs.kinds.image import ImageKind, image_api_key
from bot.jobs.kinds.video import TOKEN_ENV, VideoKind, video_token

__all__ = ["IMAGE_PRIORITY", "TOKEN_ENV", "GeneratorKind", "ImageKind", "VideoKind", "image_api_key",
           "video_token"]
