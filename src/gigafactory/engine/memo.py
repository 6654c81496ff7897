"""What the engine remembers to go fast, apart from what it knows: answers about fitting, per request *shape*.

Nothing here is state. Every answer is keyed by the capacity's ``version`` (or ``grow_epoch``) it was computed
at, so a stale one is never used, and dropping the whole memo changes no decision, only speed.

* **Shapes.** Jobs asking for the same :class:`~gigafactory.core.jobs.JobRequest` share a small integer id, so
  answers about one serve all of them.
* **Could it fit now?** ``Capacity.could_fit`` per shape, on the whole site and outside a reservation, cached
  while the capacity stands still.
* **Misses in a pass** (:class:`PassMisses`). Free capacity only shrinks during a pass until something is
  stopped, and placement policies search completely (the engine already relies on this: a job that missed is not
  tried again until free capacity grows). So once every shape waiting in the queue has missed (exactly, or by
  the aggregates for a smaller request of the same kind, which ``could_fit`` answers monotonically), nothing
  behind can start and the pass stops walking.
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest

__all__ = ["FitMemo", "PassMisses"]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class FitMemo:
    def __init__(self, cap: Capacity) -> None:
        self.cap = cap
        self.shapes: dict[JobRequest, int] = {}
        self.requests: list[JobRequest] = []  # shape id -> its request
        # shape id -> the kind of request within which ``could_fit`` is monotone in total_milli (None: GPU-less)
        self.kinds: list[tuple[object, ...] | None] = []
        self.fit_any: dict[int, tuple[int, bool]] = {}  # shape -> (capacity version, could fit on the site)
        self.fit_out: dict[int, tuple[tuple[int, int], bool]] = {}  # ... outside the reservation's nodes
        # request -> (field to blame, why it could never run here), or None if it could
        self.never: dict[JobRequest, tuple[str, str] | None] = {}
        self.free_without: tuple[tuple[int, tuple[int, ...]], np.ndarray] | None = None

    def shape(self, req: JobRequest) -> int:
        got = self.shapes.get(req)
        if got is None:
            got = self.shapes[req] = len(self.requests)
            self.requests.append(req)
            self.kinds.append((req.models, req.gang, self.cap.single_node(req)) if req.gpus else None)
        return got

    def could_fit(self, shape: int) -> bool:
        """``could_fit`` on the whole site, for the capacity as it is now."""
        version = self.cap.version
        hit = self.fit_any.get(shape)
        if hit is not None and hit[0] == version:
            return hit[1]
        fits = self.cap.could_fit(self.requests[shape])
        self.fit_any[shape] = (version, fits)
        return fits

    def could_fit_outside(self, shape: int, res_version: int) -> bool:
        """``could_fit`` on the nodes the reservation (of version ``res_version``) leaves free."""
        cap = self.cap
        key = (cap.version, res_version)
        hit = self.fit_out.get(shape)
        if hit is not None and hit[0] == key:
            return hit[1]
        fits = cap.could_fit(self.requests[shape], *cap.unmarked_aggregates())
        self.fit_out[shape] = (key, fits)
        return fits


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class PassMisses:
    """The shapes that cannot start for the rest of a pass (until free capacity grows, ``grow_epoch``)."""

    __slots__ = ("_epoch", "_exact", "_memo", "_smallest")

    def __init__(self, memo: FitMemo, epoch: int) -> None:
        self._memo = memo
        self._epoch = epoch
        self._exact: set[int] = set()
        self._smallest: dict[tuple[object, ...], int] = {}  # kind -> least total_milli that missed

    def has(self, shape: int, epoch: int) -> bool:
        """Has ``shape`` already missed at ``epoch``?"""
        return epoch == self._epoch and shape in self._exact

    def miss(self, shape: int, epoch: int, *, aggregate: bool) -> bool:
        """``shape`` did not fit at ``epoch``; ``aggregate``: not even by the capacity's aggregates. True if that
        is news (worth asking :meth:`all_of` again)."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._exact.clear()
            self._smallest.clear()
        news = shape not in self._exact
        self._exact.add(shape)
        kind = self._memo.kinds[shape]
        if aggregate and kind is not None:
            milli = self._memo.requests[shape].total_milli
            least = self._smallest.get(kind)
            if least is None or milli < least:
                self._smallest[kind] = milli
                news = True
        return news

    def all_of(self, shapes: dict[int, int], epoch: int) -> bool:
        """Has every one of ``shapes`` missed, with free capacity no larger than at ``epoch``?"""
        if epoch != self._epoch:
            return False
        exact = self._exact
        smallest = self._smallest
        kinds = self._memo.kinds
        requests = self._memo.requests
        for shape in shapes:
            if shape in exact:
                continue
            kind = kinds[shape]
            least = None if kind is None else smallest.get(kind)
            if least is None or requests[shape].total_milli < least:
                return False
        return True
