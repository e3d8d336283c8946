"""Videos from a hosted API for families without a GPU: 智谱 BigModel's CogVideoX and DashScope's
通义万相, text or a photo in, an MP4 out, paid once (see `run`). Never imports `bot`: the job side
hands in a `TaskLedger` and the config sections."""

from generators.video_api.client import VideoApiClient, redact
from generators.video_api.errors import ApiFailure, Failure
from generators.video_api.providers import KEY_ENVS, PROVIDERS, TaskStatus, provider_for
from generators.video_api.run import TaskLedger, TaskRecord, VideoApiRender, VideoApiRequest

__all__ = ["KEY_ENVS", "PROVIDERS", "ApiFailure", "Failure", "TaskLedger", "TaskRecord", "TaskStatus",
           "VideoApiClient", "VideoApiRender", "VideoApiRequest", "provider_for", "redact"]
