"""The pending queue: jobs sorted by their order keys, one sorted list per group. An entry is ``(key, job id,
record)``: a pass walks the records themselves.

For most order policies there is one group and a pass walks one sorted list. A grouped policy (fair-share) keeps
a list per tenant; a pass then repeatedly takes the head of the best-ranked tenant, and re-ranks a tenant each
time one of its jobs starts (:class:`Walk`). Keys are computed when a job enters the queue and never change while
it waits. Written only by the engine.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from mypy_extensions import mypyc_attr
from sortedcontainers import SortedList

if TYPE_CHECKING:
    from gigafactory.engine.engine import JobRecord

__all__ = ["DEFAULT_RUNTIME_S", "PendingQueue", "Walk", "expected_runtime"]

_record = itemgetter(2)  # of a queue entry, (key, job id, record): the id breaks ties, so records are never compared

# How long a job without a time limit is assumed to run, for estimates (Slurm assumes the partition's limit).
DEFAULT_RUNTIME_S = 24 * 3600.0


def expected_runtime(estimate_s: float | None) -> float:
    return DEFAULT_RUNTIME_S if estimate_s is None or not estimate_s < float("inf") else estimate_s


Ranker = Callable[[list[str], dict[str, float]], dict[str, Any]]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class PendingQueue:
    def __init__(self, grouped: bool) -> None:
        self.grouped = grouped
        self._lists: dict[str, SortedList] = {}
        self._size = 0
        self.cpu_only = 0  # pending jobs that ask for no GPU
        self.gpus = 0.0  # GPUs asked for by the pending jobs (a fraction counting as its share)
        self.work_gpu_s = 0.0  # their GPUs × time limits (a job without one counts DEFAULT_RUNTIME_S)
        self.shapes: dict[int, int] = {}  # request shape (``JobRecord.shape``) -> pending jobs of that shape
        self._late: list[JobRecord] | None = None  # jobs added while a pass walks the queue (see walk)

    def __len__(self) -> int:
        return self._size

    def add(self, rec: JobRecord) -> None:
        if self._late is not None:
            self._late.append(rec)
            return
        group = rec.group
        lst = self._lists.get(group)
        if lst is None:
            lst = self._lists[group] = SortedList()
        lst.add((rec.key, rec.job.id, rec))
        self._size += 1
        shapes = self.shapes
        shapes[rec.shape] = shapes.get(rec.shape, 0) + 1
        if rec.job.request.gpus == 0:
            self.cpu_only += 1
        g = rec.job.request.gpu_equivalent
        self.gpus += g
        self.work_gpu_s += g * expected_runtime(rec.job.estimate_s)

    def remove(self, rec: JobRecord) -> None:
        lst = self._lists[rec.group]
        lst.remove((rec.key, rec.job.id, rec))
        self._size -= 1
        left = self.shapes[rec.shape] - 1
        if left:
            self.shapes[rec.shape] = left
        else:
            del self.shapes[rec.shape]
        if rec.job.request.gpus == 0:
            self.cpu_only -= 1
        g = rec.job.request.gpu_equivalent
        self.gpus -= g
        self.work_gpu_s -= g * expected_runtime(rec.job.estimate_s)
        if not self._size:
            self.gpus = self.work_gpu_s = 0.0  # no drift from float sums
        if not lst and self.grouped:
            del self._lists[rec.group]

    def ids(self) -> list[int]:
        """Every pending job id, groups in name order, each group in key order (for listings and checks)."""
        return [jid for g in sorted(self._lists) for _, jid, _ in self._lists[g]]

    def walk(self, rank: Ranker | None) -> Walk:
        """One pass's way through the queue. Until :meth:`end_walk`, jobs added (stopped during the pass to make
        room for another) are held back: they wait for the next pass, and the sorted lists the walk iterates do
        not change under it."""
        self._late = []
        return Walk(self, rank)

    def end_walk(self) -> None:
        late, self._late = self._late, None
        for rec in late or ():
            self.add(rec)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class Walk:
    """One pass's way through the queue. Call :meth:`charge` for a job that started before taking the next."""

    def __init__(self, queue: PendingQueue, rank: Ranker | None) -> None:
        self._queue = queue
        self._rank = rank
        self._charged: dict[str, float] = {}

    def __iter__(self) -> Iterator[JobRecord]:
        lists = self._queue._lists
        if not self._queue.grouped or self._rank is None:
            # C iterators throughout: resuming a generator for each job cost more than most jobs' own checks.
            return map(_record, chain.from_iterable(lists[group] for group in sorted(lists)))
        return self._ranked(lists, self._rank)

    def _ranked(self, lists: dict[str, SortedList], rank: Ranker) -> Iterator[JobRecord]:
        """The best-ranked group's next job, each group ranked again after it starts one."""
        iters = {g: iter(lists[g]) for g in lists}
        ranks = rank(list(iters), self._charged)
        heap = [(ranks[g], g) for g in iters]
        heapq.heapify(heap)
        while heap:
            _, group = heapq.heappop(heap)
            item = next(iters[group], None)
            if item is None:
                continue
            before = self._charged.get(group, 0.0)
            yield item[2]
            if self._charged.get(group, 0.0) != before:
                # The tenant just started a job: rank it again among those still waiting.
                ranks = rank([group, *(g for _, g in heap)], self._charged)
                heap = [(ranks[g], g) for _, g in heap]
                heapq.heapify(heap)
            heapq.heappush(heap, (ranks[group], group))

    def charge(self, group: str, amount: float) -> None:
        self._charged[group] = self._charged.get(group, 0.0) + amount
