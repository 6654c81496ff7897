"""Running allocations as columns: one row per (running job, node it holds), with the job's expected end.

It answers two questions cheaply at any scale: *which jobs sit on node n* (to interrupt them when it fails) and
*when does each node empty* (``free_at``: the latest expected end of the jobs on it; backfill plans with it).
A job's rows are contiguous, so removing a job marks one slice dead; dead rows are compacted away once they
are the majority. Written only by the engine.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import any_of

__all__ = ["AllocTable"]

_CELLWISE = 4  # a job on at most this many nodes is written cell by cell (numpy's per-call cost dominates there)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class AllocTable:
    def __init__(self, num_nodes: int, capacity: int = 1024) -> None:
        self.num_nodes = num_nodes
        self._node = np.zeros(capacity, np.int64)
        self._job = np.zeros(capacity, np.int64)
        self._end = np.zeros(capacity, np.float64)
        self._alive = np.zeros(capacity, np.bool_)
        self._size = 0
        self._dead = 0
        self._rows: dict[int, tuple[int, int]] = {}
        # Per node, the latest end of the jobs on it, kept as rows come and go. A node the last job left is empty
        # (``-inf``) at once; one that others still hold is *dirty* (its latest end may have been the leaver's) and
        # is recounted from its rows when ``free_at`` is asked. Most nodes hold one job, so most leave none dirty.
        self._latest = np.full(num_nodes, -np.inf)
        self._held = np.zeros(num_nodes, np.int64)  # per node, its live rows
        self._dirty = np.zeros(num_nodes, np.bool_)
        self._any_dirty = False
        self._cells: _Cells | None = None  # memoryviews of the columns, for jobs on a few nodes (made on first use)

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, job: int, nodes: npt.NDArray[np.int64] | tuple[int, ...], end: float) -> None:
        count = len(nodes)
        if self._size + count > self._node.size:
            self._grow(self._size + count)
        s = self._size
        if count <= _CELLWISE:
            c = self._cells_of()
            for i in range(count):
                n = int(nodes[i])
                c.node[s + i] = n
                c.job[s + i] = job
                c.end[s + i] = end
                c.alive[s + i] = True
                c.held[n] += 1
                if c.latest[n] < end:
                    c.latest[n] = end
            self._size += count
            self._rows[job] = (s, count)
            return
        self._node[s : s + count] = nodes
        self._job[s : s + count] = job
        self._end[s : s + count] = end
        self._alive[s : s + count] = True
        self._size += count
        self._rows[job] = (s, count)
        on = self._node[s : s + count]
        self._held[on] += 1  # (a job's nodes are distinct)
        self._latest[on] = np.maximum(self._latest[on], end)

    def remove(self, job: int) -> None:
        s, count = self._rows.pop(job)
        if count <= _CELLWISE:
            c = self._cells_of()
            for i in range(s, s + count):
                c.alive[i] = False
                n = c.node[i]
                left = c.held[n] - 1
                c.held[n] = left
                if not left:
                    c.latest[n] = -math.inf
                elif c.end[i] == c.latest[n]:  # (an earlier end was not the node's latest: that stands)
                    c.dirty[n] = True
                    self._any_dirty = True
        else:
            self._alive[s : s + count] = False
            on = self._node[s : s + count]
            held = self._held
            held[on] -= 1
            still = held[on] > 0
            self._latest[on[~still]] = -np.inf
            if any_of(still):
                # Where others stay, only a node whose latest end was this job's (a job's rows share one end)
                # needs a recount.
                moved = on[still]
                moved = moved[self._latest[moved] == self._end[s]]
                if moved.size:
                    self._dirty[moved] = True
                    self._any_dirty = True
        self._dead += count
        if self._dead > 4096 and self._dead * 2 > self._size:
            self._compact()

    def jobs_on(self, node: int) -> list[int]:
        n = self._size
        hit = self._alive[:n] & (self._node[:n] == node)
        return sorted(set(self._job[:n][hit].tolist()))

    def free_at(self) -> npt.NDArray[np.float64]:
        """Per node, the latest expected end of the jobs on it; ``-inf`` for a node with no job. (A copy.)"""
        if self._any_dirty:
            dirty = self._dirty
            self._latest[dirty] = -np.inf
            n = self._size
            rows = self._alive[:n] & dirty[self._node[:n]]
            np.maximum.at(self._latest, self._node[:n][rows], self._end[:n][rows])
            dirty[:] = False
            self._any_dirty = False
        return self._latest.copy()

    def _cells_of(self) -> _Cells:
        c = self._cells
        if c is None:
            c = self._cells = _Cells(self)
        return c

    def _grow(self, need: int) -> None:
        self._cells = None  # the columns are replaced: views of the old ones would write nowhere
        cap = max(need, 2 * self._node.size)
        for name in ("_node", "_job", "_end", "_alive"):
            old = getattr(self, name)
            new = np.zeros(cap, old.dtype)
            new[: self._size] = old[: self._size]
            setattr(self, name, new)

    def _compact(self) -> None:
        n = self._size
        alive = self._alive[:n]
        new_pos = np.cumsum(alive) - 1
        keep = alive.nonzero()[0]
        for name in ("_node", "_job", "_end"):
            arr = getattr(self, name)
            arr[: keep.size] = arr[keep]
        self._alive[: keep.size] = True
        self._alive[keep.size : n] = False
        self._size = keep.size
        self._dead = 0
        self._rows = {job: (int(new_pos[s]), c) for job, (s, c) in self._rows.items()}


class _Cells:
    """Memoryviews of a table's columns (see ``Capacity``'s: a plain int per cell, no numpy scalar). Never copied
    or pickled (``__reduce__`` leaves them behind); remade after the columns grow."""

    def __init__(self, table: AllocTable) -> None:
        self.node = table._node.data
        self.job = table._job.data
        self.end = cast("memoryview[float]", table._end.data)  # (a float64 column: its cells are floats)
        self.alive = table._alive.data
        self.latest = cast("memoryview[float]", table._latest.data)
        self.held = table._held.data
        self.dirty = table._dirty.data

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _no_cells, ()


def _no_cells() -> None:
    return None
