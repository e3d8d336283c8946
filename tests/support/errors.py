"""Asserting on what an error tells the admin: the asker's sentence is plain, the fix is in
`admin_detail` (see generators/base.py)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest


def told(exc: BaseException) -> str:
    """The asker's sentence and the admin's detail together."""
    return f"{exc} {getattr(exc, 'admin_detail', '') or ''}"


@contextlib.contextmanager
def raises_told(exc_type: type[BaseException], pattern: str) -> Iterator[Any]:
    """Like `pytest.raises(..., match=)`, matched against the admin's detail as well."""
    with pytest.raises(exc_type) as info:
        yield info
    assert re.search(pattern, told(info.value)), told(info.value)
