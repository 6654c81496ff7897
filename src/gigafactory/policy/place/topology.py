"""``topology``: keep NVLink domains and pods whole for the gangs that need them.

* A job that fits on one node goes to the fullest pod, then the fullest domain in it, then the fullest node:
  small jobs pile up where capacity is already broken, and empty domains stay empty.
* A gang goes to the *smallest* unit that holds it whole: one domain if any domain can take it (the fullest such
  domain), else one pod (the fullest such pod), else as few pods as possible. Inside a pod it covers as few
  domains as possible, the last one chosen by best fit (see :func:`~.common.cover`).
"""

from __future__ import annotations

import numpy as np

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest, Locality
from gigafactory.policy.base import PLACE, PolicyFactory
from gigafactory.policy.place.best_fit import BestFit, leftover_key
from gigafactory.policy.place.common import IntArray, cover, lexmin


class TopologyAware(BestFit):
    name = "topology"

    def choose_node(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> int:
        topo = cap.topo
        keys = [cap.pod_whole[topo.node_pod], cap.domain_whole[topo.node_domain], leftover_key(req, cap)]
        return lexmin(cand, keys, topo.node_rank)

    def pick_nodes(self, full: IntArray, count: int, cap: Capacity, rng: np.random.Generator) -> IntArray:
        topo = cap.topo
        rank = topo.node_rank
        pods = topo.node_pod[full]
        if np.unique(pods).size > 1:
            # Spread over as few pods as possible, then over as few domains as possible inside each.
            pod_nodes = cover(full, pods, count, rank)
            parts = []
            for pod in np.unique(topo.node_pod[pod_nodes]):
                mine = full[pods == pod]
                take = int((topo.node_pod[pod_nodes] == pod).sum())
                parts.append(cover(mine, topo.node_domain[mine], take, rank))
            return np.concatenate(parts)
        return cover(full, topo.node_domain[full], count, rank)

    def _choose_gang_nodes(
        self,
        locality: Locality,
        full: IntArray,
        partial: IntArray,
        k: int,
        rem: int,
        cap: Capacity,
        rng: np.random.Generator,
    ) -> list[int] | None:
        if locality is not Locality.ANY:
            return super()._choose_gang_nodes(locality, full, partial, k, rem, cap, rng)
        for level in (Locality.DOMAIN, Locality.POD, Locality.ANY):
            chosen = super()._choose_gang_nodes(level, full, partial, k, rem, cap, rng)
            if chosen is not None:
                return chosen
        return None


PLACE.add(
    "topology",
    PolicyFactory(TopologyAware, "the smallest domain or pod that holds the whole gang; small jobs packed", {}),
)
