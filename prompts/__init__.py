"""Prompt templates as data: `prompts/<name>.md`, rendered with `$placeholders` (string.Template).

A file may hold a system part and a user part separated by a line `<!-- user -->`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

PROMPTS_DIR = Path(__file__).resolve().parent
USER_MARK = "<!-- user -->"


@cache
def _raw(name: str) -> str:
    return (PROMPTS_DIR / f"{name}.md").read_text(encoding="utf-8")


def render(name: str, **values: object) -> tuple[str, str]:
    """Return (system, user) text of prompt `name`; user is "" when the file has one part.

    Missing placeholders raise KeyError at once, so a broken template fails in tests, not in a chat.
    """
    text = _raw(name)
    system, _, user = text.partition(USER_MARK)
    strings = {k: str(v) for k, v in values.items()}
    return Template(system.strip()).substitute(strings), Template(user.strip()).substitute(strings)
