"""Config problems in the admin's words, in Chinese: pydantic's and ruamel's messages rephrased for the
common slips (a word where a list or number belongs, a misspelt key, a key under the wrong section, a
full-width colon, a tab, an indentation that does not line up), with the line where the mistake is and
the example or the key that was probably meant. `check-config`, the console and the admins' message
after a bad edit all show these same sentences."""

from __future__ import annotations

import difflib
import re
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


def _sections_with(key: str, model: type[BaseModel] = AppConfig, prefix: str = "") -> list[str]:
    """Every section (dotted) that has a setting called `key`."""
    found = []
    for name, field in model.model_fields.items():
        inner = _models_in(field.annotation)
        if name == key and prefix:
            found.append(prefix.rstrip("."))
        if inner and typing.get_origin(field.annotation) is not dict:
            found += _sections_with(key, inner[0], f"{prefix}{name}.")
    return found


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None or not loc or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    if close:
        return f"，是不是想写 {close[0]}？"
    elsewhere = _sections_with(loc[-1])
    if elsewhere:
        return f"：{loc[-1]} 应该写在 {' 或 '.join(elsewhere)} 下面"
    return ""


def _got(value: Any) -> str:
    return f"（现在写的是 {value!r}）"


_BOUNDS = {"greater_than_equal": ("ge", "不能小于 {}"), "greater_than": ("gt", "要大于 {}"),
           "less_than_equal": ("le", "不能大于 {}"), "less_than": ("lt", "要小于 {}"),
           "multiple_of": ("multiple_of", "要是 {} 的倍数")}
_PLAIN = {"missing": "缺少这个设置", "string_type": "应该是一段文字", "url_parsing": "不是有效的网址",
          "dict_type": "应该是一节设置", "none_required": "应该留空（null）"}


def friendly(err: ErrorDetails) -> str:
    """One validation error as a reason an admin can act on, in Chinese."""
    kind, got = err["type"], err.get("input")
    context = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "没有这个设置" + _did_you_mean(tuple(err["loc"]))
    if kind in LIST_TYPES:
        example = f"[{got}]" if isinstance(got, str | int | float) else "[a, b]"
        return f"应该是一个列表，比如 {example}"
    if kind in WHOLE_TYPES:
        return f"应该是整数，比如 {_example(err, '3')}{_got(got)}"
    if kind in NUMBER_TYPES:
        return f"应该是数字，比如 {_example(err, '1.5')}{_got(got)}"
    if kind in BOOL_TYPES:
        return f"应该是 true 或 false{_got(got)}"
    if kind in SECTION_TYPES:
        return f"应该是一节设置：下面每行一个「名字: 值」，比上一行多缩进两个空格{_got(got)}"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return words.format(context.get(name)) + _got(got)
    if kind == "literal_error":
        return f"只能是 {context.get('expected', '')} 其中之一{_got(got)}".replace("' or '", "'、'")
    if kind in ("string_too_short", "too_short"):
        return f"太短了，至少要 {context.get('min_length')} 个{_got(got)}"
    if kind in ("string_too_long", "too_long"):
        return f"太长了，最多 {context.get('max_length')} 个"
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])


_TAB = re.compile(r"^[ ]*\t")
_FULL_WIDTH_KEY = re.compile(r"^\s*(- )?[^#\s:：][^#:：]*：")
_NO_SPACE = re.compile(r"^\s*(- )?[A-Za-z_][\w.-]*:(?![\s/])\S")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _likely_cause(lines: list[str], upto: int) -> tuple[int, str] | None:
    """(1-based line, what is wrong there) for the common slips, looking at the lines up to the error."""
    for number, line in enumerate(lines[: upto + 1], 1):
        code = line.split(" #", 1)[0]
        if _TAB.match(line):
            return number, "行首用了 Tab 键；YAML 只认空格，请把 Tab 换成空格"
        if _FULL_WIDTH_KEY.match(code):
            return number, "用了中文冒号「：」，要换成英文冒号「:」，后面再加一个空格"
        if _NO_SPACE.match(code):
            return number, "冒号后面少了一个空格：写成「名字: 值」"
    return None


def syntax_problem(exc: YAMLError, source: str, text: str = "") -> str:
    """A YAML syntax error named by the file and the line the mistake is on, with its likely cause."""
    if not isinstance(exc, MarkedYAMLError) or exc.problem_mark is None:
        return f"{source}：格式不对，读不懂（{exc}）"
    mark = exc.problem_mark
    lines = text.splitlines()
    cause = _likely_cause(lines, mark.line)
    if cause is not None:
        return f"{source} 第 {cause[0]} 行：{cause[1]}"
    problem = exc.problem or ""
    if "block end" in problem or "mapping values are not allowed" in problem:
        here = lines[mark.line] if mark.line < len(lines) else ""
        above = next((line for line in reversed(lines[: mark.line]) if line.strip()
                      and not line.lstrip().startswith("#")), "")
        return (f"{source} 第 {mark.line + 1} 行：缩进没对齐（这一行前面 {_indent(here)} 个空格，上一行 "
                f"{_indent(above)} 个）；同一层的设置前面的空格要一样多，下一层多两个")
    if exc.context and exc.context_mark is not None and ("quoted" in exc.context or "flow" in exc.context):
        opened = exc.context_mark
        return (f"{source} 第 {opened.line + 1} 行：引号或括号没有配对（从第 {opened.line + 1} 行第 "
                f"{opened.column + 1} 个字开始）")
    return f"{source} 第 {mark.line + 1} 行第 {mark.column + 1} 个字：格式不对（{problem}）"
