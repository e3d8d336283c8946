"""torch, transformers and diffusers, imported once, by one thread at a time, and quietly.

Importing them takes seconds, and neither transformers' nor diffusers' lazy modules are thread-safe on
first use: two worker threads reaching `from transformers import AutoTokenizer` together can fail with
"cannot import name", which loses a request in its admission check. Every heavy path calls
`import_heavy(...)` first; it imports the libraries and resolves the names it is given under one lock,
so afterwards they are plain attributes. A start-up service (bot/jobs/warmup.py `LibraryWarmup`) calls it
from a thread before the first request where a local model is found, never on the event loop.

The import prints notices that look like errors but are harmless here: torchao failing to load kernels
built for other Pythons/GPUs (`_C_mxfp8`, `_C_cutlass_90a`), torch's pytree note about torchao's enums,
diffusers' note that torchao tensor classes are missing (we quantize at load time, we never load
torchao-serialized checkpoints), transformers falling back from torchvision image processors (our
pipelines do not use them), and torchao finding no triton on a machine without a GPU.
`silence_known_warnings` filters exactly those, at their loggers.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterable

IMPORT_LOCK = threading.RLock()
BASE_NAMES = ("torch", "transformers.AutoTokenizer", "diffusers.DiffusionPipeline",
              "diffusers.CogVideoXPipeline", "diffusers.FluxPipeline")
_resolved: set[str] = set()  # "library.Name" already looked up (or "library" alone: imported)
_base_seconds: float | None = None

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


def import_heavy(names: Iterable[str] = ()) -> float:
    """Import the heavy libraries and resolve `names` ("diffusers.CogVideoXPipeline") once, under a lock;
    returns the seconds the base import took (0 once done).

    Blocking (seconds the first time): call it from a worker thread. Cheap once done."""
    global _base_seconds
    wanted = [name for name in (*BASE_NAMES, *names) if name not in _resolved]
    if not wanted:
        return 0.0
    with IMPORT_LOCK:
        first = _base_seconds is None
        started = time.perf_counter()
        if first:
            silence_known_warnings()
        for name in wanted:
            if name in _resolved:
                continue
            module_name, _, attribute = name.partition(".")
            module = importlib.import_module(module_name)
            if attribute:
                getattr(module, attribute)  # a lazy module imports the submodule that defines it
            _resolved.add(name)
        if first:
            if not _is_terminal():
                quiet_progress_bars()  # loading bars in a log file would be raw carriage returns
            _base_seconds = time.perf_counter() - started
            return _base_seconds
        return 0.0
