"""``las``: least attained service first (Tiresias, NSDI'19), in GPU-time.

With ``queues = 0`` (the default) jobs are ordered by the GPU-seconds they have received so far, fewest first.
With ``queues = 2`` and ``threshold_gpu_h = 16`` this is Tiresias' discretised 2D-LAS: a job starts in queue 0 and
is demoted to queue 1 once it has received 16 GPU-hours; queue 0 goes first, and within a queue jobs go in order
of submission. A job's service, and so its queue, is read when it enters the queue; with preemption
(``preempt``), running jobs are compared by the service they have *now*, so a demoted job can be stopped for a
newcomer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gigafactory.core.errors import ConfigError
from gigafactory.core.jobs import Job
from gigafactory.core.spec import Param
from gigafactory.policy.base import ORDER, PolicyFactory


@dataclass(frozen=True, slots=True)
class LeastAttainedService:
    queues: int = 0
    threshold_gpu_h: float = 16.0
    name: str = "las"
    grouped = False

    @property
    def continuous_keys(self) -> bool:
        """Continuous LAS (``queues = 0``): a running job's key changes all the time."""
        return self.queues == 0

    def key(self, job: Job, attained_gpu_s: float = 0.0) -> tuple[Any, ...]:
        if self.queues == 0:
            return (attained_gpu_s, job.submit_s, job.id)
        return (self._level(attained_gpu_s)[0], job.submit_s, job.id)

    def _level(self, attained_gpu_s: float) -> tuple[int, float]:
        """The queue for this much service, and the service at which the job leaves it (inf for the last).

        Thresholds grow tenfold from ``threshold_gpu_h`` when there are more than two queues."""
        level = 0
        limit = self.threshold_gpu_h * 3600.0
        while level < self.queues - 1 and attained_gpu_s >= limit:
            level += 1
            limit *= 10.0
        return level, (limit if level < self.queues - 1 else math.inf)

    def key_changes_at(self, job: Job, attained_gpu_s: float, started_s: float) -> float:
        gpus = job.request.gpu_equivalent
        if self.queues == 0:
            return started_s  # continuous service: the key changes all the time
        _, leave = self._level(attained_gpu_s)
        if math.isinf(leave) or gpus <= 0:
            return math.inf
        return started_s + (leave - attained_gpu_s) / gpus

    def __deepcopy__(self, memo: dict[int, object]) -> LeastAttainedService:
        return self  # immutable: a copy of the engine (the forecast's) shares it


def _build(queues: int = 0, threshold_gpu_h: float = 16.0) -> LeastAttainedService:
    if queues == 1:
        raise ConfigError("order las: queues=1 is plain FIFO; use 0 (continuous LAS) or 2 or more")
    return LeastAttainedService(queues, threshold_gpu_h)


ORDER.add(
    "las",
    PolicyFactory(
        _build,
        "least attained GPU-time first; queues=2,threshold_gpu_h=16 is Tiresias' 2D-LAS",
        {
            "queues": Param(int, 0, minimum=0, maximum=8, help="0: continuous LAS; k: k priority queues"),
            "threshold_gpu_h": Param(float, 16.0, minimum=0.0, exclusive_minimum=True, help="first demotion"),
        },
    ),
)
