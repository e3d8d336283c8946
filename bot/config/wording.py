"""Config problems in the admin's words: pydantic's and ruamel's messages rephrased for the common
slips (a word where a list or number belongs, a misspelt key, an unclosed bracket), with the example
or the key that was probably meant."""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bot.config.app import AppConfig

LIST_TYPES = {"list_type", "tuple_type", "set_type", "frozen_set_type"}
WHOLE_TYPES = {"int_parsing", "int_type", "int_from_float"}
NUMBER_TYPES = {"float_parsing", "float_type", "decimal_parsing", "decimal_type"}
BOOL_TYPES = {"bool_parsing", "bool_type"}
SECTION_TYPES = {"model_type", "model_attributes_type", "dict_type"}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (`X`, `X | None`, `dict[str, X]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model that a key path (without its last key) points into, or None."""
    model: type[BaseModel] = AppConfig
    keyed = False  # the previous step was a dict of sections: this step is a free-form name
    for key in path:
        if keyed:
            keyed = False
            continue
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            return None
        inner = _models_in(field.annotation)
        if not inner:
            return None
        keyed = typing.get_origin(field.annotation) is dict
        model = inner[0]
    return None if keyed else model


def _example(err: ErrorDetails, fallback: str) -> str:
    model = _model_at(tuple(err["loc"][:-1]))
    field = model.model_fields.get(err["loc"][-1]) if model and err["loc"] else None
    default = getattr(field, "default", None)
    if isinstance(default, int | float) and not isinstance(default, bool):
        return f"{default:g}"
    return fallback


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None or not loc or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def friendly(err: ErrorDetails) -> str:
    """One validation error as a reason an admin can act on."""
    kind, got = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return "unknown key" + _did_you_mean(tuple(err["loc"]))
    if kind in LIST_TYPES:
        example = f"[{got}]" if isinstance(got, str | int | float) else "[a, b]"
        return f"should be a list, e.g. {example}"
    if kind in WHOLE_TYPES:
        return f"should be a whole number, e.g. {_example(err, '3')} (got {got!r})"
    if kind in NUMBER_TYPES:
        return f"should be a number, e.g. {_example(err, '1.5')} (got {got!r})"
    if kind in BOOL_TYPES:
        return f"should be true or false (got {got!r})"
    if kind in SECTION_TYPES:
        return f"should be a section of `key: value` lines indented under it (got {got!r})"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])


def syntax_problem(exc: YAMLError, source: str) -> str:
    """A YAML syntax error named by the file and line (ruamel says "<unicode string>")."""
    if not isinstance(exc, MarkedYAMLError) or exc.problem_mark is None:
        return f"{source}: YAML syntax error: {exc}"
    mark = exc.problem_mark
    started = ""
    if exc.context and exc.context_mark is not None:
        opened = exc.context_mark
        started = f" ({exc.context} begun on line {opened.line + 1}, column {opened.column + 1})"
    return (f"{source}, line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: "
            f"{exc.problem}{started}")
