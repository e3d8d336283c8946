"""The flat `video:` / `image:` keys of the first release, read into their nested place.

An existing config.yaml keeps working: `video.model_path` is read as `video.model.path`, with one
warning per deprecated key. The same setting given in both spellings is an error, never a silent pick.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MODEL = ("model_path", "variant", "dtype", "memory_mode", "vae_tiling", "vae_slicing", "quantization")
_QUEUE = ("max_pending_per_user", "seconds_per_job", "media_max_age_hours")


def _table(groups: dict[str, tuple[str, ...]], renamed: dict[str, str]) -> dict[str, tuple[str, str]]:
    """old key -> (sub-section, new key); a key keeps its name unless `renamed` says otherwise."""
    return {old: (group, renamed.get(old, old)) for group, keys in groups.items() for old in keys}


LEGACY_KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "video": _table({
        "model": _MODEL,
        "sampling": ("num_frames", "steps", "guidance", "fps", "height", "width", "max_steps"),
        "encode": ("bitrate_kbps", "max_mp4_mb", "x264_preset"),
        "speed": ("compile", "compile_cache_dir", "fuse_qkv", "attention", "step_cache", "vae_tile_size",
                  # never released flat; listed so the bench's flat row settings (`preset=fast`) nest too
                  "preset", "cache", "cache_full_every", "cache_warmup_steps",
                  "cache_block_skip", "cache_timesteps", "cache_attention_weight",
                  "cache_uncond_skip", "cache_uncond_timesteps", "vae_compile"),
        "remote": ("remote_url", "remote_timeout_s", "remote_poll_s"),
        "queue": _QUEUE,
    }, {"model_path": "path", "remote_url": "url", "remote_timeout_s": "timeout_s",
        "remote_poll_s": "poll_s"}),
    "image": _table({
        "model": _MODEL,
        "sampling": ("steps", "guidance", "height", "width", "max_steps"),
        "encode": ("format", "jpeg_quality"),
        "api": ("api_base_url", "api_model", "api_size", "api_response_format", "api_timeout_s",
                "api_retries"),
        "queue": _QUEUE,
    }, {"model_path": "path", "api_base_url": "base_url", "api_model": "model", "api_size": "size",
        "api_response_format": "response_format", "api_timeout_s": "timeout_s", "api_retries": "retries"}),
}
"""section -> {old flat key: (sub-section, key)}: every key the first release had that has moved."""


class Moved:
    """What `upgrade` did: each deprecated key's old and new path, and the same-key conflicts."""

    def __init__(self) -> None:
        self.keys: list[tuple[tuple[str, str], tuple[str, str, str]]] = []  # (old loc, new loc)
        self.conflicts: list[tuple[tuple[str, str], tuple[str, str, str]]] = []


def nest(section: str, flat: Mapping[str, Any]) -> dict[str, Any]:
    """`flat` (old spelling allowed) as the nested section; for tools that take flat settings."""
    data, moved = upgrade({section: dict(flat)})
    if moved.conflicts:
        (_, old), (_, group, key) = moved.conflicts[0]
        raise ValueError(f"{old} and {group}.{key} are the same setting: give only {group}.{key}")
    return data[section]


def upgrade(data: Mapping[str, Any]) -> tuple[dict[str, Any], Moved]:
    """The document with every old flat key moved under its sub-section (the input is not changed)."""
    moved = Moved()
    upgraded = dict(data)
    for section, table in LEGACY_KEYS.items():
        node = data.get(section)
        if not isinstance(node, Mapping) or not any(key in table for key in node):
            continue
        nested: dict[str, Any] = {key: value for key, value in node.items() if key not in table}
        for old, value in node.items():
            if old not in table:
                continue
            group, key = table[old]
            sub = nested.get(group)
            if sub is not None and not isinstance(sub, Mapping):
                continue  # `video.model: 3`: validation reports the sub-section itself
            sub = dict(sub or {})
            if key in sub:
                moved.conflicts.append(((section, old), (section, group, key)))
                continue
            sub[key] = value
            nested[group] = sub
            moved.keys.append(((section, old), (section, group, key)))
        upgraded[section] = nested
    return upgraded, moved
