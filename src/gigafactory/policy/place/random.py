"""``random``: a node drawn uniformly among those with room (a baseline); a shared GPU drawn uniformly too."""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest, Locality
from gigafactory.policy.base import PLACE, PolicyFactory
from gigafactory.policy.place.common import IntArray, Placer


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class RandomPlace(Placer):
    name = "random"

    def choose_node(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> int:
        return int(cand[rng.integers(cand.size)])

    def choose_group(self, level: Locality, feasible: IntArray, cap: Capacity, rng: np.random.Generator) -> int:
        return int(feasible[rng.integers(feasible.size)])

    def pick_nodes(self, full: IntArray, count: int, cap: Capacity, rng: np.random.Generator) -> IntArray:
        return np.sort(rng.choice(full, size=count, replace=False))

    def choose_gpu(self, free: list[int], milli: int, rng: np.random.Generator) -> int:
        fits = [i for i, f in enumerate(free) if f >= milli]
        return fits[int(rng.integers(len(fits)))]


PLACE.add("random", PolicyFactory(RandomPlace, "a node drawn uniformly among those with room", {}))
