"""The admin's documentation stays complete: every config key is explained in README's configuration
reference and appears in the shipped config.yaml (which must itself be valid)."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from bot.config import AppConfig, load

REPO = Path(__file__).resolve().parents[2]


def _models_in(annotation: object) -> list[tuple[str, type[BaseModel]]]:
    """(suffix, model) for the config models an annotation holds: itself, `[]` items, `.*` values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return [found for arg in args for found in _models_in(arg)]
    if origin in (list, tuple) and args:
        return [("[]" + suffix, model) for suffix, model in _models_in(args[0])]
    if origin is dict and len(args) == 2:
        return [(".*" + suffix, model) for suffix, model in _models_in(args[1])]
    return []


def config_keys(model: type[BaseModel] = AppConfig, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.append(path)
        for suffix, inner in _models_in(field.annotation):
            keys += config_keys(inner, f"{path}{suffix}.")
    return keys


def test_readme_explains_every_config_key() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.partition("## Configuration")[2].partition("\n## ")[0]
    documented = set(re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE))
    missing = [key for key in config_keys() if key not in documented]
    assert not missing, f"README's configuration reference lacks: {missing}"
    unknown = documented - set(config_keys())
    assert not unknown, f"README documents keys the config does not have: {sorted(unknown)}"


def test_shipped_config_is_valid_and_names_every_section_key() -> None:
    load(REPO / "config.yaml")
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    top_level = [key for key in config_keys() if "." not in key and "[" not in key]
    assert all(re.search(rf"^{key}:", text, re.MULTILINE) for key in top_level)
