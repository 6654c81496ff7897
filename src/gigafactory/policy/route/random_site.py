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
        gpus = np.array([s.gpus for s in sites], dtype=np.float64)
        k = int(rng.choice(len(sites), p=gpus / gpus.sum())) if gpus.sum() > 0 else int(rng.integers(len(sites)))
        return k, f"drawn at random, by size, among {len(sites)} allowed sites"


ROUTE.add("random", PolicyFactory(RandomSite, "an allowed site at random, weighted by its GPUs (a baseline)", {}))
