"""The heavy libraries (torch, transformers, diffusers) imported once, under one lock, and quietly.

Importing them takes seconds and prints notices that look like errors but are harmless here:
torchao failing to load kernels built for other Pythons/GPUs (`_C_mxfp8`, `_C_cutlass_90a`), torch's
pytree deprecation note about torchao's enums, diffusers' note that torchao tensor classes are
missing (we quantize at load time, we never load torchao-serialized checkpoints), and transformers
falling back from torchvision image processors (our pipelines do not use them), and torchao finding
no triton on a machine without a GPU. `import_libraries`
silences exactly those, at their loggers, and imports everything a pipeline load needs, so the first
request pays nothing. Model loading takes `IMPORT_LOCK` too: two threads importing diffusers' lazy
modules at once can see half-initialised modules.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import threading
import time
import warnings

IMPORT_LOCK = threading.RLock()
LIBRARIES = ("torch", "transformers", "diffusers")
PIPELINES = ("CogVideoXPipeline", "FluxPipeline")  # diffusers imports these (and torchao) lazily

# logger name -> messages from it that are known to be harmless here
HARMLESS: dict[str, re.Pattern[str]] = {
    "torchao": re.compile(r"Failed to load .*_C\w*\.(?:abi3\.)?(?:cpython-\w+-\w+-linux-gnu\.)?so"),
    "torch.utils._pytree": re.compile(r"is an Enum subclass and is now natively supported"),
    "diffusers.quantizers.torchao.torchao_quantizer": re.compile(r"Unable to import `torchao` Tensor"),
    "transformers.utils.import_utils": re.compile(r"requires torchvision \(not installed\); falling back"),
    "torchao.kernel.intmm": re.compile(r"Detected no triton"),  # CPU-only machines; GPUs have triton
}

_imported_in: float | None = None


class _DropHarmless(logging.Filter):
    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self._pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not self._pattern.search(record.getMessage())
        except Exception:  # noqa: BLE001 - a record we cannot format is not one of ours
            return True


def silence_known_warnings() -> None:
    """Filter the known-harmless notices at their own loggers (idempotent; works before the import)."""
    for name, pattern in HARMLESS.items():
        source = logging.getLogger(name)
        if not any(isinstance(f, _DropHarmless) for f in source.filters):
            source.addFilter(_DropHarmless(pattern))
    # newer diffusers prefer `dtype=`; `torch_dtype=` works across the versions we allow
    warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)


def quiet_progress_bars() -> None:
    """No library progress bars (they write raw carriage returns); used when the log is not a terminal."""
    with IMPORT_LOCK:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        try:
            from huggingface_hub.utils import disable_progress_bars
        except ImportError:  # older huggingface_hub
            return
        disable_progress_bars()


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def import_libraries() -> float:
    """Import torch, transformers, diffusers and the pipelines we use; seconds it took (0 the 2nd time).

    Blocking: call it from a thread."""
    global _imported_in
    with IMPORT_LOCK:
        if _imported_in is not None:
            return 0.0
        silence_known_warnings()
        started = time.perf_counter()
        for name in LIBRARIES:
            importlib.import_module(name)
        diffusers = importlib.import_module("diffusers")
        for pipeline in PIPELINES:
            getattr(diffusers, pipeline)
        if not _is_terminal():
            quiet_progress_bars()  # loading bars in a log file would be raw carriage returns
        _imported_in = time.perf_counter() - started
        return _imported_in
