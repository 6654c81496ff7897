"""``none``: strict order. The first job that does not fit blocks every job behind it."""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.core.jobs import Job
from gigafactory.policy.base import BACKFILL, BoolArray, Planner, PolicyFactory, Reservation


@dataclass(frozen=True, slots=True)
class NoBackfill:
    name: str = "none"
    depth: int = 0
    interval: float = 0.0

    def reserve(self, head: Job, planner: Planner, now: float) -> Reservation | None:
        return None

    def exclusion(self, job: Job, now: float, reservation: Reservation) -> BoolArray | None:
        raise AssertionError("no backfill, so nothing to exclude")  # pragma: no cover

    def __deepcopy__(self, memo: dict[int, object]) -> NoBackfill:
        return self  # immutable: a copy of the engine (the forecast's) shares it


BACKFILL.add("none", PolicyFactory(NoBackfill, "strict order: the first job that does not fit blocks the rest", {}))
