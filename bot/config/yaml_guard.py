"""YAML from config files, loaded within a budget.

A few lines of anchors and aliases can stand for billions of nodes ("billion laughs"): the parser itself
is fast, but whatever walks the result afterwards (validation, an alert template filled at 3 a.m.) spins
and eats memory. So every config document is composed by `GuardedComposer`, which counts each node as it
would be once aliases are expanded and stops at `MAX_NODES`; an alias may not point into its own
anchor (a cycle), the text is capped at `MAX_BYTES` and the nesting at `MAX_DEPTH`. Aliases themselves
stay allowed: a config that shares a block with `&defaults` / `*defaults` keeps working.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

MAX_BYTES = 1_000_000  # a config file is a few KB; a megabyte is a mistake or an attack
MAX_NODES = 100_000  # nodes after alias expansion; the shipped config.yaml has a few hundred
MAX_DEPTH = 64


class YamlBudgetExceeded(ValueError):
    """A document that would expand beyond the budget, or has an alias cycle; the message says which
    and where (line numbers are 1-based)."""


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """Nodes under `node` (itself included) once aliases are expanded; memoised by identity, so a chain
    of anchors is counted in linear time however large it would expand."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, MappingNode):
        size += sum(_expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value)
    sizes[id(node)] = size
    return size


class GuardedComposer(Composer):
    """ruamel.yaml's composer with a node budget that counts aliases at their expanded size."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader=loader)
        self._spent = 0
        self._sizes: dict[int, int] = {}
        self._open_anchors: list[str] = []  # anchors whose node is being composed right now

    def _spend(self, count: int, mark: Any) -> None:
        self._spent += count
        if self._spent > MAX_NODES:
            raise YamlBudgetExceeded(
                f"the document expands to more than {MAX_NODES:,} values through its aliases (*name) "
                f"(line {mark.line + 1}); write the values out or share fewer of them")

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self._open_anchors:
                raise YamlBudgetExceeded(
                    f"alias *{event.anchor} (line {event.start_mark.line + 1}) points into its own anchor "
                    f"&{event.anchor}: a cycle")
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is reported by the base class
                self._spend(_expanded_size(target, self._sizes), event.start_mark)
            return super().compose_node(parent, index)
        self._spend(1, event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is None:
            return super().compose_node(parent, index)
        self._open_anchors.append(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_anchors.pop()


def guarded(yaml: YAML) -> YAML:
    """`yaml` (any typ) with the budget installed; returns it, so `guarded(YAML(typ="rt"))` reads well."""
    yaml.Composer = GuardedComposer
    yaml.max_depth = MAX_DEPTH
    return yaml


def load_config_yaml(text: str) -> Any:
    """Round-trip load of a config document within the budget (comments and line numbers kept, for
    error messages). Raises YamlBudgetExceeded, or ruamel's YAMLError for a syntax error."""
    size = len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise YamlBudgetExceeded(f"the file is {size:,} bytes; a config file may have at most {MAX_BYTES:,}")
    return guarded(YAML(typ="rt")).load(text)
