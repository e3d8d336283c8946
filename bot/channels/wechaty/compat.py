"""Make python-wechaty 0.10.7 importable on Python >= 3.11. Import this before `wechaty`.

On 3.11+ the dataclass rule against unhashable (mutable) defaults rejects
`PuppetOptions` as a field default (python-wechaty issues #422, #385). Giving the class an identity
hash is exactly what older Pythons assumed, so nothing else changes.
"""

from __future__ import annotations

from wechaty_puppet.schemas.puppet import PuppetOptions

if PuppetOptions.__hash__ is None:
    PuppetOptions.__hash__ = object.__hash__  # type: ignore[method-assign]
