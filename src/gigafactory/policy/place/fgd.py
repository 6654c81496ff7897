"""``fgd``: Fragmentation Gradient Descent (Weng et al., USENIX ATC'23), as the paper's simulator runs it.

For a job on a node, compare the node's fragmentation against the target workload before and after placing it
(:mod:`.fragmentation`). The score is ``trunc(100 * sigmoid((F(n) - F(n')) / 1000))``: the placement that
fragments the least (or de-fragments the most) wins; ties go to the smallest tie-break rank. A shared-GPU request
is scored on every GPU that can take it; the node's score is the best of those, and the GPU is the lowest-index
one that reaches it. Whole GPUs are the lowest-index free ones.

The target workload is given (the FGD experiment passes the typical pods of the trace) or, when ``None``, learned
online from the requests the policy has seen so far, each job counted once: the typical pods of what has arrived,
re-estimated whenever the count of jobs seen has grown by a quarter (and at least every 500 jobs), so the cost of
learning stays a few dozen rebuilds per run.

Speed: per-node type counts are cached and refreshed only for nodes whose GPUs changed since the last call (the
cache compares free-GPU columns, so it stays right on copies of the capacity too), and shared-GPU candidates are
evaluated once per distinct (node, free share) pair.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import Job, JobRequest
from gigafactory.core.placement import Placement
from gigafactory.core.status import Status
from gigafactory.core.topology import Topology
from gigafactory.policy.base import PLACE, PlaceContext, PolicyFactory
from gigafactory.policy.place.common import IntArray, Placer, single_node_candidates
from gigafactory.policy.place.fragmentation import FragModel, PodType, TargetWorkload

__all__ = ["FgdPlacer", "NodeCounts", "pod_type"]


def pod_type(req: JobRequest) -> PodType:
    spec = "|".join(req.models) if req.models else ""
    milli = req.gpu_milli if req.gpus else 0
    return PodType(req.cpu_milli, milli, req.gpus, spec)


def sigmoid_score(delta: np.ndarray) -> IntArray:
    return np.trunc(100.0 / (1.0 + np.exp(-delta / 1000.0))).astype(np.int64)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class NodeCounts:
    """Per-node ``c``/``s`` counts and fragmentation ``F`` for one :class:`FragModel`.

    Refreshed by comparing the free-GPU and free-CPU columns with the last ones seen, so only nodes that changed
    are recomputed, and a copy of the capacity is handled as correctly as the original.
    """

    def __init__(self, model: FragModel, topo: Topology) -> None:
        self.model = model
        self.topo = topo
        self._gpu_seen: IntArray | None = None
        self._cpu_seen: IntArray | None = None
        self.c: IntArray = np.zeros((topo.num_nodes, len(model)), np.int64)
        self.s: IntArray = np.zeros((topo.num_nodes, len(model)), np.int64)
        self.f: np.ndarray = np.zeros(topo.num_nodes)

    def refresh(self, cap: Capacity) -> None:
        if self._gpu_seen is None or self._cpu_seen is None:
            self.c, self.s = self.model.counts(cap.gpu_matrix())
            every = np.arange(self.topo.num_nodes)
            self.f = self.model.frag(self.c, self.s, cap.node_milli, cap.node_cpu, every)
            self._gpu_seen = cap.gpu_free.copy()
            self._cpu_seen = cap.node_cpu.copy()
            return
        gpus = np.flatnonzero(self._gpu_seen != cap.gpu_free)
        cpus = np.flatnonzero(self._cpu_seen != cap.node_cpu)
        if not gpus.size and not cpus.size:
            return
        if gpus.size:
            nodes = np.unique(self.topo.gpu_node[gpus])
            self.c[nodes], self.s[nodes] = self.model.counts(cap.gpu_matrix()[nodes])
            self._gpu_seen[gpus] = cap.gpu_free[gpus]
            cpus = np.union1d(cpus, nodes)
        self._cpu_seen[cpus] = cap.node_cpu[cpus]
        self.f[cpus] = self.model.frag(self.c[cpus], self.s[cpus], cap.node_milli[cpus], cap.node_cpu[cpus], cpus)

    def frag(self, nodes: IntArray) -> np.ndarray:
        """``F`` of ``nodes`` as of the last :meth:`refresh`."""
        return self.f[nodes]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class FgdPlacer(Placer):
    name = "fgd"
    model_class: type[FragModel] = FragModel

    def __init__(self, target: TargetWorkload | None = None) -> None:
        self.target = target
        self._counts: NodeCounts | None = None
        self._learned: Counter[PodType] = Counter()
        self._seen: set[int] = set()
        self._learned_at = 0  # jobs seen when the learned target was last estimated

    # ---- the target workload ------------------------------------------------------------------------------
    def _model(self, job: Job, topo: Topology) -> NodeCounts:
        if self.target is None:
            if job.id not in self._seen:
                self._seen.add(job.id)
                self._learned[pod_type(job.request)] += 1
            seen = len(self._seen)
            stale = seen >= min(self._learned_at * 1.25, self._learned_at + 500)
            if self._counts is None or self._counts.topo is not topo or (stale and seen > self._learned_at):
                target = TargetWorkload.typical(self._learned.elements())
                self._counts = NodeCounts(self.model_class(target, topo), topo)
                self._learned_at = seen
        elif self._counts is None or self._counts.topo is not topo:
            self._counts = NodeCounts(self.model_class(self.target, topo), topo)
        return self._counts

    # ---- placement ----------------------------------------------------------------------------------------
    def place(self, job: Job, cap: Capacity, ctx: PlaceContext) -> Placement | Status:
        req = job.request
        if not (req.gpus == 0 or cap.single_node(req)):
            return super().place(job, cap, ctx)
        cand = single_node_candidates(req, cap, ctx.exclude)
        if cand.size == 0:
            return Status.unschedulable("no node has room for it now")
        counts = self._model(job, cap.topo)
        if cand.size == 1 and not req.fractional:
            return self.on_node(req, cap, int(cand[0]), ctx.rng)
        counts.refresh(cap)
        if req.fractional:
            node, gpu = self._share(req, cap, cand, counts)
            return Placement((node,), ((gpu,),), req.gpu_milli, (req.cpu_milli,), (req.mem_mib,))
        scores = self._whole_scores(req, cap, cand, counts)
        node = self.break_tie(req, cap, cand[scores == scores.max()])
        return self.on_node(req, cap, node, ctx.rng)

    def break_tie(self, req: JobRequest, cap: Capacity, nodes: IntArray) -> int:
        """Among equally scored nodes: the smallest tie-break rank."""
        if nodes.size == 1:
            return int(nodes[0])
        return int(nodes[np.argmin(cap.topo.node_rank[nodes])])

    def _whole_scores(self, req: JobRequest, cap: Capacity, cand: IntArray, counts: NodeCounts) -> IntArray:
        model = counts.model
        before = counts.frag(cand)
        after = model.frag(
            counts.c[cand] - req.gpus,  # the GPUs taken were fully free: they leave every type's count
            counts.s[cand],
            cap.node_milli[cand] - req.total_milli,
            cap.node_cpu[cand] - req.cpu_milli,
            cand,
        )
        return sigmoid_score(before - after)

    def _share(self, req: JobRequest, cap: Capacity, cand: IntArray, counts: NodeCounts) -> tuple[int, int]:
        model = counts.model
        left = cap.gpu_matrix()[cand]
        k, g = np.nonzero(left >= req.gpu_milli)  # candidate (node, GPU) pairs, GPUs in index order
        v = left[k, g]
        uniq, inverse = np.unique(k * 1001 + v, return_inverse=True)
        uk = uniq // 1001
        uv = uniq % 1001
        nodes = cand[uk]
        before = counts.frag(nodes)
        c2, s2 = model.after_share(counts.c[nodes], counts.s[nodes], uv, uv - req.gpu_milli)
        after = model.frag(c2, s2, cap.node_milli[nodes] - req.gpu_milli, cap.node_cpu[nodes] - req.cpu_milli, nodes)
        pair_score = sigmoid_score(before - after)[inverse.ravel()]
        return self.best_pair(req, cap, cand, k, g, pair_score)

    def best_pair(
        self, req: JobRequest, cap: Capacity, cand: IntArray, k: IntArray, g: IntArray, pair_score: IntArray
    ) -> tuple[int, int]:
        """The (node, GPU) for a shared-GPU request from the scores of its candidate pairs (candidate ``cand[k]``,
        its ``g``-th GPU): the node with the best pair, ties by :meth:`break_tie`; there the lowest-index GPU."""
        node_best = np.full(cand.size, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(node_best, k, pair_score)
        top = np.flatnonzero(node_best == node_best.max())
        chosen = self.break_tie(req, cap, cand[top])
        winner = int(top[np.flatnonzero(cand[top] == chosen)[0]])
        pick = np.flatnonzero((k == winner) & (pair_score == node_best[winner]))[0]
        node = int(cand[winner])
        return node, int(cap.topo.gpu_start[node]) + int(g[pick])


def _build(target: Any = None) -> FgdPlacer:
    return FgdPlacer(target)


PLACE.add(
    "fgd",
    PolicyFactory(
        _build,
        "fragmentation gradient descent against a target workload (FGD paper; learns it online)",
        {},
        context=("target",),
    ),
)
