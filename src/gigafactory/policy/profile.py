"""Profiles: one policy per extension point, chosen by name.

A profile is written ``order+backfill+place``, each part a name with optional parameters, e.g.
``fifo+easy+best-fit`` or ``sjf+easy:depth=50+topology``. Parts may come in any order, since every name
belongs to exactly one extension point; a missing part takes its default (``fifo``, ``none``, ``best-fit``).
Named profiles (``default``) stand for a whole profile. In an experiment TOML the same can be written as a
table: ``[policy] order = "fifo"  backfill = { name = "easy", depth = 50 }  place = "topology"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gigafactory.core.errors import ConfigError
from gigafactory.core.registry import Registry
from gigafactory.core.spec import bind_params, parse_spec
from gigafactory.policy import backfill as _backfill  # noqa: F401  (registers the built-ins)
from gigafactory.policy import order as _order  # noqa: F401
from gigafactory.policy import place as _place  # noqa: F401
from gigafactory.policy.base import (
    BACKFILL,
    ORDER,
    PLACE,
    BackfillPolicy,
    OrderPolicy,
    PlacePolicy,
    PolicyFactory,
)

__all__ = ["DEFAULT_PROFILE", "NAMED_PROFILES", "POINTS", "Profile", "parse_profile", "profile_from_table"]

POINTS: dict[str, Registry[PolicyFactory]] = {"order": ORDER, "backfill": BACKFILL, "place": PLACE}
DEFAULTS = {"order": "fifo", "backfill": "none", "place": "best-fit"}
DEFAULT_PROFILE = "fifo+easy+topology"
NAMED_PROFILES: dict[str, str] = {"default": DEFAULT_PROFILE}


@dataclass(frozen=True)
class Profile:
    order: OrderPolicy
    backfill: BackfillPolicy
    place: PlacePolicy
    text: str  # canonical: order+backfill+place with non-default parameters

    def __str__(self) -> str:
        return self.text


def _point_of(name: str) -> str:
    owners = [point for point, reg in POINTS.items() if name in reg]
    if not owners:
        known = sorted({n for reg in POINTS.values() for n in reg} | set(NAMED_PROFILES))
        raise ConfigError(f"unknown policy {name!r}; known: {', '.join(known)}")
    return owners[0]


def _build(point: str, name: str, given: Mapping[str, object]) -> tuple[Any, str]:
    factory = POINTS[point].get(name)
    params = bind_params(f"{point} policy {name}", factory.params, given)
    text = name
    shown = {k: v for k, v in params.items() if k in given and v != factory.params[k].default}
    if shown:
        text += ":" + ",".join(f"{k}={v}" for k, v in shown.items())
    return factory.build(**params), text


def parse_profile(text: str) -> Profile:
    """Parse ``order+backfill+place``; every part is optional and errors list what is allowed."""
    text = text.strip()
    if text in NAMED_PROFILES:
        text = NAMED_PROFILES[text]
    if not text:
        raise ConfigError("empty policy profile")
    chosen: dict[str, tuple[str, Mapping[str, str]]] = {}
    for part in text.split("+"):
        spec = parse_spec(part, what="policy")
        point = _point_of(spec.name)
        if point in chosen:
            raise ConfigError(
                f"policy profile {text!r} names two {point} policies: {chosen[point][0]!r} and {spec.name!r}"
            )
        chosen[point] = (spec.name, spec.params)
    return _assemble(chosen)


def profile_from_table(table: Mapping[str, Any]) -> Profile:
    """Build a profile from a TOML table ``{order = "fifo", backfill = {name = "easy", depth = 50}, ...}``."""
    chosen: dict[str, tuple[str, Mapping[str, object]]] = {}
    for point, value in table.items():
        if point not in POINTS:
            raise ConfigError(f"[policy] has unknown key {point!r}; allowed: {', '.join(POINTS)}")
        if isinstance(value, str):
            chosen[point] = (value, {})
        elif isinstance(value, Mapping) and isinstance(value.get("name"), str):
            chosen[point] = (str(value["name"]), {k: v for k, v in value.items() if k != "name"})
        else:
            raise ConfigError(f"[policy] {point} must be a name or a table with a 'name' key")
        if chosen[point][0] not in POINTS[point]:
            raise ConfigError(f"unknown {point} policy {chosen[point][0]!r}; known: {', '.join(POINTS[point].names())}")
    return _assemble(chosen)


def _assemble(chosen: Mapping[str, tuple[str, Mapping[str, object]]]) -> Profile:
    built: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for point in POINTS:
        name, params = chosen.get(point, (DEFAULTS[point], {}))
        built[point], texts[point] = _build(point, name, params)
    text = "+".join(texts[p] for p in ("order", "backfill", "place"))
    return Profile(order=built["order"], backfill=built["backfill"], place=built["place"], text=text)
