"""``random``: an allowed site drawn at random in proportion to its GPUs, from the seeded generator: each site gets
work in proportion to its size, as a weighted round-robin balancer would give it, blind to queues, prices and
carbon. The baseline the others must beat. (Drawn uniformly instead, a 10,000-GPU site would get as many jobs as a
100,000-GPU one: a strawman, not a baseline.)"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gigafactory.core.jobs import Job
from gigafactory.policy.base import ROUTE, PolicyFactory, SiteView


@dataclass(frozen=True, slots=True)
class RandomSite:
    name: str = "random"

    def choose(self, job: Job, sites: list[SiteView], now: float, rng: np.random.Generator) -> tuple[int, str]:
        sizes = [s.gpus for s in sites]
        x = float(rng.random()) * sum(sizes)
        k = 0
        while k < len(sites) - 1 and x >= sizes[k]:
            x -= sizes[k]
            k += 1
        return k, f"drawn at random, by size, among {len(sites)} allowed sites"


ROUTE.add("random", PolicyFactory(RandomSite, "an allowed site at random, weighted by its GPUs (a baseline)", {}))
