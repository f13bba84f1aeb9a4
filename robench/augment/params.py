"""Declared parameters of policies and mixers: defaults, ranges, and validation with one-line errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import RobenchError


@dataclass(frozen=True)
class Param:
    """One parameter: its default (whose type is the parameter's type), an optional closed range
    [lo, hi] or set of choices, and a short help text."""

    default: Any
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None

    def parse(self, owner: str, name: str, value: Any) -> Any:
        """The validated value (strings from a command line are converted); RobenchError if bad."""
        raw, value = value, _convert(type(self.default), value)
        bad = value is None
        if not bad and self.choices is not None:
            bad = value not in self.choices
        if not bad and self.lo is not None:
            bad = value < self.lo
        if not bad and self.hi is not None:
            bad = value > self.hi
        if bad:
            raise RobenchError(f"{owner}: bad value {raw!r} for '{name}'; expected {self.expected()}")
        return value

    def expected(self) -> str:
        kind = type(self.default).__name__
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.lo is not None and self.hi is not None:
            return f"{kind} in [{self.lo}, {self.hi}]"
        if self.lo is not None:
            return f"{kind} >= {self.lo}"
        return kind


def _convert(kind: type, value: Any) -> Any:
    """value as `kind`, or None. Accepts the strings a command line gives ("3", "0.5", "true")."""
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool:
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text)
        try:
            value = float(text)
        except ValueError:
            return None
    if kind is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return None
    if kind is float:
        return float(value) if isinstance(value, (int, float)) else None
    return value if isinstance(value, kind) else None


def resolve(owner: str, declared: dict[str, Param], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by `given`, each validated; RobenchError names an unknown parameter."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise RobenchError(f"{owner} has no parameter '{unknown[0]}'; its parameters are: {known}")
    values = {name: p.default for name, p in declared.items()}
    for name, value in given.items():
        values[name] = declared[name].parse(owner, name, value)
    return values
