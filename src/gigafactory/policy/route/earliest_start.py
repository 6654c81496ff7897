"""``earliest-start``: the site whose own engine expects to start the job soonest.

Each candidate's engine answers with :meth:`~gigafactory.engine.engine.Engine.estimate_start`: its running jobs
end at their time limits and its queue goes first. Slurm federation offers a job to every cluster and keeps the
first that starts it; this asks each site the same question before sending the job anywhere, so it runs once.
Ties (several sites can start it now) go to the lower load, then the larger site, then the name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gigafactory.core.jobs import Job
from gigafactory.policy.base import ROUTE, PolicyFactory, SiteView


def describe_wait(seconds: float) -> str:
    if math.isinf(seconds):
        return "not while its nodes are down"
    if seconds < 1.0:
        return "now"
    if seconds < 3600.0:
        return f"in {seconds / 60:.0f} min"
    return f"in {seconds / 3600:.1f} h"


@dataclass(frozen=True, slots=True)
class EarliestStart:
    name: str = "earliest-start"

    def choose(self, job: Job, sites: list[SiteView], now: float, rng: np.random.Generator) -> tuple[int, str]:
        starts = [s.estimate_start(job, now) for s in sites]
        first = min(starts)
        tied = [k for k in range(len(sites)) if starts[k] == first]
        best = tied[0] if len(tied) == 1 else min(tied, key=lambda k: (sites[k].load(), -sites[k].gpus, sites[k].name))
        return best, f"earliest estimated start: {describe_wait(first - now)}"


ROUTE.add("earliest-start", PolicyFactory(EarliestStart, "the site whose engine expects to start it soonest", {}))
