"""``on-events``: a pass runs whenever something changed (the default)."""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.policy.base import CYCLE, PolicyFactory


@dataclass(frozen=True, slots=True)
class OnEvents:
    name: str = "on-events"
    round_s: float = 0.0


CYCLE.add("on-events", PolicyFactory(OnEvents, "a pass whenever something changed", {}))
