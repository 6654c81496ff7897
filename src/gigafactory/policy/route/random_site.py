"""``random``: any allowed site, uniformly, from the seeded generator. The baseline the others must beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gigafactory.core.jobs import Job
from gigafactory.policy.base import ROUTE, PolicyFactory, SiteView


@dataclass(frozen=True, slots=True)
class RandomSite:
    name: str = "random"

    def choose(self, job: Job, sites: list[SiteView], now: float, rng: np.random.Generator) -> tuple[int, str]:
        k = int(rng.integers(len(sites)))
        return k, f"drawn at random among {len(sites)} allowed sites"


ROUTE.add("random", PolicyFactory(RandomSite, "an allowed site at random (a baseline)", {}))
