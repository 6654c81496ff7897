"""``least-loaded``: the site whose GPUs are least committed: (held + asked for by waiting jobs) / GPUs.

Kueue's MultiKueue and Slurm federation pick by what each cluster reports of its load; this is that, with the
queue counted, so that an empty large site beats a busy small one. Ties go to the larger site, then by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gigafactory.core.jobs import Job
from gigafactory.policy.base import ROUTE, PolicyFactory, SiteView


@dataclass(frozen=True, slots=True)
class LeastLoaded:
    name: str = "least-loaded"

    def choose(self, job: Job, sites: list[SiteView], now: float, rng: np.random.Generator) -> tuple[int, str]:
        loads = [s.load() for s in sites]
        best = min(range(len(sites)), key=lambda k: (loads[k], -sites[k].gpus, sites[k].name))
        return best, f"least loaded: {loads[best]:.0%} of its GPUs held or asked for"


ROUTE.add("least-loaded", PolicyFactory(LeastLoaded, "the site with the least of its GPUs held or queued for", {}))
