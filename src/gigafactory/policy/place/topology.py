"""``topology``: keep NVLink domains and pods whole for the gangs that need them.

* A job that fits on one node goes to the fullest pod, then the fullest domain in it, then the fullest node:
  small jobs pile up where capacity is already broken, and empty domains stay empty.
* A gang goes to the *smallest* unit that holds it whole: one domain if any domain can take it (the fullest such
  domain), else one pod (the fullest such pod), else as few pods as possible. Inside a pod it covers as few
  domains as possible, the last one chosen by best fit (see :func:`~.common.cover`).
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest, Locality
from gigafactory.core.placement import Placement
from gigafactory.core.status import Status
from gigafactory.core.topology import Topology
from gigafactory.policy.base import PLACE, PlaceContext, PolicyFactory
from gigafactory.policy.place.best_fit import BestFit, leftover_key
from gigafactory.policy.place.common import (
    BoolArray,
    IntArray,
    _spread,
    cover,
    gang_placement,
    group_nodes,
    lexmin,
    tightest_group_nodes,
)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class TopologyAware(BestFit):
    name = "topology"

    def choose_node(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> int:
        topo = cap.topo
        keys = [
            cap.pod_whole[topo.node_pod[cand]],
            cap.domain_whole[topo.node_domain[cand]],
            leftover_key(req, cap)[cand],
        ]
        return lexmin(cand, keys, topo.node_rank[cand])

    def quick_node(self, req: JobRequest, cap: Capacity, exclude: BoolArray | None) -> int | None:
        topo = cap.topo
        nodes = tightest_group_nodes(cap.pod_hist, cap.pod_whole, topo.pod_start, req, cap, exclude)
        if nodes is None:
            return None
        # (The pods found tie on whole GPUs free, so the domain and node keys are all that is left to compare.)
        keys = [cap.domain_whole[topo.node_domain[nodes]], cap.avail_whole[nodes]]
        return lexmin(nodes, keys, topo.node_rank[nodes])

    def pick_nodes(self, full: IntArray, count: int, cap: Capacity, rng: np.random.Generator) -> IntArray:
        topo = cap.topo
        rank = topo.node_rank
        pods = topo.node_pod[full]
        if pods.size and pods.min() != pods.max():
            # Spread over as few pods as possible, then over as few domains as possible inside each. Pods that
            # are taken whole need no second look; at most one pod is taken in part.
            pod_nodes = cover(full, pods, count, rank)
            taken = np.bincount(topo.node_pod[pod_nodes], minlength=topo.num_pods)
            offered = np.bincount(pods, minlength=topo.num_pods)
            partial = ((taken > 0) & (taken < offered)).nonzero()[0]
            if partial.size == 0:
                return pod_nodes
            in_part = np.zeros(topo.num_pods, np.bool_)
            in_part[partial] = True
            keep = [pod_nodes[~in_part[topo.node_pod[pod_nodes]]]]
            for pod in partial.tolist():
                mine = full[pods == pod]
                keep.append(cover(mine, topo.node_domain[mine], int(taken[pod]), rank))
            return np.concatenate(keep)
        return cover(full, topo.node_domain[full], count, rank)

    def _gang(self, req: JobRequest, cap: Capacity, ctx: PlaceContext) -> Placement | Status:
        quick = self._quick_gang(req, cap, ctx)
        return quick if quick is not None else super()._gang(req, cap, ctx)

    def _quick_gang(self, req: JobRequest, cap: Capacity, ctx: PlaceContext) -> Placement | None:
        """A gang that fits in one domain or one pod, found from the per-domain and per-pod counts of free nodes
        on a one-model site; ``None`` for anything else, or if the nodes it finds lack CPU or memory."""
        topo = cap.topo
        if len(topo.models) != 1 or cap.model_mask(req.models) is not None:
            return None
        g = int(cap.model_gpus[0])
        k, rem = divmod(req.gpus, g)
        levels = {
            Locality.ANY: (Locality.DOMAIN, Locality.POD),
            Locality.DOMAIN: (Locality.DOMAIN,),
            Locality.POD: (Locality.POD,),
        }[req.locality]
        for level in levels:
            if level is Locality.DOMAIN:
                full, hist, free, starts = cap.domain_full, cap.domain_hist, cap.domain_whole, topo.domain_start
            else:
                full, hist, free, starts = cap.pod_full, cap.pod_hist, cap.pod_whole, topo.pod_start
            ok = full >= k + (1 if rem else 0)
            if rem:
                ok |= (full >= k) & np.logical_or.reduce(hist[:, rem:g], axis=1)
            groups = ok.nonzero()[0]
            if groups.size == 0:
                continue
            best = int(groups[free[groups].argmin()])
            nodes = group_nodes(starts, np.array([best]))
            if ctx.exclude is not None:
                nodes = nodes[~ctx.exclude[nodes]]
            whole = nodes[cap.avail_whole[nodes] == g]
            if whole.size < k:
                return None
            chosen = self.pick_nodes(whole, k, cap, ctx.rng) if level is Locality.POD else _by_rank(whole, k, topo)
            picked = chosen.tolist()
            if rem:
                pool = nodes[cap.avail_whole[nodes] >= rem]
                pool = pool[~np.isin(pool, chosen)]
                if pool.size == 0:
                    return None
                picked.append(self._remainder_node(pool, chosen, cap))
            cpus = _spread(req.cpu_milli, req.gpus, g, k, rem)
            mems = _spread(req.mem_mib, req.gpus, g, k, rem)
            arr = np.asarray(picked, dtype=np.int64)
            if (cap.node_cpu[arr] < np.asarray(cpus)).any() or (cap.node_mem[arr] < np.asarray(mems)).any():
                return None
            return gang_placement(picked, k, rem, g, cap, cpus, mems)
        return None

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


def _by_rank(nodes: IntArray, count: int, topo: Topology) -> IntArray:
    return nodes[np.argsort(topo.node_rank[nodes], kind="stable")[:count]]
