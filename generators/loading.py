"""Finding, loading and placing diffusers pipelines; shared by every in-process generator.

CogVideoX uses it now and a FLUX image generator can later reuse it unchanged: nothing here knows a
model family. It never downloads: weights come from an explicit folder or from where `modelscope
download` / `huggingface-cli download` already put them. torch, diffusers and torchao are imported
inside functions only (importing torchao alone costs seconds).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loguru import logger

from generators.base import GeneratorError, ModelNotFound, went_wrong

if TYPE_CHECKING:
    import torch

MemoryMode = Literal["auto", "gpu", "model_cpu_offload", "group_offload", "sequential_cpu_offload", "cpu"]
Quantization = Literal["none", "int8_weight_only", "fp8_dynamic"]
DtypeName = Literal["auto", "float16", "bfloat16", "float32"]
ComponentLibrary = Literal["diffusers", "transformers"]

FP8_MIN_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class ModelSource:
    """The names one model goes by in the two caches, e.g. ZhipuAI/CogVideoX-2b and THUDM/CogVideoX-2b."""

    label: str
    modelscope_ids: tuple[str, ...]
    huggingface_ids: tuple[str, ...]


# -- discovery ---------------------------------------------------------------------------------


def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def modelscope_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """Cache roots `modelscope download` writes under: $MODELSCOPE_CACHE, else ~/.cache/modelscope."""
    env = os.environ if env is None else env
    roots = []
    if env.get("MODELSCOPE_CACHE"):
        roots.append(Path(env["MODELSCOPE_CACHE"]).expanduser())
    roots.append(_home(env) / ".cache" / "modelscope")
    return list(dict.fromkeys(roots))


def huggingface_hub_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Hub cache folders in huggingface_hub's order: HF_HUB_CACHE, HF_HOME/hub, XDG, ~/.cache."""
    env = os.environ if env is None else env
    dirs = []
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            dirs.append(Path(env[key]).expanduser())
    if env.get("HF_HOME"):
        dirs.append(Path(env["HF_HOME"]).expanduser() / "hub")
    if env.get("XDG_CACHE_HOME"):
        dirs.append(Path(env["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub")
    dirs.append(_home(env) / ".cache" / "huggingface" / "hub")
    return list(dict.fromkeys(dirs))


def _modelscope_candidates(repo_id: str, env: Mapping[str, str]) -> list[Path]:
    # modelscope stores "a.b" as "a___b"; older releases used <root>/hub/<id>, newer <root>/hub/models/<id>
    names = list(dict.fromkeys([repo_id, repo_id.replace(".", "___")]))
    out = []
    for root in modelscope_roots(env):
        for sub in ("hub", "hub/models", "", "models"):
            for name in names:
                out.append(root / sub / name if sub else root / name)
    return list(dict.fromkeys(out))


def _huggingface_snapshot(hub_dir: Path, repo_id: str) -> tuple[Path, Path | None]:
    """(the repo's cache folder, its snapshot holding a pipeline or None)."""
    repo_dir = hub_dir / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        pinned = snapshots / ref.read_text(encoding="utf-8").strip()
        if is_pipeline_folder(pinned):
            return repo_dir, pinned
    if snapshots.is_dir():
        found = sorted((p for p in snapshots.iterdir() if is_pipeline_folder(p)),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        if found:
            return repo_dir, found[0]
    return repo_dir, None


def is_pipeline_folder(path: Path) -> bool:
    """A diffusers pipeline folder is recognised by its model_index.json."""
    return (path / "model_index.json").is_file()


def find_model(explicit: Path | None, sources: Sequence[ModelSource],
               env: Mapping[str, str] | None = None, setting: str = "video.model.path") -> Path:
    """The first pipeline folder found: `explicit` alone when given, else each source in order in the
    modelscope cache, then the Hugging Face cache. Raises ModelNotFound: its first line suits the asker, the
    second lists every place it looked (admin, log). `setting` is the config key the messages name."""
    env = os.environ if env is None else env
    if explicit is not None:
        folder = Path(explicit).expanduser()
        if is_pipeline_folder(folder):
            return folder
        why = "does not exist" if not folder.exists() else "has no model_index.json (not a diffusers folder)"
        detail = f"模型文件夹 {folder} {why}。请检查配置 {setting}。"
        raise ModelNotFound(_feature(setting), admin_detail=detail, problem=f"model-missing:{setting}")
    looked: list[str] = []
    for source in sources:
        for repo_id in source.modelscope_ids:
            for folder in _modelscope_candidates(repo_id, env):
                if is_pipeline_folder(folder):
                    return folder
                looked.append(str(folder))
        for repo_id in source.huggingface_ids:
            for hub_dir in huggingface_hub_dirs(env):
                repo_dir, snapshot = _huggingface_snapshot(hub_dir, repo_id)
                if snapshot is not None:
                    return snapshot
                looked.append(str(repo_dir))
    names = ", ".join(s.label for s in sources)
    first = sources[0].modelscope_ids[0] if sources and sources[0].modelscope_ids else "..."
    raise ModelNotFound(
        _feature(setting),
        admin_detail=(f"没有找到模型 {names}（不会自动下载）。请先运行 "
                      f"`modelscope download --model {first}`，或在配置里设置 {setting}。\n找过的位置: "
                      + "; ".join(looked)),
        problem=f"model-missing:{setting}",
    )


def _feature(setting: str) -> str:
    """What the group reads when the model behind `setting` is missing or broken."""
    what = "视频" if setting.startswith("video.") else "画图" if setting.startswith("image.") else "这个"
    return f"{what}功能还没准备好，我已经告诉管理员了。"


def read_component_config(folder: Path, component: str) -> dict[str, Any]:
    """A component's config.json as a dict, without importing torch (cheap enough for input checks)."""
    path = folder / component / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GeneratorError("需要的文件不完整，暂时做不了，我已经告诉管理员了。",
                             admin_detail=f"模型文件夹不完整: 读不了 {path} ({exc})",
                             problem=f"model-broken:{folder}") from exc


# -- device, dtype, memory ---------------------------------------------------------------------


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_dtype(name: DtypeName, preferred_on_gpu: str, on_gpu: bool) -> torch.dtype:
    """The explicit name, else the model's preferred half type on a GPU and float32 on CPU (CPU half
    kernels are slow or missing)."""
    import torch

    chosen = name if name != "auto" else (preferred_on_gpu if on_gpu else "float32")
    return getattr(torch, chosen)


def resolve_memory_mode(requested: MemoryMode, on_gpu: bool) -> tuple[str, str | None]:
    """(mode to use, note). Without a GPU every mode becomes "cpu" with a note saying so, since the
    offload modes raise deep inside accelerate there."""
    if requested == "auto":
        return ("gpu" if on_gpu else "cpu"), None
    if requested != "cpu" and not on_gpu:
        return "cpu", f"memory_mode={requested} needs a CUDA GPU; none found, running on CPU"
    return requested, None


def apply_memory_mode(pipe: Any, mode: str, vae_tiling: bool, vae_slicing: bool) -> None:
    """Place the pipeline per `mode` (already resolved) and switch the VAE's tiling/slicing."""
    if mode == "gpu":
        pipe.to("cuda")
    elif mode == "model_cpu_offload":
        pipe.enable_model_cpu_offload()
    elif mode == "sequential_cpu_offload":
        pipe.enable_sequential_cpu_offload()
    elif mode == "group_offload":
        apply_group_offload(pipe)
    elif mode != "cpu":
        raise went_wrong(f"unknown memory_mode {mode!r}", f"memory-mode:{mode}")
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        if vae_tiling and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
        if vae_slicing and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()


def apply_group_offload(pipe: Any) -> None:
    """Layer by layer from pinned CPU memory, the next layer's copy overlapping the current one's compute
    on a side CUDA stream: about sequential offload's memory, far less of its slowdown (BENCHMARKS.md)."""
    import torch
    from diffusers.hooks import apply_group_offloading

    for name in ("text_encoder", "text_encoder_2", "transformer", "vae"):
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            apply_group_offloading(module, onload_device=torch.device("cuda"),
                                   offload_device=torch.device("cpu"), offload_type="leaf_level",
                                   use_stream=True)


def _torchao_config(kind: Quantization, dtype: torch.dtype | None = None) -> Any:
    if kind == "int8_weight_only":
        from torchao.quantization import Int8WeightOnlyConfig

        return Int8WeightOnlyConfig()
    if kind == "fp8_dynamic":
        import torch

        capability = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
        if capability is None or capability < FP8_MIN_CAPABILITY:
            have = f"compute capability {capability[0]}.{capability[1]}" if capability else "no CUDA GPU"
            raise GeneratorError(
                "这台机器的显卡做不了这种加速，我已经告诉管理员了。", problem="quantization:fp8",
                admin_detail="quantization=fp8_dynamic needs an NVIDIA GPU with compute capability >= 8.9 "
                f"(H100, L40, RTX 40xx); this machine has {have}. Use int8_weight_only or none."
            )
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, PerTensor

        # per-row scales are more precise, but their fp8 matmul only writes bf16; fp16 models (2B) get
        # one scale per tensor. torchao's inductor tuning (coordinate descent over every kernel) is left
        # off: at video sizes it made torch.compile run for minutes (BENCHMARKS.md)
        granularity = PerRow() if dtype == torch.bfloat16 else PerTensor()
        return Float8DynamicActivationFloat8WeightConfig(granularity=granularity, set_inductor_config=False)
    raise went_wrong(f"unknown quantization {kind!r}", f"quantization:{kind}")


def quantization_config(kind: Quantization, components: Mapping[str, ComponentLibrary],
                        dtype: torch.dtype | None = None) -> Any | None:
    """A diffusers PipelineQuantizationConfig applying torchao `kind` to `components` at load time.

    fp8_dynamic quantizes the denoiser only: a text encoder runs once per request (no speed to gain) and
    T5's activation outliers are what per-tensor fp8 scales handle worst."""
    if kind == "fp8_dynamic":
        components = {name: library for name, library in components.items() if library == "diffusers"}
    if kind == "none" or not components:
        return None
    import diffusers
    import transformers

    mapping = {}
    for name, library in components.items():
        cfg = _torchao_config(kind, dtype)
        mapping[name] = (diffusers.TorchAoConfig(cfg) if library == "diffusers"
                         else transformers.TorchAoConfig(cfg))
    return diffusers.PipelineQuantizationConfig(quant_mapping=mapping)


def load_pipeline(pipeline_cls: type, folder: Path, dtype: torch.dtype, quantization: Quantization = "none",
                  quantize: Mapping[str, ComponentLibrary] | None = None) -> Any:
    """`pipeline_cls.from_pretrained(folder)` offline, quantizing the named components at load time."""
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "local_files_only": True}
    qconfig = quantization_config(quantization, quantize or {}, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    logger.info("loading {} from {} ({}, quantization={})", pipeline_cls.__name__, folder, dtype,
                quantization)
    from safetensors import SafetensorError

    try:
        with warnings.catch_warnings():
            # newer diffusers prefer `dtype=`; `torch_dtype=` works across the versions we allow
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            return pipeline_cls.from_pretrained(str(folder), **kwargs)
    # a truncated or corrupt weights file: diffusers' components wrap safetensors' error in OSError
    # ("Unable to load weights from checkpoint file"), transformers' (the text encoder) let it through;
    # a config that does not match its weights is a ValueError or KeyError
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise broken_model(folder, exc) from exc


def _root_cause(exc: BaseException) -> str:
    """The error and, when a library wrapped it, the one that started it (the file's own complaint)."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    while cause is not None and (cause.__cause__ or cause.__context__) is not None:
        cause = cause.__cause__ or cause.__context__
    return text if cause is None else f"{text} <- {type(cause).__name__}: {cause}"


def broken_model(folder: Path, exc: BaseException) -> GeneratorError:
    """Weights that exist but do not load (truncated download, corrupt file): the fix is the admin's."""
    return GeneratorError("需要的文件坏了，暂时做不了，我已经告诉管理员了。",
                          admin_detail=(f"模型文件夹 {folder} 加载失败（文件不完整或损坏？请重新下载）: "
                                        f"{_root_cause(exc)}"),
                          problem=f"model-broken:{folder}")


# -- reporting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """What was loaded and how: the answer to "which model is running?"."""

    folder: Path
    variant: str
    dtype: str
    memory_mode: str
    quantization: str
    vae_tiling: bool
    load_seconds: float
    note: str | None = None

    def summary(self) -> str:
        text = (f"{self.variant} @ {self.folder}，{self.dtype}，显存模式 {self.memory_mode}，"
                f"量化 {self.quantization}，VAE 分块 {'开' if self.vae_tiling else '关'}，"
                f"加载用时 {self.load_seconds:.0f} 秒")
        return text + (f"（{self.note}）" if self.note else "")
