"""``fifo``: first submitted, first considered; ties by job id."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gigafactory.core.jobs import Job
from gigafactory.policy.base import ORDER, PolicyFactory


@dataclass(frozen=True, slots=True)
class Fifo:
    name: str = "fifo"

    grouped = False
    continuous_keys = False

    def key_changes_at(self, job: Job, attained_gpu_s: float, started_s: float) -> float:
        return math.inf

    def key(self, job: Job, attained_gpu_s: float = 0.0) -> tuple[Any, ...]:
        return (job.submit_s, job.id)

    def __deepcopy__(self, memo: dict[int, object]) -> Fifo:
        return self  # immutable: a copy of the engine (the forecast's) shares it


ORDER.add("fifo", PolicyFactory(Fifo, "first submitted, first considered", {}))
