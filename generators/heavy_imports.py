"""torch, transformers and diffusers, imported once, by one thread at a time.

Importing them takes seconds, and neither transformers' nor diffusers' lazy modules are thread-safe on
first use: two worker threads reaching `from transformers import AutoTokenizer` together can fail with
"cannot import name", which loses a request in its admission check. Every heavy path calls
`import_heavy(...)` first; it imports the libraries and resolves the names it is given under one lock,
so afterwards they are plain attributes. A start-up hook calls it from a worker thread before the first
request where a local model is configured (never on the event loop).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable

_lock = threading.Lock()
_resolved: set[str] = set()  # "library.Name" already looked up (or "library" alone: imported)

BASE_NAMES = ("torch", "transformers.AutoTokenizer", "diffusers.DiffusionPipeline")


def import_heavy(names: Iterable[str] = ()) -> None:
    """Import the heavy libraries and resolve `names` ("diffusers.CogVideoXPipeline") once, under a lock.

    Blocking (seconds the first time): call it from a worker thread. Cheap once done."""
    wanted = [name for name in (*BASE_NAMES, *names) if name not in _resolved]
    if not wanted:
        return
    with _lock:
        for name in wanted:
            if name in _resolved:
                continue
            module_name, _, attribute = name.partition(".")
            module = importlib.import_module(module_name)
            if attribute:
                getattr(module, attribute)  # a lazy module imports the submodule that defines it
            _resolved.add(name)


def imported() -> bool:
    """Whether the base libraries are in (for logs and tests)."""
    return all(name in _resolved for name in BASE_NAMES)
