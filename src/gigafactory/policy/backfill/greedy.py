"""``greedy``: no reservation; any later job that fits may start (Tiresias' and Kubernetes' way).

The head of the queue gets nothing held back for it, so a stream of small jobs can starve a big one; priority
orders with preemption (``las`` + ``preempt``) make up for that by stopping lower-priority jobs for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gigafactory.core.jobs import Job
from gigafactory.core.spec import Param
from gigafactory.policy.base import BACKFILL, BoolArray, Planner, PolicyFactory, Reservation


@dataclass(frozen=True, slots=True)
class Greedy:
    depth: int = 100_000
    interval: float = 0.0
    name: str = "greedy"

    def reserve(self, head: Job, planner: Planner, now: float) -> Reservation | None:
        return Reservation(int(head.id), math.inf, np.zeros(0, np.bool_), np.zeros(0, np.int64))

    def exclusion(self, job: Job, now: float, reservation: Reservation) -> BoolArray | None:
        return None

    def __deepcopy__(self, memo: dict[int, object]) -> Greedy:
        return self  # immutable: a copy of the engine (the forecast's) shares it


BACKFILL.add(
    "greedy",
    PolicyFactory(
        Greedy,
        "no reservation: any later job that fits may start",
        {"depth": Param(int, 100_000, minimum=1, help="jobs tested after the head per pass")},
    ),
)
