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
* **No room by preemption** (:class:`NoRoom`). When the preemption candidates are the running jobs ranked below
  a waiting job, "stopping all of them would not make room" stands until a job ranked *above* it frees GPUs (or
  drops below it in rank, or capacity grows some other way): the ends of the jobs it may preempt change nothing.
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest

__all__ = ["FitMemo", "NoRoom", "PassMisses"]


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
        # models -> (node version, nodes schedulable and of those models), as a mask and as a list
        self.usable_nodes: dict[tuple[str, ...] | None, tuple[int, np.ndarray, list[bool]]] = {}
        # models -> (capacity version, most / all free milli-GPU on one of those nodes)
        self.most_free: dict[tuple[str, ...] | None, tuple[int, int]] = {}
        self.all_free: dict[tuple[str, ...] | None, tuple[int, int]] = {}

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

    def usable(self, models: tuple[str, ...] | None) -> tuple[np.ndarray, list[bool]]:
        """The nodes a job allowed ``models`` may use now (schedulable, of those models): a mask, and a list."""
        cap = self.cap
        hit = self.usable_nodes.get(models)
        if hit is not None and hit[0] == cap.node_version:
            return hit[1], hit[2]
        usable = cap.schedulable
        mask = cap.model_mask(models)
        if mask is not None:
            usable = usable & mask
        listed: list[bool] = usable.tolist()
        self.usable_nodes[models] = (cap.node_version, usable, listed)
        return usable, listed

    def most_free_milli(self, models: tuple[str, ...] | None) -> int:
        """The most milli-GPU free (whole GPUs and shares) on one node usable by ``models``."""
        cap = self.cap
        hit = self.most_free.get(models)
        if hit is not None and hit[0] == cap.version:
            return hit[1]
        got = int(np.maximum.reduce(cap.node_milli, where=self.usable(models)[0], initial=0))  # (np.max: slower)
        self.most_free[models] = (cap.version, got)
        return got

    def all_free_milli(self, models: tuple[str, ...] | None) -> int:
        """The milli-GPU free (whole GPUs and shares) on all nodes usable by ``models``."""
        cap = self.cap
        hit = self.all_free.get(models)
        if hit is not None and hit[0] == cap.version:
            return hit[1]
        got = int(np.add.reduce(cap.node_milli, where=self.usable(models)[0]))
        self.all_free[models] = (cap.version, got)
        return got

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


# The log of freed room is dropped (with every failure it could excuse) past this length: bounded memory.
NO_ROOM_LOG = 65_536


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class NoRoom:
    """Waiting jobs for which even stopping every preemption candidate could not make room, and what has freed
    room since.

    With candidates ``running_above(key)`` (the running jobs whose order key is greater than the waiting job's
    ``key``), the GPUs a job could have once they stop are the free ones plus the candidates'. That grows only
    when a running job *not* among its candidates frees GPUs (ends, is stopped, or drops in rank to become one),
    or when capacity grows otherwise (a node comes back, a stopped attempt lets go): the engine reports the
    first two with :meth:`freed`, with the capacity's ``grow_epoch`` after; growth it was not told of (the epoch
    moved otherwise) drops every failure. A failure noted for a job stands while no report since could have given
    it room, which :meth:`stands` checks by scanning the reports it has not seen. A job that starts is dropped (its
    own end would give it room, and it does not rank below itself).
    """

    __slots__ = ("_epoch", "_failed", "_log")

    def __init__(self) -> None:
        self._epoch = 0  # the capacity's grow_epoch as far as reports account for it
        # Each report: the order key a running job held when it freed room, and the key it took (None: it left).
        self._log: list[tuple[tuple[object, ...], tuple[object, ...] | None]] = []
        self._failed: dict[int, tuple[tuple[object, ...], int]] = {}  # job id -> (its key, reports seen)

    def freed(self, epoch: int, old_key: tuple[object, ...], new_key: tuple[object, ...] | None = None) -> None:
        """A running job ranked at ``old_key`` left (``new_key`` None: free capacity grew to ``epoch``), or was
        ranked again at ``new_key``."""
        if new_key is None:
            self._sync(epoch - 1)
            self._epoch = epoch
        if self._failed:
            if len(self._log) >= NO_ROOM_LOG:
                self.forget_all()
            else:
                self._log.append((old_key, new_key))

    def forget_all(self) -> None:
        """Capacity grew in a way not reported: no failure stands."""
        self._failed.clear()
        self._log.clear()

    def _sync(self, epoch: int) -> None:
        if epoch != self._epoch:
            self.forget_all()
            self._epoch = epoch

    def note(self, epoch: int, job_id: int, key: tuple[object, ...]) -> None:
        """Stopping every candidate of job ``job_id`` (ranked at ``key``) would not make room for it, with free
        capacity at ``epoch``."""
        self._sync(epoch)
        if not self._failed:
            self._log.clear()
        self._failed[job_id] = (key, len(self._log))

    def drop(self, job_id: int) -> None:
        self._failed.pop(job_id, None)

    def stands(self, epoch: int, job_id: int, key: tuple[object, ...]) -> bool:
        """Does the failure noted for ``job_id`` at ``key`` still hold, free capacity being at ``epoch``? (False
        if none was noted.)"""
        self._sync(epoch)
        got = self._failed.get(job_id)
        if got is None:
            return False
        noted_key, seen = got
        log = self._log
        if noted_key != key:
            del self._failed[job_id]
            return False
        for i in range(seen, len(log)):
            old, new = log[i]
            # It gains room where a job that was not its candidate (key <= its key) stops holding GPUs as one.
            if old <= key and (new is None or new > key):
                del self._failed[job_id]
                return False
        self._failed[job_id] = (key, len(log))
        return True
