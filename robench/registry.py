"""One registry idiom for every kind of named thing: datasets, models, optimizers, policies, mixers
and corruptions.

    POLICIES = Registry("policy")

    @POLICIES.register("cutout", "one square of zeros per image", params={"size": Param(16, "side in px", lo=1)})
    class Cutout: ...

    POLICIES.create("cutout", size=8)     # the factory called with the validated parameters
    POLICIES.params("cutout", {"size": 8}) # {'size': 8}: defaults overridden, validated
    "cutout" in POLICIES; list(POLICIES)   # names, in registration order

An entry is a factory, a one-line description and the declared parameters (`Param`: default,
range or choices, help), which `robench list` prints. A name ending in ":<...>" (e.g.
"hf:<repo-id>") is a family: `get("hf:user/data")` finds it. Unknown names and bad parameter values
raise `RobenchError` with one line that lists the valid choices.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from robench.errors import RobenchError, unknown_name


@dataclass(frozen=True)
class Param:
    """One declared parameter: its default (whose type is the parameter's type), an optional closed
    range [lo, hi] or set of choices, and a short help text."""

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


def resolve_params(owner: str, declared: dict[str, Param], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by `given`, each validated; RobenchError names an unknown parameter."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise RobenchError(f"{owner} has no parameter '{unknown[0]}'; its parameters are: {known}")
    values = {name: p.default for name, p in declared.items()}
    for name, value in given.items():
        values[name] = declared[name].parse(owner, name, value)
    return values


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    description: str
    params: dict[str, Param] = field(default_factory=dict)


class Registry:
    """Name -> Entry, in registration order. `modules` are imported on first look-up (the modules
    whose decorators fill it), so importing the registry itself stays cheap."""

    def __init__(self, kind: str, modules: tuple[str, ...] = (), order: tuple[str, ...] = ()):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._modules = modules
        self._loaded = not modules
        self._order = {name: i for i, name in enumerate(order)}  # listing order, if not registration's

    def register(self, name: str | None = None, description: str | None = None,
                 params: dict[str, Param] | None = None):
        """Decorator adding `factory` under `name`. What is not given is read from the factory's
        own `name`, `description` and `params` attributes (policy and mixer classes declare theirs)."""

        def wrap(factory):
            summary = description or getattr(factory, "description", None) or (factory.__doc__ or "").strip()
            self.add(name or factory.name, factory, summary.splitlines()[0] if summary else "",
                     params if params is not None else getattr(factory, "params", {}))
            return factory

        return wrap

    def add(self, name: str, factory: Callable[..., Any], description: str,
            params: dict[str, Param] | None = None) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        self._entries[name] = Entry(name, factory, description, dict(params or {}))

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def get(self, name: str) -> Entry:
        self._load()
        if name in self._entries:
            return self._entries[name]
        family = name.split(":", 1)[0] + ":" if ":" in name else None
        for entry in self._entries.values():
            if family and entry.name.startswith(family):
                if name == family:
                    raise RobenchError(f"{self.kind} '{name}' needs a name after the colon, e.g. {entry.name}")
                return entry
        raise unknown_name(self.kind, name, self.names())

    def params(self, name: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """The entry's parameters: defaults overridden by `given`, validated."""
        return resolve_params(f"{self.kind} '{name}'", self.get(name).params, dict(given or {}))

    def create(self, name: str, *args, **given):
        """The factory called with `args` and the validated parameters."""
        return self.get(name).factory(*args, **self.params(name, given))

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries, key=lambda name: self._order.get(name, len(self._order)))

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def describe(self) -> list[str]:
        """Lines for `robench list`: name and description, then each parameter with its default."""
        lines = []
        for entry in self.entries():
            lines.append(f"  {entry.name:<18} {entry.description}")
            for pname, p in entry.params.items():
                lines.append(f"      {f'{pname}={p.default!r}':<24} {p.expected()}; {p.help}")
        return lines
