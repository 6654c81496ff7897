"""``rounds``: passes run only at multiples of ``interval`` seconds (Tiresias' 60 s rounds); jobs that arrive or
free GPUs in between wait for the next round."""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.core.spec import Param
from gigafactory.policy.base import CYCLE, PolicyFactory


@dataclass(frozen=True, slots=True)
class Rounds:
    round_s: float = 60.0
    name: str = "rounds"


def _build(interval: float = 60.0) -> Rounds:
    return Rounds(interval)


CYCLE.add(
    "rounds",
    PolicyFactory(
        _build,
        "passes only every interval seconds",
        {"interval": Param(float, 60.0, minimum=0.0, exclusive_minimum=True, help="seconds between rounds")},
    ),
)
