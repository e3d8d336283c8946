"""The CogVideoX checkpoints this project runs and what each accepts, read from the folder's config files.

Five released checkpoints share one diffusers layout: CogVideoX-2b and -5b (text-to-video, 480x720,
8N+1 frames up to 49 at 8 fps), CogVideoX-5b-I2V (the same, from a photo), CogVideoX1.5-5B (768x1360,
16N+1 frames up to 161 at 16 fps) and CogVideoX1.5-5B-I2V (short side 768, long side 768-1360). Which one
a folder holds is told by its transformer config: `patch_size_t` marks 1.5, twice the latent channels in
than out marks image-to-video. No torch here: the intent handler and `check-config` use these rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from generators.loading import ModelSource, read_component_config

RELEASED_SIZE = (480, 720)  # CogVideoX 1.0 (2b, 5b, 5b-i2v): height x width
RELEASED_15_SIZE = (768, 1360)  # CogVideoX 1.5: the text-to-video size, the photo model's landscape size
RELEASED_15_SAMPLE = 300  # the 1.5 transformers' sample_height/width (not a real size: 2400 px)
MAX_FRAMES_10, MAX_FRAMES_15 = 49, 161
FRAME_STEP_10, FRAME_STEP_15 = 8, 16
FPS_10, FPS_15 = 8, 16

TEXT_VARIANTS = ("2b", "5b", "1.5-5b")
PHOTO_VARIANTS = ("5b-i2v", "1.5-5b-i2v")
REPO_NAMES = {"2b": "CogVideoX-2b", "5b": "CogVideoX-5b", "1.5-5b": "CogVideoX1.5-5B",
              "5b-i2v": "CogVideoX-5b-I2V", "1.5-5b-i2v": "CogVideoX1.5-5B-I2V"}


def _source(variant: str) -> ModelSource:
    name = REPO_NAMES[variant]
    return ModelSource(name, (f"ZhipuAI/{name}",), (f"THUDM/{name}", f"zai-org/{name}"))


SOURCES = {variant: _source(variant) for variant in TEXT_VARIANTS}
PHOTO_SOURCES = {variant: _source(variant) for variant in PHOTO_VARIANTS}
PREFERRED_DTYPE = {"2b": "float16"}  # every other checkpoint was trained in bfloat16


def is_15(variant: str) -> bool:
    return variant.startswith("1.5")


def variant_defaults(variant: str) -> dict[str, int]:
    """A variant's own render size, length and speed: what `sampling` holds when the admin left it out."""
    if is_15(variant):
        return {"num_frames": 81, "fps": FPS_15, "height": RELEASED_15_SIZE[0], "width": RELEASED_15_SIZE[1]}
    return {"num_frames": MAX_FRAMES_10, "fps": FPS_10, "height": RELEASED_SIZE[0], "width": RELEASED_SIZE[1]}


def variant_frames_problem(variant: str, frames: int) -> str | None:
    """The frame rule of a released variant (8N+1 up to 49, or 16N+1 up to 161), in English."""
    step, most = (FRAME_STEP_15, MAX_FRAMES_15) if is_15(variant) else (FRAME_STEP_10, MAX_FRAMES_10)
    if (frames - 1) % step or not 1 + step <= frames <= most:
        examples = "17, 33, 49, 81 or 161" if step == FRAME_STEP_15 else "9, 17, 25, 33, 41 or 49"
        return f"CogVideoX {variant} renders {step}N+1 frames up to {most} ({examples}), got {frames}"
    return None


@dataclass(frozen=True)
class ModelLimits:
    """What a model folder accepts, read from its config files (no torch needed)."""

    variant: str
    native_size: tuple[int, int]
    max_frames: int
    max_prompt_tokens: int
    frame_step: int = FRAME_STEP_10
    attention_heads: int = 30  # what Ulysses splits (video.parallel)
    spatial_scale: int = 8  # pixels per latent row/column (the VAE's downsampling)
    image_input: bool = False  # image-to-video: the render starts from a photo
    released: bool = True  # real released weights (their sizes only); tiny test models allow any size

    @property
    def generation(self) -> str:
        return "1.5" if is_15(self.variant) else "1.0"


RELEASED_2B_LIMITS = ModelLimits("2b", RELEASED_SIZE, MAX_FRAMES_10, 226)


def model_limits(folder: Path) -> ModelLimits:
    """Limits of the CogVideoX pipeline saved in `folder`."""
    transformer = read_component_config(folder, "transformer")
    vae = read_component_config(folder, "vae")
    spatial = 2 ** (len(vae.get("block_out_channels", (128, 256, 256, 512))) - 1)
    sample = (int(transformer.get("sample_height", 60)), int(transformer.get("sample_width", 90)))
    out_channels = transformer.get("out_channels") or transformer.get("in_channels", 16)
    image_input = int(transformer.get("in_channels", 16)) == 2 * int(out_channels)
    sample_frames = int(transformer.get("sample_frames", 49))
    if transformer.get("patch_size_t"):
        variant, step = "1.5-5b", FRAME_STEP_15
        released = sample == (RELEASED_15_SAMPLE, RELEASED_15_SAMPLE)
        native = RELEASED_15_SIZE if released else (sample[0] * spatial, sample[1] * spatial)
        max_frames = MAX_FRAMES_15
    else:
        variant = "5b" if transformer.get("use_rotary_positional_embeddings") else "2b"
        step, native = FRAME_STEP_10, (sample[0] * spatial, sample[1] * spatial)
        released = native == RELEASED_SIZE
        max_frames = sample_frames if released else max(sample_frames, MAX_FRAMES_10)
    return ModelLimits(variant + ("-i2v" if image_input else ""), native, max_frames,
                       int(transformer.get("max_text_seq_length", 226)), frame_step=step,
                       attention_heads=int(transformer.get("num_attention_heads", 30)),
                       spatial_scale=spatial, image_input=image_input, released=released)


def size_problem(limits: ModelLimits, height: int, width: int) -> str | None:
    """Why the released weights of `limits` cannot render height x width (Chinese), or None."""
    if not limits.released:
        return None
    if limits.generation == "1.0" or not limits.image_input:
        if (height, width) != limits.native_size:
            wanted = f"{limits.native_size[0]}x{limits.native_size[1]}"
            return f"现在的视频只能做 {wanted}（高x宽）的，收到 {height}x{width}。"
        return None
    short, long = sorted((height, width))
    if short != RELEASED_15_SIZE[0] or not short <= long <= RELEASED_15_SIZE[1]:
        return f"这个模型要求短边 768、长边 768 到 1360（16 的倍数），收到 {height}x{width}。"
    return None


def released_photo_limits(variant: str) -> ModelLimits:
    """What a released photo model accepts, from its variant name alone (no folder needed: the bot may
    render on a remote host)."""
    if is_15(variant):
        return ModelLimits(variant, RELEASED_15_SIZE, MAX_FRAMES_15, 226, frame_step=FRAME_STEP_15,
                           image_input=True)
    return ModelLimits(variant, RELEASED_SIZE, MAX_FRAMES_10, 226, image_input=True)


def photo_size(limits: ModelLimits, height: int, width: int, photo_width: int,
               photo_height: int) -> tuple[int, int]:
    """The render size for a photo: the configured one, turned upright for a portrait photo where the
    model allows it (CogVideoX1.5-5B-I2V; the 1.0 model renders 480x720 only)."""
    portrait_photo, portrait_size = photo_height > photo_width, height > width
    if limits.generation == "1.5" and portrait_photo != portrait_size \
            and size_problem(limits, width, height) is None:
        return width, height
    return height, width
