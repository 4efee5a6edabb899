"""A secret value in memory: never printed, never compared in variable time."""

from __future__ import annotations

import hmac


class Secret:
    """Holds a secret string; `repr`/`str` print `<redacted>` so logs and tracebacks never
    carry it. Read it with :meth:`reveal` at the one place that needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:  # equal secrets need equal hashes; none leaks the value
        return 0

    def __bool__(self) -> bool:
        return bool(self._value)
