"""Random-weight pipeline folders for tests: the CogVideoX and FLUX builders of
`generators/random_models.py` (shared with the playground's demo models and the benchmark), and a CLI.

CLI, for end-to-end tests or a manual `xiaoai run`:
    python -m tests.support.tiny_models OUT_DIR [--variant 5b] [--full --device cuda]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from generators.random_models import (
    Variant,
    build_clip_tokenizer,
    build_cogvideox_folder,
    build_flux_folder,
    build_tokenizer,
)

__all__ = ["Variant", "build_cogvideox_folder", "build_tokenizer", "build_clip_tokenizer",
           "build_flux_folder"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a random CogVideoX pipeline folder (no download).")
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", choices=("2b", "5b", "1.5-5b", "5b-i2v", "1.5-5b-i2v"), default="2b")
    parser.add_argument("--full", action="store_true", help="real 2B/5B shapes (needs a GPU to be quick)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    folder = build_cogvideox_folder(args.out, args.variant, "full" if args.full else "tiny", args.device)
    print(folder)


if __name__ == "__main__":
    main()
