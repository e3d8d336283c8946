"""What every in-process diffusers generator does the same way, whatever it renders.

Finding the folder (never downloading), reading its limits, counting prompt tokens, loading once
(thread-safe) with the configured dtype / memory mode / quantization, unloading, running one job at a
time with a step callback for progress and cancellation, turning CUDA out-of-memory into a clear
message, and the admin's status line. `CogVideoXGenerator` and `FluxGenerator` add their request type,
their parameter rules and their pipeline call.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic

from loguru import logger

from generators.base import (
    GenerationCancelled,
    Generator,
    GeneratorError,
    OutputT,
    RequestT,
    ShouldStop,
    StepCallback,
)
from generators.cpu_share import cpu_render_share
from generators.heavy_imports import import_heavy
from generators.loading import (
    ComponentLibrary,
    LoadedModel,
    ModelSource,
    apply_memory_mode,
    find_model,
    has_cuda,
    load_pipeline,
    resolve_dtype,
    resolve_memory_mode,
)


@dataclass(frozen=True)
class ModelFamily:
    """What sets one diffusers model family apart; everything else about loading and running is shared."""

    pipeline_class: str  # the diffusers class name, imported lazily
    display_name: str  # "CogVideoX", "FLUX"
    what: str  # what it makes, as the asker says it: "视频" / "图片"
    sources: Mapping[str, ModelSource]  # variant -> where the caches keep it
    setting: str  # the config key that points at a folder, named in "not found" messages
    tokenizer_folder: str  # the tokenizer whose count the prompt limit is about
    quantized: Mapping[str, ComponentLibrary]  # components torchao may quantize


class DiffusersGenerator(Generator[RequestT, OutputT], Generic[RequestT, OutputT]):
    """A diffusers pipeline folder, loaded lazily once and kept resident. Subclasses name their
    `family` and implement `read_limits`, `check_inputs` and `generate` (with `_run`)."""

    family: ClassVar[ModelFamily]

    def __init__(self, config: Any, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.active_config = config  # `config` with the preset resolved, once loaded
        self._env = env
        self._folder: Path | None = None
        self._limits: Any = None
        self._token_counter: Callable[[str], int] | None = None
        self._pipe: Any = None
        self._info: LoadedModel | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    # -- hooks ------------------------------------------------------------------------------------
    def read_limits(self, folder: Path) -> Any:
        """What the folder accepts, from its config files (no torch)."""
        raise NotImplementedError

    def preferred_dtype(self) -> str:
        raise NotImplementedError

    def fallbacks(self, variant: str) -> list[str]:
        """The variants whose cached weights may stand in for `variant` (default: any of the family)."""
        return list(self.family.sources)

    def variant_label(self) -> str:
        return str(self.limits.variant)

    def resolve_config(self, on_gpu: bool, mode: str) -> tuple[Any, list[str]]:
        """The settings to load with on this machine (a preset filled in) and notes; default: as given."""
        return self.config, []

    def build_pipeline(self, pipeline_cls: type, folder: Path, dtype: Any, config: Any) -> Any:
        """The pipeline object from `folder` (a parallel engine may build its own); default: diffusers'."""
        return load_pipeline(pipeline_cls, folder, dtype, config.model.quantization, self.family.quantized)

    def after_load(self, pipe: Any, on_gpu: bool, mode: str) -> list[str]:
        """Model-specific setup after placement; returns notes for the log and the status."""
        return []

    def run_context(self) -> contextlib.AbstractContextManager[Any]:
        """Wraps the pipeline call (an attention-kernel choice, say)."""
        return contextlib.nullcontext()

    # -- finding the model (cheap) ---------------------------------------------------------------
    def locate(self) -> Path:
        """The model folder per config (explicit path, else the caches); ModelNotFound if none."""
        if self._folder is None:
            family, variant = self.family, self.config.model.variant
            order = [v for v in dict.fromkeys([variant, *family.sources]) if v in self.fallbacks(variant)]
            self._folder = find_model(self.config.model.path, [family.sources[v] for v in order], self._env,
                                      setting=family.setting)
        return self._folder

    @property
    def limits(self) -> Any:
        if self._limits is None:
            self._limits = self.read_limits(self.locate())
        return self._limits

    def prompt_tokens(self, prompt: str) -> int:
        """How many text-encoder tokens `prompt` takes (limit: `limits.max_prompt_tokens`).

        Reads only the tokenizer file on first use (no torch: the ack must not wait for it)."""
        if self._token_counter is None:
            from generators.tokens import token_counter

            self._token_counter = token_counter(self.locate() / self.family.tokenizer_folder)
        return self._token_counter(prompt)

    def _import_heavy(self) -> None:
        names = [f"diffusers.{self.family.pipeline_class}"]
        if getattr(self.config, "quantization", "none") != "none":
            names += ["diffusers.TorchAoConfig", "diffusers.PipelineQuantizationConfig",
                      "transformers.TorchAoConfig"]
        import_heavy(names)

    def check_prompt_length(self, prompt: str) -> None:
        tokens, limit = self.prompt_tokens(prompt), self.limits.max_prompt_tokens
        if tokens > limit:
            raise GeneratorError(
                f"{self.family.what}描述太长了（{tokens} 个词，最多 {limit} 个），请说得简短些。")

    # -- loading (once) --------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    def load(self) -> None:
        """Load the weights once (thread-safe, idempotent) and place them per `memory_mode`."""
        if self._pipe is not None:
            return
        self._import_heavy()
        with self._load_lock:
            if self._pipe is not None:
                return
            import diffusers  # imported by `_import_heavy` above, under its lock

            started = time.perf_counter()
            folder = self.locate()
            on_gpu = has_cuda()
            mode, note = resolve_memory_mode(self.config.model.memory_mode, on_gpu)
            if note:
                logger.warning(note)
            config, preset_notes = self.resolve_config(on_gpu, mode)
            self.active_config = config
            dtype = resolve_dtype(config.model.dtype, self.preferred_dtype(), on_gpu)
            pipe = self.build_pipeline(getattr(diffusers, self.family.pipeline_class), folder, dtype, config)
            apply_memory_mode(pipe, mode, config.model.vae_tiling, config.model.vae_slicing)
            notes = ([note] if note else []) + preset_notes + self.after_load(pipe, on_gpu, mode)
            for line in notes[1 if note else 0:]:
                logger.warning(line)
            pipe.set_progress_bar_config(disable=True)
            self._info = LoadedModel(
                folder=folder, variant=self.variant_label(), dtype=str(dtype).removeprefix("torch."),
                memory_mode=mode, quantization=config.model.quantization,
                vae_tiling=config.model.vae_tiling,
                load_seconds=time.perf_counter() - started, note="; ".join(notes) or None)
            self._pipe = pipe
            logger.info("{} loaded: {}", self.family.display_name, self._info.summary())

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
    @staticmethod
    def pick_seed(seed: int | None) -> int:
        return seed if seed is not None else random.SystemRandom().randrange(2**31)

    @contextlib.contextmanager
    def _running(self, steps: int, on_step: StepCallback | None,
                 should_stop: ShouldStop | None) -> Iterator[Callable[..., dict[str, Any]]]:
        """One run at a time: yields the `callback_on_step_end` that reports progress and aborts with
        GenerationCancelled (no VAE decode, no output); CUDA out-of-memory becomes a clear message."""
        import torch

        def step_end(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                on_step(index + 1, steps)
            if should_stop is not None and should_stop():
                raise GenerationCancelled(f"stopped after step {index + 1} of {steps}")
            return tensors

        with self._run_lock:
            if should_stop is not None and should_stop():
                raise GenerationCancelled("stopped before the first step")
            try:
                with self.run_context(), self._cpu_share():
                    yield step_end
            except torch.cuda.OutOfMemoryError as exc:
                torch.cuda.empty_cache()
                section = self.family.setting.partition(".")[0]
                raise GeneratorError(
                    f"显卡内存不够，这个{self.family.what}没做成。管理员可以把 {section}.model.memory_mode "
                    "改成 model_cpu_offload 再试。") from exc

    def _cpu_share(self) -> contextlib.AbstractContextManager[Any]:
        """On the CPU in the bot's own process the render leaves a core to the event loop; in the render
        process, at the idle priority, it takes them all (generators/cpu_share.py)."""
        if self._info is not None and self._info.memory_mode == "cpu":
            return cpu_render_share()
        return contextlib.nullcontext()

    # -- reporting -------------------------------------------------------------------------------
    @property
    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (None before `load`), for benchmarks and instrumentation."""
        return self._pipe

    @property
    def info(self) -> LoadedModel | None:
        """What is loaded, or None before the first load."""
        return self._info

