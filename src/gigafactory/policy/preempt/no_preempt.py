"""``no-preempt``: running jobs are never stopped for others (the default)."""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.policy.base import PREEMPT, JobView, PolicyFactory, SchedulerView


@dataclass(frozen=True, slots=True)
class NoPreempt:
    name: str = "no-preempt"
    graceful: bool = True
    stops_jobs = False
    ranks_running = False

    def candidates(self, job: JobView, view: SchedulerView) -> list[JobView]:
        return []

    def __deepcopy__(self, memo: dict[int, object]) -> NoPreempt:
        return self  # immutable: a copy of the engine (the forecast's) shares it


PREEMPT.add("no-preempt", PolicyFactory(NoPreempt, "running jobs are never stopped for others", {}))
