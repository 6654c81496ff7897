"""What a virtual clock has to do next: timed items, taken in time order, and those of one instant in the order
they were added.

The drivers that run the engine on a virtual clock (the twin, the network twin, the forecast) keep one each, for
what they scheduled themselves: an attempt's end, a node's repair, a wake-up the engine asked for. An item is a
``kind`` and three integers whose meaning the kind gives (a job and its attempt, a node, a site). The order of
one instant's items is the order they were added, so a run is deterministic.

    agenda = Agenda()
    agenda.add(3600.0, END, job, attempt)
    t = agenda.next_time()
    for kind, a, b, site in agenda.pop_at(t): ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from heapq import heappop, heappush

__all__ = ["Agenda"]


class Agenda:
    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, int, int, int]] = []  # (time, sequence, kind, a, b, site)
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, time: float, kind: int, a: int = -1, b: int = 0, site: int = 0) -> None:
        self._seq += 1
        heappush(self._heap, (time, self._seq, kind, a, b, site))

    def next_time(self) -> float:
        """The time of the earliest item; infinity when there is none."""
        return self._heap[0][0] if self._heap else math.inf

    def pop_at(self, time: float) -> Iterator[tuple[int, int, int, int]]:
        """Take the items due at ``time``, as ``(kind, a, b, site)``, in the order they were added. Items added
        for ``time`` while this runs are taken too."""
        heap = self._heap
        while heap and heap[0][0] == time:
            _, _, kind, a, b, site = heappop(heap)
            yield kind, a, b, site
