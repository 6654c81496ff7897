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
from gigafactory.policy.base import (
    ADMIT,
    BACKFILL,
    CYCLE,
    ORDER,
    PLACE,
    PREEMPT,
    AdmitPolicy,
    BackfillPolicy,
    CyclePolicy,
    OrderPolicy,
    PlacePolicy,
    PolicyFactory,
    PreemptPolicy,
)

__all__ = ["DEFAULT_PROFILE", "NAMED_PROFILES", "POINTS", "Profile", "parse_profile", "profile_from_table"]

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


def _point_of(name: str) -> str:
    owners = [point for point, reg in POINTS.items() if name in reg]
    if not owners:
        known = sorted({n for reg in POINTS.values() for n in reg} | set(NAMED_PROFILES))
        raise ConfigError(f"unknown policy {name!r}; known: {', '.join(known)}")
    return owners[0]


def _build(point: str, name: str, given: Mapping[str, object], context: Mapping[str, Any]) -> tuple[Any, str]:
    factory = POINTS[point].get(name)
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
