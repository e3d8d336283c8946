"""The layout's rules, read from the source tree with `ast`: no import cycle among the product modules
(imports under `TYPE_CHECKING` and inside functions count too), the arrows that must never exist, at
most eight loose modules in `bot/`, and each built-in intent written in exactly one place."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.builtin_intents import BUILTIN

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("bot", "intents", "nlu", "generators", "services", "prompts", "bench")
MAX_LOOSE_BOT_MODULES = 8


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_files() -> Iterator[Path]:
    for package in PRODUCT:
        yield from sorted((ROOT / package).rglob("*.py"))


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The product modules `path` imports, wherever the import statement is (TYPE_CHECKING included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import: from the package, `level - 1` packages up
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]).strip(".")
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in modules:  # "bot.config.AppConfig" -> "bot.config"
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = list(product_files())
    modules = {_module_name(f) for f in files}
    return {_module_name(f): imports_of(f, modules) for f in files}


def _package_imports(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's `__init__` runs when any of its modules is imported: an edge into `a.b.c` is also an
    edge into `a` and `a.b`."""
    full: dict[str, set[str]] = {}
    for module, targets in graph.items():
        full[module] = set()
        for target in targets:
            parts = target.split(".")
            full[module] |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(graph)
        full[module].discard(module)
    return full


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycle_among_the_product_modules() -> None:
    graph = import_graph()
    assert len(graph) > 100 and "bot.pipeline.dispatch" in graph["bot.runtime.app"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_arrows_that_must_never_exist() -> None:
    graph = import_graph()
    wrong = [(module, target) for module, targets in graph.items() for target in targets
             if (module.startswith(("services", "generators")) and target.startswith("bot"))
             or (module.startswith("intents") and target.startswith("bot.channels"))
             or (module.startswith("bot.channels") and target.startswith("intents"))]
    assert wrong == []


def test_bot_keeps_at_most_eight_loose_modules() -> None:
    loose = sorted(p.name for p in (ROOT / "bot").glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= MAX_LOOSE_BOT_MODULES, loose


def _string_constants(path: Path) -> Iterator[tuple[str, int]]:
    """Whole string literals (an f-string's pieces, such as "{city}天气", are reply text, not a label)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pieces = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in pieces:
            yield node.value, node.lineno


def test_each_intent_is_written_in_exactly_one_place() -> None:
    """Its label (what users and the LLM read) is one string in product code, in the module that declares
    it, beside its name; nothing else names an intent (`Intent.WEATHER`, lists of names are gone)."""
    labels = {spec.label: spec for spec in BUILTIN}
    found: dict[str, list[str]] = {label: [] for label in labels}
    declared_names: dict[str, list[str]] = {spec.name: [] for spec in BUILTIN}
    enum_style: list[str] = []
    for path in product_files():
        where = str(path.relative_to(ROOT))
        for value, line in _string_constants(path):
            if value in found:
                found[value].append(f"{where}:{line}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {s.name.upper() for s in BUILTIN} \
                    and isinstance(node.value, ast.Name) and node.value.id == "Intent":
                enum_style.append(f"{where}:{node.lineno}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("IntentSpec", "Mode"):
                name = next((a for a in node.args[:1] if isinstance(a, ast.Constant)), None) or next(
                    (k.value for k in node.keywords if k.arg == "name"), None)
                if isinstance(name, ast.Constant) and name.value in declared_names:
                    declared_names[name.value].append(f"{where}:{node.lineno}")
    assert enum_style == []
    assert {label: len(places) for label, places in found.items()} == dict.fromkeys(labels, 1), found
    assert {name: len(places) for name, places in declared_names.items()} == dict.fromkeys(declared_names, 1)
    for label, places in found.items():  # the label sits in the declaration of its name
        spec = labels[label]
        assert places[0].split(":")[0] == declared_names[spec.name][0].split(":")[0]
    assert not (ROOT / "prompts" / "classify.md").read_text(encoding="utf-8").count("天气：")
