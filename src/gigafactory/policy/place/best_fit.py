"""``best-fit``: the node left with the fewest free GPUs after placement (fewest free milli-GPU for a shared
GPU, least free CPU for a CPU-only task); ties to the lowest tie-break rank.

Gangs that must stay in one domain or pod go to the one with the fewest free GPUs that holds them; unconstrained
gangs take whole nodes from the fullest domains first.
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest, Locality
from gigafactory.policy.base import PLACE, PolicyFactory
from gigafactory.policy.place.common import BoolArray, IntArray, Placer, lexmin


def leftover_key(req: JobRequest, cap: Capacity) -> IntArray:
    """What a node keeps free after ``req``: the quantity best-fit minimises."""
    if req.gpus == 0:
        return cap.node_cpu
    if req.fractional:
        return cap.node_milli
    return cap.avail_whole


def group_free(level: Locality, cap: Capacity) -> IntArray:
    return cap.domain_whole if level is Locality.DOMAIN else cap.pod_whole


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class BestFit(Placer):
    name = "best-fit"

    def choose_node(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> int:
        return lexmin(cand, [leftover_key(req, cap)[cand]], cap.topo.node_rank[cand])

    def quick_node(self, req: JobRequest, cap: Capacity, exclude: BoolArray | None) -> int | None:
        counts = cap.hist[0] if cap.hist.shape[0] == 1 else np.add.reduce(cap.hist, axis=0)
        fits = counts[req.gpus :].nonzero()[0]
        if fits.size == 0:
            return None
        nodes = (cap.avail_whole == fits[0] + req.gpus).nonzero()[0]
        if exclude is not None:
            nodes = nodes[~exclude[nodes]]
        if nodes.size == 0:
            return None
        return int(nodes[cap.topo.node_rank[nodes].argmin()])

    def choose_group(self, level: Locality, feasible: IntArray, cap: Capacity, rng: np.random.Generator) -> int:
        return lexmin(feasible, [group_free(level, cap)[feasible]], feasible)

    def pick_nodes(self, full: IntArray, count: int, cap: Capacity, rng: np.random.Generator) -> IntArray:
        topo = cap.topo
        order = np.lexsort((topo.node_rank[full], cap.domain_whole[topo.node_domain[full]]))
        return full[order[:count]]


PLACE.add("best-fit", PolicyFactory(BestFit, "the node left with the fewest free GPUs", {}))
