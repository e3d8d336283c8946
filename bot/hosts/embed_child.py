"""The example embedder: `python -m bot.hosts.embed_child`, the phrases as a JSON list on stdin, their
vectors as a .npy array on stdout.

A first start (nothing stored in data_dir yet, or an edited examples file) embeds the ~230 example phrases
of the embedded classifier: 3.7 s of CPU on the engine's threads. In the bot's process they competed with
the first replies (a flood's p99 460-820 ms, against ~190 ms on a later start; BENCHMARKS.md); here they run
at the idle CPU priority, and `nlu.embedding_cache` stores what comes back.
"""

from __future__ import annotations

import json
import sys

from generators.cpu_share import lower_priority


def main() -> None:
    lower_priority()
    texts = json.load(sys.stdin)
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise SystemExit("expected a JSON list of texts on stdin")
    import numpy as np

    from nlu.embedded import new_engine

    vectors = np.asarray(new_engine().query(texts), dtype=np.float32)
    np.save(sys.stdout.buffer, vectors, allow_pickle=False)


if __name__ == "__main__":
    main()
