"""Spec strings: ``name`` or ``name:key=value,key=value``.

Sites, workloads and failure models are chosen on the command line and in experiment files with one compact
string, e.g. ``gb200-nvl72:racks=1389`` or ``llm:load=0.85,tenants=10``. This module parses them and checks the
parameters against what the named thing accepts, so every caller gives the same clear errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gigafactory.core.errors import ConfigError

__all__ = ["Param", "Spec", "parse_spec"]


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    params: Mapping[str, str]

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params.items())


def parse_spec(text: str, *, what: str = "spec") -> Spec:
    """Split ``name:key=value,...`` into a :class:`Spec`. Values stay strings; :class:`Param` converts them.

    A value may itself contain ``:`` (a path); only the first ``:`` separates the name. A bare first item
    without ``=`` after the name is kept under the key ``""`` so that ``philly:PATH,from=...`` works.
    """
    text = text.strip()
    if not text:
        raise ConfigError(f"empty {what}")
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"{what} {text!r} has no name before ':'")
    params: dict[str, str] = {}
    if sep:
        for i, item in enumerate(rest.split(",")):
            item = item.strip()
            if not item:
                continue
            key, eq, value = item.partition("=")
            if not eq:
                if i == 0:
                    params[""] = key
                    continue
                raise ConfigError(f"{what} {text!r}: parameter {item!r} is not key=value")
            key = key.strip()
            if key in params:
                raise ConfigError(f"{what} {text!r}: parameter {key!r} given twice")
            params[key] = value.strip()
    return Spec(name, params)


@dataclass(frozen=True, slots=True)
class Param:
    """One accepted parameter: its type, default and bounds. ``convert`` gives errors that name the value."""

    kind: type
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    exclusive_minimum: bool = False

    def convert(self, owner: str, key: str, raw: object) -> Any:
        value: Any
        if isinstance(raw, str) and self.kind is not str:
            try:
                if self.kind is bool:
                    low = raw.lower()
                    if low not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(raw)
                    value = low in ("true", "1", "yes")
                else:
                    value = self.kind(raw)
            except ValueError:
                raise ConfigError(f"{owner}: {key}={raw!r} is not a valid {self.kind.__name__}") from None
        else:
            value = raw
        if self.kind is int and isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{owner}: {key}={raw!r} must be a whole number")
            value = int(value)
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            else:
                raise ConfigError(f"{owner}: {key}={raw!r} is not a valid {self.kind.__name__}")
        if self.minimum is not None:
            if self.exclusive_minimum and not value > self.minimum:
                raise ConfigError(f"{owner}: {key}={raw!r} must be greater than {self.minimum:g}")
            if not self.exclusive_minimum and not value >= self.minimum:
                raise ConfigError(f"{owner}: {key}={raw!r} must be at least {self.minimum:g}")
        if self.maximum is not None and not value <= self.maximum:
            raise ConfigError(f"{owner}: {key}={raw!r} must be at most {self.maximum:g}")
        return value


def bind_params(owner: str, accepted: Mapping[str, Param], given: Mapping[str, object]) -> dict[str, Any]:
    """Check ``given`` against ``accepted``: unknown keys are errors that list the allowed ones."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        allowed = ", ".join(sorted(k for k in accepted if k)) or "(none)"
        shown = ", ".join(repr(k) if k else "a bare value" for k in unknown)
        close = [m for k in unknown if k for m in difflib.get_close_matches(k, [a for a in accepted if a], n=1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"{owner}: unknown parameter {shown}; allowed: {allowed}{hint}")
    out: dict[str, Any] = {}
    for key, param in accepted.items():
        if key in given:
            out[key] = param.convert(owner, key or "value", given[key])
        else:
            out[key] = param.default
    return out
