"""Random-weight CogVideoX and FLUX pipeline folders, saved with `save_pretrained` and loaded by the
production loaders: the playground's demo models (`generators/demo.py`), the benchmark's full-size model
(`bench/`), and the test suite's tiny models. Nothing is downloaded; the tokenizers are built here.

`build_flux_folder(path)` does the same for FLUX.1 (CLIP and T5 tokenizers built offline).
`build_cogvideox_folder(path, variant="2b")` writes a tiny (~1 MB) pipeline whose layout equals the real
ZhipuAI/CogVideoX-2b (or -5b with variant="5b": RoPE, bf16, its VAE scale and scheduler shift; "1.5-5b",
"5b-i2v" and "1.5-5b-i2v" for CogVideoX1.5-5B and the two image-to-video models). Its native size is
64x96 and it renders 9 frames in about a second on CPU. `size="full"` builds the released shapes instead
(random weights; build it on a GPU: device="cuda"). The tokenizer knows whole
words from a small English list and spells out the rest letter by letter.
"""

from __future__ import annotations

import gc
import json
import string
from pathlib import Path
from typing import Any, Literal

Variant = Literal["2b", "5b", "1.5-5b", "5b-i2v", "1.5-5b-i2v"]

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


def _scheduler(variant: str):  # noqa: ANN202 - diffusers type imported lazily
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        num_train_timesteps=1000, prediction_type="v_prediction", rescale_betas_zero_snr=True,
        set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing",
        snr_shift_scale=3.0 if variant == "2b" else 1.0,
    )


def _transformer_shape(variant: Variant, size: Literal["tiny", "full"]) -> dict[str, Any]:
    """CogVideoXTransformer3DModel arguments for a variant, tiny or at the released shapes (diffusers'
    scripts/convert_cogvideox_to_diffusers.py): 1.5 = patch_size_t 2, no patch bias, 300x300 sample;
    image-to-video = twice the latent channels in; 5B-I2V learned positions, 1.5-I2V an ofs embedding."""
    is_15, photo = variant.startswith("1.5"), variant.endswith("i2v")
    latent = 4 if size == "tiny" else 16
    shape: dict[str, Any] = {"in_channels": latent * (2 if photo else 1), "out_channels": latent,
                             "use_rotary_positional_embeddings": variant != "2b"}
    if size == "tiny":
        shape |= {"num_attention_heads": 2, "attention_head_dim": 16, "time_embed_dim": 8,
                  "text_embed_dim": 32, "num_layers": 2, "sample_width": 12, "sample_height": 8,
                  "sample_frames": 9, "patch_size": 2, "max_text_seq_length": 226}
    else:
        two_b = variant == "2b"
        shape |= {"num_attention_heads": 30 if two_b else 48, "num_layers": 30 if two_b else 42}
    if is_15:
        sample = 12 if size == "tiny" else 300  # square like the released 300x300: both orientations fit
        shape |= {"patch_size_t": 2, "patch_bias": False, "sample_height": sample, "sample_width": sample,
                  "sample_frames": 17 if size == "tiny" else 81}
    if variant == "5b-i2v":
        shape["use_learned_positional_embeddings"] = True
    if variant == "1.5-5b-i2v":
        shape["ofs_embed_dim"] = shape.get("time_embed_dim", 512)  # added to the time embedding
    return shape


def build_cogvideox_folder(path: Path | str, variant: Variant = "2b", size: Literal["tiny", "full"] = "tiny",
                           device: str = "cpu", text_layers: int | None = None, seed: int = 0) -> Path:
    """Write a random CogVideoX pipeline folder at `path` (created); returns the path.

    tiny: 2 layers, 64x96 native size (1.5: 96x96, 17 frames), 226 text tokens (like the real models) so
    real prompts fit. full: the released shapes (T5-XXL too, unless `text_layers` trims its depth).
    Image-to-video variants are saved as CogVideoXImageToVideoPipeline folders."""
    import torch
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_size = build_tokenizer(path / "tokenizer")
    dtype = torch.float32 if size == "tiny" else (torch.float16 if variant == "2b" else torch.bfloat16)
    vae_scale = {"scaling_factor": 1.15258426 if variant == "2b" else 0.7,
                 "invert_scale_latents": variant == "1.5-5b-i2v"}
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
                vae = AutoencoderKLCogVideoX(block_out_channels=(8, 8, 8, 8), latent_channels=4,
                                             layers_per_block=1, norm_num_groups=2, **vae_scale)
            else:
                text_config = T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240,
                                       num_layers=text_layers or 24, num_heads=64,
                                       feed_forward_proj="gated-gelu")
                vae = AutoencoderKLCogVideoX(**vae_scale)
            transformer = CogVideoXTransformer3DModel(**_transformer_shape(variant, size))
            text_encoder = T5EncoderModel(text_config)
    finally:
        torch.set_default_dtype(previous_dtype)
    pipeline_class = CogVideoXImageToVideoPipeline if variant.endswith("i2v") else CogVideoXPipeline
    pipe = pipeline_class(
        tokenizer=AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True),
        text_encoder=text_encoder.eval(), vae=vae.eval(), transformer=transformer.eval(),
        scheduler=_scheduler(variant))
    pipe.save_pretrained(str(path))
    del pipe, text_encoder, vae, transformer
    gc.collect()  # free the builder's copy before anyone loads the folder (matters on a GPU)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path


# -- FLUX -------------------------------------------------------------------------------------------


def build_clip_tokenizer(path: Path) -> int:
    """Save an offline CLIP BPE tokenizer folder at `path` (letters, digits, punctuation and a few merged
    words, from a vocab.json/merges.txt written here); returns its vocabulary size."""
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
                      seed: int = 0, size: Literal["tiny", "full"] = "tiny", device: str = "cpu",
                      text_layers: int | None = None) -> Path:
    """Write a tiny random FluxPipeline folder at `path` (created); returns the path.

    Same layout and component classes as black-forest-labs/FLUX.1-schnell (or -dev: guidance embedding,
    dynamic shift): CLIP + T5 text encoders with offline tokenizers, an 8x VAE (sizes must be multiples
    of 16, as for the real model), a 1+1-layer transformer. 64x64 in 2 steps takes well under a second.
    size="full" writes the released shapes instead (12B transformer in bf16, 24 GB: build on a GPU),
    with T5-XXL cut to `text_layers` (default 2) since its one encode is not what is timed."""
    if size == "full":
        return _build_full_flux_folder(Path(path), variant, seed, device, text_layers or 2)
    import torch
    from diffusers import (
        AutoencoderKL,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

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
    _save_flux(path, variant, text_encoder, text_encoder_2, vae, transformer)
    del text_encoder, text_encoder_2, vae, transformer
    gc.collect()
    return path


def _build_full_flux_folder(path: Path, variant: str, seed: int, device: str, text_layers: int) -> Path:
    """FLUX.1 at the released shapes with random weights (benchmarks only)."""
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    path.mkdir(parents=True, exist_ok=True)
    build_clip_tokenizer(path / "tokenizer")
    build_tokenizer(path / "tokenizer_2")
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            text_encoder = CLIPTextModel(CLIPTextConfig(
                vocab_size=49408, hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                num_hidden_layers=12, max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu",
                bos_token_id=0, eos_token_id=1, pad_token_id=1))
            text_encoder_2 = T5EncoderModel(T5Config(
                vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=text_layers, num_heads=64,
                feed_forward_proj="gated-gelu"))
            vae = AutoencoderKL(
                in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, use_quant_conv=False, use_post_quant_conv=False,
                shift_factor=0.1159, scaling_factor=0.3611, sample_size=1024)
            transformer = FluxTransformer2DModel(guidance_embeds=variant == "dev")
    finally:
        torch.set_default_dtype(previous)
    _save_flux(path, variant, text_encoder, text_encoder_2, vae, transformer)
    del text_encoder, text_encoder_2, vae, transformer
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path


def _save_flux(path: Path, variant: str, text_encoder: Any, text_encoder_2: Any, vae: Any,
               transformer: Any) -> None:
    """Assemble a FLUX pipeline with the variant's scheduler and the saved tokenizers, and save it."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import AutoTokenizer

    if variant == "dev":
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                    max_shift=1.15, base_image_seq_len=256,
                                                    max_image_seq_len=4096)
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    FluxPipeline(
        scheduler=scheduler, vae=vae.eval(), text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True),
        tokenizer_2=AutoTokenizer.from_pretrained(str(path / "tokenizer_2"), local_files_only=True),
        transformer=transformer.eval()).save_pretrained(str(path))
