"""FLUX.1 text-to-image, in-process with diffusers (`FluxPipeline`).

`FluxGenerator(config.image)` finds the weights through `generators/loading.py` (config path, else
black-forest-labs/FLUX.1-schnell|-dev in the modelscope or Hugging Face cache; never downloads), loads
them lazily once, checks every request before any GPU work, and renders one picture at a time with a
step callback for progress and cancellation. `generate` blocks: call it from a worker thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from generators.base import GeneratorError, RequestData, ShouldStop, StepCallback, check_guidance_and_seed
from generators.diffusion import DiffusersGenerator, ModelFamily
from generators.loading import ModelSource, read_component_config
from generators.rules import IMAGE_MAX_SIDE, IMAGE_MIN_SIDE, side_problem, steps_problem

if TYPE_CHECKING:
    from PIL import Image

Variant = Literal["schnell", "dev"]

# modelscope mirrors the Hugging Face ids (`modelscope download --model black-forest-labs/FLUX.1-schnell`)
SOURCES: dict[Variant, ModelSource] = {
    variant: ModelSource(f"FLUX.1-{variant}", (f"black-forest-labs/FLUX.1-{variant}",),
                         (f"black-forest-labs/FLUX.1-{variant}",))
    for variant in ("schnell", "dev")
}
# schnell is timestep-distilled (few steps, no guidance input); dev is guidance-distilled
DEFAULT_STEPS: dict[Variant, int] = {"schnell": 4, "dev": 28}
DEFAULT_GUIDANCE: dict[Variant, float] = {"schnell": 0.0, "dev": 3.5}
MAX_TEXT_TOKENS: dict[Variant, int] = {"schnell": 256, "dev": 512}  # T5 lengths the releases were tuned for
PREFERRED_DTYPE = "bfloat16"
MIN_SIDE, MAX_SIDE = IMAGE_MIN_SIDE, IMAGE_MAX_SIDE
MAX_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class ImageRequest(RequestData):
    """One picture to render; plain data so a job can be stored or sent elsewhere (`asdict`).

    `steps`/`guidance` None mean the loaded variant's defaults (schnell 4 / 0, dev 28 / 3.5)."""

    what = "image"

    prompt: str
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    height: int = 576
    width: int = 1024


@dataclass(frozen=True)
class ImageResult:
    """The picture (RGB), the seed that reproduces it, and how it was made."""

    image: Image.Image
    seed: int
    steps: int
    seconds: float

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.image.height, self.image.width


@dataclass(frozen=True)
class FluxLimits:
    """What a FLUX folder accepts, read from its config files (no torch needed)."""

    variant: Variant
    max_prompt_tokens: int
    default_steps: int  # what the variant was distilled / tuned for
    default_guidance: float


def flux_limits(folder: Path) -> FluxLimits:
    """dev has a guidance embedding, schnell has none: the transformer config tells them apart."""
    transformer = read_component_config(folder, "transformer")
    variant: Variant = "dev" if transformer.get("guidance_embeds") else "schnell"
    return FluxLimits(variant, MAX_TEXT_TOKENS[variant], DEFAULT_STEPS[variant], DEFAULT_GUIDANCE[variant])


def save_image(image: Image.Image, path: Path, fmt: str = "jpeg", quality: int = 92) -> Path:
    """Write `image` as JPEG or PNG at `path` with the matching suffix; returns the path written."""
    path = path.with_suffix(".png" if fmt == "png" else ".jpg")
    if fmt == "png":
        image.save(path, format="PNG", optimize=True)
    else:
        image.convert("RGB").save(path, format="JPEG", quality=quality)
    return path


def validate_request(request: ImageRequest, max_steps: int = 60) -> None:
    """Raise GeneratorError (Chinese, fit for the asker) naming the first rule the request breaks.

    Pure and cheap: usable where no model is loaded (the API backend, the intent handler)."""
    if not isinstance(request.prompt, str) or not request.prompt.strip():
        raise GeneratorError("图片描述是空的，请说说想画什么。")
    steps = request.steps
    if steps is not None and steps_problem(steps, max_steps):
        raise GeneratorError(f"步数必须是 1 到 {max_steps} 之间的整数，收到 {steps!r}。")
    check_guidance_and_seed(request.guidance, request.seed)
    for name, value in (("高度", request.height), ("宽度", request.width)):
        if side_problem(value, MIN_SIDE, MAX_SIDE):
            raise GeneratorError(
                f"图片{name}必须是 16 的倍数，在 {MIN_SIDE} 到 {MAX_SIDE} 之间，收到 {value!r}。")
    if request.height * request.width > MAX_PIXELS:
        raise GeneratorError(f"图片太大了：{request.height}x{request.width}，"
                             f"最多 {MAX_PIXELS // 1_000_000} 百万像素。")


class FluxGenerator(DiffusersGenerator[ImageRequest, ImageResult]):
    """FLUX.1-schnell/-dev (or any FluxPipeline folder), loaded once and kept resident."""

    family = ModelFamily(
        "FluxPipeline", "FLUX", what="图片", sources=SOURCES, setting="image.model.path",
        tokenizer_folder="tokenizer_2",  # T5's: CLIP only sees the first 77 tokens anyway
        quantized={"transformer": "diffusers", "text_encoder_2": "transformers"})

    def read_limits(self, folder: Path) -> FluxLimits:
        return flux_limits(folder)

    def preferred_dtype(self) -> str:
        return PREFERRED_DTYPE

    def variant_label(self) -> str:
        return f"FLUX.1-{self.limits.variant}"

    def resolved(self, request: ImageRequest) -> tuple[int, float]:
        """(steps, guidance) with the variant's defaults filled in."""
        limits = self.limits
        steps = request.steps if request.steps is not None else limits.default_steps
        guidance = request.guidance if request.guidance is not None else limits.default_guidance
        return steps, float(guidance)

    def check_inputs(self, request: ImageRequest) -> None:
        """Every parameter rule plus the prompt's T5 length; reads config files and the tokenizer only."""
        validate_request(request, self.config.sampling.max_steps)
        self.check_prompt_length(request.prompt)

    def generate(self, request: ImageRequest, on_step: StepCallback | None = None,
                 should_stop: ShouldStop | None = None) -> ImageResult:
        """Render `request` (blocking). Same seed and settings -> the same pixels. `on_step(i, n)` after
        each step; `should_stop()` polled before the run and after each step aborts it with
        GenerationCancelled (no VAE decode, no output)."""
        self.check_inputs(request)
        self.load()
        import torch

        seed = self.pick_seed(request.seed)
        steps, guidance = self.resolved(request)
        with self._running(steps, on_step, should_stop) as step_end:
            started = time.perf_counter()
            output = self._pipe(
                prompt=request.prompt.strip(),
                height=request.height,
                width=request.width,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator(device="cpu").manual_seed(seed),
                max_sequence_length=self.limits.max_prompt_tokens,
                output_type="pil",
                callback_on_step_end=step_end,
            )
            image = output.images[0].convert("RGB")
            elapsed = time.perf_counter() - started
        if (image.height, image.width) != (request.height, request.width):
            raise GeneratorError(f"画出来的图是 {image.height}x{image.width}，应该是 "
                                 f"{request.height}x{request.width}。")
        return ImageResult(image=image, seed=seed, steps=steps, seconds=elapsed)
