"""FLUX.1 text-to-image, in-process with diffusers (`FluxPipeline`).

`FluxGenerator(config.image)` finds the weights through `generators/loading.py` (config path, else
black-forest-labs/FLUX.1-schnell|-dev in the modelscope or Hugging Face cache; never downloads), loads
them lazily once, checks every request before any GPU work, and renders one picture at a time with a
step callback for progress and cancellation. `generate` blocks: call it from a worker thread.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loguru import logger

from generators.base import GenerationCancelled, Generator, GeneratorError, ShouldStop, StepCallback
from generators.loading import (
    LoadedModel,
    ModelSource,
    apply_memory_mode,
    find_model,
    gpu_memory,
    has_cuda,
    load_pipeline,
    read_component_config,
    resolve_dtype,
    resolve_memory_mode,
)

if TYPE_CHECKING:
    from PIL import Image

    from bot.config import ImageConfig

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
SIZE_MULTIPLE = 16  # VAE downsamples 8x, then 2x2 latent patches
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_PIXELS = 2048 * 2048
MAX_SEED = 2**63 - 1
MAX_GUIDANCE = 20.0


@dataclass(frozen=True)
class ImageRequest:
    """One picture to render; plain data so a job can be stored or sent elsewhere (`asdict`).

    `steps`/`guidance` None mean the loaded variant's defaults (schnell 4 / 0, dev 28 / 3.5)."""

    prompt: str
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    height: int = 576
    width: int = 1024

    @classmethod
    def from_config(cls, prompt: str, config: ImageConfig, **overrides: Any) -> ImageRequest:
        values = {"prompt": prompt, "steps": config.steps, "guidance": config.guidance,
                  "height": config.height, "width": config.width}
        return cls(**(values | overrides))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRequest:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise GeneratorError(f"unknown image request fields: {', '.join(sorted(unknown))}")
        return cls(**data)


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

    @property
    def default_steps(self) -> int:
        return DEFAULT_STEPS[self.variant]

    @property
    def default_guidance(self) -> float:
        return DEFAULT_GUIDANCE[self.variant]


def flux_limits(folder: Path) -> FluxLimits:
    """dev has a guidance embedding, schnell has none: the transformer config tells them apart."""
    transformer = read_component_config(folder, "transformer")
    variant: Variant = "dev" if transformer.get("guidance_embeds") else "schnell"
    return FluxLimits(variant, MAX_TEXT_TOKENS[variant])


def save_image(image: Image.Image, path: Path, fmt: str = "jpeg", quality: int = 92) -> Path:
    """Write `image` as JPEG or PNG at `path` with the matching suffix; returns the path written."""
    path = path.with_suffix(".png" if fmt == "png" else ".jpg")
    if fmt == "png":
        image.save(path, format="PNG", optimize=True)
    else:
        image.convert("RGB").save(path, format="JPEG", quality=quality)
    return path


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_request(request: ImageRequest, max_steps: int = 60) -> None:
    """Raise GeneratorError (Chinese, fit for the asker) naming the first rule the request breaks.

    Pure and cheap: usable where no model is loaded (the API backend, the intent handler)."""
    if not isinstance(request.prompt, str) or not request.prompt.strip():
        raise GeneratorError("图片描述是空的，请说说想画什么。")
    steps = request.steps
    if steps is not None and (not _is_int(steps) or not 1 <= steps <= max_steps):
        raise GeneratorError(f"步数必须是 1 到 {max_steps} 之间的整数，收到 {steps!r}。")
    guidance = request.guidance
    if guidance is not None and (isinstance(guidance, bool) or not isinstance(guidance, int | float)
                                 or not 0 <= guidance <= MAX_GUIDANCE):
        raise GeneratorError(f"引导强度 guidance 必须在 0 到 {MAX_GUIDANCE:g} 之间，收到 {guidance!r}。")
    seed = request.seed
    if seed is not None and (not _is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise GeneratorError(f"随机种子必须是 0 到 2^63-1 之间的整数，收到 {seed!r}。")
    for name, value in (("高度", request.height), ("宽度", request.width)):
        if not _is_int(value) or value % SIZE_MULTIPLE or not MIN_SIDE <= value <= MAX_SIDE:
            raise GeneratorError(
                f"图片{name}必须是 16 的倍数，在 {MIN_SIDE} 到 {MAX_SIDE} 之间，收到 {value!r}。")
    if request.height * request.width > MAX_PIXELS:
        raise GeneratorError(f"图片太大了：{request.height}x{request.width}，"
                             f"最多 {MAX_PIXELS // 1_000_000} 百万像素。")


class FluxGenerator(Generator[ImageRequest, ImageResult]):
    """FLUX.1-schnell/-dev (or any FluxPipeline folder), loaded once and kept resident."""

    def __init__(self, config: ImageConfig, env: dict[str, str] | None = None) -> None:
        self.config = config
        self._env = env
        self._folder: Path | None = None
        self._limits: FluxLimits | None = None
        self._tokenizer: Any = None
        self._pipe: Any = None
        self._info: LoadedModel | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    # -- finding the model (cheap) ---------------------------------------------------------------
    def locate(self) -> Path:
        """The model folder per config (explicit path, else the caches); ModelNotFound if none."""
        if self._folder is None:
            order = [self.config.variant] + [v for v in SOURCES if v != self.config.variant]
            self._folder = find_model(self.config.model_path, [SOURCES[v] for v in order], self._env,
                                      setting="image.model_path")
        return self._folder

    @property
    def limits(self) -> FluxLimits:
        if self._limits is None:
            self._limits = flux_limits(self.locate())
        return self._limits

    def resolved(self, request: ImageRequest) -> tuple[int, float]:
        """(steps, guidance) with the variant's defaults filled in."""
        limits = self.limits
        steps = request.steps if request.steps is not None else limits.default_steps
        guidance = request.guidance if request.guidance is not None else limits.default_guidance
        return steps, float(guidance)

    def prompt_tokens(self, prompt: str) -> int:
        """T5 tokens `prompt` takes (limit `limits.max_prompt_tokens`; CLIP only sees the first 77).

        Loads only the tokenizer on first use: call it off the event loop."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            folder = self.locate() / "tokenizer_2"
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        return len(self._tokenizer(prompt).input_ids)

    def check_inputs(self, request: ImageRequest) -> None:
        """Every parameter rule plus the prompt's T5 length; reads config files and the tokenizer only."""
        validate_request(request, self.config.max_steps)
        limits = self.limits
        tokens = self.prompt_tokens(request.prompt)
        if tokens > limits.max_prompt_tokens:
            raise GeneratorError(f"图片描述太长了：{tokens} 个词元，模型最多 {limits.max_prompt_tokens} 个，"
                                 "请说得简短些。")

    # -- loading (once) --------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    def load(self) -> None:
        """Load the weights once (thread-safe, idempotent) and place them per `memory_mode`."""
        if self._pipe is not None:
            return
        with self._load_lock:
            if self._pipe is not None:
                return
            from diffusers import FluxPipeline

            started = time.perf_counter()
            folder, limits = self.locate(), self.limits
            on_gpu = has_cuda()
            mode, note = resolve_memory_mode(self.config.memory_mode, on_gpu)
            if note:
                logger.warning(note)
            dtype = resolve_dtype(self.config.dtype, PREFERRED_DTYPE, on_gpu)
            pipe = load_pipeline(FluxPipeline, folder, dtype, self.config.quantization,
                                 {"transformer": "diffusers", "text_encoder_2": "transformers"})
            apply_memory_mode(pipe, mode, self.config.vae_tiling, self.config.vae_slicing)
            pipe.set_progress_bar_config(disable=True)
            self._tokenizer = pipe.tokenizer_2
            self._info = LoadedModel(
                folder=folder, variant=f"FLUX.1-{limits.variant}", dtype=str(dtype).removeprefix("torch."),
                memory_mode=mode, quantization=self.config.quantization, vae_tiling=self.config.vae_tiling,
                load_seconds=time.perf_counter() - started, note=note)
            self._pipe = pipe
            logger.info("FLUX loaded: {}", self._info.summary())

    def unload(self) -> None:
        """Drop the weights (frees GPU memory); the next generate loads again."""
        with self._load_lock, self._run_lock:
            self._pipe, self._info = None, None
            import gc

            gc.collect()
            if has_cuda():
                import torch

                torch.cuda.empty_cache()

    # -- running ---------------------------------------------------------------------------------
    def generate(self, request: ImageRequest, on_step: StepCallback | None = None,
                 should_stop: ShouldStop | None = None) -> ImageResult:
        """Render `request` (blocking). Same seed and settings -> the same pixels. `on_step(i, n)` after
        each step; `should_stop()` polled before the run and after each step aborts it with
        GenerationCancelled (no VAE decode, no output)."""
        self.check_inputs(request)
        self.load()
        import torch

        seed = request.seed if request.seed is not None else random.SystemRandom().randrange(2**31)
        steps, guidance = self.resolved(request)

        def step_end(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                on_step(index + 1, steps)
            if should_stop is not None and should_stop():
                raise GenerationCancelled(f"stopped after step {index + 1} of {steps}")
            return tensors

        with self._run_lock:
            if should_stop is not None and should_stop():
                raise GenerationCancelled("stopped before the first step")
            started = time.perf_counter()
            try:
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
            except torch.cuda.OutOfMemoryError as exc:
                torch.cuda.empty_cache()
                raise GeneratorError("显卡内存不够，这张图没画成。管理员可以把 image.memory_mode 改成 "
                                     "model_cpu_offload 再试。") from exc
            image = output.images[0].convert("RGB")
            elapsed = time.perf_counter() - started
        if (image.height, image.width) != (request.height, request.width):
            raise GeneratorError(f"模型返回了 {image.height}x{image.width} 的图，预期 "
                                 f"{request.height}x{request.width}。")
        return ImageResult(image=image, seed=seed, steps=steps, seconds=elapsed)

    # -- reporting -------------------------------------------------------------------------------
    @property
    def info(self) -> LoadedModel | None:
        return self._info

    def status_text(self) -> str:
        """One short Chinese paragraph for an admin status command: model, dtype, memory mode, GPU."""
        if self._info is None:
            try:
                where = f"模型在 {self.locate()}"
            except GeneratorError as exc:
                where = str(exc)
            lines = [f"图片模型尚未加载（首次使用时加载）。{where}"]
        else:
            lines = [f"图片模型: {self._info.summary()}"]
        memory = gpu_memory()
        lines.append(memory.summary() if memory else "没有 GPU（在 CPU 上运行）")
        return "\n".join(lines)
