"""Profiles: one policy per extension point, chosen by name.

A profile is written ``order+backfill+place``, each part a name with optional parameters, e.g.
``fifo+easy+best-fit`` or ``sjf+easy:depth=50+topology``; the rarer points (``admit``, ``preempt``, ``cycle``)
join the same way: ``fair-share+quota+reclaim+easy+best-fit``, ``las:queues=2+preempt+rounds:interval=60``.
Parts may come in any order, since every name belongs to exactly one extension point; a missing part takes its
default (``fifo``, ``admit-all``, ``none``, ``no-preempt``, ``best-fit``, ``on-events``). Named profiles stand for
a whole profile: ``default`` and ``tiresias``. In an experiment TOML the same can be written as a table:
``[policy] order = "fifo"  backfill = { name = "easy", depth = 50 }  place = "topology"``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gigafactory.core.errors import ConfigError
from gigafactory.core.registry import Registry
from gigafactory.core.spec import bind_params, parse_spec
from gigafactory.policy import admit as _admit  # noqa: F401  (registers the built-ins)
from gigafactory.policy import backfill as _backfill  # noqa: F401
from gigafactory.policy import cycle as _cycle  # noqa: F401
from gigafactory.policy import order as _order  # noqa: F401
from gigafactory.policy import place as _place  # noqa: F401
from gigafactory.policy import preempt as _preempt  # noqa: F401
from gigafactory.policy import route as _route  # noqa: F401
from gigafactory.policy.base import (
    ADMIT,
    BACKFILL,
    CYCLE,
    ORDER,
    PLACE,
    PREEMPT,
    ROUTE,
    AdmitPolicy,
    BackfillPolicy,
    CyclePolicy,
    OrderPolicy,
    PlacePolicy,
    PolicyFactory,
    PreemptPolicy,
    RouteFilter,
    RoutePolicy,
)

__all__ = [
    "DEFAULT_PROFILE",
    "DEFAULT_ROUTE",
    "NAMED_PROFILES",
    "POINTS",
    "Profile",
    "RouteProfile",
    "parse_profile",
    "parse_route",
    "profile_from_table",
]

POINTS: dict[str, Registry[PolicyFactory]] = {
    "order": ORDER,
    "admit": ADMIT,
    "backfill": BACKFILL,
    "preempt": PREEMPT,
    "place": PLACE,
    "cycle": CYCLE,
}
DEFAULTS = {
    "order": "fifo",
    "admit": "admit-all",
    "backfill": "none",
    "preempt": "no-preempt",
    "place": "best-fit",
    "cycle": "on-events",
}
ALWAYS_SHOWN = ("order", "backfill", "place")
DEFAULT_PROFILE = "fifo+easy+topology"
NAMED_PROFILES: dict[str, str] = {
    "default": DEFAULT_PROFILE,
    # Tiresias (NSDI'19) as the Pollux artifact runs it: 2D-LAS, two queues, 16 GPU-hours, 60 s rounds, preemption.
    "tiresias": "las:queues=2,threshold_gpu_h=16+greedy+preempt+rounds:interval=60+packing",
}


@dataclass(frozen=True)
class Profile:
    order: OrderPolicy
    backfill: BackfillPolicy
    place: PlacePolicy
    text: str  # canonical: order+backfill+place, then any non-default admit, preempt, cycle
    admit: AdmitPolicy = field(default_factory=lambda: ADMIT.get("admit-all").make())
    preempt: PreemptPolicy = field(default_factory=lambda: PREEMPT.get("no-preempt").make())
    cycle: CyclePolicy = field(default_factory=lambda: CYCLE.get("on-events").make())

    def __str__(self) -> str:
        return self.text


def _unknown(names: list[str]) -> str:
    """The error for policy names no extension point knows: each with a did-you-mean, then what is known."""
    known = sorted({n for reg in POINTS.values() for n in reg} | set(NAMED_PROFILES))
    said = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        said.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    by_point = "; ".join(f"{point}: {', '.join(sorted(reg))}" for point, reg in POINTS.items())
    named = ", ".join(sorted(NAMED_PROFILES))
    what = "policy" if len(names) == 1 else "policies"
    return f"unknown {what} {', '.join(said)}; known: {by_point}; named: {named}"


def _build(point: str, name: str, given: Mapping[str, object], context: Mapping[str, Any]) -> tuple[Any, str]:
    return _build_point(POINTS[point], point, name, given, context)


def _build_point(
    registry: Registry[PolicyFactory],
    point: str,
    name: str,
    given: Mapping[str, object],
    context: Mapping[str, Any] | None = None,
) -> tuple[Any, str]:
    context = context or {}
    factory = registry.get(name)
    params = bind_params(f"{point} policy {name}", factory.params, given)
    text = name
    shown = {k: v for k, v in params.items() if k in given and v != factory.params[k].default}
    if shown:
        text += ":" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    extra = {k: v for k, v in context.items() if k in factory.context}
    return factory.build(**params, **extra), text


def parse_profile(text: str) -> Profile:
    """Parse ``order+backfill+place``; every part is optional and errors list what is allowed."""
    text = text.strip()
    if text in NAMED_PROFILES:
        text = NAMED_PROFILES[text]
    if not text:
        raise ConfigError("empty policy profile")
    specs = [parse_spec(part, what="policy") for part in text.split("+")]
    # Every name belongs to one extension point; all the unknown ones are named at once, not one per try.
    points = [next((point for point, reg in POINTS.items() if spec.name in reg), None) for spec in specs]
    unknown = [spec.name for spec, point in zip(specs, points, strict=True) if point is None]
    if unknown:
        raise ConfigError(_unknown(unknown))
    chosen: dict[str, tuple[str, Mapping[str, str]]] = {}
    for spec, point in zip(specs, points, strict=True):
        assert point is not None
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
        built[point], texts[point] = _build(point, name, params, {"order": built.get("order")})
    parts = [texts[p] for p in ALWAYS_SHOWN]
    parts += [texts[p] for p in POINTS if p not in ALWAYS_SHOWN and texts[p] != DEFAULTS[p]]
    return Profile(
        order=built["order"],
        backfill=built["backfill"],
        place=built["place"],
        text="+".join(parts),
        admit=built["admit"],
        preempt=built["preempt"],
        cycle=built["cycle"],
    )


# ---- routes: which site of a network ------------------------------------------------------------------------
DEFAULT_ROUTE = "earliest-start"
ALWAYS_FILTERED = ("residency",)  # a job's residency is a promise: every route applies it, named or not


@dataclass(frozen=True)
class RouteProfile:
    """Filters (each may rule a site out) then one chooser, written ``residency+earliest-start``."""

    filters: tuple[RouteFilter, ...]
    chooser: RoutePolicy
    text: str

    def __str__(self) -> str:
        return self.text


def parse_route(text: str) -> RouteProfile:
    """Parse ``[filter+...]chooser``; ``residency`` is always among the filters. Errors list what is allowed."""
    text = text.strip()
    if not text:
        raise ConfigError("empty route policy")
    filters: dict[str, RouteFilter] = {}
    chooser: tuple[str, RoutePolicy] | None = None
    for part in text.split("+"):
        spec = parse_spec(part, what="route policy")
        if spec.name not in ROUTE:
            raise ConfigError(f"unknown route policy {spec.name!r}; known: {', '.join(ROUTE.names())}")
        obj, shown = _build_route(spec.name, spec.params)
        if hasattr(obj, "excludes"):
            filters[shown] = obj
        elif chooser is not None:
            raise ConfigError(f"route {text!r} names two choosers: {chooser[0]!r} and {shown!r}; keep one")
        else:
            chooser = (shown, obj)
    for name in ALWAYS_FILTERED:
        if not any(k.split(":")[0] == name for k in filters):
            obj, shown = _build_route(name, {})
            filters = {shown: obj, **filters}
    if chooser is None:
        obj, shown = _build_route(DEFAULT_ROUTE, {})
        chooser = (shown, obj)
    return RouteProfile(tuple(filters.values()), chooser[1], "+".join([*filters, chooser[0]]))


def _build_route(name: str, given: Mapping[str, object]) -> tuple[Any, str]:
    return _build_point(ROUTE, "route", name, given)
