"""The scheduling engine: a pure, deterministic state machine, ``handle(events) -> actions``.

It keeps the state of one site (its :class:`~gigafactory.core.capacity.Capacity`, the queue, the running jobs,
per-tenant usage) and never reads a clock, does no I/O and draws randomness only from its seeded generator. The
twin and the control plane both drive it; given the same events and seed it returns the same actions.

Who may change what (everything else only reads):

* :meth:`Engine.handle` is the only entry point. It applies each event in turn, then runs one scheduling pass
  (with the ``rounds`` cycle policy, only on the ticks it asked for with :class:`~gigafactory.core.actions.Wake`).
* ``_start`` / ``_end`` / ``_requeue`` are the only functions that move a job between states, and each writes
  one transition-log entry. ``self.cap`` is changed only by ``_start``, ``_release`` and ``_unhold`` (allocate,
  release) and by the node events (up, down, drain); ``self._usage`` only by ``_start`` and ``_release``.

**Stopping takes time** (``hold_stopped=True``, as the control plane runs it). In the twin a stopped attempt is gone
at once. On real machines a cancelled, preempted or interrupted attempt's processes may take a while to die (a
job that ignores SIGTERM lives until SIGKILL). With ``hold_stopped`` its placement stays allocated (*held*) until
the driver reports that attempt ended (``JobFinished``, ``JobFailed`` or ``JobInterrupted`` for it; after a restart
the driver hands held attempts back with ``AttemptStopping``, before the jobs), so no GPU is handed to another job
while the old processes may still use it. A requeued job waits out of the queue until its held attempt ends, so two
attempts of one job never overlap, and a job blocked only by held placements preempts no one else while they
drain. Slurm's COMPLETING state is the same idea.

A scheduling pass is incremental. It walks the queue in policy order (for a grouped order such as fair-share,
tenant by tenant, re-ranking a tenant each time one of its jobs starts). A job its tenant's quota does not admit
is passed over. Jobs start while they fit; for the first that does not, the preemption policy may name running
jobs to stop; if it still does not fit it becomes the *head*, the backfill policy may give it a reservation, and
at most ``depth`` later jobs are tried. A job that did not fit is not tried again until free capacity has grown
(the capacity's ``grow_epoch``), so passes triggered by new submissions to a full site cost a few lookups.

Invariants (checked after every event when ``validate=True``):

* no GPU, CPU or memory is allocated beyond its capacity, and the capacity columns agree with the running jobs;
* no job starts before it was submitted;
* every submitted job is in exactly one state, and the queue holds exactly the pending jobs not waiting for a
  held attempt to end;
* per-tenant GPUs held agree with the running jobs.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.actions import Action, RejectJob, SignalJob, StartJob, StopJob, StopReason, Wake
from gigafactory.core.awards import AwardBook
from gigafactory.core.capacity import Capacity, any_of
from gigafactory.core.compute import ModelCompute
from gigafactory.core.errors import InvariantError
from gigafactory.core.events import (
    AttemptStopping,
    AwardChanged,
    CheckpointWritten,
    Event,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobInterrupted,
    JobRestored,
    JobSubmitted,
    ModelChanged,
    NodeDrained,
    NodeFailed,
    NodeRepaired,
    NodeResumed,
    Tick,
)
from gigafactory.core.jobs import Job, JobRequest, JobState, Locality
from gigafactory.core.placement import Placement
from gigafactory.core.status import Code, Status
from gigafactory.core.tenants import TenantTree
from gigafactory.core.topology import Topology
from gigafactory.engine.allocs import AllocTable
from gigafactory.engine.log import Transition, TransitionLog
from gigafactory.engine.memo import FitMemo, NoRoom, PassMisses
from gigafactory.engine.planner import EndPlanner
from gigafactory.engine.queue import DEFAULT_RUNTIME_S, PendingQueue
from gigafactory.engine.usage import UsageLedger
from gigafactory.policy.base import GroupedOrder, JobView, PlaceContext, Reservation
from gigafactory.policy.place.first_fit import FirstFit
from gigafactory.policy.profile import Profile, parse_profile

__all__ = ["Engine", "JobRecord"]

# A reservation is recomputed when the head changes, a reserved node fails, or it expires. It can only move
# earlier when a job expected to end at or after its start ends early, or a node comes back; it is then refreshed,
# at most this often (Slurm's default bf_interval). Earlier-ending jobs ending early cannot move it: the head
# could not fit before they were due to end anyway.
RESERVATION_REFRESH_S = 30.0
# Preemption is tried for at most this many blocked jobs per pass.
PREEMPTIONS_PER_PASS = 4

_P, _R = JobState.PENDING, JobState.RUNNING
# Every transition a job may make (None: not yet known to this engine); ``_transition`` refuses any other.
TRANSITIONS: frozenset[tuple[JobState | None, JobState]] = frozenset(
    {
        (None, _P),  # submitted, or restored waiting
        (None, _R),  # restored running
        (None, JobState.REJECTED),  # could never run here
        (_P, _R),  # started
        (_P, JobState.CANCELLED),
        (_P, JobState.REJECTED),  # asked to start at once and could not
        (_R, _P),  # requeued: preempted, interrupted, or its award ran out
        (_R, JobState.COMPLETED),
        (_R, JobState.FAILED),
        (_R, JobState.CANCELLED),
    }
)


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
@dataclass(slots=True)
class JobRecord:
    """The engine's mutable record of one job. Read it; never write it from outside the engine."""

    job: Job
    state: JobState
    submitted_s: float
    key: tuple[object, ...]
    group: str
    attempt: int
    placement: Placement | None
    started_s: float | None  # start of the current (or last) attempt
    first_start_s: float | None
    end_s: float | None
    est_end: float
    attained_s: float  # GPU-seconds of finished attempts
    shape: int  # small id of its request, for caches keyed by request shape
    fail_epoch: int  # capacity grow_epoch at which it last failed to fit
    fail_res: int  # reservation version that excluded it then (-1: it fitted nowhere)
    preempt_version: tuple[int, int, float]  # see Engine._preempt_for
    run_key: tuple[object, ...]  # its order key while running, as last ranked
    reason: str
    exit_code: int | None
    award: int | None  # the award its current (or last) attempt charges
    wait_reason: str  # why the admit policy passed it over in the last pass ("" if it did not)

    def __init__(self, job: Job, state: JobState, submitted_s: float) -> None:
        # Written out, not generated by dataclass: compiled (gigafactory._native), a generated __init__ stays
        # interpreted, and the engine makes one record per job.
        self.job = job
        self.state = state
        self.submitted_s = submitted_s
        self.key = ()
        self.group = ""
        self.attempt = 0
        self.placement = None
        self.started_s = None
        self.first_start_s = None
        self.end_s = None
        self.est_end = math.inf
        self.attained_s = 0.0
        self.shape = -1
        self.fail_epoch = -1
        self.fail_res = -1
        self.preempt_version = (-1, -1, -math.inf)
        self.run_key = ()
        self.reason = ""
        self.exit_code = None
        self.award = None
        self.wait_reason = ""

    def attained_gpu_s(self, now: float) -> float:
        """GPU-seconds received so far, the running attempt included."""
        if self.state is JobState.RUNNING and self.started_s is not None:
            return self.attained_s + self.job.request.gpu_equivalent * (now - self.started_s)
        return self.attained_s


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
@dataclass
class _Stats:
    events: int = 0
    passes: int = 0
    place_calls: int = 0
    quick_rejects: int = 0
    memo_skips: int = 0
    reservations: int = 0
    starts: int = 0
    backfilled: int = 0
    preempted: int = 0
    preempt_trials: int = 0  # preemptions tried on a copy of the capacity (after the cheap refusals)
    over_quota: int = 0


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class Engine:
    """One site's scheduler. ``Engine(topology, "fifo+easy+best-fit", seed=1).handle([...]) -> [actions]``.

    It is also the :class:`~gigafactory.policy.base.SchedulerView` its policies read.
    """

    def __init__(
        self,
        topo: Topology,
        profile: Profile | str = "default",
        *,
        tenants: TenantTree | None = None,
        seed: int = 0,
        validate: bool = False,
        keep_log: bool = True,
        hold_stopped: bool = False,
    ) -> None:
        self.topo = topo
        self.hold_stopped = hold_stopped
        self.profile = parse_profile(profile) if isinstance(profile, str) else profile
        self.tenants = tenants
        if tenants is not None:
            tenants.check_capacity(topo.num_gpus)
        self.seed = seed
        self.validate = validate
        self.keep_log = keep_log
        self.cap = Capacity(topo)
        self._num_gpus = topo.num_gpus
        self.log = TransitionLog()
        self.stats = _Stats()
        self.now = -math.inf
        self._rng = np.random.default_rng(seed)
        self._plan_rng = np.random.default_rng([seed, 1])
        self._jobs: dict[int, JobRecord] = {}
        order = self.profile.order
        self._grouped: GroupedOrder | None = order if order.grouped else None  # type: ignore[assignment]
        self._queue = PendingQueue(grouped=self._grouped is not None)
        # Of (expected end, job id) of running jobs, for the planner. Sorted lists of running jobs are plain lists kept
        # in order with bisect (C calls, where SortedList's are Python; they hold thousands, not millions).
        self._ends: list[tuple[float, int]] = []
        self._allocs = AllocTable(topo.num_nodes)
        self._usage = UsageLedger(self._grouped.half_life_s if self._grouped is not None else math.inf)
        self._counts: dict[JobState, int] = dict.fromkeys(JobState, 0)
        self._seq = 0
        self._stimulus = ("init", 0, "")
        self._planner = EndPlanner(
            topo, self.cap, self._allocs, self._ends, self, self.profile.place,
            self._plan_rng,
        )  # fmt: skip
        self._res: Reservation | None = None
        self._res_version = 0
        self._res_at = -math.inf  # when computed
        self._res_stale = False  # something happened since that could let the head start earlier
        self._memo = FitMemo(self.cap)  # answers about fitting, per request shape: speed only, never state
        self._misses = PassMisses(self._memo, 0)
        self._new_miss = False
        self._preempt_budget = 0
        # Shapes for which preemption failed in this pass, with the (capacity, ranking) version then. With candidates
        # ``running_above(key)`` and a walk in key order, a later job's candidates are a prefix of an earlier one's:
        # if stopping those could not make room for a job, they cannot for a later one of the same shape.
        self._preempt_missed: dict[int, tuple[int, int]] = {}
        self._no_room = NoRoom()  # jobs for which stopping every candidate would not make room (ranked candidates)
        self._ranks_running = self.profile.preempt.ranks_running
        # Jobs that stopped others to make room while those attempts were still being stopped (``hold_stopped``),
        # with the nodes they will take: what is freed there is theirs. Each pass tries them first, and no other job
        # is placed on those nodes meanwhile (else the stopped jobs, or any job behind, would take the room as it
        # frees and the promised job would stop them again, for ever).
        self._promised: dict[int, tuple[int, ...]] = {}
        self._shield: np.ndarray | None = None  # nodes promised, as a mask (None: no promise)
        self._immediate: list[JobRecord] = []
        self._round_s = self.profile.cycle.round_s
        self._woken_for = -math.inf  # the time a Wake was last asked for
        self._last_scan = -math.inf  # when the scan behind the head last ran (backfill interval)
        self._stops = 0
        # Running jobs by order key, kept when a preemption policy compares them with waiting jobs and the keys
        # change only at known times (not for continuous LAS, whose keys change all the time).
        order = self.profile.order
        ranked = self.profile.preempt.ranks_running and not order.grouped and not order.continuous_keys
        self._running_ranked: list[tuple[tuple[object, ...], int]] | None = [] if ranked else None
        self._rerank: list[tuple[float, int, int]] = []
        self._reranked = 0  # how often a running job's key has changed (a LAS demotion): it may now be preempted
        self._continuous_keys = order.continuous_keys
        self._empty = Capacity(topo)
        self._trial = Capacity(topo)  # preemption's trials, each a copy of the capacity written into this one
        self._node_gpus: list[int] = topo.node_gpus.tolist()
        self._top_gpus = max(self._node_gpus, default=0)
        # Stopped attempts whose processes may still run (``hold_stopped``): job id -> (attempt, placement).
        self._held: dict[int, tuple[int, Placement]] = {}
        self._awaiting: set[int] = set()  # requeued jobs kept out of the queue until their held attempt ends
        # Awards (the access programme): what each has used, who charges it, and the running attempts signalled
        # to checkpoint because theirs ran out: job id -> (attempt, when it is stopped).
        self.awards = AwardBook()
        self._award_grace = self.profile.admit.award_grace_s
        self._signalled: dict[int, tuple[int, float]] = {}
        self._award_woken: dict[int, float] = {}
        self.waits_changed: set[int] = set()  # jobs whose wait_reason changed (the control plane shows them)
        # The AI Act desk: each model's training compute as the driver last said, and its running jobs.
        self.models: dict[int, ModelCompute] = {}
        self._model_jobs: dict[int, set[int]] = {}
        # Jobs whose award cannot pay (``Code.UNFUNDED``) wait *parked*, out of the queue, by tenant, until the
        # tenant's awards change or one of them becomes valid: a pass does not walk them (Kueue parks inadmissible
        # workloads the same way).
        self._parked: dict[str, dict[int, JobRecord]] = {}
        self._parked_ids: set[int] = set()
        self._unpark_at: list[tuple[float, str]] = []
        self._wake_asks: list[float] = []  # wake-ups asked for outside a handler that has the action list

    # ---- public queries -----------------------------------------------------------------------------------
    def job(self, job_id: int) -> JobRecord:
        return self._jobs[job_id]

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def state_of(self, job_id: int) -> JobState:
        return self._jobs[job_id].state

    def pending(self) -> list[int]:
        """Pending job ids in queue order (for a grouped order: tenants by name, each in its own order), then the
        jobs parked for want of an award, by tenant."""
        ids = self._queue.ids()
        if self._parked_ids:
            ids += [jid for t in sorted(self._parked) for jid in sorted(self._parked[t])]
        return ids

    def set_tenants(self, tenants: TenantTree | None) -> None:
        """A new tenant tree (shares, limits, who draws on the access pool): parked jobs are looked at again."""
        self.tenants = tenants
        for tenant in list(self._parked):
            self._unpark(tenant)

    def running(self) -> list[int]:
        return sorted(jid for _, jid in self._ends)

    def held(self) -> dict[int, int]:
        """Stopped attempts still holding their placement (``hold_stopped``): job id -> attempt."""
        return {jid: attempt for jid, (attempt, _) in self._held.items()}

    def placement_of(self, job_id: int, attempt: int) -> Placement | None:
        """Where ``attempt`` of the job runs, or ran if it is held; None once it has ended and been released."""
        held = self._held.get(job_id)
        if held is not None and held[0] == attempt:
            return held[1]
        rec = self._jobs.get(job_id)
        if rec is not None and rec.state is JobState.RUNNING and rec.attempt == attempt:
            return rec.placement
        return None

    def counts(self) -> dict[JobState, int]:
        return dict(self._counts)

    def forget(self, job_id: int) -> None:
        """Drop the record of a job that has ended (a long-lived driver keeps its history elsewhere). Later
        reports about it are ignored, as stale reports are."""
        rec = self._jobs.get(job_id)
        if rec is not None:
            if not rec.state.terminal:
                raise InvariantError(f"job {job_id} is {rec.state.value}; only ended jobs can be forgotten")
            del self._jobs[job_id]
            self._counts[rec.state] -= 1

    def withdraw(self, job_id: int) -> JobRecord | None:
        """Take a waiting job out of this site, to be restored at another (``JobRestored``). Only a job that waits in
        the queue can leave (not one whose stopped attempt is still held); returns its record, or None."""
        rec = self._jobs.get(job_id)
        if rec is None or rec.state is not JobState.PENDING or job_id in self._awaiting or job_id in self._held:
            return None
        if job_id in self._parked_ids:
            self._unpark_one(rec)
        else:
            self._queue.remove(rec)
        del self._jobs[job_id]
        self._counts[JobState.PENDING] -= 1
        if rec in self._immediate:
            self._immediate.remove(rec)
        if self._res is not None and self._res.job_id == job_id:
            self._res = None
        return rec

    def tenant_gpus_all(self) -> dict[str, float]:
        """GPUs held right now, per tenant (fractional requests count as their fraction)."""
        return {t: self._usage.held(t) for t in self._usage.tenants()}

    @property
    def reservation(self) -> Reservation | None:
        return self._res

    def story(self, job_id: int) -> list[Transition]:
        return self.log.story(job_id)

    # ---- the SchedulerView policies read ------------------------------------------------------------------
    def running_views(self) -> list[JobView]:
        return [self._jobs[jid] for _, jid in self._ends]

    @property
    def running_version(self) -> int:
        """Changes whenever a job starts or stops: a cache of anything about running jobs is good while it stands."""
        return self.stats.starts * 2**32 + self._stops

    def running_placement(self, job_id: int) -> Placement | None:
        # The planner holds the engine itself, not a function: a deep copy of the engine (the forecast's) then asks
        # the copy, not this one (a bound method of the compiled engine would be copied as it is).
        return self._jobs[job_id].placement

    def running_above(self, key: tuple[object, ...]) -> list[JobView]:
        ranked = self._running_ranked
        if ranked is None:
            order = self.profile.order
            now = self.now
            keyed: list[tuple[tuple[object, ...], int]] = sorted(
                ((*order.key(r.job, r.attained_gpu_s(now)), r.job.id), r.job.id) for r in self.running_views()
            )
            return [self._jobs[jid] for k, jid in reversed(keyed) if k > key]
        self._rerank_due()
        first = bisect.bisect_right(ranked, (key, math.inf))
        return [self._jobs[ranked[i][1]] for i in range(len(ranked) - 1, first - 1, -1)]

    def _rank_running(self, rec: JobRecord) -> None:
        """File a running job under its current order key, and note when that key will next change."""
        assert self._running_ranked is not None and rec.started_s is not None
        order = self.profile.order
        attained = rec.attained_gpu_s(self.now)
        rec.run_key = (*order.key(rec.job, attained), rec.job.id)
        bisect.insort(self._running_ranked, (rec.run_key, rec.job.id))
        when = order.key_changes_at(rec.job, attained, self.now)
        if math.isfinite(when):
            heapq.heappush(self._rerank, (max(when, self.now), rec.job.id, rec.attempt))

    def _rerank_due(self) -> None:
        assert self._running_ranked is not None
        while self._rerank and self._rerank[0][0] <= self.now:
            _, jid, attempt = heapq.heappop(self._rerank)
            rec = self._jobs[jid]
            if rec.state is JobState.RUNNING and rec.attempt == attempt:
                old = rec.run_key
                _drop(self._running_ranked, (old, jid))
                self._rank_running(rec)
                if rec.run_key != old:
                    self._reranked += 1
                    self._no_room.freed(self.cap.grow_epoch, old, rec.run_key)

    def model_running(self, model: int) -> list[JobView]:
        return [self._jobs[j] for j in sorted(self._model_jobs.get(model, ()))]

    def tenant_gpus(self, tenant: str) -> float:
        return self._usage.held(tenant)

    def usage_gpu_s(self, tenant: str) -> float:
        return self._usage.usage(tenant, self.now)

    def usage_all(self) -> dict[str, float]:
        return self._usage.usage_all(self.now)

    # ---- the one entry point ------------------------------------------------------------------------------
    def handle(self, events: Iterable[Event]) -> list[Action]:
        """Apply ``events`` in order, then run one scheduling pass; return what the driver must do, in order.

        Each event moves the clock to its time (never back: an event stamped earlier than one already seen acts
        *now*), then changes the state: a submission queues a job (or rejects one that could never run here), a
        report ends or requeues an attempt (a report about an attempt that is no longer current is ignored), a
        node event changes the capacity, an award or model changes what admission allows. Only then does the
        pass run (with a ``rounds`` cycle policy, only on a round's ``Tick``), followed by the award policing
        where the admit policy declares it.

        The actions: ``StartJob`` (with its placement), ``StopJob`` (cancelled, preempted, interrupted by a node
        failure, or its award ran out), ``SignalJob`` (checkpoint now), ``RejectJob`` and ``Wake`` (call me
        again at this time, with a ``Tick``). Every state change is written to :attr:`log` as one transition,
        named by its cause: the event's ``stimulus`` if the caller gave one, else the event's type, or
        ``schedule@...`` for changes made by the pass. Given the same events (and seed), the same actions.
        """
        out: list[Action] = []
        ticked = False
        for ev in events:
            self._seq += 1
            self.stats.events += 1
            if ev.time > self.now:
                self.now = ev.time
            self._stimulus = (type(ev).__name__, self._seq, ev.stimulus)
            ticked = ticked or isinstance(ev, Tick)
            self._dispatch(ev, out)
            if self.validate:
                self.check()
        self._stimulus = ("schedule@" + self._stimulus[0], self._stimulus[1], "")
        while self._unpark_at and self._unpark_at[0][0] <= self.now:
            self._unpark(heapq.heappop(self._unpark_at)[1])
        policing = self._award_grace is not None and bool(self.awards)
        if policing:
            self._police_awards(out)
        if self._round_s <= 0 or (ticked and self._on_round()):
            self._schedule(out)
        if policing:
            self._police_awards(out)
        if self._wake_asks:
            out.extend(Wake(t) for t in sorted(set(self._wake_asks)))
            self._wake_asks.clear()
        if self._immediate:
            self._reject_unstarted(out)
        if self._round_s > 0:
            self._ask_for_round(out)
        if self.validate:
            self.check()
        return out

    def _on_round(self) -> bool:
        r = self._round_s
        return abs(self.now / r - round(self.now / r)) < 1e-9

    def _ask_for_round(self, out: list[Action]) -> None:
        """With rounds, keep one wake-up asked for while any job waits."""
        if not len(self._queue):
            return
        boundary = (math.floor(self.now / self._round_s + 1e-9) + 1) * self._round_s
        if boundary > self._woken_for:
            self._woken_for = boundary
            out.append(Wake(boundary))

    def _dispatch(self, ev: Event, out: list[Action]) -> None:
        if isinstance(ev, JobSubmitted):
            self._submit(ev.job, out)
        elif isinstance(ev, JobRestored):
            self._restore(ev)
        elif isinstance(ev, AttemptStopping):
            self._hold(ev.job_id, ev.attempt, ev.placement)
        elif isinstance(ev, JobFinished):
            rec = self._current(ev.job_id, ev.attempt)
            if rec is not None:
                self._end(rec, JobState.COMPLETED, "finished", exit_code=0)
            else:
                self._unhold(ev.job_id, ev.attempt)
        elif isinstance(ev, JobFailed):
            rec = self._current(ev.job_id, ev.attempt)
            if rec is not None:
                self._end(rec, JobState.FAILED, ev.reason or f"exit code {ev.exit_code}", exit_code=ev.exit_code)
            else:
                self._unhold(ev.job_id, ev.attempt)
        elif isinstance(ev, JobCancelled):
            self._cancel(ev, out)
        elif isinstance(ev, JobInterrupted):
            rec = self._current(ev.job_id, ev.attempt)
            if rec is not None:
                self._requeue(rec, ev.reason)
            else:
                self._unhold(ev.job_id, ev.attempt)
        elif isinstance(ev, NodeFailed):
            self._node_down(ev, out)
        elif isinstance(ev, NodeRepaired):
            self.cap.set_node(ev.node, up=True)
            self._res_stale = True
        elif isinstance(ev, NodeDrained):
            self.cap.set_node(ev.node, open=False)
            if self._res is not None and self._res.nodes.size and self._res.nodes[ev.node]:
                self._res = None
        elif isinstance(ev, NodeResumed):
            self.cap.set_node(ev.node, open=True)
            self._res_stale = True
        elif isinstance(ev, AwardChanged):
            self.awards.put(ev.award, self.now, ev.used_gpu_s)
            self._unpark(ev.award.tenant)
        elif isinstance(ev, ModelChanged):
            self.models[ev.compute.model] = ev.compute
            self._unpark(ev.compute.tenant)
        elif isinstance(ev, (Tick, CheckpointWritten)):
            pass
        else:
            raise InvariantError(f"the engine does not handle {type(ev).__name__}")

    # ---- transitions --------------------------------------------------------------------------------------
    def _transition(self, rec: JobRecord, new: JobState, reason: str = "") -> None:
        old = rec.state if rec.job.id in self._jobs else None
        if (old, new) not in TRANSITIONS:
            raise InvariantError(f"job {rec.job.id}: no transition from {old} to {new.value}")
        if old is not None:
            self._counts[old] -= 1
        self._counts[new] += 1
        rec.state = new
        if self.keep_log:
            kind, seq, given = self._stimulus
            self.log.add(self.now, rec.job.id, rec.attempt, old, new, kind, seq, reason, given)

    def _enqueue(self, rec: JobRecord) -> None:
        job = rec.job
        rec.key = (*self.profile.order.key(job, rec.attained_s), job.id)
        rec.group = self._grouped.group(job) if self._grouped is not None else ""
        self._queue.add(rec)

    def _submit(self, job: Job, out: list[Action]) -> None:
        if job.id in self._jobs:
            raise InvariantError(f"job {job.id} was submitted twice")
        rec = JobRecord(job=job, state=JobState.PENDING, submitted_s=self.now)
        rec.shape = self._memo.shape(job.request)
        why = self._never_fits(job)
        if why is not None:
            self._transition(rec, JobState.REJECTED, why)
            self._jobs[job.id] = rec
            rec.reason = why
            rec.end_s = self.now
            out.append(RejectJob(self.now, job.id, Status.unresolvable(why)))
            return
        self._transition(rec, JobState.PENDING)
        self._jobs[job.id] = rec
        self._enqueue(rec)
        if job.immediate:
            self._immediate.append(rec)

    def _restore(self, ev: JobRestored) -> None:
        """Take a job back from the driver's records after a restart: running where it runs, or waiting."""
        job = ev.job
        if job.id in self._jobs:
            raise InvariantError(f"job {job.id} was restored but is already known")
        rec = JobRecord(job=job, state=JobState.PENDING, submitted_s=min(job.submit_s, self.now))
        rec.shape = self._memo.shape(job.request)
        rec.attempt = ev.attempt
        rec.attained_s = ev.attained_gpu_s
        if ev.placement is None:
            self._transition(rec, JobState.PENDING, "restored")
            self._jobs[job.id] = rec
            if job.id in self._held:
                self._awaiting.add(job.id)
            else:
                self._enqueue(rec)
            return
        pl = ev.placement
        started = ev.started_s if ev.started_s is not None else self.now
        self.cap.allocate(pl)
        rec.placement = pl
        rec.started_s = started
        rec.first_start_s = started
        rec.est_end = math.inf if job.estimate_s is None else started + job.estimate_s
        bisect.insort(self._ends, (rec.est_end, job.id))
        self._allocs.add(job.id, pl.nodes, rec.est_end)
        self._usage.change(job.tenant, pl.gpu_milli * pl.num_gpus / 1000.0, self.now)
        self._charge(rec, since=started, award=ev.award)
        if job.model is not None:
            self._model_jobs.setdefault(job.model, set()).add(job.id)
        self._transition(rec, JobState.RUNNING, "restored")
        self._jobs[job.id] = rec
        if self._running_ranked is not None:
            self._rank_running(rec)

    def _reject_unstarted(self, out: list[Action]) -> None:
        """Jobs submitted with ``immediate`` that did not start in this pass are rejected, not queued."""
        for rec in self._immediate:
            if rec.state is JobState.PENDING:
                status = Status.unschedulable("no room now, and it asked to start at once or not at all")
                self._end(rec, JobState.REJECTED, str(status))
                out.append(RejectJob(self.now, rec.job.id, status))
        self._immediate.clear()

    def _current(self, job_id: int, attempt: int) -> JobRecord | None:
        """The record if ``attempt`` is the job's running attempt; stale reports are ignored."""
        rec = self._jobs.get(job_id)
        if rec is None or rec.state is not JobState.RUNNING or rec.attempt != attempt:
            return None
        return rec

    def _start(self, rec: JobRecord, pl: Placement, out: list[Action]) -> None:
        job = rec.job
        if self.now < rec.submitted_s:
            raise InvariantError(f"job {job.id} would start at {self.now} before its submission")
        self.cap.allocate(pl)  # the caller takes it out of the queue
        rec.attempt += 1
        rec.placement = pl
        rec.started_s = self.now
        if rec.first_start_s is None:
            rec.first_start_s = self.now
        rec.est_end = math.inf if job.estimate_s is None else self.now + job.estimate_s
        bisect.insort(self._ends, (rec.est_end, job.id))
        self._allocs.add(job.id, pl.node_array if len(pl.nodes) > 8 else pl.nodes, rec.est_end)
        self._usage.change(job.tenant, pl.gpu_milli * pl.num_gpus / 1000.0, self.now)
        if self.awards:
            self._charge(rec)
        if job.model is not None:
            self._model_jobs.setdefault(job.model, set()).add(job.id)
        if rec.wait_reason:
            rec.wait_reason = ""
            self.waits_changed.add(job.id)
        if job.id in self._promised:
            self._unpromise(job.id)  # a promise holds only until the job starts, by whatever way
        self._transition(rec, JobState.RUNNING)
        if self._running_ranked is not None:
            self._rank_running(rec)
            self._no_room.drop(job.id)
        self.stats.starts += 1
        out.append(StartJob(self.now, job.id, rec.attempt, pl))

    def _release(self, rec: JobRecord, *, stopped: bool = False) -> None:
        """The attempt is over for the schedule. With ``stopped`` (we stopped it) and ``hold_stopped``, its
        placement stays allocated until the driver reports the attempt ended (see :meth:`_unhold`)."""
        pl = rec.placement
        assert pl is not None and rec.started_s is not None
        self._stops += 1
        if self._running_ranked is not None:
            _drop(self._running_ranked, (rec.run_key, rec.job.id))
        if self._res is not None and rec.est_end >= self._res.start_s:
            self._res_stale = True
        _drop(self._ends, (rec.est_end, rec.job.id))
        self._allocs.remove(rec.job.id)
        if stopped and self.hold_stopped:
            self._hold(rec.job.id, rec.attempt, pl)
        else:
            self.cap.release(pl)
            if self._running_ranked is not None:
                self._no_room.freed(self.cap.grow_epoch, rec.run_key)
        self._usage.change(rec.job.tenant, -pl.gpu_milli * pl.num_gpus / 1000.0, self.now)
        rec.attained_s += rec.job.request.gpu_equivalent * (self.now - rec.started_s)
        if rec.award is not None:
            self.awards.stop(rec.award, rec.job.id, self.now)
            self._signalled.pop(rec.job.id, None)
        if rec.job.model is not None:
            self._model_jobs[rec.job.model].discard(rec.job.id)

    def _hold(self, job_id: int, attempt: int, pl: Placement) -> None:
        """Keep ``pl`` allocated for a stopped attempt. For planning it is free from now on: it is being stopped."""
        if job_id in self._held:
            raise InvariantError(f"job {job_id} would hold two stopped attempts")
        if job_id not in self._jobs or self._jobs[job_id].state is not JobState.RUNNING:
            self.cap.allocate(pl)  # restored after a restart: nothing holds it yet
        self._held[job_id] = (attempt, pl)
        self._allocs.add(job_id, pl.nodes, self.now)

    def _unhold(self, job_id: int, attempt: int) -> None:
        """A held attempt has ended: its placement is free, and a requeued job may be tried again."""
        held = self._held.get(job_id)
        if held is None or held[0] != attempt:
            return  # a stale report
        del self._held[job_id]
        self._allocs.remove(job_id)
        self.cap.release(held[1])
        self._res_stale = True
        if job_id in self._awaiting:
            self._awaiting.discard(job_id)
            rec = self._jobs[job_id]
            rec.fail_epoch = -1
            self._enqueue(rec)

    def _end(
        self, rec: JobRecord, state: JobState, reason: str, exit_code: int | None = None, *, stopped: bool = False
    ) -> None:
        if rec.state is JobState.RUNNING:
            self._release(rec, stopped=stopped)
            rec.placement = None  # a finished job's placement lives on in the log and the store, not here
        elif rec.job.id in self._awaiting:
            self._awaiting.discard(rec.job.id)
        elif rec.job.id in self._parked_ids:
            self._unpark_one(rec)
        else:
            self._queue.remove(rec)
        rec.end_s = self.now
        rec.reason = reason
        rec.exit_code = exit_code
        self._transition(rec, state, reason if state is not JobState.COMPLETED else "")

    def _requeue(self, rec: JobRecord, reason: str, *, stopped: bool = False) -> None:
        """Back to the queue after an attempt. One this engine ``stopped`` may still be dying (``hold_stopped``):
        the job then waits out of the queue until it has ended."""
        self._release(rec, stopped=stopped)
        rec.placement = None
        rec.fail_epoch = -1
        if rec.job.id in self._held:
            self._transition(rec, JobState.PENDING, f"{reason}; attempt {rec.attempt} is stopping")
            self._awaiting.add(rec.job.id)
        else:
            self._transition(rec, JobState.PENDING, reason)
            self._enqueue(rec)

    def _cancel(self, ev: JobCancelled, out: list[Action]) -> None:
        rec = self._jobs.get(ev.job_id)
        if rec is None or rec.state.terminal:
            return
        running = rec.state is JobState.RUNNING
        if running:
            out.append(StopJob(self.now, rec.job.id, rec.attempt, StopReason.CANCELLED, requeue=False))
        self._end(rec, JobState.CANCELLED, ev.reason, stopped=running)

    def _node_down(self, ev: NodeFailed, out: list[Action]) -> None:
        for jid in self._allocs.jobs_on(ev.node):
            if jid in self._held:
                continue  # already stopping
            rec = self._jobs[jid]
            out.append(StopJob(self.now, rec.job.id, rec.attempt, StopReason.NODE_FAILED, requeue=True))
            self._requeue(rec, f"node {self.topo.node_names[ev.node]} {ev.reason}", stopped=True)
        self.cap.set_node(ev.node, up=False)
        if self._res is not None and self._res.nodes.size and self._res.nodes[ev.node]:
            self._res = None

    # ---- awards -------------------------------------------------------------------------------------------
    def _park(self, rec: JobRecord) -> None:
        self._queue.remove(rec)
        tenant = rec.job.tenant
        self._parked.setdefault(tenant, {})[rec.job.id] = rec
        self._parked_ids.add(rec.job.id)
        if self._res is not None and self._res.job_id == rec.job.id:
            self._res = None
        at = self.awards.next_start(tenant, self.now)
        if math.isfinite(at) and (at, tenant) not in self._unpark_at:
            heapq.heappush(self._unpark_at, (at, tenant))
            self._wake_asks.append(at)

    def _unpark_one(self, rec: JobRecord) -> None:
        jobs = self._parked[rec.job.tenant]
        del jobs[rec.job.id]
        if not jobs:
            del self._parked[rec.job.tenant]
        self._parked_ids.discard(rec.job.id)

    def _unpark(self, tenant: str) -> None:
        for rec in list(self._parked.get(tenant, {}).values()):
            self._unpark_one(rec)
            rec.fail_epoch = -1
            self._enqueue(rec)

    def _charge(self, rec: JobRecord, since: float | None = None, award: int | None = None) -> None:
        """The attempt that starts (or is restored, running since ``since``, charging ``award``) charges its award,
        if it has one."""
        if award is None or award not in self.awards:
            award, _ = self.awards.resolve(rec.job, self.now)
        rec.award = award
        if award is not None:
            self.awards.start(award, rec.job.id, rec.job.request.gpu_equivalent, self.now, since)

    def _police_awards(self, out: list[Action]) -> None:
        """Running jobs whose award has run out: signal each to checkpoint, and stop it (back to the queue, keeping
        its progress) ``award_grace_s`` later, unless the award has been topped up by then. Asks to be woken
        when the next award runs out at the present rates."""
        grace = self._award_grace
        assert grace is not None
        book = self.awards
        now = self.now
        for award in book.charging():
            out_at = book.runs_out_at(award, now)
            if out_at > now + 1e-9:
                asked = self._award_woken.get(award, -math.inf)
                if not now < asked <= out_at:  # (a wake-up already due no later will look again)
                    self._award_woken[award] = out_at
                    out.append(Wake(out_at))
                continue
            why = book.why_not(award, now) or f"award {award} ran out"
            for jid in book.jobs_on(award):
                rec = self._jobs[jid]
                if rec.job.award is None:
                    other, _ = book.resolve(rec.job, now)
                    if other is not None and other != award and book.usable(other, now):
                        # Its tenant has another award that can pay: the attempt goes on, charging that one.
                        book.stop(award, jid, now)
                        book.start(other, jid, rec.job.request.gpu_equivalent, now)
                        rec.award = other
                        self._signalled.pop(jid, None)
                        self._wake_asks.append(now)  # look at the new award's end in the next call
                        continue
                mark = self._signalled.get(jid)
                if mark is None or mark[0] != rec.attempt:
                    mark = (rec.attempt, now + grace)
                    self._signalled[jid] = mark
                    out.append(SignalJob(now, rec.job.id, rec.attempt, mark[1], f"{why}: checkpoint now"))
                    if mark[1] > now:
                        out.append(Wake(mark[1]))
                if now >= mark[1] - 1e-9:
                    out.append(StopJob(now, rec.job.id, rec.attempt, StopReason.AWARD, requeue=True, graceful=True))
                    self._requeue(rec, f"stopped: {why}", stopped=True)

    # ---- what a router asks of a site ---------------------------------------------------------------------
    def busy_gpus(self) -> float:
        """GPUs held now: by running jobs, by attempts being stopped, and down nodes' GPUs count as held."""
        return float(self._num_gpus - self.cap.whole_total)

    def queued_gpus(self) -> float:
        """GPUs the waiting jobs ask for."""
        return self._queue.gpus

    def committed_gpus(self) -> float:
        """``busy_gpus() + queued_gpus()``: a site's load, in one call (a router asks it for every site and job)."""
        return self._num_gpus - self.cap.whole_total + self._queue.gpus

    def estimate_start(self, job: Job, now: float, *, ahead_gpus: float = 0.0, ahead_work_gpu_s: float = 0.0) -> float:
        """When ``job`` would start here if it were submitted now: a fluid estimate of this site's own schedule.

        Running jobs end at their time limits (``DEFAULT_RUNTIME_S`` without one); the waiting jobs (plus
        ``ahead_*``, work a router has just sent here) go first and use every GPU as it frees up, so their
        GPU-seconds are served before the job. The job then starts at the first moment both that work is done and
        enough GPUs are free. It counts GPUs, not their shape: a job that fragmentation or a one-domain constraint
        would delay starts later than this says. With an empty queue and enough free GPUs it is ``now``.
        Cost: a walk over running jobs in order of their ends, stopping as soon as the answer is known.
        """
        now = max(now, self.now)
        g = job.request.gpu_equivalent
        free = float(self.cap.free_whole(job.request.models))
        work = self._queue.work_gpu_s + ahead_work_gpu_s
        if work <= 0.0 and ahead_gpus <= 0.0 and free >= g:
            return now
        # GPUs on nodes that are up and not drained: all a job could ever get here while they stay so.
        up = float(self.topo.node_gpus[self.cap.schedulable].sum())
        if g > up:
            return math.inf
        # The fluid model: A(t) = GPU-seconds not held by running jobs between now and t; the queue needs `work`.
        t, area = now, 0.0
        jobs = self._jobs
        open_ended: list[float] = []
        for end, jid in self._ends:
            if end == math.inf:
                rec = jobs[jid]
                started = rec.started_s if rec.started_s is not None else now
                open_ended.append(max(started + DEFAULT_RUNTIME_S, now))
                continue
            end = max(end, now)
            step = free * (end - t)
            if area + step >= work and free >= g:
                return t + (max(work - area, 0.0) / free if free > 0 else 0.0)
            area += step
            t = end
            free = min(free + jobs[jid].job.request.gpu_equivalent, up)
        if open_ended:
            by_end = sorted(open_ended)
            gpus = [self._jobs[jid].job.request.gpu_equivalent for end, jid in self._ends if end == math.inf]
            for end in by_end:
                step = free * (end - t)
                if area + step >= work and free >= g:
                    return t + (max(work - area, 0.0) / free if free > 0 else 0.0)
                area += step
                t = end
                free = min(free + gpus.pop(), up)  # open-ended jobs all run DEFAULT_RUNTIME_S: the order hardly matters
        if free < g or free <= 0.0:
            return math.inf  # not even when everything has ended (nodes are down)
        return t + max(work - area, 0.0) / free

    # ---- admission: can this request ever run here? -------------------------------------------------------
    def never_fits(self, job: Job) -> str | None:
        """Why ``job`` could never run on this site, even empty (None if it could). Pure and cached per request."""
        return self._never_fits(job)

    def never_fits_field(self, job: Job) -> tuple[str, str] | None:
        """:meth:`never_fits` with the request field to blame (``gpus``, ``models``, ``locality``, ``cpu_milli``
        or ``mem_mib``): the API answers a submission with it, so the rule lives here only."""
        if self._never_fits(job) is None:
            return None
        return self._memo.never[job.request]

    def _never_fits(self, job: Job) -> str | None:
        if self.tenants is not None and job.tenant not in self.tenants:
            return f"unknown tenant {job.tenant!r}"
        req = job.request
        never = self._memo.never
        if req not in never:
            found = self._explain_never(req)
            if found is None:
                # Whether a request fits an empty site does not depend on the policy; first-fit has no state to
                # disturb.
                placed = FirstFit().place(job, self._empty, PlaceContext(np.random.default_rng(0)))
                if not isinstance(placed, Placement):
                    found = ("gpus", f"does not fit even on the empty site ({placed})")
            never[req] = found
        found = never[req]
        return None if found is None else found[1]

    def _explain_never(self, req: JobRequest) -> tuple[str, str] | None:
        topo = self.topo
        by_model = topo.gpus_by_model()
        if req.gpus and req.models is not None and not set(req.models) & set(by_model):
            return "models", f"asks for GPU model {'|'.join(req.models)}; the site has {', '.join(by_model)}"
        allowed = sum(c for m, c in by_model.items() if req.models is None or m in req.models)
        if req.gpus > allowed:
            return "gpus", f"asks for {req.gpus:,} GPUs; the site has {allowed:,} of the allowed models"
        if req.locality is not Locality.ANY and req.gpus > 1:
            group = topo.node_domain if req.locality is Locality.DOMAIN else topo.node_pod
            biggest = int(np.bincount(group, weights=topo.node_gpus).max())
            if req.gpus > biggest:
                unit = "NVLink domain" if req.locality is Locality.DOMAIN else "pod"
                return "locality", f"asks for {req.gpus:,} GPUs in one {unit}; the largest {unit} has {biggest:,}"
        if req.cpu_milli > int(topo.node_cpu.max()) and (req.gpus <= 1 or self._empty.single_node(req)):
            return "cpu_milli", (
                f"asks for {req.cpu_milli / 1000:g} CPU cores on one node; the largest node has "
                f"{int(topo.node_cpu.max()) / 1000:g}"
            )
        if req.mem_mib > int(topo.node_mem.max()) and (req.gpus <= 1 or self._empty.single_node(req)):
            return "mem_mib", (
                f"asks for {req.mem_mib:,} MiB of memory on one node; the largest node has {int(topo.node_mem.max()):,}"
            )
        return None

    # ---- the scheduling pass ------------------------------------------------------------------------------
    def _schedule(self, out: list[Action]) -> None:
        """One pass: start jobs in order while they fit (preempting where the policy allows), then backfill behind
        the first that does not. Started jobs leave the queue after the walk. The walk stops early once every
        request shape still waiting has missed in this pass (:class:`~gigafactory.engine.memo.PassMisses`):
        nothing behind could start."""
        if not len(self._queue):
            return
        self.stats.passes += 1
        profile = self.profile
        backfill = profile.backfill
        admit = profile.admit
        admit_all = admit.admits_all
        preemptive = profile.preempt.stops_jobs
        cap = self.cap
        ctx = PlaceContext(self._rng)
        res: Reservation | None = None
        tested = 0
        self._preempt_budget = PREEMPTIONS_PER_PASS if preemptive else 0
        self._preempt_missed.clear()
        started: list[JobRecord] = []
        parked: list[JobRecord] = []
        if self._promised:
            self._keep_promises(ctx, out)
        grouped = self._grouped
        walk = self._queue.walk(self._rank if grouped is not None else None)
        pending = JobState.PENDING
        fit_any = self._memo.fit_any
        misses = self._misses = PassMisses(self._memo, cap.grow_epoch)
        shapes = self._queue.shapes
        # Skipping the rest of the walk must not skip an admission verdict (it parks jobs, and says why they wait).
        may_stop = admit_all
        for rec in walk:  # (the queue holds the records: no lookup by id per job)
            if rec.state is not pending:
                continue  # stopped and requeued earlier in this pass: it waits for the next one
            if not admit_all:
                verdict = admit.admit(rec.job, self)
                why = "" if verdict.ok else "; ".join(verdict.reasons) or str(verdict)
                if why != rec.wait_reason:
                    rec.wait_reason = why
                    self.waits_changed.add(rec.job.id)
                if why:
                    self.stats.over_quota += 1
                    if verdict.code is Code.UNFUNDED:
                        parked.append(rec)
                    continue
            if res is not None and not preemptive:
                # Behind the head, the cheap checks come inline: a job that did not fit while free capacity has
                # not grown (and the reservation is the same), or whose request shape already failed against
                # this very capacity.
                if rec.fail_epoch == cap.grow_epoch and (rec.fail_res < 0 or rec.fail_res == self._res_version):
                    if (
                        rec.fail_res < 0
                        and not misses.has(rec.shape, cap.grow_epoch)
                        and misses.miss(rec.shape, cap.grow_epoch, aggregate=not self._memo.could_fit(rec.shape))
                        and may_stop
                        and misses.all_of(shapes, cap.grow_epoch)
                    ):
                        break
                    tested += 1
                    if tested > backfill.depth:
                        break
                    continue
                hit = fit_any.get(rec.shape)
                if hit is not None and hit[0] == cap.version and not hit[1]:
                    rec.fail_epoch, rec.fail_res = cap.grow_epoch, -1
                    if (
                        misses.miss(rec.shape, cap.grow_epoch, aggregate=True)
                        and may_stop
                        and misses.all_of(shapes, cap.grow_epoch)
                    ):
                        break
                    tested += 1
                    if tested > backfill.depth:
                        break
                    continue
            if res is not None:
                tested += 1
                if tested > backfill.depth:
                    break
            exclude = None if res is None else backfill.exclusion(rec.job, self.now, res)
            self._new_miss = False
            placed = self._try_or_preempt(rec, ctx, exclude, out)
            if placed is not None:
                self._start(rec, placed, out)
                started.append(rec)
                if res is not None:
                    self.stats.backfilled += 1
                if grouped is not None:
                    walk.charge(rec.group, grouped.charge(rec.job))
                continue
            if (
                self._new_miss
                and may_stop
                and not self._preempt_budget
                and res is not None
                and misses.all_of(shapes, cap.grow_epoch)
            ):
                break
            if res is not None:
                continue
            # The first job that does not fit is the head: the backfill policy may give it a reservation.
            if started and self._res is not None:
                self._res = None  # the jobs that just started may sit on the old head's nodes
            res = self._reservation(rec)
            if res is None:
                break
            if not any_of(cap.hist[:, 1:]) and not any_of(cap.avail_maxfree) and not self._queue.cpu_only:
                break  # not one GPU or GPU share is free: nothing behind the head can start
            if backfill.interval > 0:
                due = self._last_scan + backfill.interval
                if self.now < due:
                    if due > self._woken_for:
                        self._woken_for = due
                        out.append(Wake(due))
                    break
                self._last_scan = self.now
        for rec in started:
            self._queue.remove(rec)
        self._queue.end_walk()
        for rec in parked:
            self._park(rec)

    def _try_or_preempt(
        self, rec: JobRecord, ctx: PlaceContext, exclude: np.ndarray | None, out: list[Action]
    ) -> Placement | None:
        """Where ``rec`` can start now: placed as things are, or else (while the pass's preemption budget lasts)
        once the preemption policy's candidates are stopped. None if neither."""
        placed = self._try(rec, ctx, exclude)
        if placed is None and self._preempt_budget:
            self._preempt_budget -= 1
            placed = self._preempt_for(rec, ctx, exclude, out)
        return placed

    def _rank(self, groups: list[str], charged: dict[str, float]) -> dict[str, object]:
        assert self._grouped is not None
        return self._grouped.rank_groups(groups, self, charged)

    def _try(self, rec: JobRecord, ctx: PlaceContext, exclude: np.ndarray | None) -> Placement | None:
        """Place ``rec`` now if it fits, remembering a failure until free capacity grows.

        Before calling the placement policy it asks the capacity's aggregates whether the request could fit at
        all (and, under a reservation, outside the reserved nodes). Answers are cached per request shape while
        the capacity stands still, so a pass over many jobs of a few shapes costs a few dictionary lookups. A
        miss on the whole site is noted in the pass's misses.
        """
        cap = self.cap
        epoch = cap.grow_epoch
        if rec.fail_epoch == epoch and (rec.fail_res < 0 or rec.fail_res == self._res_version):
            self.stats.memo_skips += 1
            shape = rec.shape
            if rec.fail_res < 0 and not self._misses.has(shape, epoch):
                aggregate = not self._memo.could_fit(shape)
                self._new_miss |= self._misses.miss(shape, epoch, aggregate=aggregate)
            return None
        memo = self._memo
        shape = rec.shape
        hit = memo.fit_any.get(shape)  # (inline: this is the hottest lookup of a pass)
        if not (hit[1] if hit is not None and hit[0] == cap.version else memo.could_fit(shape)):
            self.stats.quick_rejects += 1
            rec.fail_epoch, rec.fail_res = epoch, -1
            if not self._misses.has(shape, epoch):
                self._new_miss |= self._misses.miss(shape, epoch, aggregate=True)
            return None
        if exclude is not None and not memo.could_fit_outside(shape, self._res_version):
            self.stats.quick_rejects += 1
            rec.fail_epoch, rec.fail_res = epoch, self._res_version
            return None
        self.stats.place_calls += 1
        placed = self.profile.place.place(rec.job, cap, PlaceContext(ctx.rng, self._outside(rec.job.id, exclude)))
        if isinstance(placed, Placement):
            return placed
        if self._shield is not None:
            return None  # not remembered: the promised nodes are others' only until their promise is kept
        rec.fail_epoch = epoch
        if exclude is None:
            rec.fail_res = -1
            if not self._misses.has(shape, epoch):
                self._new_miss |= self._misses.miss(shape, epoch, aggregate=False)
        else:
            rec.fail_res = self._res_version
        return None

    def _preempt_for(
        self, rec: JobRecord, ctx: PlaceContext, exclude: np.ndarray | None, out: list[Action]
    ) -> Placement | None:
        """Stop as few of the preemption policy's candidates as ``rec`` needs, in its order, then place ``rec``.

        The candidates are released one by one on a copy of the capacity until ``rec`` fits there; only those on
        the nodes it would take are then stopped for real. Nothing is stopped if ``rec`` would not fit anyway.
        """
        # A failed attempt stands while neither the capacity nor the candidates' ranks change: a running job
        # demoted since (LAS) ranks below ``rec`` now, and under continuous keys every rank moves with the clock.
        if self._running_ranked is not None:
            self._rerank_due()
        if self._ranks_running and not self._continuous_keys and not self._promised:
            # When the candidates are the jobs ranked below, the room stopping them makes grows only when free
            # capacity grows (an end, a stop, a node back: the grow epoch) or a running job drops in rank: a start
            # moves GPUs from free to a candidate, or takes them. So a failure stands until one of those, as a
            # failed fit stands until free capacity grows (``_try``). (Bitwise not: apart from capacity versions.)
            res = self._res_version if exclude is not None else -1
            version = (~self.cap.grow_epoch, self._reranked, float(res))
        else:
            version = (self.cap.version, self._reranked, self.now if self._continuous_keys else 0.0)
        if rec.preempt_version == version:
            return None  # nothing has changed since preemption last could not make room for it
        rec.preempt_version = version
        same = self._ranks_running and exclude is None and not self._continuous_keys
        if same and self._preempt_missed.get(rec.shape) == version[:2]:
            return None  # a job of this shape ranked above it could not make room this pass: neither can it
        if (
            self._running_ranked is not None
            and not self._held  # (else the trial first asks whether the held attempts' ends make room)
            and self._no_room.stands(self.cap.grow_epoch, rec.job.id, rec.key)
        ):
            found = None  # stopping every candidate would not make room, and nothing since has freed any for it
        else:
            self.stats.preempt_trials += 1
            found = self._preempt_place(rec, exclude)
        if found is None:
            if same:
                self._preempt_missed[rec.shape] = (version[0], version[1])
            return None
        placed, released = found
        needed = set(placed.nodes)
        for victim in released:
            assert victim.placement is not None
            if needed.isdisjoint(victim.placement.nodes):
                continue
            out.append(
                StopJob(
                    self.now, victim.job.id, victim.attempt, StopReason.PREEMPTED, requeue=True,
                    graceful=self.profile.preempt.graceful,
                )
            )  # fmt: skip
            self._requeue(victim, f"preempted for job {rec.job.id} ({self.profile.preempt.name})", stopped=True)
            self.stats.preempted += 1
        rec.fail_epoch = -1
        started = self._try(rec, ctx, exclude)
        if started is None and self._held:
            self._promise(rec.job.id, placed.nodes)  # the room it made is its own once those attempts have ended
        return started

    def _promise(self, job_id: int, nodes: tuple[int, ...]) -> None:
        self._promised[job_id] = nodes
        self._shield = None if not self._promised else self._shield_nodes()

    def _unpromise(self, job_id: int) -> None:
        del self._promised[job_id]
        self._shield = self._shield_nodes() if self._promised else None

    def _shield_nodes(self, but: int | None = None) -> np.ndarray:
        mask = np.zeros(self.topo.num_nodes, np.bool_)
        for jid, nodes in self._promised.items():
            if jid != but:
                mask[list(nodes)] = True
        return mask

    def _outside(self, job_id: int, exclude: np.ndarray | None) -> np.ndarray | None:
        """The nodes ``job_id`` may not be placed on now: ``exclude`` (a reservation's) and those promised to other
        jobs. Applied only where a placement is asked for, so ``exclude`` keeps meaning the reservation's."""
        if self._shield is None:
            return exclude
        if job_id not in self._promised:
            shield = self._shield
        elif len(self._promised) > 1:
            shield = self._shield_nodes(but=job_id)
        else:
            return exclude
        return shield if exclude is None else exclude | shield

    def _keep_promises(self, ctx: PlaceContext, out: list[Action]) -> None:
        """Start the jobs that made room by stopping others, where that room is free now, before anyone else."""
        admit = self.profile.admit
        for jid in list(self._promised):
            rec = self._jobs.get(jid)
            if rec is None or rec.state is not JobState.PENDING or jid in self._awaiting or jid in self._parked_ids:
                self._unpromise(jid)
                continue
            if not admit.admits_all and not admit.admit(rec.job, self).ok:
                self._unpromise(jid)
                continue
            placed = self._try(rec, ctx, None)
            if placed is not None:
                self._queue.remove(rec)
                self._start(rec, placed, out)  # which ends the promise
            elif not any(set(self._promised[jid]) & set(pl.nodes) for _, pl in self._held.values()):
                self._unpromise(jid)  # what it stopped has ended and still it does not fit (a node failed, say)

    def _preempt_place(self, rec: JobRecord, exclude: np.ndarray | None) -> tuple[Placement, list[JobRecord]] | None:
        """Where ``rec`` would go once the fewest of the candidates, in order, have stopped (on a trial copy of the
        capacity), and the candidates released to find it; None if stopping them cannot make room."""
        if self._held and self._fits_once_held_end(rec, exclude):
            return None  # attempts being stopped will make room: stop no one else
        candidates = self.profile.preempt.candidates(rec, self)
        if not candidates:
            return None
        if not self._could_fit_without(rec.job.request, [self._jobs[c.job.id] for c in candidates]):
            if self._running_ranked is not None:
                self._no_room.note(self.cap.grow_epoch, rec.job.id, rec.key)
            return None  # even stopping all of them would not make room
        trial = self.cap.copy(into=self._trial)
        released: list[JobRecord] = []
        for cand in candidates:
            victim = self._jobs[cand.job.id]
            assert victim.placement is not None
            trial.release(victim.placement)
            released.append(victim)
            if trial.could_fit(rec.job.request):
                attempt = self.profile.place.place(
                    rec.job, trial, PlaceContext(self._plan_rng, self._outside(rec.job.id, exclude))
                )
                if isinstance(attempt, Placement):
                    return attempt, released
        return None

    def _fits_once_held_end(self, rec: JobRecord, exclude: np.ndarray | None) -> bool:
        trial = self.cap.copy(into=self._trial)
        for _, pl in self._held.values():
            trial.release(pl)
        if not trial.could_fit(rec.job.request):
            return False
        return isinstance(
            self.profile.place.place(rec.job, trial, PlaceContext(self._plan_rng, self._outside(rec.job.id, exclude))),
            Placement,
        )

    def _could_fit_without(self, req: JobRequest, jobs: list[JobRecord]) -> bool:
        """A necessary condition for ``req`` to fit once the running ``jobs`` stop, counted in milli-GPU per node:
        what is free now plus what the jobs hold on the few nodes they touch (not a column of the site per call).
        """
        if req.gpus == 0 or req.fractional:
            return True
        cap = self.cap
        memo = self._memo
        need = req.gpus * 1000
        if req.gang and cap.single_node(req) and memo.most_free_milli(req.models) >= need:
            return True
        usable = memo.usable(req.models)[1]
        gained: dict[int, int] = {}
        for rec in jobs:
            pl = rec.placement
            assert pl is not None
            on = pl.nodes
            for i in range(len(on)):
                n = on[i]
                if usable[n]:
                    gained[n] = gained.get(n, 0) + len(pl.node_gpus[i]) * pl.gpu_milli
        free = cap.node_milli
        if not req.gang:
            return memo.all_free_milli(req.models) + sum(gained.values()) >= need
        if cap.single_node(req):
            return any(int(free[n]) + more >= need for n, more in gained.items())
        # A multi-node gang: wholly free nodes of the largest size (on the site, as stopping them would leave it).
        top = self._top_gpus
        whole = sum(int(cap.full[m, top]) for m in cap.model_ids(req.models))
        sizes = self._node_gpus
        for n, more in gained.items():
            if sizes[n] == top and int(free[n]) < top * 1000 <= int(free[n]) + more:
                whole += 1
        return whole * top >= req.gpus - (req.gpus % top)

    def _reservation(self, head: JobRecord) -> Reservation | None:
        res = self._res
        if (
            res is not None
            and res.job_id == head.job.id
            and self.now < res.start_s
            and (not self._res_stale or self.now - self._res_at < RESERVATION_REFRESH_S)
        ):
            return res
        old = res
        res = self.profile.backfill.reserve(head.job, self._planner, self.now)
        if res is not None:
            self.stats.reservations += 1
            self._res_at = self.now
            self._res_stale = False
            if old is not None and _same_promise(old, res):
                # A refresh that finds the same start on the same nodes (about half of them on a busy site):
                # the marked nodes stand, and so does every failure remembered against this reservation.
                res = old
            else:
                self._res_version += 1
                self.cap.mark(res.nodes if res.nodes.size else np.zeros(self.topo.num_nodes, np.bool_))
        self._res = res
        return res

    # ---- invariants ---------------------------------------------------------------------------------------
    def check(self) -> None:
        """Check every invariant; raise :class:`InvariantError` on the first broken one."""
        running = [r for r in self._jobs.values() if r.state is JobState.RUNNING]
        if any(r.placement is None for r in running):
            raise InvariantError("a running job has no placement")
        self.cap.check(
            [r.placement for r in running if r.placement is not None] + [pl for _, pl in self._held.values()]
        )
        counts = dict.fromkeys(JobState, 0)
        for r in self._jobs.values():
            counts[r.state] += 1
            if r.started_s is not None and r.started_s < r.submitted_s:
                raise InvariantError(f"job {r.job.id} started before it was submitted")
        if counts != self._counts:
            raise InvariantError(f"state counts {self._counts} disagree with the records {counts}")
        queued = self._queue.ids()
        pending = {jid for jid, r in self._jobs.items() if r.state is JobState.PENDING} - self._awaiting
        if self._parked_ids & set(queued) or not self._parked_ids <= pending:
            raise InvariantError("a parked job is queued, or is not pending")
        pending -= self._parked_ids
        if set(queued) != pending or len(queued) != len(pending):
            raise InvariantError("the queue does not hold exactly the pending jobs")
        if not self._awaiting <= set(self._held):
            raise InvariantError("a requeued job waits for an attempt that is not held")
        ends = {jid for _, jid in self._ends}
        if ends != {r.job.id for r in running} or len(ends) != len(running):
            raise InvariantError("the end index does not hold exactly the running jobs")
        held: dict[str, float] = {}
        for r in running:
            assert r.placement is not None
            held[r.job.tenant] = held.get(r.job.tenant, 0.0) + r.placement.gpu_milli * r.placement.num_gpus / 1000
        for tenant in set(held) | set(self._usage.tenants()):
            if abs(held.get(tenant, 0.0) - self._usage.held(tenant)) > 1e-6:
                raise InvariantError(f"tenant {tenant!r}: GPUs held disagree with the running jobs")
        charged = {(r.award, r.job.id) for r in running if r.award is not None}
        booked = {(a, jid) for a in self.awards.charging() for jid in self.awards.jobs_on(a)}
        if charged != booked:
            raise InvariantError("the award book's charges disagree with the running jobs' awards")
        by_model = {(r.job.model, r.job.id) for r in running if r.job.model is not None}
        if by_model != {(m, j) for m, jobs in self._model_jobs.items() for j in jobs}:
            raise InvariantError("the models' running jobs disagree with the running jobs")


def _same_promise(a: Reservation, b: Reservation) -> bool:
    """The same job, start and nodes (a refreshed reservation that changed nothing)."""
    return a.job_id == b.job_id and a.start_s == b.start_s and bool(np.array_equal(a.node_ids, b.node_ids))


def _drop(ordered: list[Any], item: object) -> None:
    """Remove ``item`` from the sorted list ``ordered`` (by bisection: no scan)."""
    i = bisect.bisect_left(ordered, item)
    if i == len(ordered) or ordered[i] != item:
        raise InvariantError(f"{item!r} is not where it should be in a sorted list of the running jobs")
    del ordered[i]
