"""Random-weight CogVideoX pipeline folders, saved with `save_pretrained` and loaded by the production
loader: the playground's demo model (`generators/demo.py`), the benchmark's full-size model
(`bench/`), and the test suite's tiny models. Nothing is downloaded; the tokenizer is built here.

`build_cogvideox_folder(path, variant="2b")` writes a tiny (~1 MB) pipeline whose layout equals the real
ZhipuAI/CogVideoX-2b (or -5b with variant="5b": RoPE, bf16, its VAE scale and scheduler shift). Its
native size is 64x96 and it renders 9 frames in about a second on CPU. `size="full"` builds the real
2B/5B shapes instead (random weights; build it on a GPU: device="cuda"). The tokenizer knows whole
words from a small English list and spells out the rest letter by letter.
"""

from __future__ import annotations

import gc
import string
from pathlib import Path
from typing import Literal

Variant = Literal["2b", "5b"]

# Prompt words seen in CogVideoX-style prompts; others are spelled out letter by letter.
_WORDS = """a an the and or of in on at to with from by for into over under through across near behind
is are was it its this that his her their as while slowly gently softly quickly
camera shot close up wide medium angle view tracking pan tilt zoom aerial overhead low high dolly
light lighting sunlight soft warm cold golden hour morning evening night sunset sunrise glow shadows
cinematic realistic detailed vivid colorful bright dark calm peaceful serene cozy atmosphere mood scene
panda cat dog bird child girl boy man woman family grandmother grandfather people fish horse rabbit
plays playing play guitar piano music dances dancing walks walking runs running sits sitting eats
eating flies flying swims swimming smiles smiling looks looking holding holds wearing wears
forest bamboo tree trees garden park river lake sea ocean beach mountain mountains sky clouds city
street road house room kitchen table window field grass flowers flower snow rain water wind leaves
red blue green yellow white black small large little big old young happy fluffy gentle beautiful
background foreground around along toward left right front back top""".split()


def build_tokenizer(path: Path) -> int:
    """Save an offline T5 tokenizer folder at `path`; returns its vocabulary size."""
    from transformers import T5Tokenizer

    specials = ["<pad>", "</s>", "<unk>"]
    pieces = ["▁" + w for w in dict.fromkeys(_WORDS)]
    chars = list(string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation)
    pieces += ["▁"] + chars
    vocab = [(p, 0.0) for p in specials] + [(p, -1.0 - i * 0.001) for i, p in enumerate(pieces)]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    tokenizer.save_pretrained(str(path))
    return len(tokenizer)


def _scheduler(variant: Variant):  # noqa: ANN202 - diffusers type imported lazily
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        num_train_timesteps=1000, prediction_type="v_prediction", rescale_betas_zero_snr=True,
        set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing",
        snr_shift_scale=3.0 if variant == "2b" else 1.0,
    )


def build_cogvideox_folder(path: Path | str, variant: Variant = "2b", size: Literal["tiny", "full"] = "tiny",
                           device: str = "cpu", text_layers: int | None = None, seed: int = 0) -> Path:
    """Write a random CogVideoX pipeline folder at `path` (created); returns the path.

    tiny: 2 layers, 64x96 native size, 226 text tokens (like the real models) so real prompts fit.
    full: the released 2B/5B shapes (T5-XXL too, unless `text_layers` trims its depth)."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_size = build_tokenizer(path / "tokenizer")
    rope = variant == "5b"
    dtype = torch.float32 if size == "tiny" else (torch.float16 if variant == "2b" else torch.bfloat16)
    torch.manual_seed(seed)
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if size == "tiny":
                text_config = T5Config(vocab_size=max(64, vocab_size), d_model=32, d_kv=8, d_ff=64,
                                       num_layers=text_layers or 2, num_heads=4,
                                       relative_attention_num_buckets=8, relative_attention_max_distance=32,
                                       feed_forward_proj="gated-gelu")
                transformer = CogVideoXTransformer3DModel(
                    num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
                    time_embed_dim=8, text_embed_dim=32, num_layers=2, sample_width=12, sample_height=8,
                    sample_frames=9, patch_size=2, max_text_seq_length=226,
                    use_rotary_positional_embeddings=rope)
                vae = AutoencoderKLCogVideoX(block_out_channels=(8, 8, 8, 8), latent_channels=4,
                                             layers_per_block=1, norm_num_groups=2,
                                             scaling_factor=1.15258426 if variant == "2b" else 0.7)
            else:
                text_config = T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240,
                                       num_layers=text_layers or 24, num_heads=64,
                                       feed_forward_proj="gated-gelu")
                transformer = CogVideoXTransformer3DModel(
                    num_attention_heads=30 if variant == "2b" else 48,
                    num_layers=30 if variant == "2b" else 42, use_rotary_positional_embeddings=rope)
                vae = AutoencoderKLCogVideoX(scaling_factor=1.15258426 if variant == "2b" else 0.7)
            text_encoder = T5EncoderModel(text_config)
    finally:
        torch.set_default_dtype(previous_dtype)
    pipe = CogVideoXPipeline(
        tokenizer=AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True),
        text_encoder=text_encoder.eval(), vae=vae.eval(), transformer=transformer.eval(),
        scheduler=_scheduler(variant))
    pipe.save_pretrained(str(path))
    del pipe, text_encoder, vae, transformer
    gc.collect()  # free the builder's copy before anyone loads the folder (matters on a GPU)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path
