"""The shared machinery of the generic placement policies.

A placement policy answers two questions: *which node* for a job that fits on one node, and *which group of
nodes* for a gang that needs several. :class:`Placer` does the filtering, the GPU choice and the gang
assembly once; a policy only supplies its preferences through a few small hooks:

* :meth:`Placer.choose_node` picks one node among single-node candidates;
* :meth:`Placer.choose_group` picks one domain or pod among those that can hold a whole gang;
* :meth:`Placer.pick_nodes` picks ``count`` whole free nodes for a gang with no locality constraint;
* :meth:`Placer.choose_gpu` picks the GPU a fractional request shares.

Rules every policy keeps (so they compare fairly):

* A whole-GPU request of at most the largest node size of an allowed model goes on one node and takes that
  node's lowest-index fully free GPUs.
* A larger gang takes whole free nodes of one GPU model (its largest node size) plus, for a remainder, one node
  with enough free GPUs. Its CPU and memory are spread over the nodes in proportion to GPUs.
* A fractional request takes ``gpu_milli`` from one GPU; a CPU-only request takes CPU and memory on one node.
* Nodes in ``ctx.exclude`` are never used.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity, any_of, sum_of
from gigafactory.core.jobs import Job, JobRequest, Locality
from gigafactory.core.placement import Placement, split_by_weight
from gigafactory.core.status import Status
from gigafactory.policy.base import PlaceContext

__all__ = [
    "Placer",
    "cover",
    "gang_placement",
    "group_nodes",
    "lexmin",
    "single_node_candidates",
    "tightest_group_nodes",
]


def group_nodes(starts: IntArray, groups: IntArray) -> IntArray:
    """The nodes of the contiguous groups (domains or pods) ``groups``, given the groups' start offsets."""
    if groups.size == 1:
        g = int(groups[0])
        return np.arange(starts[g], starts[g + 1], dtype=np.int64)
    return np.concatenate([np.arange(starts[g], starts[g + 1], dtype=np.int64) for g in groups.tolist()])


IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def single_node_candidates(req: JobRequest, cap: Capacity, exclude: BoolArray | None) -> IntArray:
    """Nodes on which ``req`` fits whole, now."""
    if req.gpus == 0:
        ok = cap.schedulable.copy()
    elif req.fractional:
        ok = cap.avail_maxfree >= req.gpu_milli
    else:
        ok = cap.avail_whole >= req.gpus
    if req.gpus:
        mask = cap.model_mask(req.models)
        if mask is not None:
            ok &= mask
    if req.cpu_milli:
        ok &= cap.node_cpu >= req.cpu_milli
    if req.mem_mib:
        ok &= cap.node_mem >= req.mem_mib
    if exclude is not None:
        ok &= ~exclude
    return ok.nonzero()[0]


def tightest_group_nodes(
    hist: IntArray, whole: IntArray, starts: IntArray, req: JobRequest, cap: Capacity, exclude: BoolArray | None
) -> IntArray | None:
    """The nodes that can take ``req`` (whole GPUs) in the groups (domains or pods) with the fewest whole GPUs free
    among those that can: the fast path of the consolidating policies. ``hist`` counts each group's nodes by
    whole GPUs free, ``whole`` is each group's whole GPUs free, ``starts`` the groups' start offsets."""
    ok = np.logical_or.reduce(hist[:, req.gpus :], axis=1).nonzero()[0]  # ufuncs: no Python-level wrappers
    if ok.size == 0:
        return None
    free = whole[ok]
    nodes = group_nodes(starts, ok[free == np.minimum.reduce(free)])
    nodes = nodes[cap.avail_whole[nodes] >= req.gpus]
    if exclude is not None:
        nodes = nodes[~exclude[nodes]]
    return nodes if nodes.size else None


def gang_placement(
    chosen: list[int], k: int, rem: int, g: int, cap: Capacity, cpus: tuple[int, ...], mems: tuple[int, ...]
) -> Placement:
    """A gang on ``chosen``: all ``g`` GPUs of the first ``k`` nodes, and ``rem`` free GPUs of the last one."""
    topo = cap.topo
    ids = topo.node_gpu_ids
    if not rem and len(chosen) > 8:
        nodes = np.asarray(chosen, dtype=np.int64)
        return Placement.on_whole_nodes(nodes, ids, topo.gpu_start, g, cpus, mems, listed=chosen)
    node_gpus = [ids[n] for n in chosen[:k]]
    if rem:
        n = chosen[k]
        start = int(topo.gpu_start[n])
        free = cap.gpu_free[start : start + int(topo.node_gpus[n])].tolist()
        node_gpus.append(tuple(start + i for i, f in enumerate(free) if f == 1000)[:rem])
    return Placement(tuple(chosen), tuple(node_gpus), 1000, cpus, mems)


def lexmin(cand: IntArray, keys: list[IntArray], rank: IntArray) -> int:
    """The candidate with the smallest ``keys`` (compared in order), ties to the smallest ``rank``.

    ``keys`` and ``rank`` are aligned with ``cand`` (one value per candidate)."""
    pos = np.arange(cand.size)
    for key in keys:
        if pos.size == 1:
            break
        values = key[pos]
        pos = pos[values == np.minimum.reduce(values)]
    if pos.size > 1:
        best = rank[pos].argmin()
        pos = pos[best : best + 1]
    return int(cand[pos[0]])


def cover(nodes: IntArray, groups: IntArray, need: int, rank: IntArray) -> IntArray:
    """Take ``need`` of ``nodes`` from as few groups as possible, the last group chosen by best fit.

    ``groups[i]`` is the group (domain or pod) of ``nodes[i]``. Whole groups are taken largest first while the
    remainder exceeds every group; the remainder then goes to the smallest group that holds it, so big gangs
    neither straddle more domains than they must nor break into a domain that a smaller gang needs whole.
    """
    # Choose the groups from their counts alone; then sort only the chosen groups' nodes (by the order the groups
    # were chosen in, then rank), and the last group's lowest-ranked nodes make up the rest.
    per_group = np.bincount(groups)
    ids = per_group.nonzero()[0]
    counts = per_group[ids]
    fits = counts >= need
    if any_of(fits):  # one group holds it all: the smallest such
        choice = fits.nonzero()[0]
        chosen = [int(choice[counts[choice].argmin()])]
        remaining = 0
    else:
        # Largest first (ties to the lower id) while the remainder exceeds every group left, i.e. the next one.
        order = np.argsort(-counts, kind="stable")
        by_size = counts[order]
        left = need - (np.cumsum(by_size) - by_size)  # the remainder before each group in that order
        last = by_size >= left
        if any_of(last):
            j = int(last.argmax())
            rest = order[j:]
            rest = rest[counts[rest] >= left[j]]
            chosen = [*order[:j].tolist(), int(rest[counts[rest].argmin()])]
            remaining = 0
        else:
            chosen = order.tolist()
            remaining = need - int(sum_of(by_size))
    if not chosen:
        return np.zeros(0, np.int64)
    position = np.full(per_group.size, len(chosen), np.int64)
    position[ids[chosen]] = np.arange(len(chosen))
    key = position[groups]
    mine = (key < len(chosen)).nonzero()[0]
    order = np.lexsort((rank[nodes[mine]], key[mine]))
    return nodes[mine[order[: need - remaining]]]


def _spread(total: int, gpus: int, g: int, k: int, rem: int) -> tuple[int, ...]:
    """``total`` spread over ``k`` nodes of ``g`` GPUs and a remainder node of ``rem``, rounding up."""
    return (-(-total * g // gpus),) * k + ((-(-total * rem // gpus),) if rem else ())


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class Placer:
    """Base class of the generic placement policies; subclasses override the hooks."""

    name = "placer"

    # ---- hooks --------------------------------------------------------------------------------------------
    def choose_node(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> int:
        return int(cand[0])

    def choose_group(self, level: Locality, feasible: IntArray, cap: Capacity, rng: np.random.Generator) -> int:
        return int(feasible[0])

    def pick_nodes(self, full: IntArray, count: int, cap: Capacity, rng: np.random.Generator) -> IntArray:
        return full[:count]

    def choose_gpu(self, free: list[int], milli: int, rng: np.random.Generator) -> int:
        """Index (within the node) of the GPU a fractional request shares: best fit, lowest index on ties."""
        best = -1
        for i, f in enumerate(free):
            if f >= milli and (best < 0 or f < free[best]):
                best = i
        return best

    # ---- the placement ------------------------------------------------------------------------------------
    def quick_node(self, req: JobRequest, cap: Capacity, exclude: BoolArray | None) -> int | None:
        """The node :meth:`choose_node` would pick, found from the per-pod or per-domain aggregates without
        scanning every node; ``None`` to take the full path. Only called for whole-GPU requests that any node's
        GPU model may serve. It may ignore CPU and memory: the caller checks the node it returns and falls back
        if that node lacks them (the winner over a superset that lies in the subset wins the subset too)."""
        return None

    def place(self, job: Job, cap: Capacity, ctx: PlaceContext) -> Placement | Status:
        req = job.request
        if cap.single_node(req) or req.gpus == 0:
            if req.gpus and not req.fractional and cap.model_mask(req.models) is None:
                n = self.quick_node(req, cap, ctx.exclude)
                if n is not None and cap.node_cpu[n] >= req.cpu_milli and cap.node_mem[n] >= req.mem_mib:
                    return self.on_node(req, cap, n, ctx.rng)
            cand = single_node_candidates(req, cap, ctx.exclude)
            if cand.size == 0:
                return Status.unschedulable("no node has room for it now")
            n = self.choose_node(req, cap, cand, ctx.rng)
            return self.on_node(req, cap, n, ctx.rng)
        if not req.gang:
            return self._scatter(req, cap, ctx)
        return self._gang(req, cap, ctx)

    def on_node(self, req: JobRequest, cap: Capacity, n: int, rng: np.random.Generator) -> Placement:
        """The placement of a single-node request on node ``n``, choosing its GPUs."""
        start = int(cap.topo.gpu_start[n])
        if req.gpus == 0:
            gpus: tuple[int, ...] = ()
        else:
            free = cap.gpu_free[start : int(cap.topo.gpu_start[n + 1])].tolist()
            if req.fractional:
                gpus = (start + self.choose_gpu(free, req.gpu_milli, rng),)
            else:
                gpus = tuple(start + i for i, f in enumerate(free) if f == 1000)[: req.gpus]
        return Placement((n,), (gpus,), req.gpu_milli if gpus else 1000, (req.cpu_milli,), (req.mem_mib,))

    def _gang(self, req: JobRequest, cap: Capacity, ctx: PlaceContext) -> Placement | Status:
        topo = cap.topo
        reasons = []
        for m in cap.model_ids(req.models):
            g = int(cap.model_gpus[m])
            if g == 0:
                continue
            k, rem = divmod(req.gpus, g)
            cpus = _spread(req.cpu_milli, req.gpus, g, k, rem)
            mems = _spread(req.mem_mib, req.gpus, g, k, rem)
            # The wholly free nodes first (few on a busy site), then the other tests on those alone.
            one_model = len(topo.models) == 1
            full = (cap.avail_whole == g).nonzero()[0]
            if not one_model:
                full = full[topo.node_model[full] == m]
            if cpus and cpus[0]:
                full = full[cap.node_cpu[full] >= cpus[0]]
            if mems and mems[0]:
                full = full[cap.node_mem[full] >= mems[0]]
            if ctx.exclude is not None:
                full = full[~ctx.exclude[full]]
            partial = np.zeros(0, np.int64)
            if rem:
                okr = cap.avail_whole >= rem
                if not one_model:
                    okr &= topo.node_model == m
                if cpus[-1]:
                    okr &= cap.node_cpu >= cpus[-1]
                if mems[-1]:
                    okr &= cap.node_mem >= mems[-1]
                if ctx.exclude is not None:
                    okr &= ~ctx.exclude
                partial = okr.nonzero()[0]
            chosen = self._choose_gang_nodes(req.locality, full, partial, k, rem, cap, ctx.rng)
            if chosen is None:
                reasons.append(f"not enough free {topo.models[m]} nodes")
                continue
            return gang_placement(chosen, k, rem, g, cap, cpus, mems)
        return Status.unschedulable(*(reasons or ["no allowed GPU model on this site"]))

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
        """``k`` whole free nodes from ``full`` and, if ``rem``, one more from ``partial``; or ``None``."""
        if full.size < k or (rem and partial.size < k + 1):
            return None
        topo = cap.topo
        if locality is Locality.ANY:
            chosen = self.pick_nodes(full, k, cap, rng)
            if chosen.size < k:
                return None
            region = None
        else:
            if k + (1 if rem else 0) > topo.largest_group[0 if locality is Locality.DOMAIN else 1]:
                return None  # more nodes than any one domain (or pod) has
            group_of = topo.node_domain if locality is Locality.DOMAIN else topo.node_pod
            ngroups = topo.num_domains if locality is Locality.DOMAIN else topo.num_pods
            full_per = np.bincount(group_of[full], minlength=ngroups)
            feasible = full_per >= k
            if rem:
                feasible &= np.bincount(group_of[partial], minlength=ngroups) >= k + 1
            groups = feasible.nonzero()[0]
            if groups.size == 0:
                return None
            gid = self.choose_group(locality, groups, cap, rng)
            in_group = full[group_of[full] == gid]
            chosen = self.pick_nodes(in_group, k, cap, rng)
            region = group_of == gid
        out: list[int] = chosen.tolist()
        if rem:
            pool = partial[~np.isin(partial, chosen)]
            if region is not None:
                pool = pool[region[pool]]
            if pool.size == 0:
                return None
            out.append(self._remainder_node(pool, chosen, cap))
        return out

    def _remainder_node(self, pool: IntArray, chosen: IntArray, cap: Capacity) -> int:
        """The node for a gang's remainder: near its other nodes, then the tightest fit."""
        topo = cap.topo
        near_domain = np.isin(topo.node_domain[pool], topo.node_domain[chosen]).astype(np.int64)
        near_pod = np.isin(topo.node_pod[pool], topo.node_pod[chosen]).astype(np.int64)
        keys = [-near_domain, -near_pod, cap.avail_whole[pool]]
        return lexmin(pool, keys, topo.node_rank[pool])

    def _scatter(self, req: JobRequest, cap: Capacity, ctx: PlaceContext) -> Placement | Status:
        """A non-gang request: any free whole GPUs, taken from nodes in the policy's preference order. With a
        locality, all of them in one pod or NVLink domain: the tightest that holds them all."""
        ok = cap.avail_whole > 0
        mask = cap.model_mask(req.models)
        if mask is not None:
            ok &= mask
        if ctx.exclude is not None:
            ok &= ~ctx.exclude
        cand = ok.nonzero()[0]
        if int(sum_of(cap.avail_whole[cand])) < req.gpus:
            return Status.unschedulable("not enough free GPUs")
        if req.locality is not Locality.ANY:
            topo = cap.topo
            group = topo.node_domain if req.locality is Locality.DOMAIN else topo.node_pod
            free = np.bincount(group[cand], weights=cap.avail_whole[cand])
            holds = (free >= req.gpus).nonzero()[0]
            if holds.size == 0:
                unit = "NVLink domain" if req.locality is Locality.DOMAIN else "pod"
                return Status.unschedulable(f"no {unit} has {req.gpus} free GPUs")
            best = int(holds[free[holds].argmin()])
            cand = cand[group[cand] == best]
        nodes: list[int] = []
        node_gpus: list[tuple[int, ...]] = []
        remaining = req.gpus
        while remaining > 0 and cand.size:
            n = self.choose_node(req, cap, cand, ctx.rng)
            cand = cand[cand != n]
            start = int(cap.topo.gpu_start[n])
            free = cap.gpu_free[start : int(cap.topo.gpu_start[n + 1])].tolist()
            take = tuple(start + i for i, f in enumerate(free) if f == 1000)[:remaining]
            nodes.append(n)
            node_gpus.append(take)
            remaining -= len(take)
        weights = [len(t) for t in node_gpus]
        cpus = split_by_weight(req.cpu_milli, weights)
        mems = split_by_weight(req.mem_mib, weights)
        for n, c, mm in zip(nodes, cpus, mems, strict=True):
            if cap.node_cpu[n] < c or cap.node_mem[n] < mm:
                return Status.unschedulable("not enough CPU or memory beside the free GPUs")
        return Placement(tuple(nodes), tuple(node_gpus), 1000, cpus, mems)
