"""``sjf``: shortest job first, by the job's estimate of GPU-time (GPUs × estimated run time).

Jobs without an estimate go last. Ranking by GPU-time rather than run time alone keeps a short but huge gang
from overtaking many small jobs, which is what "shortest" means to a shared cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gigafactory.core.jobs import Job
from gigafactory.core.spec import Param
from gigafactory.policy.base import ORDER, PolicyFactory


@dataclass(frozen=True, slots=True)
class ShortestJobFirst:
    by: str = "gpu-time"
    name: str = "sjf"

    grouped = False
    continuous_keys = False

    def key_changes_at(self, job: Job, attained_gpu_s: float, started_s: float) -> float:
        return math.inf

    def key(self, job: Job, attained_gpu_s: float = 0.0) -> tuple[Any, ...]:
        est = math.inf if job.estimate_s is None else job.estimate_s
        if self.by == "gpu-time":
            est *= max(job.request.gpu_equivalent, 0.001)
        return (est, job.submit_s, job.id)

    def __deepcopy__(self, memo: dict[int, object]) -> ShortestJobFirst:
        return self  # immutable: a copy of the engine (the forecast's) shares it


def _build(by: str = "gpu-time") -> ShortestJobFirst:
    if by not in ("gpu-time", "time"):
        from gigafactory.core.errors import ConfigError

        raise ConfigError(f"order sjf: by={by!r}; allowed: gpu-time, time")
    return ShortestJobFirst(by)


ORDER.add(
    "sjf",
    PolicyFactory(
        _build,
        "shortest estimated job first (GPU-time by default)",
        {"by": Param(str, "gpu-time", help="gpu-time or time")},
    ),
)
