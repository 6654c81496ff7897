"""When and where could a job start, if running jobs end at their estimates? The backfill policy's oracle.

Two methods, the fast one first:

* **By node emptying times.** A job that needs whole free nodes (a multi-node gang, or a single-node job that
  takes a whole node) can start once enough nodes are empty. Each node empties at ``free_at`` (the latest
  expected end of the jobs on it, from :class:`~.allocs.AllocTable`), so the earliest start is the k-th smallest
  ``free_at`` over the allowed nodes (per domain or pod when the gang must stay in one): one vector operation.
  The nodes held back are, among those empty by then, the k that empty *last*: nodes idle now stay free for
  backfill, which is what makes backfill worth doing.
* **By replay.** Otherwise, release running jobs in order of expected end on a copy of the capacity until the
  job fits.

Both are conservative where they approximate (a node counts only once it is wholly empty), never optimistic, so
a reservation they make can be kept.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import numpy.typing as npt
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import Job, Locality
from gigafactory.core.placement import Placement
from gigafactory.core.topology import Topology
from gigafactory.engine.allocs import AllocTable
from gigafactory.policy.base import PlaceContext, PlacePolicy

__all__ = ["EndPlanner"]

IntArray = npt.NDArray[np.int64]


class RunningJobs(Protocol):
    def running_placement(self, job_id: int) -> Placement | None: ...


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class EndPlanner:
    """Reads the engine's running jobs through what it is handed (all owned and written by the engine): the
    capacity, the allocation table, the running jobs' ``(expected end, job id)`` in order, and a lookup of a
    running job's placement. It plans with the site's placement policy and its own random generator."""

    def __init__(
        self,
        topo: Topology,
        cap: Capacity,
        allocs: AllocTable,
        ends: list[tuple[float, int]],
        running: RunningJobs,
        place: PlacePolicy,
        rng: np.random.Generator,
    ) -> None:
        self.topo = topo
        self.cap = cap
        self.allocs = allocs
        self.ends = ends
        self.running = running
        self.place = place
        self.rng = rng
        self.num_nodes = topo.num_nodes
        # (model, GPUs) -> (the capacity's node_version, the nodes not of that shape or not schedulable then)
        self._blocked: dict[tuple[int, int], tuple[int, IntArray]] = {}
        # (model, GPUs, nodes) -> the start last found for a gang of that shape placed anywhere: most refreshes
        # find it again, and checking a guess costs two counts where finding the time costs a partition.
        self._last_t: dict[tuple[int, int, int], float] = {}

    def earliest(self, job: Job, now: float) -> tuple[float, IntArray] | None:
        found = self._by_free_at(job, now)
        if found is not None:
            return found
        return self._by_replay(job, now)

    def _whole_node_shape(self, job: Job) -> tuple[int, int, int] | None:
        """(model, GPUs per node, nodes needed) if the job takes whole nodes of one model, else None."""
        cap = self.cap
        req = job.request
        if req.gpus == 0 or req.fractional or not req.gang:
            return None
        ids = cap.model_ids(req.models)
        if len(ids) != 1:
            return None
        m = ids[0]
        g = int(cap.model_gpus[m])
        if cap.single_node(req):
            return (m, g, 1) if req.gpus == g else None
        return m, g, -(-req.gpus // g)

    def _by_free_at(self, job: Job, now: float) -> tuple[float, IntArray] | None:
        shape = self._whole_node_shape(job)
        if shape is None:
            return None
        m, g, need = shape
        cap = self.cap
        topo = self.topo
        blocked = self._blocked.get((m, g))
        if blocked is None or blocked[0] != cap.node_version:
            other = (topo.node_model != m) | (topo.node_gpus != g)
            blocked = self._blocked[(m, g)] = (cap.node_version, (other | ~cap.schedulable).nonzero()[0])
        times = self.allocs.free_at()
        times[blocked[1]] = math.inf
        locality = job.request.locality if need > 1 else Locality.ANY
        rank = topo.node_rank
        if locality is Locality.ANY:
            if need > times.size:
                return None
            key = (m, g, need)
            t = self._last_t.get(key, math.nan)
            cand = (times <= t).nonzero()[0]
            # t is the need-th smallest time exactly when fewer than need are below it and need or more at most it.
            if not (cand.size >= need and int(np.count_nonzero(times[cand] < t)) < need):
                t = self._last_t[key] = float(np.partition(times, need - 1)[need - 1])
                cand = (times <= t).nonzero()[0]
            nodes = _latest(cand, times, rank, need)
        else:
            group = topo.node_domain if locality is Locality.DOMAIN else topo.node_pod
            order = np.lexsort((rank, times, group))
            starts = np.searchsorted(group[order], np.arange(int(group[-1]) + 1))
            sizes = np.diff(np.append(starts, group.size))
            ok = (sizes >= need).nonzero()[0]
            if ok.size == 0:
                return None
            kth = times[order[starts[ok] + need - 1]]
            best = int(ok[kth.argmin()])
            t = float(kth.min())
            nodes = _latest(((group == best) & (times <= t)).nonzero()[0], times, rank, need)
        if math.isinf(t):
            return None
        return max(t, now), nodes  # (sorted: _latest keeps the order of nonzero)

    def _by_replay(self, job: Job, now: float) -> tuple[float, IntArray] | None:
        cap = self.cap.copy()
        ctx = PlaceContext(self.rng)
        ends = self.ends
        i = 0
        while i < len(ends):
            end = ends[i][0]
            if math.isinf(end):
                break
            while i < len(ends) and ends[i][0] == end:
                pl = self.running.running_placement(ends[i][1])
                assert pl is not None
                cap.release(pl)
                i += 1
            if cap.could_fit(job.request):
                placed = self.place.place(job, cap, ctx)
                if isinstance(placed, Placement):
                    return max(end, now), np.array(placed.nodes, dtype=np.int64)
        return None


def _latest(cand: IntArray, times: npt.NDArray[np.float64], rank: IntArray, need: int) -> IntArray:
    """The ``need`` candidates that empty last, ties to the lower rank (ranks are distinct); in the candidates'
    order (so sorted, as they come from ``nonzero``)."""
    if cand.size <= need:
        return cand
    t = times[cand]
    # The need largest times; of those equal to the smallest of them, only as many as are left, by rank.
    cut = float(np.partition(t, cand.size - need)[cand.size - need])
    keep = t > cut
    tied = (t == cut).nonzero()[0]
    left = need - int(np.count_nonzero(keep))
    if tied.size > left:
        tied = tied[np.argpartition(rank[cand[tied]], left - 1)[:left]] if left > 0 else tied[:0]
    keep[tied] = True
    return cand[keep]
