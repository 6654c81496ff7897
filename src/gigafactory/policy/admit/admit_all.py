"""``admit-all``: no quota; every job may start when it fits (the default)."""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.core.jobs import Job
from gigafactory.core.status import OK, Status
from gigafactory.policy.base import ADMIT, PolicyFactory, SchedulerView


@dataclass(frozen=True, slots=True)
class AdmitAll:
    name: str = "admit-all"
    award_grace_s: float | None = None
    admits_all = True

    def admit(self, job: Job, view: SchedulerView) -> Status:
        return OK

    def __deepcopy__(self, memo: dict[int, object]) -> AdmitAll:
        return self  # immutable: a copy of the engine (the forecast's) shares it


ADMIT.add("admit-all", PolicyFactory(AdmitAll, "no quota: every job may start when it fits", {}))
