"""Counting a prompt's text-encoder tokens without importing torch or transformers.

The prompt rewriter fits the English prompt to the model's limit before the asker is told "收到", so
this must take milliseconds on a first request, not the ~2 s that `transformers` (and with it torch)
costs to import. A model folder's tokenizer is either a `tokenizer.json` (the `tokenizers` library
reads it, post-processor and all) or a sentencepiece `spiece.model` (T5: pieces plus the end token).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

_LOCK = threading.Lock()


def token_counter(folder: Path) -> Callable[[str], int]:
    """A function giving the number of tokens the folder's tokenizer makes of a text (with `</s>`)."""
    with _LOCK:  # one import and one file read at a time: two first requests may arrive together
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            return lambda text: len(tokenizer.encode(text).ids)
        if (folder / "spiece.model").is_file():
            import sentencepiece

            pieces = sentencepiece.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
            return lambda text: len(pieces.encode(text)) + 1  # T5 appends </s>
        from transformers import AutoTokenizer  # an unusual folder: slow, but still exact

        slow = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        return lambda text: len(slow(text).input_ids)
