"""``packing``: consolidate by NVLink domain. A job goes to the fullest domain that can take it, and within it
to the fullest node, so that free capacity stays together in whole, empty domains for the gangs that need them.
On an HGX site, where a domain is one node, this is best-fit.
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest
from gigafactory.policy.base import PLACE, PolicyFactory
from gigafactory.policy.place.best_fit import BestFit, leftover_key
from gigafactory.policy.place.common import BoolArray, IntArray, lexmin, tightest_group_nodes


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class Packing(BestFit):
    name = "packing"

    def choose_node(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> int:
        topo = cap.topo
        keys = [cap.domain_whole[topo.node_domain[cand]], leftover_key(req, cap)[cand]]
        return lexmin(cand, keys, topo.node_rank[cand])

    def quick_node(self, req: JobRequest, cap: Capacity, exclude: BoolArray | None) -> int | None:
        topo = cap.topo
        nodes = tightest_group_nodes(cap.domain_hist, cap.domain_whole, topo.domain_start, req, cap, exclude)
        if nodes is None:
            return None
        # (The domains found tie on whole GPUs free, so the node key is all that is left to compare.)
        return lexmin(nodes, [cap.avail_whole[nodes]], topo.node_rank[nodes])

    def pick_nodes(self, full: IntArray, count: int, cap: Capacity, rng: np.random.Generator) -> IntArray:
        topo = cap.topo
        order = np.lexsort(
            (
                topo.node_rank[full],
                cap.domain_whole[topo.node_domain[full]],
                cap.pod_whole[topo.node_pod[full]],
            )
        )
        return full[order[:count]]


PLACE.add("packing", PolicyFactory(Packing, "the fullest NVLink domain, then the fullest node in it", {}))
