"""Random-weight pipeline folders for tests: CogVideoX (from `generators/random_models.py`, shared with
the demo model and the benchmark) and FLUX (tiny FluxTransformer2DModel, AutoencoderKL, CLIP and T5 text
encoders with offline-built tokenizers), saved with `save_pretrained` and loaded by the production loaders.

CLI, for end-to-end tests or a manual `xiaoai run`:
    python -m tests.support.tiny_models OUT_DIR [--variant 5b] [--full --device cuda]
"""

from __future__ import annotations

import argparse
import gc
import string
from pathlib import Path
from typing import Literal

from generators.random_models import Variant, build_cogvideox_folder, build_tokenizer

__all__ = ["Variant", "build_cogvideox_folder", "build_tokenizer", "build_clip_tokenizer",
           "build_flux_folder"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a random CogVideoX pipeline folder (no download).")
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", choices=("2b", "5b"), default="2b")
    parser.add_argument("--full", action="store_true", help="real 2B/5B shapes (needs a GPU to be quick)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    folder = build_cogvideox_folder(args.out, args.variant, "full" if args.full else "tiny", args.device)
    print(folder)


if __name__ == "__main__":
    main()


# -- FLUX (issue 5) ------------------------------------------------------------------------------------


def build_clip_tokenizer(path: Path) -> int:
    """Save an offline CLIP BPE tokenizer folder at `path` (letters, digits, punctuation and a few merged
    words, from a vocab.json/merges.txt written here); returns its vocabulary size."""
    import json

    from transformers import CLIPTokenizer

    path.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    words = ["the", "in", "on", "a", "snow", "dog", "shiba", "inu", "cat", "panda"]
    merges: list[tuple[str, str]] = []
    tokens = chars + [c + "</w>" for c in chars]
    for word in words:  # merge left to right: s+h -> sh, sh+i -> shi, ..., last piece carries </w>
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append((pieces[0], pieces[1]))
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            tokens.append(pieces[0])
    ordered = dict.fromkeys(["<|startoftext|>", "<|endoftext|>", *tokens])
    vocab = {token: i for i, token in enumerate(ordered)}
    (path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    merge_lines = list(dict.fromkeys(f"{a} {b}" for a, b in merges))
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merge_lines) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(str(path))
    return len(tokenizer)


def build_flux_folder(path: Path | str, variant: Literal["schnell", "dev"] = "schnell",
                      seed: int = 0) -> Path:
    """Write a tiny random FluxPipeline folder at `path` (created); returns the path.

    Same layout and component classes as black-forest-labs/FLUX.1-schnell (or -dev: guidance embedding,
    dynamic shift): CLIP + T5 text encoders with offline tokenizers, an 8x VAE (sizes must be multiples
    of 16, as for the real model), a 1+1-layer transformer. 64x64 in 2 steps takes well under a second."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    clip_vocab = build_clip_tokenizer(path / "tokenizer")
    t5_vocab = build_tokenizer(path / "tokenizer_2")
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=clip_vocab, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=32))
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=max(64, t5_vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu"))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
        norm_num_groups=2, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
        sample_size=64)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=variant == "dev", axes_dims_rope=(4, 6, 6))
    if variant == "dev":
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                    max_shift=1.15, base_image_seq_len=256,
                                                    max_image_seq_len=4096)
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    pipe = FluxPipeline(
        scheduler=scheduler, vae=vae.eval(), text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True),
        tokenizer_2=AutoTokenizer.from_pretrained(str(path / "tokenizer_2"), local_files_only=True),
        transformer=transformer.eval())
    pipe.save_pretrained(str(path))
    del pipe, text_encoder, text_encoder_2, vae, transformer
    gc.collect()
    return path
