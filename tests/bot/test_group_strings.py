"""Every string the bot can post into a group is plain Chinese for the family: no variable names, paths,
URLs, tracebacks, English library text or exception class names (those go to the admins and the log).

The strings are collected, not listed by hand: the module-level reply constants and templates of every
module on the message and delivery path, the literal parts of every exception raised for askers
(`GeneratorError`, `ModelNotFound`, `UserInputError`) anywhere in intents/, generators/ and bot/jobs/,
and the sentences the AMap and model-finding code build for real failures.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import bot.hosts
import bot.jobs
import generators
import intents
import nlu
from generators.loading import ModelSource, find_model, read_component_config
from intents.slots import explain
from services.amap import errors as amap_errors

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(
    r"\$|/|\\|=|_KEY|_TOKEN|Error|Exception|Traceback|https?:|\.py\b|\.json\b|\.safetensors"
    r"|[a-z]+\.[a-z_]+\.[a-z_]+"  # a config key such as video.model.path
    r"|[A-Za-z]{2,}(?: [A-Za-z]{2,}){2,}"  # three English words in a row: library text
)
# words a grandparent does not use: what the bot runs on, not what it does (the seed and the English
# text behind a picture reach admins, or anyone who asks with #详情)
JARGON = re.compile(r"种子|提示词|大模型|模型|参数|语言模型|权重|LLM|GPU|prompt|seed", re.IGNORECASE)
ASKER_EXCEPTIONS = {"GeneratorError", "ModelNotFound", "UserInputError", "NoRewriter"}
# values that would put a path, an address, a library's text or a class name into the sentence
LEAKY_VALUES = re.compile(r"\bexc\b(?!\.(zh|status_code))|path|folder|url|looked|__name__|_detail|_error_text"
                          r"|suffix|setting|shape\)")
# an asker exception's own message (itself checked here); find_model's sentence (built below)
SAFE_VALUES = {"str(exc)", "_feature(setting)"}
_CJK = re.compile(r"[\u4e00-\u9fff]")
GROUP_FACING_PACKAGES = (intents, nlu, bot.jobs, bot.hosts)
GROUP_FACING_MODULES = ("bot.pipeline.dispatch", "bot.pipeline.gates", "bot.jobs.outbox", "bot.jobs.remote",
                        "bot.jobs.celery_backend", "bot.jobs.admission")
RAISING_DIRS = ("intents", "nlu", "generators", "bot/jobs", "bot/hosts")


def _modules() -> list[object]:
    names = set(GROUP_FACING_MODULES)
    for package in GROUP_FACING_PACKAGES:
        names |= {f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)}
    return [importlib.import_module(name) for name in sorted(names)]


def reply_constants() -> list[tuple[str, str]]:
    """Module-level UPPER_CASE strings with Chinese in them: the replies and their templates (the
    admins' texts are named `*_FIX` or `ADMIN_*` and may name variables, paths and addresses)."""
    found = []
    for module in _modules():
        for name, value in vars(module).items():
            admins = name.endswith("_FIX") or name.startswith("ADMIN_")
            if name.isupper() and not name.startswith("_") and not admins and isinstance(value, str) \
                    and _CJK.search(value):
                found.append((f"{module.__name__}.{name}", value))
    return found


def _constant_text(node: ast.expr, constants: dict[str, str]) -> tuple[str, list[str]]:
    """The literal text of a message argument and the names of the values formatted into it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, []
    if isinstance(node, ast.JoinedStr):
        text, values = "", []
        for part in node.values:
            if isinstance(part, ast.Constant):
                text += str(part.value)
            else:
                text += "{}"
                values.append(ast.unparse(part.value))  # type: ignore[attr-defined]
        return text, values
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, lv = _constant_text(node.left, constants)
        right, rv = _constant_text(node.right, constants)
        return left + right, lv + rv
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id], []
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and isinstance(node.func.value, ast.Name)):
        text, _ = _constant_text(node.func.value, constants)
        return text, [ast.unparse(k.value) for k in node.keywords]
    return "", [ast.unparse(node)]


def raised_messages() -> list[tuple[str, str, list[str]]]:
    """(where, literal text, formatted values) of every exception for askers built in the source."""
    found = []
    for folder in RAISING_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                         and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                         for t in n.targets if isinstance(t, ast.Name)}
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in ASKER_EXCEPTIONS and node.args):
                    text, values = _constant_text(node.args[0], constants)
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", text, values))
    return found


def built_sentences(tmp_path: Path) -> list[tuple[str, str]]:
    """Sentences built at run time for real failures, as the asker would read them."""
    found = []
    for _name, cls in inspect.getmembers(amap_errors, inspect.isclass):
        if issubclass(cls, amap_errors.AmapError):
            found.append((f"explain({cls.__name__})", explain(cls("boom", "10001", "INVALID_USER_KEY"))))
    source = ModelSource("CogVideoX-5B", ("ZhipuAI/CogVideoX-5b",), ("THUDM/CogVideoX-5b",))
    env = {"MODELSCOPE_CACHE": str(tmp_path / "ms"), "HF_HOME": str(tmp_path / "hf")}
    for explicit in (None, tmp_path / "nowhere"):
        with pytest.raises(generators.base.ModelNotFound) as caught:
            find_model(explicit, [source], env=env)
        found.append((f"find_model({explicit})", str(caught.value)))
    with pytest.raises(generators.base.GeneratorError) as caught:
        read_component_config(tmp_path, "transformer")
    found.append(("read_component_config", str(caught.value)))
    return found


def test_reply_constants_are_plain() -> None:
    constants = reply_constants()
    assert len(constants) > 40  # the collection itself works
    bad = [f"{where}: {text!r}" for where, text in constants if FORBIDDEN.search(text) or JARGON.search(text)]
    assert not bad, "group replies naming internals:\n" + "\n".join(bad)


def test_messages_raised_for_askers_are_plain() -> None:
    messages = raised_messages()
    assert len(messages) > 40
    bad = [f"{where}: {text!r}" for where, text, _ in messages
           if FORBIDDEN.search(text) or JARGON.search(text)]
    leaky = [f"{where}: formats {values}" for where, _, values in messages
             if any(LEAKY_VALUES.search(v) and v not in SAFE_VALUES for v in values)]
    assert not bad + leaky, "messages for askers naming internals:\n" + "\n".join(bad + leaky)


def test_sentences_built_for_failures_are_plain(tmp_path: Path) -> None:
    bad = [f"{where}: {text!r}" for where, text in built_sentences(tmp_path)
           if FORBIDDEN.search(text) or JARGON.search(text)]
    assert not bad, "failure replies naming internals:\n" + "\n".join(bad)
