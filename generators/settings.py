"""The settings a generator reads, as plain pydantic models: which weights and how they are placed
(`model`), what a render defaults to and may ask for (`sampling`), how the file is written (`encode`),
the opt-in speed switches (`speed`), and the remote / API backends' connection settings.

The bot's `video:` and `image:` config sections are these models plus the job-path keys (backend, queue,
show_prompt), so a generator reads its own settings types and never imports `bot`. Every model refuses
unknown keys and never changes once loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from generators.cogvideox_models import (
    PHOTO_VARIANTS,
    TEXT_VARIANTS,
    variant_defaults,
    variant_frames_problem,
)
from generators.rules import (
    IMAGE_MAX_SIDE,
    IMAGE_MIN_SIDE,
    MAX_GUIDANCE,
    VIDEO_MIN_SIDE,
    frames_problem,
    side_problem,
    steps_problem,
)

_KNOWN_VARIANTS = TEXT_VARIANTS + PHOTO_VARIANTS
Dtype = Literal["auto", "float16", "bfloat16", "float32"]
Parallel = Literal["none", "cfg", "cfg+ulysses"]
Quantization = Literal["none", "int8_weight_only", "fp8_dynamic"]


class Settings(BaseModel):
    """Base: unknown keys are errors, and loaded settings never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _expand_user(value: Path | None) -> Path | None:
    return value.expanduser() if value is not None else None


class ModelSettings(Settings):
    """Which weights and how they sit in memory; any change here reloads the weights.

    Shared by video and image; each kind narrows `variant` (and its memory modes) to what it has."""

    # a diffusers folder, or (when null) the variant's repository in the modelscope cache, then the
    # Hugging Face cache. Nothing is ever downloaded at run time.
    path: Path | None = None
    variant: str
    dtype: Dtype = "auto"
    memory_mode: str = "auto"
    vae_tiling: bool = False
    vae_slicing: bool = False
    quantization: Quantization = "none"

    _expand_path = field_validator("path")(_expand_user)


VideoMemoryMode = Literal["auto", "gpu", "model_cpu_offload", "group_offload", "sequential_cpu_offload",
                          "cpu"]


class VideoModelSettings(ModelSettings):
    """CogVideoX: 2B, 5B or 1.5-5B; decoding in tiles by default (~4 GiB instead of ~15 GiB)."""

    variant: Literal["2b", "5b", "1.5-5b"] = "2b"
    memory_mode: VideoMemoryMode = "auto"
    vae_tiling: bool = True


class PhotoModelSettings(ModelSettings):
    """The image-to-video model: CogVideoX-5b-I2V or CogVideoX1.5-5B-I2V."""

    variant: Literal["5b-i2v", "1.5-5b-i2v"] = "5b-i2v"
    memory_mode: VideoMemoryMode = "auto"
    vae_tiling: bool = True


class ImageModelSettings(ModelSettings):
    """FLUX.1: schnell (4 steps) or dev (28 steps)."""

    variant: Literal["schnell", "dev"] = "schnell"
    memory_mode: Literal["auto", "gpu", "model_cpu_offload", "sequential_cpu_offload", "cpu"] = "auto"


def _checked(problem: str | None, value: Any) -> Any:
    if problem:
        raise ValueError(problem)
    return value


def _steps_within_max(value: int | None, info: ValidationInfo) -> int | None:
    # max_steps is declared first, so it is already validated here (absent when it was itself wrong)
    max_steps = info.data.get("max_steps")
    if value is None or max_steps is None:
        return value
    return _checked(steps_problem(value, max_steps), value)


class VideoSampling(Settings):
    """A video request's defaults (each may be overridden by the asker within the limits); checked
    with the same rules as every request, so a value no render could use fails at load time."""

    max_steps: int = Field(default=100, ge=1, le=1000)
    num_frames: int = 49
    steps: int = Field(default=50, ge=1, le=200)
    guidance: float = Field(default=6.0, ge=0, le=MAX_GUIDANCE)
    fps: int = Field(default=8, ge=1, le=60)
    height: int = 480
    width: int = 720

    _steps = field_validator("steps")(_steps_within_max)

    @field_validator("num_frames")
    @classmethod
    def _frames(cls, value: int) -> int:
        return _checked(frames_problem(value), value)

    @field_validator("height", "width")
    @classmethod
    def _side(cls, value: int) -> int:
        return _checked(side_problem(value, VIDEO_MIN_SIDE), value)


class ImageSampling(Settings):
    """A picture request's defaults; null steps/guidance = the loaded variant's own."""

    max_steps: int = Field(default=60, ge=1, le=1000)
    steps: int | None = Field(default=None, ge=1, le=200)  # null: schnell 4, dev 28
    guidance: float | None = Field(default=None, ge=0, le=MAX_GUIDANCE)  # null: schnell 0, dev 3.5
    height: int = 576
    width: int = 1024

    _steps = field_validator("steps")(_steps_within_max)

    @field_validator("height", "width")
    @classmethod
    def _side(cls, value: int) -> int:
        return _checked(side_problem(value, IMAGE_MIN_SIDE, IMAGE_MAX_SIDE), value)


class VideoEncode(Settings):
    """The MP4: H.264 bitrate (for 480x720; larger frames get proportionally more), a hard size cap
    (WeChat's web puppets refuse videos over 20 MB; the gateway carries 64), encoder speed."""

    bitrate_kbps: int = Field(default=2000, ge=100)
    max_mp4_mb: float = Field(default=20.0, gt=0.1, le=64)
    x264_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"] = (
        "veryfast")


class ImageEncode(Settings):
    format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = Field(default=92, ge=50, le=100)


class SpeedSettings(Settings):
    """Opt-in speed switches, each measured in BENCHMARKS.md; all off = the plain path."""

    compile: Literal["off", "blocks"] = "off"  # blocks: regional torch.compile of the transformer blocks
    compile_cache_dir: Path | None = None  # where compiled kernels are kept for the next start
    fuse_qkv: bool = False  # one fused Q/K/V projection per attention layer
    attention: Literal["default", "flash", "cudnn", "efficient", "sage", "fa3", "fa3_fp8"] = (
        "default")  # attention kernel; fa3 = FlashAttention-3 (Hopper, pip install '.[hopper]')
    step_cache: float = Field(default=0.0, ge=0, le=1)  # first-block cache threshold, 0 = off; changes output
    vae_tile_size: tuple[int, int] | None = None  # [height, width] of a VAE decode tile; null = 240x360
    # presets and the step cache: one word for the speed switches, then diffusers' cache hooks
    preset: Literal["exact", "default", "fast"] = "default"  # exact = the plain path; README "Faster"
    # cachedit: cache-dit's block cache on a fixed schedule; fastercache, pab: diffusers' hooks; all change
    # the output (BENCHMARKS.md)
    cache: Literal["none", "cachedit", "fastercache", "pab"] = "none"
    cache_full_every: int = Field(default=4, ge=2, le=10)  # cachedit: after the warm-up, every Nth step full
    cache_warmup_steps: int = Field(default=8, ge=1, le=50)  # cachedit: the first steps always run in full
    cache_block_skip: int = Field(default=2, ge=1, le=10)  # fastercache, pab: attention every Nth step
    cache_timesteps: tuple[int, int] | None = None  # null: fastercache (-1, 681), pab (100, 800)
    cache_attention_weight: float = Field(default=0.3, ge=0, le=1)  # fastercache: weight of the old output
    cache_uncond_skip: int = Field(default=5, ge=1, le=50)  # fastercache: uncond branch every Nth step
    cache_uncond_timesteps: tuple[int, int] = (-1, 781)  # fastercache: window for skipping the uncond branch
    vae_compile: bool = False  # torch.compile the VAE decoder (GPU): faster decode, a longer first video

    _expand_cache_dir = field_validator("compile_cache_dir")(_expand_user)

    @field_validator("cache_timesteps", "cache_uncond_timesteps")
    @classmethod
    def _window_ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        # the first step (t = 999) must stay outside: the hooks have nothing cached to reuse yet
        if value is not None and not -1 <= value[0] < value[1] <= 999:
            raise ValueError("缓存的时间步窗口写成 [低, 高]，要满足 -1 <= 低 < 高 <= 999，比如 [-1, 681]")
        return value

    @field_validator("vae_tile_size")
    @classmethod
    def _tile_fits(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        # diffusers' tile overlap (1/6 of the height, 1/5 of the width) only adds up for these sizes;
        # others return frames of the wrong height (seen: 160x240 tiles -> 498-pixel frames)
        if value is not None and (value[0] < 48 or value[0] % 48 or value[1] < 40 or value[1] % 40):
            raise ValueError("vae_tile_size 写成 [高, 宽]：高是 48 的倍数，宽是 40 的倍数，"
                             "比如 [144, 240] 或 [240, 360]")
        return value


class RemoteSettings(Settings):
    """Where `xiaoai serve-video` answers (the token comes from env XIAOAI_VIDEO_TOKEN)."""

    url: str | None = None  # e.g. http://gpu-box:8000
    timeout_s: float = Field(default=1800, gt=0)  # give up on one remote render after this
    poll_s: float = Field(default=2.0, gt=0)  # how often the remote job's progress is read


class ImageApiSettings(Settings):
    """An OpenAI-compatible images endpoint (key from env XIAOAI_IMAGE_API_KEY, else OPENAI_API_KEY)."""

    base_url: str | None = None  # null: OPENAI_BASE_URL from the environment, else OpenAI itself
    model: str = "gpt-image-1"
    size: str | None = None  # e.g. "1024x1024"; null: the endpoint's default size
    response_format: Literal["b64_json", "url"] | None = None  # null: don't ask (gpt-image-1)
    timeout_s: float = Field(default=120, gt=0)
    retries: int = Field(default=1, ge=0, le=5)

    @field_validator("size")
    @classmethod
    def _size_shape(cls, value: str | None) -> str | None:
        if value is not None and value != "auto" and not re.fullmatch(r"\d{2,5}x\d{2,5}", value):
            raise ValueError(f"尺寸要写成 1024x1024 这样（或者 auto），现在写的是 {value!r}")
        return value


# list prices (元), from the providers' documentation (../shared/notes/video-apis.md)
ZHIPU_PRICES_YUAN = {"cogvideox-flash": 0.0, "cogvideox-2": 0.5, "cogvideox-3": 1.0}  # per video
DASHSCOPE_PRICES_YUAN_PER_S = {"wanx2.1-t2v-turbo": 0.24, "wanx2.1-i2v-turbo": 0.24, "wanx2.1-i2v-plus": 0.70,
                               "wan2.2-t2v-plus": 0.14}  # per second of video (480P for wan2.2)
API_DEFAULT_MODELS = {"zhipu": ("cogvideox-flash", "cogvideox-flash"),
                      "dashscope": ("wanx2.1-t2v-turbo", "wanx2.1-i2v-turbo")}  # (from text, from a photo)


class VideoApiSettings(Settings):
    """A hosted video API for families without a GPU: 智谱 CogVideoX (key from env ZHIPUAI_API_KEY) or
    DashScope 通义万相 (env DASHSCOPE_API_KEY). Money is counted in 元 with the prices below."""

    provider: Literal["zhipu", "dashscope"] = "zhipu"
    model: str | None = None  # from text; null: zhipu cogvideox-flash, dashscope wanx2.1-t2v-turbo
    photo_model: str | None = None  # from a photo; null: zhipu the same model, dashscope wanx2.1-i2v-turbo
    base_url: str | None = None  # null: the provider's public endpoint
    poll_s: float = Field(default=5.0, gt=0)  # how often a task's state is read
    timeout_s: float = Field(default=900, gt=0)  # give up on one video after this (from its create call)
    size: str | None = None  # zhipu 1280x720 ...; dashscope 1280*720 ...; null: the provider's default
    fps: Literal[30, 60] | None = None  # zhipu only; null: the provider's default
    duration: int = Field(default=5, ge=1, le=10)  # seconds; zhipu takes 5 or 10
    quality: Literal["speed", "quality"] = "speed"  # zhipu only
    watermark: bool | None = None  # null: the provider's default
    daily_budget_yuan: float | None = Field(default=10.0, ge=0)  # per day (schedules.timezone); null: any
    max_in_flight: int = Field(default=2, ge=1, le=20)  # videos asked of the provider at once
    max_download_mb: float = Field(default=100, gt=0)  # a result larger than this is refused
    prices_yuan: dict[str, float] = Field(default_factory=lambda: dict(ZHIPU_PRICES_YUAN))  # per video
    prices_yuan_per_second: dict[str, float] = Field(
        default_factory=lambda: dict(DASHSCOPE_PRICES_YUAN_PER_S))  # per second of video

    @field_validator("size")
    @classmethod
    def _size_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{3,4}[x*]\d{3,4}", value):
            raise ValueError(f"size must look like 1280x720 (zhipu) or 1280*720 (dashscope), got {value!r}")
        return value

    def model_for(self, photo: bool) -> str:
        """The model a request goes to: the configured one, else the provider's default."""
        chosen = self.photo_model if photo else self.model
        if photo and chosen is None and self.provider == "zhipu":
            chosen = self.model
        return chosen or API_DEFAULT_MODELS[self.provider][1 if photo else 0]

    def price_yuan(self, photo: bool = False) -> float | None:
        """What one video costs at list price; None when the model has no price configured."""
        model = self.model_for(photo)
        if model in self.prices_yuan:
            return self.prices_yuan[model]
        if model in self.prices_yuan_per_second:
            return round(self.prices_yuan_per_second[model] * self.duration, 4)
        return None
def _variant_sampling(data: Any, default_variant: str) -> Any:
    """Fill the sampling keys the admin left out with the chosen variant's own (1.5: 768x1360, 81
    frames, 16 fps), so `variant: 1.5-5b` alone is a working setting."""
    if not isinstance(data, Mapping):
        return data
    model = data.get("model")
    variant = (model.get("variant") if isinstance(model, Mapping) else getattr(model, "variant", None)) \
        or default_variant
    sampling = data.get("sampling", {})
    if not isinstance(sampling, Mapping) or not isinstance(variant, str) or variant not in _KNOWN_VARIANTS:
        return data
    return {**data, "sampling": {**variant_defaults(variant), **sampling}}


def _variant_frames(model: ModelSettings, sampling: VideoSampling, section: str) -> None:
    if problem := variant_frames_problem(model.variant, sampling.num_frames):
        raise ValueError(f"{section}.sampling.num_frames: {problem}")


class PhotoSettings(Settings):
    """Photo to video (图生视频): its own model and defaults; speed, encoding and the queue are shared
    with text-to-video."""

    model: PhotoModelSettings = PhotoModelSettings()
    sampling: VideoSampling = VideoSampling()
    max_age_minutes: float = Field(default=30, gt=0, le=24 * 60)  # how old the asker's latest photo may be
    keep_hours: float = Field(default=24, gt=0)  # photos received are deleted after this

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return _variant_sampling(data, "5b-i2v")

    @model_validator(mode="after")
    def _frames_fit(self) -> PhotoSettings:
        _variant_frames(self.model, self.sampling, "video.photo")
        return self


class VideoSettings(Settings):
    """What the video generators (CogVideoX in process, the remote service) read."""

    model: VideoModelSettings = VideoModelSettings()
    sampling: VideoSampling = VideoSampling()
    photo: PhotoSettings = PhotoSettings()
    encode: VideoEncode = VideoEncode()
    speed: SpeedSettings = SpeedSettings()
    # one video on the GPUs of `xiaoai worker --gpus 0,1`: cfg = the two guidance halves on 2 GPUs;
    # cfg+ulysses = also the attention heads, through xDiT (4 or 6 GPUs); none = one GPU per video
    parallel: Parallel = "none"
    remote: RemoteSettings = RemoteSettings()
    api: VideoApiSettings = VideoApiSettings()

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return _variant_sampling(data, "2b")

    @model_validator(mode="after")
    def _frames_fit(self) -> VideoSettings:
        _variant_frames(self.model, self.sampling, "video")
        return self


class ImageSettings(Settings):
    """What the image generators (FLUX in process, an images API) read."""

    model: ImageModelSettings = ImageModelSettings()
    sampling: ImageSampling = ImageSampling()
    encode: ImageEncode = ImageEncode()
    api: ImageApiSettings = ImageApiSettings()
