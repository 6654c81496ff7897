"""Single-node policies that score every feasible node with an integer and take the best.

This is the shape of the Kubernetes scheduler framework's Score plugins and of the FGD paper's policies: each
feasible node gets an integer score, the highest wins, and ties go to the node with the smallest tie-break rank
(``Topology.node_rank``). Truncating scores to integers creates many ties, which is part of how these policies
behave. A request that needs several nodes falls back to the generic gang placement of :class:`~.common.Placer`.

``max_cpu`` and ``max_gpu_milli`` normalise scores: the largest node's CPU and GPU capacity on the site
(128,000 milli-cores and 8,000 milli-GPU on the Alibaba openb cluster).
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest
from gigafactory.policy.place.common import IntArray, Placer

__all__ = ["ScoredPlacer", "best_fit_gpu_left", "site_maxima"]


def site_maxima(cap: Capacity) -> tuple[float, float]:
    return float(max(int(cap.topo.node_cpu.max()), 1)), float(max(int(cap.topo.node_gpus.max()), 1) * 1000)


def best_fit_gpu_left(cap: Capacity, cand: IntArray, milli: int) -> IntArray:
    """Per candidate node, the smallest free share >= ``milli`` on any one GPU (what best-fit GPU choice takes)."""
    left = cap.gpu_matrix()[cand]
    best: IntArray = np.where(left >= milli, left, 10**9).min(axis=1)
    return best


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class ScoredPlacer(Placer):
    name = "scored"

    def scores(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> IntArray:
        raise NotImplementedError

    def choose_node(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> int:
        if cand.size == 1:
            return int(cand[0])  # one feasible node is chosen without scoring
        scores = self.scores(req, cap, cand, rng)
        best = cand[scores == scores.max()]
        if best.size == 1:
            return int(best[0])
        return int(best[np.argmin(cap.topo.node_rank[best])])
