"""Free resources of one site, kept incrementally in columns.

``Capacity`` is the mutable half of the cluster model (the :class:`Topology` is the immutable half). The
engine owns one and is its only writer; policies read it, and backfill works on cheap copies of it.

Per GPU it keeps the free milli-GPU. Per node it keeps free CPU and memory, the count of fully free GPUs
(``whole``), the largest free share on any one GPU (``maxfree``) and the number of allocations. A node is
*schedulable* while it is up and not drained. The aggregates below count schedulable nodes only, so a
policy's filter is one comparison:

* ``avail_whole[n]`` / ``avail_maxfree[n]``: ``whole`` / ``maxfree`` of a schedulable node, 0 otherwise;
* ``domain_whole`` / ``pod_whole``: free whole GPUs per NVLink domain / pod;
* ``hist[m, k]``: schedulable nodes of model ``m`` with exactly ``k`` whole free GPUs;
* ``full[m, g]``: schedulable, completely free nodes of model ``m`` that have ``g`` GPUs;
* ``domain_hist[d, k]`` / ``pod_hist[p, k]``: schedulable nodes with ``k`` whole free GPUs per domain / pod, and
  ``domain_full`` / ``pod_full``: completely free schedulable nodes per domain / pod (placement policies find the
  domain or pod to use from these without scanning every node);
* ``node_kinds[n, j]``: GPU allocations on node ``n`` by kind: ``j = 0`` for a shared (fractional) GPU, ``j = k``
  for ``k`` whole GPUs (placement policies that cluster alike jobs read it);
* ``marked_hist`` / ``marked_full``: the same two over a *marked* subset of nodes (the nodes a reservation holds
  back), so what the rest of the site offers is ``hist - marked_hist`` at no cost.

``version`` counts every change; a cached answer about this capacity is good while it stands still.
``node_version`` counts only changes of which nodes are schedulable.

Invariant: ``0 <= gpu_free <= 1000`` and free CPU and memory never go negative; :meth:`allocate` raises
:class:`InvariantError` rather than over-allocate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from mypy_extensions import mypyc_attr

from gigafactory.core.errors import InvariantError
from gigafactory.core.jobs import JobRequest
from gigafactory.core.placement import Placement
from gigafactory.core.topology import Topology

__all__ = ["Capacity", "any_of", "sum_of"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_VECTOR_MIN = 12  # placements on more nodes than this update the aggregates with vector operations
_CELL_GROUPS = (
    32  # a whole-node gang over more domains (or pods) than this moves their aggregates with vector operations
)


FIELDS = (  # every attribute __init__ sets, for copy(); a test checks the list against __init__
    "topo", "gpu_free", "node_cpu", "node_mem", "node_whole", "node_maxfree", "node_milli", "node_jobs", "node_up",
    "node_open", "schedulable", "avail_whole", "avail_maxfree", "domain_whole", "pod_whole", "whole_total", "hist",
    "full", "domain_hist", "pod_hist", "domain_full", "pod_full", "model_gpus", "node_kinds", "marked", "marked_hist",
    "marked_full", "version", "node_version", "used_milli", "used_nodes", "grow_epoch", "_model_masks", "_model_ids",
    "_single", "_matrix", "_pad_index", "_gpu_start", "_node_gpus", "_node_model", "_node_domain", "_node_pod",
    "_node_info", "_cells",
)  # fmt: skip


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class Capacity:
    def __init__(self, topo: Topology, *, copy_of: Capacity | None = None) -> None:
        if copy_of is not None:
            for name in FIELDS:
                value = getattr(copy_of, name)
                if isinstance(value, np.ndarray) and value.flags.writeable:
                    value = value.copy()
                setattr(self, name, value)  # the model masks and single-node answers depend only on the topology
            self._cells: _Cells | None = None  # views of the original's columns: this copy makes its own
            return
        self.topo = topo
        self.gpu_free: IntArray = np.full(topo.num_gpus, 1000, np.int64)
        self.node_cpu: IntArray = topo.node_cpu.copy()
        self.node_mem: IntArray = topo.node_mem.copy()
        self.node_whole: IntArray = topo.node_gpus.copy()
        self.node_maxfree: IntArray = np.where(topo.node_gpus > 0, 1000, 0).astype(np.int64)
        self.node_milli: IntArray = topo.node_gpus * 1000
        self.node_jobs: IntArray = np.zeros(topo.num_nodes, np.int64)
        self.node_up: BoolArray = np.ones(topo.num_nodes, np.bool_)
        self.node_open: BoolArray = np.ones(topo.num_nodes, np.bool_)
        self.schedulable: BoolArray = np.ones(topo.num_nodes, np.bool_)
        self.avail_whole: IntArray = self.node_whole.copy()
        self.avail_maxfree: IntArray = self.node_maxfree.copy()
        self.domain_whole: IntArray = np.bincount(
            topo.node_domain, weights=topo.node_gpus, minlength=topo.num_domains
        ).astype(np.int64)
        self.pod_whole: IntArray = np.bincount(topo.node_pod, weights=topo.node_gpus, minlength=topo.num_pods).astype(
            np.int64
        )
        self.whole_total = int(self.pod_whole.sum())  # free whole GPUs on schedulable nodes, all models
        nm = len(topo.models)
        kmax = topo.max_gpus_per_node + 1
        self.hist: IntArray = np.zeros((nm, kmax), np.int64)
        np.add.at(self.hist, (topo.node_model, topo.node_gpus), 1)
        self.full: IntArray = self.hist.copy()
        self.domain_hist: IntArray = np.zeros((topo.num_domains, kmax), np.int64)
        np.add.at(self.domain_hist, (topo.node_domain, topo.node_gpus), 1)
        self.pod_hist: IntArray = np.zeros((topo.num_pods, kmax), np.int64)
        np.add.at(self.pod_hist, (topo.node_pod, topo.node_gpus), 1)
        self.domain_full: IntArray = np.bincount(topo.node_domain, minlength=topo.num_domains).astype(np.int64)
        self.pod_full: IntArray = np.bincount(topo.node_pod, minlength=topo.num_pods).astype(np.int64)
        self.model_gpus: IntArray = np.zeros(nm, np.int64)  # largest node, in GPUs, of each model
        np.maximum.at(self.model_gpus, topo.node_model, topo.node_gpus)
        self.model_gpus.setflags(write=False)
        self.node_kinds: IntArray = np.zeros((topo.num_nodes, kmax), np.int64)
        self.marked: BoolArray = np.zeros(topo.num_nodes, np.bool_)
        self.marked_hist: IntArray = np.zeros_like(self.hist)
        self.marked_full: IntArray = np.zeros_like(self.full)
        self.version = 0
        self.node_version = 0  # counts changes of the schedulable set (set_node)
        self.used_milli = 0
        self.used_nodes = 0  # nodes with at least one allocation
        self.grow_epoch = 0  # bumped whenever free capacity grows; a failed fit stays failed until it moves
        self._model_masks: dict[tuple[str, ...], BoolArray | None] = {}
        self._model_ids: dict[tuple[str, ...] | None, list[int]] = {}
        self._single: dict[tuple[int, tuple[str, ...] | None], bool] = {}
        self._matrix: tuple[int, IntArray] | None = None
        gmax = max(topo.max_gpus_per_node, 1)
        offsets = topo.gpu_start[:-1, None] + np.arange(gmax)[None, :]
        self._pad_index = np.where(np.arange(gmax)[None, :] < topo.node_gpus[:, None], offsets, topo.num_gpus)
        self._pad_index.setflags(write=False)
        self._gpu_start = topo.gpu_start
        self._node_gpus = topo.node_gpus
        self._node_model = topo.node_model
        self._node_domain = topo.node_domain
        self._node_pod = topo.node_pod
        # Per node, as plain numbers for the per-node path of _apply: (model, domain, pod, GPUs, first GPU).
        self._node_info: list[tuple[int, int, int, int, int]] = list(
            zip(
                topo.node_model.tolist(), topo.node_domain.tolist(), topo.node_pod.tolist(), topo.node_gpus.tolist(),
                topo.gpu_start[:-1].tolist(), strict=True,
            )
        )  # fmt: skip
        self._cells = None  # made on first use of the per-node path

    # ---- copies -------------------------------------------------------------------------------------------
    def copy(self, into: Capacity | None = None) -> Capacity:
        """An independent copy of the free capacity (the topology and the topology's caches are shared). With
        ``into``, a capacity of the same topology, the copy is written into its columns in place and ``into`` is
        returned: a trial made over and over (preemption's) reuses one capacity, and its cell views stay good."""
        if into is None:
            return Capacity(self.topo, copy_of=self)
        if into.topo is not self.topo:
            raise ValueError("copy(into=...) needs a capacity of the same topology")
        # Every column that changes, in place (the rest depends only on the topology, which ``into`` shares).
        for dst, src in (
            (into.gpu_free, self.gpu_free), (into.node_cpu, self.node_cpu), (into.node_mem, self.node_mem),
            (into.node_whole, self.node_whole), (into.node_maxfree, self.node_maxfree),
            (into.node_milli, self.node_milli), (into.node_jobs, self.node_jobs), (into.node_up, self.node_up),
            (into.node_open, self.node_open), (into.schedulable, self.schedulable),
            (into.avail_whole, self.avail_whole), (into.avail_maxfree, self.avail_maxfree),
            (into.domain_whole, self.domain_whole), (into.pod_whole, self.pod_whole), (into.hist, self.hist),
            (into.full, self.full), (into.domain_hist, self.domain_hist), (into.pod_hist, self.pod_hist),
            (into.domain_full, self.domain_full), (into.pod_full, self.pod_full),
            (into.node_kinds, self.node_kinds), (into.marked, self.marked), (into.marked_hist, self.marked_hist),
            (into.marked_full, self.marked_full),
        ):  # fmt: skip
            dst[...] = src
        into.whole_total = self.whole_total
        into.version = self.version
        into.node_version = self.node_version
        into.used_milli = self.used_milli
        into.used_nodes = self.used_nodes
        into.grow_epoch = self.grow_epoch
        into._matrix = self._matrix
        return into

    # ---- queries ------------------------------------------------------------------------------------------
    def model_mask(self, models: tuple[str, ...] | None) -> BoolArray | None:
        """Nodes whose GPU model is allowed, or ``None`` when every node's is."""
        if models is None:
            return None
        try:
            return self._model_masks[models]
        except KeyError:
            ids = [i for i, m in enumerate(self.topo.models) if m in models]
            mask: BoolArray | None
            if len(ids) == len(self.topo.models):
                mask = None
            else:
                mask = np.isin(self._node_model, ids)
                mask.setflags(write=False)
            self._model_masks[models] = mask
            return mask

    def model_ids(self, models: tuple[str, ...] | None) -> list[int]:
        try:
            return self._model_ids[models]
        except KeyError:
            ids = [i for i, m in enumerate(self.topo.models) if models is None or m in models]
            self._model_ids[models] = ids
            return ids

    def gpu_matrix(self) -> IntArray:
        """Free milli-GPU as a ``[node, GPU index]`` matrix, ``-1`` where a node has fewer GPUs. Cached per version."""
        cached = self._matrix
        if cached is not None and cached[0] == self.version:
            return cached[1]
        padded = np.append(self.gpu_free, -1)[self._pad_index]
        self._matrix = (self.version, padded)
        return padded

    def mark(self, nodes: BoolArray) -> None:
        """Make ``nodes`` the marked subset (a reservation's nodes); ``unmarked_aggregates`` leaves them out."""
        if not any_of(nodes) and not any_of(self.marked):
            return  # nothing marked, and nothing to mark (a reservation that holds no node back, as greedy's)
        self.marked[:] = nodes  # in place: the per-node path reads it through a view
        ns = (nodes & self.schedulable).nonzero()[0]
        w = self.node_whole[ns]
        cell = self._node_model[ns] * self.hist.shape[1]  # (bincounts over flat cells: faster than add.at)
        self.marked_hist[:] = np.bincount(cell + w, minlength=self.hist.size).reshape(self.hist.shape)
        g = self._node_gpus[ns]
        f = w == g
        self.marked_full[:] = np.bincount((cell + g)[f], minlength=self.full.size).reshape(self.full.shape)

    def unmarked_aggregates(self) -> tuple[IntArray, IntArray]:
        """``hist`` and ``full`` of the nodes that are not marked: what a reservation leaves for others."""
        return self.hist - self.marked_hist, self.full - self.marked_full

    def free_whole(self, models: tuple[str, ...] | None = None) -> int:
        """Whole free GPUs on schedulable nodes of the allowed models."""
        if models is None:
            return self.whole_total
        ks = np.arange(self.hist.shape[1])
        rows = self.hist if models is None else self.hist[self.model_ids(models)]
        return int((rows * ks).sum())

    def could_fit(self, req: JobRequest, hist: IntArray | None = None, full: IntArray | None = None) -> bool:
        """A necessary condition for ``req`` to fit now, from the aggregates alone (O(models × GPUs per node)).

        False means it surely does not fit; True means a placement policy must look. ``hist`` and ``full``
        replace the site's aggregates, e.g. with those of the nodes a reservation leaves free.
        """
        if req.gpus == 0:
            return True
        ids = self.model_ids(req.models)
        if hist is None:
            hist = self.hist
        if full is None:
            full = self.full
        if req.fractional:
            return _any_from(hist, ids, 1) or any_of(self.avail_maxfree >= req.gpu_milli)
        need = req.gpus
        if self.single_node(req):
            return _any_from(hist, ids, need)
        if not req.gang:
            ks = np.arange(hist.shape[1])
            return sum(int((hist[m] * ks).sum()) for m in ids) >= need
        # A multi-node gang takes whole free nodes of one model (its largest node size) plus a remainder.
        for m in ids:
            g = int(self.model_gpus[m])
            if g == 0:
                continue
            whole_nodes, rem = divmod(need, g)
            free_nodes = int(full[m, g])
            if free_nodes >= whole_nodes + (1 if rem else 0):
                return True
            if rem and free_nodes >= whole_nodes and any_of(hist[m, rem:g]):
                return True
        return False

    def single_node(self, req: JobRequest) -> bool:
        """Does ``req`` go on one node? Yes when some allowed model has nodes with that many GPUs."""
        if req.gpus <= 1:
            return True
        key = (req.gpus, req.models)
        got = self._single.get(key)
        if got is None:
            got = self._single[key] = req.gpus <= max(
                (int(self.model_gpus[m]) for m in self.model_ids(req.models)), default=0
            )
        return got

    # ---- updates ------------------------------------------------------------------------------------------
    def _detach(self, n: int) -> None:
        if self.schedulable[n]:
            w = int(self.node_whole[n])
            m = self._node_model[n]
            d = self._node_domain[n]
            p = self._node_pod[n]
            self.domain_whole[d] -= w
            self.pod_whole[p] -= w
            self.whole_total -= w
            self.hist[m, w] -= 1
            self.domain_hist[d, w] -= 1
            self.pod_hist[p, w] -= 1
            g = self._node_gpus[n]
            if w == g:
                self.full[m, g] -= 1
                self.domain_full[d] -= 1
                self.pod_full[p] -= 1
            if self.marked[n]:
                self.marked_hist[m, w] -= 1
                if w == g:
                    self.marked_full[m, g] -= 1

    def _attach(self, n: int) -> None:
        if self.schedulable[n]:
            w = int(self.node_whole[n])
            m = self._node_model[n]
            d = self._node_domain[n]
            p = self._node_pod[n]
            self.domain_whole[d] += w
            self.pod_whole[p] += w
            self.whole_total += w
            self.hist[m, w] += 1
            self.domain_hist[d, w] += 1
            self.pod_hist[p, w] += 1
            g = self._node_gpus[n]
            if w == g:
                self.full[m, g] += 1
                self.domain_full[d] += 1
                self.pod_full[p] += 1
            if self.marked[n]:
                self.marked_hist[m, w] += 1
                if w == g:
                    self.marked_full[m, g] += 1
            self.avail_whole[n] = w
            self.avail_maxfree[n] = self.node_maxfree[n]
        else:
            self.avail_whole[n] = 0
            self.avail_maxfree[n] = 0

    def _refresh_node(self, n: int) -> None:
        _, _, _, count, a = self._node_info[n]
        if not count:
            return
        c = self._cells_of()
        gpu_free = c.gpu_free
        whole = maxfree = milli = 0
        for i in range(a, a + count):
            v = gpu_free[i]
            whole += v == 1000
            maxfree = max(maxfree, v)
            milli += v
        c.node_whole[n] = whole
        c.node_maxfree[n] = maxfree
        c.node_milli[n] = milli

    def allocate(self, pl: Placement) -> None:
        self._apply(pl, -1)

    def release(self, pl: Placement) -> None:
        self._apply(pl, +1)
        self.grow_epoch += 1

    def _cells_of(self) -> _Cells:
        c = self._cells
        if c is None:
            c = self._cells = _Cells(self)
        return c

    def _apply(self, pl: Placement, sign: int) -> None:
        self.version += 1
        milli = pl.gpu_milli * sign
        if len(pl.nodes) > _VECTOR_MIN:
            self._apply_many(pl, sign)
        else:
            # One node at a time, cell by cell through memoryviews (a numpy scalar operation costs twice as much).
            c = self._cells_of()
            gpu_free = c.gpu_free
            node_kinds = c.node_kinds
            kinds = self.node_kinds.shape[1]
            whole = pl.gpu_milli == 1000
            info = self._node_info
            for i in range(len(pl.nodes)):
                n = pl.nodes[i]
                gpus = pl.node_gpus[i]
                for g in gpus:
                    v = gpu_free[g] + milli
                    if v < 0 or v > 1000:
                        raise InvariantError(f"GPU {g} on node {n} would hold {1000 - v} milli")
                    gpu_free[g] = v
                cpu = pl.cpu[i]
                mem = pl.mem[i]
                if cpu or mem:
                    cc = c.node_cpu[n] + cpu * sign
                    mm = c.node_mem[n] + mem * sign
                    if cc < 0 or mm < 0:
                        raise InvariantError(f"node {n} would have negative free CPU or memory")
                    c.node_cpu[n] = cc
                    c.node_mem[n] = mm
                before = c.node_jobs[n]
                c.node_jobs[n] = before - sign
                if sign < 0 and before == 0:
                    self.used_nodes += 1
                elif sign > 0 and before == 1:
                    self.used_nodes -= 1
                if gpus:
                    cell = n * kinds + (len(gpus) if whole else 0)
                    node_kinds[cell] = node_kinds[cell] - sign
                    w0 = c.node_whole[n]
                    if whole:
                        # Whole GPUs go from fully free to fully taken and back: no need to rescan the node.
                        k = len(gpus) * sign
                        w = w0 + k
                        c.node_whole[n] = w
                        c.node_milli[n] = c.node_milli[n] + 1000 * k
                        if w > 0:
                            c.node_maxfree[n] = 1000
                        else:
                            a = info[n][4]
                            top = 0
                            for j in range(a, a + info[n][3]):
                                top = max(top, gpu_free[j])
                            c.node_maxfree[n] = top
                    else:
                        self._refresh_node(n)
                        w = c.node_whole[n]
                    self._moved(c, n, w0, w)
        self.used_milli -= milli * pl.num_gpus

    def _moved(self, c: _Cells, n: int, w0: int, w: int) -> None:
        """Node ``n`` went from ``w0`` to ``w`` whole free GPUs: move it in the aggregates (as _detach, then
        _attach, would; cell by cell, for the few nodes most placements touch)."""
        if not c.schedulable[n]:
            return
        if w != w0:
            m, d, p, g, _ = self._node_info[n]
            dw = w - w0
            k = self.hist.shape[1]
            c.domain_whole[d] = c.domain_whole[d] + dw
            c.pod_whole[p] = c.pod_whole[p] + dw
            self.whole_total += dw
            for hist, row in ((c.hist, m), (c.domain_hist, d), (c.pod_hist, p)):
                hist[row * k + w0] = hist[row * k + w0] - 1
                hist[row * k + w] = hist[row * k + w] + 1
            if w0 == g or w == g:
                f = 1 if w == g else -1
                c.full[m * k + g] = c.full[m * k + g] + f
                c.domain_full[d] = c.domain_full[d] + f
                c.pod_full[p] = c.pod_full[p] + f
            if c.marked[n]:
                c.marked_hist[m * k + w0] = c.marked_hist[m * k + w0] - 1
                c.marked_hist[m * k + w] = c.marked_hist[m * k + w] + 1
                if w0 == g or w == g:
                    c.marked_full[m * k + g] = c.marked_full[m * k + g] + (1 if w == g else -1)
            c.avail_whole[n] = w
        c.avail_maxfree[n] = c.node_maxfree[n]

    def _apply_many(self, pl: Placement, sign: int) -> None:
        nodes = pl.node_array
        g = pl._views.whole_g
        if g and self._apply_whole(pl, nodes, g, sign):
            return
        whole_before = self.node_whole[nodes]
        gpus = pl.gpu_array
        if gpus.size:
            new = self.gpu_free[gpus] + pl.gpu_milli * sign
            if any_of(new < 0) or any_of(new > 1000):
                raise InvariantError("a placement would over-allocate a GPU")
            self.gpu_free[gpus] = new
        self._take_hosts(pl, nodes, sign)
        per_node = pl.per_node_array
        has = per_node > 0
        kind = per_node if pl.gpu_milli == 1000 else np.zeros_like(per_node)
        np.add.at(self.node_kinds, (nodes[has], kind[has]), -sign)
        if pl.gpu_milli == 1000:
            # Whole GPUs go from fully free to fully taken and back: whole and milli move by the count, and only
            # a node left with no whole GPU but some shared room needs its GPUs scanned for the largest share.
            k = per_node * sign
            w = self.node_whole[nodes] + k
            self.node_whole[nodes] = w
            milli = self.node_milli[nodes] + 1000 * k
            self.node_milli[nodes] = milli
            self.node_maxfree[nodes] = np.where(w > 0, 1000, 0)
            shared = nodes[(w == 0) & (milli > 0)]
            if shared.size:
                self._refresh_nodes(shared)
        else:
            self._refresh_nodes(nodes)
        self._moved_many(nodes, whole_before)

    def _take_hosts(self, pl: Placement, nodes: IntArray, sign: int) -> None:
        """CPU, memory and job counts of a wide placement's ``nodes``, vectorised."""
        taken = pl.cpu_mem_arrays
        if taken is not None:
            cpu = self.node_cpu[nodes] + taken[0] * sign
            mem = self.node_mem[nodes] + taken[1] * sign
            if any_of(cpu < 0) or any_of(mem < 0):
                raise InvariantError("a placement would make free CPU or memory negative")
            self.node_cpu[nodes] = cpu
            self.node_mem[nodes] = mem
        before = self.node_jobs[nodes]
        self.node_jobs[nodes] = before - sign
        if sign < 0:
            self.used_nodes += int(sum_of(before == 0))
        else:
            self.used_nodes -= int(sum_of(before == 1))

    def _apply_whole(self, pl: Placement, nodes: IntArray, g: int, sign: int) -> bool:
        """A gang on whole nodes (all ``g`` GPUs of each): every node goes from all free to all taken, or back, so
        the aggregates move by the counts of nodes per model, domain and pod, made once per placement; the marked
        ones (a reservation's: the nodes of the jobs that end first, so often these) by their count per model.
        Only when every node is schedulable (else False, and nothing is changed)."""
        if not _and(self.schedulable[nodes], axis=None):
            return False
        # Every GPU of these nodes is free (or taken) exactly when the node's free milli-GPU is all (or none).
        if any_of(self.node_milli[nodes] != (1000 * g if sign < 0 else 0)):
            raise InvariantError(
                "a placement would over-allocate a GPU"
                if sign < 0
                else "a placement would release GPUs it does not hold"
            )
        self._take_hosts(pl, nodes, sign)
        self.node_kinds[nodes, g] -= sign  # the nodes are distinct
        free = sign > 0
        w0, w = (0, g) if free else (g, 0)
        self.gpu_free[pl.gpu_array] = 1000 if free else 0
        self.node_whole[nodes] = w
        self.node_milli[nodes] = 1000 * w
        self.node_maxfree[nodes] = 1000 if free else 0
        self.avail_whole[nodes] = w
        self.avail_maxfree[nodes] = 1000 if free else 0
        groups = pl._views.groups
        if groups is None:
            groups = pl._views.groups = (
                _counts(self._node_model[nodes]),
                _counts(self._node_domain[nodes]),
                _counts(self._node_pod[nodes]),
            )
        # The aggregates by the gang's counts per model, domain and pod (a 2,048-node gang spans about 130 groups).
        (models, per_model), (domains, per_domain), (pods, per_pod) = groups
        c = self._cells_of()
        k = self.hist.shape[1]
        dw = w - w0
        self.whole_total += dw * len(pl.nodes)
        for m, count in zip(models, per_model, strict=True):
            c.hist[m * k + w0] -= count
            c.hist[m * k + w] += count
            c.full[m * k + g] += sign * count
        moved = (dw, w0, w, sign)
        _move_groups(domains, per_domain, moved, (self.domain_whole, self.domain_hist, self.domain_full),
                     (c.domain_whole, c.domain_hist, c.domain_full))  # fmt: skip
        _move_groups(pods, per_pod, moved, (self.pod_whole, self.pod_hist, self.pod_full),
                     (c.pod_whole, c.pod_hist, c.pod_full))  # fmt: skip
        marked = self.marked[nodes]
        if any_of(marked):
            for m, count in zip(*_counts(self._node_model[nodes[marked]]), strict=True):
                c.marked_hist[m * k + w0] -= count
                c.marked_hist[m * k + w] += count
                c.marked_full[m * k + g] += sign * count
        return True

    def _refresh_nodes(self, nodes: IntArray) -> None:
        """Recompute whole, maxfree and milli of ``nodes`` from their GPUs, vectorised."""
        starts = self._gpu_start[nodes]
        counts = self._node_gpus[nodes]
        has = counts > 0
        if any_of(has):
            idx = np.repeat(starts[has], counts[has]) + _ragged_arange(counts[has])
            free = self.gpu_free[idx]
            offsets = np.zeros(int(sum_of(has)), np.int64)
            np.cumsum(counts[has][:-1], out=offsets[1:])
            self.node_whole[nodes[has]] = np.add.reduceat((free == 1000).astype(np.int64), offsets)
            self.node_maxfree[nodes[has]] = np.maximum.reduceat(free, offsets)
            self.node_milli[nodes[has]] = np.add.reduceat(free, offsets)

    def _moved_many(self, nodes: IntArray, before: IntArray) -> None:
        """``nodes`` went from ``before`` to their present whole free GPUs: move them in the aggregates (each count
        by one ``bincount`` of the nodes' old and new cells, -1 and +1)."""
        ok = self.schedulable[nodes]
        ns = nodes[ok]
        if ns.size == 0:
            return
        w0 = before[ok]
        w = self.node_whole[ns]
        m = self._node_model[ns]
        d = self._node_domain[ns]
        p = self._node_pod[ns]
        g = self._node_gpus[ns]
        dw = w - w0
        _bump(self.domain_whole, d, dw)
        _bump(self.pod_whole, p, dw)
        self.whole_total += int(sum_of(dw))
        # Each node twice: its old cell (-1), then its new one (+1).
        signs = np.concatenate((np.full(ns.size, -1, np.int64), np.ones(ns.size, np.int64)))
        ws, ms, ds, ps, gs = (np.concatenate((x, y)) for x, y in ((w0, w), (m, m), (d, d), (p, p), (g, g)))
        k = self.hist.shape[1]
        _bump(self.hist, ms * k + ws, signs)
        _bump(self.domain_hist, ds * k + ws, signs)
        _bump(self.pod_hist, ps * k + ws, signs)
        f = ws == gs  # completely free
        if any_of(f):
            _bump(self.full, (ms * self.full.shape[1] + gs)[f], signs[f])
            _bump(self.domain_full, ds[f], signs[f])
            _bump(self.pod_full, ps[f], signs[f])
        mk = self.marked[ns]
        if any_of(mk):
            mk = np.concatenate((mk, mk))
            _bump(self.marked_hist, (ms * k + ws)[mk], signs[mk])
            _bump(self.marked_full, (ms * self.full.shape[1] + gs)[f & mk], signs[f & mk])
        self.avail_whole[ns] = w
        self.avail_maxfree[ns] = self.node_maxfree[ns]

    def set_node(self, n: int, *, up: bool | None = None, open: bool | None = None) -> None:
        """Mark a node up/down (failures) or open/drained (operators). Its capacity leaves or rejoins the pool."""
        self.version += 1
        self.node_version += 1
        self._detach(n)
        if up is not None:
            self.node_up[n] = up
        if open is not None:
            self.node_open[n] = open
        was = bool(self.schedulable[n])
        self.schedulable[n] = self.node_up[n] and self.node_open[n]
        self._attach(n)
        if self.schedulable[n] and not was:
            self.grow_epoch += 1

    # ---- checks -------------------------------------------------------------------------------------------
    def check(self, placements: Sequence[Placement]) -> None:
        """Recompute every column from ``placements`` (the running jobs) and compare. For ``validate=True``."""
        topo = self.topo
        gpu_free = np.full(topo.num_gpus, 1000, np.int64)
        cpu = topo.node_cpu.copy()
        mem = topo.node_mem.copy()
        jobs = np.zeros(topo.num_nodes, np.int64)
        for pl in placements:
            for n, gpus, c, mm in zip(pl.nodes, pl.node_gpus, pl.cpu, pl.mem, strict=True):
                for g in gpus:
                    if topo.gpu_node[g] != n:
                        raise InvariantError(f"placement lists GPU {g} under node {n}, but it is on another node")
                    gpu_free[g] -= pl.gpu_milli
                cpu[n] -= c
                mem[n] -= mm
                jobs[n] += 1
        if (gpu_free < 0).any():
            g = int((gpu_free < 0).nonzero()[0][0])
            raise InvariantError(f"GPU {g} is allocated beyond its capacity")
        if (cpu < 0).any() or (mem < 0).any():
            raise InvariantError("a node's CPU or memory is allocated beyond its capacity")
        if not np.array_equal(gpu_free, self.gpu_free):
            g = int((gpu_free != self.gpu_free).nonzero()[0][0])
            raise InvariantError(f"GPU {g}: free {self.gpu_free[g]} but running jobs leave {gpu_free[g]}")
        if not (np.array_equal(cpu, self.node_cpu) and np.array_equal(mem, self.node_mem)):
            raise InvariantError("free CPU or memory disagrees with the running jobs")
        if not np.array_equal(jobs, self.node_jobs):
            raise InvariantError("per-node allocation counts disagree with the running jobs")
        kinds = np.zeros_like(self.node_kinds)
        for pl in placements:
            for n, gpus in zip(pl.nodes, pl.node_gpus, strict=True):
                if gpus:
                    kinds[n, len(gpus) if pl.gpu_milli == 1000 else 0] += 1
        if not np.array_equal(kinds, self.node_kinds):
            raise InvariantError("per-node allocation kinds disagree with the running jobs")
        fresh = Capacity(topo)
        fresh.gpu_free[:] = gpu_free
        for n in range(topo.num_nodes):
            fresh._refresh_node(n)
        for name in ("node_whole", "node_maxfree", "node_milli"):
            if not np.array_equal(getattr(fresh, name), getattr(self, name)):
                raise InvariantError(f"{name} disagrees with the free GPUs")
        sched = self.node_up & self.node_open
        if not np.array_equal(sched, self.schedulable):
            raise InvariantError("schedulable mask disagrees with up/open")
        whole = np.where(sched, fresh.node_whole, 0)
        if not np.array_equal(whole, self.avail_whole):
            raise InvariantError("avail_whole disagrees with the free GPUs")
        if not np.array_equal(np.bincount(topo.node_domain, whole, topo.num_domains), self.domain_whole):
            raise InvariantError("domain_whole disagrees with the free GPUs")
        if not np.array_equal(np.bincount(topo.node_pod, whole, topo.num_pods), self.pod_whole):
            raise InvariantError("pod_whole disagrees with the free GPUs")
        if self.whole_total != int(self.pod_whole.sum()):
            raise InvariantError("whole_total disagrees with the free GPUs")
        hist = np.zeros_like(self.hist)
        np.add.at(hist, (topo.node_model[sched], fresh.node_whole[sched]), 1)
        if not np.array_equal(hist, self.hist):
            raise InvariantError("the free-GPU histogram disagrees with the free GPUs")
        for name, group, count in (
            ("domain", topo.node_domain, topo.num_domains),
            ("pod", topo.node_pod, topo.num_pods),
        ):
            gh = np.zeros_like(getattr(self, f"{name}_hist"))
            np.add.at(gh, (group[sched], fresh.node_whole[sched]), 1)
            full = sched & (fresh.node_whole == topo.node_gpus)
            if not np.array_equal(gh, getattr(self, f"{name}_hist")) or not np.array_equal(
                np.bincount(group[full], minlength=count), getattr(self, f"{name}_full")
            ):
                raise InvariantError(f"the per-{name} free-GPU counts disagree with the free GPUs")
        mh = np.zeros_like(self.hist)
        mk = sched & self.marked
        np.add.at(mh, (topo.node_model[mk], fresh.node_whole[mk]), 1)
        if not np.array_equal(mh, self.marked_hist):
            raise InvariantError("the marked-node histogram disagrees with the free GPUs")
        if self.used_milli != int((1000 - self.gpu_free).sum()):
            raise InvariantError("used_milli disagrees with the free GPUs")


# The ufuncs' own reductions: ``a.max()``, ``a.sum()`` and ``a.any()`` pass through Python-level wrappers first,
# which is most of their cost on a node's few GPUs.
_max = np.maximum.reduce
_add = np.add.reduce
_or = np.logical_or.reduce
_and = np.logical_and.reduce


class _Cells:
    """Memoryviews of a capacity's columns, for the per-node path that reads and writes one cell at a time: through
    a view a cell is a plain int, where a numpy scalar operation costs about twice as much. Two-dimensional columns
    are viewed flat (row * width + column). Made on first use; a copy or a pickle of the capacity makes its own
    (``__reduce__`` leaves the views behind), and the columns are only ever written in place."""

    def __init__(self, cap: Capacity) -> None:
        def flat(a: IntArray) -> memoryview:
            view = a.reshape(-1)
            assert np.shares_memory(view, a), "a column viewed flat must be contiguous"
            return view.data

        self.gpu_free = cap.gpu_free.data
        self.node_cpu = cap.node_cpu.data
        self.node_mem = cap.node_mem.data
        self.node_jobs = cap.node_jobs.data
        self.node_whole = cap.node_whole.data
        self.node_milli = cap.node_milli.data
        self.node_maxfree = cap.node_maxfree.data
        self.node_kinds = flat(cap.node_kinds)
        self.schedulable = cap.schedulable.data
        self.marked = cap.marked.data
        self.avail_whole = cap.avail_whole.data
        self.avail_maxfree = cap.avail_maxfree.data
        self.domain_whole = cap.domain_whole.data
        self.pod_whole = cap.pod_whole.data
        self.domain_full = cap.domain_full.data
        self.pod_full = cap.pod_full.data
        self.hist = flat(cap.hist)
        self.domain_hist = flat(cap.domain_hist)
        self.pod_hist = flat(cap.pod_hist)
        self.full = flat(cap.full)
        self.marked_hist = flat(cap.marked_hist)
        self.marked_full = flat(cap.marked_full)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _no_cells, ()


def _no_cells() -> None:
    return None


def _move_groups(
    ids: list[int],
    counts: list[int],
    moved: tuple[int, int, int, int],
    columns: tuple[IntArray, IntArray, IntArray],
    cells: tuple[memoryview, memoryview, memoryview],
) -> None:
    """Move a whole-node gang's ``counts`` of nodes in the groups ``ids`` (distinct domains, or pods) from ``w0`` to
    ``w`` whole free GPUs (``moved``: the change per node, ``w0``, ``w``, +1 freed or -1 taken), in the groups'
    ``columns`` (whole GPUs free, histogram, full nodes). Cell by cell through their views for a few groups, where
    numpy's per-call cost would dominate; with four vector operations beyond ``_CELL_GROUPS``."""
    dw, w0, w, sign = moved
    whole, hist, full = columns
    if len(ids) > _CELL_GROUPS:
        at = np.array(ids, np.int64)
        n = np.array(counts, np.int64)
        whole[at] += dw * n
        hist[at, w0] -= n
        hist[at, w] += n
        full[at] += sign * n
        return
    cw, ch, cf = cells
    k = hist.shape[1]
    for i, count in zip(ids, counts, strict=True):
        cw[i] += dw * count
        ch[i * k + w0] -= count
        ch[i * k + w] += count
        cf[i] += sign * count


def _counts(ids: IntArray) -> tuple[list[int], list[int]]:
    """The distinct values of ``ids`` (small non-negative integers) and how often each occurs."""
    counts = np.bincount(ids)
    values = counts.nonzero()[0]
    return values.tolist(), counts[values].tolist()


def any_of(a: npt.NDArray[Any]) -> bool:
    """``a.any()`` as one C call (the engine and the placers use it too)."""
    return bool(_or(a, axis=None))


def sum_of(a: npt.NDArray[Any]) -> Any:
    """``a.sum()`` as one C call."""
    return _add(a, axis=None)


def _any_from(hist: IntArray, rows: list[int], lo: int) -> bool:
    """Does any of ``rows`` of ``hist`` count a node from column ``lo`` on? (``count_nonzero`` is a plain C call;
    ``.any()`` goes through Python-level dispatch, which counts on this hot path.)"""
    if len(rows) == 1:
        return int(np.count_nonzero(hist[rows[0], lo:])) > 0
    return any(np.count_nonzero(hist[m, lo:]) for m in rows)


def _ragged_arange(counts: IntArray) -> IntArray:
    """Concatenated ``arange(c)`` for each ``c`` in ``counts``."""
    total = int(counts.sum())
    ends = np.cumsum(counts)
    out = np.arange(total, dtype=np.int64)
    out -= np.repeat(ends - counts, counts)
    return out


def _bump(target: IntArray, index: IntArray, amount: IntArray | int) -> None:
    """``target.flat[index] += amount`` with repeated indices adding up (``np.add.at``, via ``bincount``)."""
    if index.size == 0:
        return
    flat = target.reshape(-1)
    if index.size < 512:
        np.add.at(flat, index, amount)
        return
    weights = np.broadcast_to(amount, index.shape).astype(np.float64)
    flat += np.bincount(index, weights=weights, minlength=target.size).astype(np.int64)
