"""CogVideoX text-to-video and image-to-video, in-process with diffusers.

`CogVideoXGenerator(config.video)` (2b, 5b, 1.5-5B) and
`CogVideoXPhotoGenerator(photo_view(config.video))` (5b-I2V, 1.5-5B-I2V: the render starts from the
request's photo) find the weights (never downloads), load them lazily once and keep them resident, check
every request before any GPU work, and run one video at a time with a step callback for progress and
cancellation. `generate` blocks: call it from a worker thread. Encoding the frames to MP4 is
`generators.mp4.encode_mp4`.

With `ranks` (a multi-GPU worker's compute group) and `video.parallel` set, one video is rendered by all
ranks together (generators/parallel.py): rank 0 calls `generate` and gets the frames, every other rank
calls `follow` with the same request at the same time and stops at the latents.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generators.base import (
    GeneratorError,
    RequestData,
    ShouldStop,
    StepCallback,
    check_guidance_and_seed,
    went_wrong,
)
from generators.cogvideox_models import (
    PHOTO_SOURCES,
    PREFERRED_DTYPE,
    RELEASED_2B_LIMITS,
    RELEASED_SIZE,
    SOURCES,
    ModelLimits,
    is_15,
    model_limits,
    size_problem,
)
from generators.diffusion import DiffusersGenerator, ModelFamily
from generators.loading import read_component_config
from generators.parallel import RankContext, SplitPlan, install_cfg_split, plan_split
from generators.presets import preset_cache, resolve_preset
from generators.rules import VIDEO_MIN_SIDE, frames_problem, side_problem, steps_problem
from generators.speedups import apply_speedups, speed_context
from generators.step_cache import cache_gib, cachedit_attached, match_guidance, schedule_steps

if TYPE_CHECKING:
    import numpy as np

__all__ = ["PHOTO_SOURCES", "RELEASED_2B_LIMITS", "RELEASED_SIZE", "SOURCES", "CogVideoXGenerator",
           "CogVideoXPhotoGenerator", "ModelLimits", "VideoRequest", "VideoResult", "model_limits",
           "photo_view",
           "validate_request"]



@dataclass(frozen=True)
class VideoRequest(RequestData):
    """One video to render; plain data so a job can be stored or sent elsewhere (`asdict`). `image` is
    the photo an image-to-video render starts from (base64 JPEG, `generators.photos`), else None."""

    what = "video"

    prompt: str
    num_frames: int = 49
    steps: int = 50
    guidance: float = 6.0
    seed: int | None = None
    height: int = 480
    width: int = 720
    image: str | None = None


@dataclass(frozen=True)
class VideoResult:
    """Frames as uint8 (T, H, W, 3), the fps to play them at, and the seed that reproduces them."""

    frames: np.ndarray
    fps: int
    seed: int
    steps: int
    seconds: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


def validate_request(request: VideoRequest, limits: ModelLimits = RELEASED_2B_LIMITS,
                     max_steps: int = 100) -> None:
    """Raise GeneratorError (Chinese, fit for the asker) naming the first rule the request breaks.

    Pure and cheap: usable where no model is loaded (the remote client, the intent handler)."""
    prompt = request.prompt
    if not isinstance(prompt, str) or not prompt.strip():
        raise GeneratorError("视频描述是空的，请说说想要什么画面。")
    frames = request.num_frames
    if frames_problem(frames, limits.frame_step):
        examples = "17、33、49、81、161" if limits.frame_step == 16 else "9、17、25、33、41、49"
        raise GeneratorError(f"帧数必须是 {limits.frame_step} 的倍数加 1（如 {examples}），收到 {frames!r}。")
    if frames > limits.max_frames:
        raise GeneratorError(f"帧数最多 {limits.max_frames}，收到 {frames}。")
    steps = request.steps
    if steps_problem(steps, max_steps):
        raise GeneratorError(f"步数必须是 1 到 {max_steps} 之间的整数，收到 {steps!r}。")
    check_guidance_and_seed(request.guidance, request.seed, guidance_required=True)
    height, width = request.height, request.width
    for name, value in (("高度", height), ("宽度", width)):
        if side_problem(value, VIDEO_MIN_SIDE):
            raise GeneratorError(f"视频{name}必须是 16 的倍数（至少 16），收到 {value!r}。")
    if problem := size_problem(limits, height, width):
        raise GeneratorError(problem)
    if limits.image_input and not request.image:
        raise GeneratorError("照片不见了，请再发一次照片。")
    if request.image and not limits.image_input:
        raise went_wrong("a photo reached the text-to-video model", "video:photo-to-text-model")


class CogVideoXGenerator(DiffusersGenerator[VideoRequest, VideoResult]):
    """CogVideoX-2b/-5b/1.5-5B (or any pipeline folder of the same layout), loaded once and kept resident."""

    family = ModelFamily(
        "CogVideoXPipeline", "CogVideoX", what="视频", sources=SOURCES, setting="video.model.path",
        tokenizer_folder="tokenizer", quantized={"transformer": "diffusers", "text_encoder": "transformers"})

    def __init__(self, config: Any, env: dict[str, str] | None = None,
                 ranks: RankContext | None = None) -> None:
        super().__init__(config, env)
        self.ranks = ranks

    def split_plan(self, guidance: float | None = None, world_size: int | None = None) -> SplitPlan:
        """How `video.parallel` spreads one video over `ranks` (or `world_size` ranks, to check a
        setup before starting them); ParallelSplitError if it cannot. Needs only the model's limits."""
        world_size = world_size or (self.ranks.world_size if self.ranks is not None else None)
        if world_size is None:
            return SplitPlan("none")
        return plan_split(self.config.parallel, world_size,
                          guidance=self.config.sampling.guidance if guidance is None else guidance,
                          heads=self.limits.attention_heads,
                          latent_height=self.config.sampling.height // self.limits.spatial_scale)

    def build_pipeline(self, pipeline_cls: type, folder: Path, dtype: Any, config: Any) -> Any:
        plan = self.split_plan()
        if plan.needs_library:
            from generators.xdit import load_xdit_pipeline

            return load_xdit_pipeline(folder, dtype, plan, "cuda")
        return super().build_pipeline(pipeline_cls, folder, dtype, config)

    def fallbacks(self, variant: str) -> list[str]:
        """Only the same generation: a 1.0 config (480x720, 8N+1) cannot drive a 1.5 model, nor back."""
        return [v for v in self.family.sources if is_15(v) == is_15(variant)]

    def read_limits(self, folder: Path) -> ModelLimits:
        return model_limits(folder)

    def preferred_dtype(self) -> str:
        return PREFERRED_DTYPE.get(self.limits.variant, "bfloat16")

    def resolve_config(self, on_gpu: bool, mode: str) -> tuple[Any, list[str]]:
        cache_size = gpu_gib = None
        if on_gpu:
            import torch

            sampling = self.config.sampling
            shape = read_component_config(self.locate(), "transformer")
            cache_size = cache_gib(preset_cache(self.config), shape, sampling.height, sampling.width,
                                   sampling.num_frames, sampling.guidance,
                                   spatial_scale=self.limits.spatial_scale)
            gpu_gib = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / 2**30
        return resolve_preset(self.config, on_gpu, mode, cache_gib=cache_size, gpu_gib=gpu_gib)

    def after_load(self, pipe: Any, on_gpu: bool, mode: str) -> list[str]:
        notes = apply_speedups(pipe, self.active_config, on_gpu, mode)
        speed = self.active_config.speed
        if speed.cache == "cachedit" and not cachedit_attached(pipe.transformer):
            # it could not attach (the note says why): what is in force says so too
            self.active_config = self.active_config.model_copy(
                update={"speed": speed.model_copy(update={"cache": "none"})})
        plan = self.split_plan()
        if plan.mode == "cfg" and self.ranks is not None:
            install_cfg_split(pipe.transformer, self.ranks)  # last: it wraps the compiled, hooked model
        elif self.ranks is None and self.config.parallel != "none":
            notes.append(f"video.parallel={self.config.parallel} applies to `xiaoai worker --gpus`; this "
                         "process renders each video on one device")
        return notes

    def run_context(self) -> contextlib.AbstractContextManager[Any]:
        return speed_context(self.active_config, self._pipe)

    @staticmethod
    def fitted_photo(request: VideoRequest) -> Any:
        """The request's photo cut to its size (aspect kept, centre crop), as the pipeline takes it."""
        from generators.photos import decode_photo, fit_photo

        assert request.image is not None  # validate_request saw to it
        return fit_photo(decode_photo(request.image), request.height, request.width)

    def check_inputs(self, request: VideoRequest) -> None:
        """Every parameter rule, plus the prompt's token length; reads config files and the tokenizer
        (no weights), so run it off the event loop the first time."""
        validate_request(request, self.limits, self.config.sampling.max_steps)
        if request.image:
            from generators.photos import decode_photo

            decode_photo(request.image)  # a file that is no photo is refused before it is queued
        self.check_prompt_length(request.prompt)
        self.split_plan(request.guidance)

    def generate(self, request: VideoRequest, on_step: StepCallback | None = None,
                 should_stop: ShouldStop | None = None) -> VideoResult:
        """Render `request` (blocking). Same seed and settings -> the same frames. `on_step(i, n)` after
        each denoising step; `should_stop()` polled before the run and after each step aborts it with
        GenerationCancelled (no VAE decode, no output). In a rank group this is rank 0's call."""
        result = self._render(request, on_step, should_stop, decode=True)
        assert result is not None
        return result

    def follow(self, request: VideoRequest) -> None:
        """Another rank's share of the video rank 0 renders now with `generate`: the same checks and
        steps (seed, progress and cancellation come from rank 0), no decode, no result."""
        if self.ranks is None or self.ranks.leader:
            raise RuntimeError("follow() is for the ranks other than 0 of a rank group")
        self._render(request, None, None, decode=False)

    def _render(self, request: VideoRequest, on_step: StepCallback | None, should_stop: ShouldStop | None,
                decode: bool) -> VideoResult | None:
        self.check_inputs(request)  # the same verdict on every rank, before any exchange
        self.load()
        import numpy as np
        import torch

        seed = self.pick_seed(request.seed)
        plan = self.split_plan(request.guidance)
        ranks = self.ranks if plan.world_size > 1 else None
        if ranks is not None:
            seed = ranks.share_int(seed)
            should_stop = ranks.shared_stop(should_stop)
            on_step = on_step if ranks.leader else None
        split_cfg = plan.cfg > 1
        latent_only = not decode and not plan.needs_library
        with self._running(request.steps, on_step, should_stop) as step_end:
            speed = self.active_config.speed
            if speed.cache == "fastercache":
                # a split rank holds one guidance half: nothing to approximate the other half from
                match_guidance(self._pipe.transformer, uses_cfg=request.guidance > 1 and not split_cfg)
            elif speed.cache == "cachedit":
                schedule_steps(self._pipe.transformer, speed, request.steps)
            started = time.perf_counter()
            photo = {"image": self.fitted_photo(request)} if self.limits.image_input else {}
            output = self._pipe(
                **photo,
                prompt=request.prompt.strip(),
                num_frames=request.num_frames,
                height=request.height,
                width=request.width,
                num_inference_steps=request.steps,
                guidance_scale=float(request.guidance),
                generator=torch.Generator(device="cpu").manual_seed(seed),
                max_sequence_length=self.limits.max_prompt_tokens,
                output_type="latent" if latent_only else "np",
                callback_on_step_end=step_end,
            )
            if not decode:
                return None
            frames = np.asarray(output.frames[0])
            video = np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
            elapsed = time.perf_counter() - started
        if video.shape[0] != request.num_frames:
            raise GeneratorError(f"做出来的视频有 {video.shape[0]} 帧，应该是 {request.num_frames} 帧，"
                                 "这次没做成。")
        return VideoResult(frames=video, fps=self.config.sampling.fps, seed=seed, steps=request.steps,
                           seconds=elapsed)


def photo_view(video: Any) -> Any:
    """The `video` settings as the photo model reads them: `video.photo`'s model and sampling, the speed
    switches, encoding and parallel split shared with text-to-video."""
    return video.model_copy(update={"model": video.photo.model, "sampling": video.photo.sampling})


class CogVideoXPhotoGenerator(CogVideoXGenerator):
    """CogVideoX-5b-I2V / CogVideoX1.5-5B-I2V: a photo and a prompt about its motion -> a video. Reads
    `photo_view(video)`, so presets, memory modes and quantization apply as for text-to-video."""

    family = ModelFamily(
        "CogVideoXImageToVideoPipeline", "CogVideoX-I2V", what="视频", sources=PHOTO_SOURCES,
        setting="video.photo.model.path", tokenizer_folder="tokenizer",
        quantized={"transformer": "diffusers", "text_encoder": "transformers"})
