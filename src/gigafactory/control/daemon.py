"""The daemon: the engine on the wall clock, with the store as its memory and executors as its hands.

Each turn of the loop (:meth:`Daemon.step`):

1. **Collect.** New submissions (jobs in state ``submitted``), the inbox (cancellations, drains, resumes, tenant
   changes), and what the executors report (attempts that ended, nodes that went down or came back).
2. **Decide.** ``engine.handle(events)``: the same pure engine the twin drives.
3. **Persist, in one transaction.** Mark what was processed, write every job's new state, its history and its
   accounting, and append the engine's start and stop actions to the outbox.
4. **Act.** Let the executors carry out the outbox, then mark each action done.

Because decisions are durable before anything acts, and executors are idempotent per (job, attempt), the daemon
can be killed at any point (``kill -9``) and restarted: :meth:`Daemon.recover` rebuilds the engine from the store
(waiting jobs as waiting, running jobs on their placements, stopped attempts not yet gone as held), and the next
step reads the inbox (a cancellation waiting there wins) before it carries out the actions not yet done. No job is
lost and none is launched twice.

What it promises besides:

* **GPUs are free only when processes are gone.** The engine runs with ``hold_stopped``: a cancelled or preempted
  attempt keeps its placement until the executor reports it ended, and a requeued job waits for that too.
* **Usage is billed once per attempt, from the executor's own times** (the runner's start, and the moment the last
  process was gone), when the executor reports the end, even if the daemon was down at the time. The usage table
  is unique per (job, attempt).
* **One controller.** ``run_daemon`` takes the store's lease (:mod:`gigafactory.control.lease`), and every write
  transaction here is fenced by it.
* **A launch that fails fails its job alone**, with the reason; a store that is locked or unreachable is waited
  for. Nothing a tenant submits can stop the loop.
* **A network of sites.** The store may hold several sites (``serve --network``), each with its own engine and
  executor. A new job is routed when the daemon first takes it (:class:`~gigafactory.network.router.Router`, the
  twin's own), and its site and the reason are written with its first state, in the same transaction: a daemon
  killed while routing routes the job again from scratch, never twice. A job stays on its site: an interrupted
  attempt is requeued there.
* **A job's ``estimate_s`` is its time limit** (``--time``, as in Slurm). Backfill plans with it, so a job that ran
  past it would take GPUs promised to others: it is stopped :data:`TIME_LIMIT_GRACE_S` after its limit (the
  launch's own delay), and ends *cancelled* with the reason.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine as Store
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from gigafactory.control.executors.base import Executor, Launch, LaunchError, Report
from gigafactory.control.identity import Identity
from gigafactory.control.lease import Lease
from gigafactory.control.store import accounts, inbox, outbox, programme
from gigafactory.control.store import desk as deskstore
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.db import get_meta, set_meta
from gigafactory.control.store.schema import jobs as jobs_table
from gigafactory.control.store.site import StoredSite, load_sites, node_rows, set_node_state
from gigafactory.core.actions import SignalJob, StartJob, StopJob
from gigafactory.core.awards import Award
from gigafactory.core.compute import ModelCompute
from gigafactory.core.errors import ConfigError
from gigafactory.core.events import (
    AttemptStopping,
    AwardChanged,
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
from gigafactory.core.jobs import Job, JobId, JobRequest, JobState, Locality
from gigafactory.core.placement import Placement
from gigafactory.core.progress import NO_CHECKPOINTS, Checkpointing
from gigafactory.core.status import Status
from gigafactory.core.topology import Topology
from gigafactory.desk.compute import Purpose
from gigafactory.engine.engine import Engine
from gigafactory.engine.forecast import forecast_starts
from gigafactory.engine.log import TransitionLog
from gigafactory.network.router import Router, SiteState
from gigafactory.policy.profile import DEFAULT_ROUTE, parse_route

__all__ = ["Daemon", "StepStats", "job_from_row", "placement_from_json", "placement_to_json"]

HEARTBEAT_S = 2.0  # an idle daemon writes its heartbeat this often (health calls it stale after 15 s)
# A start that fails for a reason that may pass (the executor unreachable, the machine out of processes for a
# moment) is tried again for this long; then its job fails with the reason.
START_RETRY_S = 120.0
TIME_LIMIT_GRACE_S = 10.0
# Waiting jobs that allow a move, checked per turn while a site has nodes out (the rest wait for later turns).
REROUTE_CHECKS_PER_STEP = 200

log = logging.getLogger("gigafactory.daemon")


@dataclass
class StepStats:
    submitted: int = 0
    events: int = 0
    reports: int = 0
    actions: int = 0
    cycle_s: float = 0.0  # engine.handle alone
    persist_s: float = 0.0
    act_s: float = 0.0


def job_from_row(row: Any) -> Job:
    ck = NO_CHECKPOINTS
    if row.ckpt_s:
        ck = Checkpointing(interval_s=row.ckpt_s, write_s=row.ckpt_write_s or 0.0)
    return Job(
        id=JobId(int(row.id)),
        request=JobRequest(
            gpus=int(row.gpus),
            gpu_milli=int(row.gpu_milli),
            cpu_milli=int(row.cpu_milli),
            mem_mib=int(row.mem_mib),
            models=tuple(row.models) if row.models else None,
            locality=Locality(row.locality),
        ),
        submit_s=float(row.submitted_at),
        tenant=row.tenant,
        estimate_s=row.estimate_s,
        priority=int(row.priority),
        name=row.name,
        checkpoint=ck,
        sites=tuple(row.sites) if getattr(row, "sites", None) else None,
        countries=tuple(row.countries) if getattr(row, "countries", None) else None,
        reroute=bool(getattr(row, "reroute", False)),
        award=getattr(row, "award", None),
        # (Only what counts towards the thresholds can take a model over them: an evaluation job is never held.)
        model=row.ai_model if getattr(row, "ai_model", None) and Purpose(row.ai_purpose).counts else None,
    )


@dataclass
class _Site:
    """One site of the store, as the daemon runs it."""

    index: int
    stored: StoredSite
    engine: Engine
    executor: Executor
    view: SiteState
    log_seen: int = 0
    node_index: dict[str, int] = field(default_factory=dict)  # node name -> index

    def __post_init__(self) -> None:
        self.node_index = {name: i for i, name in enumerate(self.topo.node_names)}

    @property
    def name(self) -> str:
        return self.stored.name

    @property
    def topo(self) -> Topology:
        return self.stored.topology


def placement_to_json(pl: Placement) -> dict[str, Any]:
    return {
        "nodes": list(pl.nodes),
        "gpus": [list(g) for g in pl.node_gpus],
        "gpu_milli": pl.gpu_milli,
        "cpu": list(pl.cpu),
        "mem": list(pl.mem),
    }


def placement_from_json(data: dict[str, Any]) -> Placement:
    return Placement(
        tuple(data["nodes"]),
        tuple(tuple(g) for g in data["gpus"]),
        int(data["gpu_milli"]),
        tuple(data["cpu"]),
        tuple(data["mem"]),
    )


@dataclass
class Daemon:
    store: Store
    executor: Executor | list[Executor]  # one for every site, or one per site in the store's order
    profile: str = "fifo+easy+best-fit+award"
    clock: Callable[[], float] = time.time
    batch: int = 20_000
    forecast_every_s: float = 5.0
    fork_forecast: bool = True
    lease: Lease | None = None  # the store's lease, which fences every write (run_daemon takes it)
    route: str | None = None  # the route policy; None: the store's (set by its network), else the default
    stats: list[StepStats] = field(default_factory=list, init=False)

    @property
    def engine(self) -> Engine:
        """The first site's engine (the only one, unless the store serves a network)."""
        return self.sites[0].engine

    @property
    def topo(self) -> Topology:
        return self.sites[0].topo

    def __post_init__(self) -> None:
        self._forecast_cost_s = 0.0
        self._last_forecast = -math.inf
        self._last_beat = -math.inf
        self._forecast_run: _ForecastRun | None = None
        self.recover()

    # ---- start-up ---------------------------------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild every site's engine from the store. The next step reads the inbox, then carries out the outbox."""
        self._max_seen = 0  # the highest job id taken from the store
        # Every attempt started and not yet billed: (job, attempt) -> (tenant, GPUs, start as seen, site, award).
        self._attempts: dict[tuple[int, int], tuple[str, float, float, str, int | None]] = {}
        self._late: list[Report] = []  # ends the daemon learnt of itself (starts that failed), for the next step
        self._start_errors: dict[tuple[int, int], tuple[float, int]] = {}  # (job, attempt) -> (first error, tries)
        self._forget: set[int] = set()  # ended jobs whose stopped attempt is not gone yet
        self._deadlines: list[tuple[float, int, int]] = []  # heap of (time limit, job, attempt) of running jobs
        self._site_of: dict[int, _Site] = {}  # every job an engine holds -> its site
        with self.store.connect() as conn:
            stored = load_sites(conn)
            if not stored:
                raise ConfigError("the store has no site yet: start it with `gigafactory serve` first")
            executors = self.executor if isinstance(self.executor, list) else [self.executor] * len(stored)
            if len(executors) != len(stored):
                raise ConfigError(f"{len(executors)} executors for {len(stored)} sites")
            tree = accounts.load_tree(conn)
            self._identities = accounts.identities(conn)
            route = parse_route(self.route or get_meta(conn, "route") or DEFAULT_ROUTE)
            self.sites = []
            for k, (st, ex) in enumerate(zip(stored, executors, strict=True)):
                eng = Engine(st.topology, self.profile, tenants=tree, seed=k, keep_log=True, hold_stopped=True)
                self.sites.append(_Site(k, st, eng, ex, SiteState(st.as_spec(), eng)))
            self._by_name = {x.name: x for x in self.sites}
            self._by_id = {x.stored.id: x for x in self.sites}
            self.router = Router([x.view for x in self.sites], route)
            now = self.clock()
            events: dict[int, list[Event]] = {x.index: [] for x in self.sites}
            self._awards: dict[int, tuple[Award, str]] = {}
            self._award_events(conn, now, events, restore=True)
            self._models: dict[int, ModelCompute] = {}
            self._models_dirty = False
            self._model_events(conn, now, events)
            for row in jobstore.stopping_attempts(conn):
                site = self._site_named(row.site)
                pl = placement_from_json(row.placement)
                events[site.index].append(AttemptStopping(now, JobId(int(row.id)), int(row.attempt), pl))
                self._attempts[(int(row.id), int(row.attempt))] = (row.tenant, _gpus(pl), float(row.started_at),
                                                                   site.name, row.charged_award)  # fmt: skip
                self._site_of[int(row.id)] = site
                if row.state not in ("pending", "running"):
                    self._forget.add(int(row.id))
            for node in node_rows(conn):
                site = self._by_id[int(str(node["site_id"]))]
                idx, reason = int(str(node["idx"])), str(node["reason"])
                if node["state"] == "down":
                    events[site.index].append(NodeFailed(now, idx, reason=reason or "down"))
                elif node["state"] == "drained":
                    events[site.index].append(NodeDrained(now, idx, reason=reason or "drained"))
            active = conn.execute(
                select(jobs_table).where(jobs_table.c.state.in_(["pending", "running"])).order_by(jobs_table.c.id)
            ).all()
            attained = jobstore.gpu_seconds_by_job(conn, [int(r.id) for r in active])
            for row in active:
                job = job_from_row(row)
                site = self._site_named(row.site)
                self._site_of[int(row.id)] = site
                done_gpu_s = attained.get(int(row.id), 0.0)
                if row.state == "running" and row.placement:
                    pl = placement_from_json(row.placement)
                    events[site.index].append(
                        JobRestored(now, job, int(row.attempt), pl, float(row.started_at), done_gpu_s,
                                    row.charged_award)
                    )  # fmt: skip
                    self._attempts[(int(row.id), int(row.attempt))] = (row.tenant, _gpus(pl), float(row.started_at),
                                                                       site.name, row.charged_award)  # fmt: skip
                    self._limit(job, int(row.attempt), float(row.started_at))
                else:
                    events[site.index].append(JobRestored(now, job, int(row.attempt), None, None, done_gpu_s))
        # Restoring only rebuilds state: the engine may not start anything before the first real step.
        for site in self.sites:
            site.engine.handle(events[site.index])
            site.engine.log = TransitionLog()
            site.log_seen = 0
        self._max_seen = max(self._max_seen_in_store(), 0)

    def _reroute(self, now: float, events: dict[int, list[Event]]) -> dict[int, tuple[_Site, str]]:
        """Jobs that allow it (``reroute``) leave a site that can no longer start them, even once everything running
        there has ended (its nodes are down or drained), for another allowed site. Others wait where they are."""
        moved: dict[int, tuple[_Site, str]] = {}
        if len(self.sites) < 2:
            return moved
        budget = REROUTE_CHECKS_PER_STEP  # many waiting jobs that allow a move cannot slow a turn down
        for site in self.sites:
            eng = site.engine
            if bool(eng.cap.schedulable.all()):
                continue  # every node up: nothing is stranded here
            for jid in eng.pending():
                rec = eng.job(jid)
                if not rec.job.reroute:
                    continue
                if budget <= 0:
                    return moved
                budget -= 1
                if math.isfinite(eng.estimate_start(rec.job, now)):
                    continue
                routed = self.router.route_job(rec.job, now, avoid=site.index)
                if isinstance(routed, Status) or eng.withdraw(jid) is None:
                    continue
                to = self.sites[routed.site]
                events[to.index].append(JobRestored(now, rec.job, rec.attempt, None, None, rec.attained_s))
                self._site_of[jid] = to
                moved[jid] = (
                    to,
                    f"away from {site.name}, whose nodes that could run it are down or drained; {routed.reason}",
                )
        return moved

    def _award_events(self, conn: Any, now: float, events: dict[int, list[Event]], *, restore: bool = False) -> None:
        """Awards new or changed in the store, to the engine of their call's site (with what billed attempts used,
        when the engine is rebuilt)."""
        for award, site_name, used in programme.load_awards(conn):
            if not restore and self._awards.get(award.id, (None, ""))[0] == award:
                continue
            site = self._by_name.get(site_name)
            if site is None:
                continue
            self._awards[award.id] = (award, site_name)
            events[site.index].append(AwardChanged(now, award, used if restore else None))
        self._award_sites: dict[str, set[str]] = {}
        for award, site_name in self._awards.values():
            if award.end_s > now:
                self._award_sites.setdefault(award.tenant, set()).add(site_name)

    def _model_events(self, conn: Any, now: float, events: dict[int, list[Event]]) -> None:
        """The AI Act desk's models whose counted compute or notification changed, to every engine (a model's jobs
        may run on any site): the ``ai-act`` admission hold reads them."""
        self._models_dirty = False
        for mc in deskstore.engine_view(conn):
            if self._models.get(mc.model) != mc:
                self._models[mc.model] = mc
                for site in self.sites:
                    events[site.index].append(ModelChanged(now, mc))

    def _site_named(self, name: str | None) -> _Site:
        """A job's site by name; a job of a store from before networks (no site) is on its one site."""
        return self._by_name.get(name or "", self.sites[0])

    # ---- one turn ---------------------------------------------------------------------------------------------
    def step(self) -> StepStats:
        stats = StepStats()
        now = self.clock()
        events: dict[int, list[Event]] = {x.index: [] for x in self.sites}
        with self.store.connect() as conn:
            new = jobstore.submitted(conn, self.batch)
            requests = inbox.unprocessed(conn)
        stats.submitted = len(new)
        routes: dict[int, tuple[_Site, str]] = {}
        refused: dict[int, str] = {}
        for row in new:
            job = job_from_row(row)
            self._max_seen = max(self._max_seen, int(row.id))
            if job.sites is None and len(self.sites) > 1 and job.tenant in self._award_sites:
                # A tenant's awards are on the sites of their calls: its jobs run there, where they are charged.
                job = replace(job, sites=tuple(sorted(self._award_sites[job.tenant])))
            routed = self.router.route_job(job, now)
            if isinstance(routed, Status):
                refused[int(row.id)] = str(routed)
                continue
            site = self.sites[routed.site]
            routes[int(row.id)] = (site, routed.reason)
            self._site_of[int(row.id)] = site
            events[site.index].append(JobSubmitted(now, job, stimulus=f"submit job {int(row.id)}"))
        # Submissions are taken in id order, a batch at a time: a cancellation of one not taken yet waits for it.
        requests = [ev for ev in requests if ev.kind != "cancel" or int(ev.job_id) <= self._max_seen]
        tenants_changed = False
        awards_changed = False
        for jid, ev_ in self._over_time(now):
            events[self._site_of[jid].index].append(ev_)
        node_states: list[tuple[int, int, str, str]] = []  # (site id, node, state, reason)
        for ev in requests:
            if ev.kind == "cancel":
                site_of = self._site_of.get(int(ev.job_id))
                if site_of is not None:
                    reason = ev.payload.get("reason", "cancelled")
                    cancel = JobCancelled(now, JobId(int(ev.job_id)), reason=reason, stimulus=f"request {ev.seq}")
                    events[site_of.index].append(cancel)
            elif ev.kind in ("drain", "resume"):
                site = self._site_named(ev.payload.get("site"))
                if ev.kind == "drain":
                    reason = ev.payload.get("reason", "drained")
                    events[site.index].append(
                        NodeDrained(now, int(ev.node), reason=reason, stimulus=f"request {ev.seq}")
                    )
                    node_states.append((site.stored.id, int(ev.node), "drained", reason))
                else:
                    events[site.index].append(NodeResumed(now, int(ev.node), stimulus=f"request {ev.seq}"))
                    node_states.append((site.stored.id, int(ev.node), "up", ""))
            elif ev.kind == "tenants":
                tenants_changed = True
            elif ev.kind == "awards":
                awards_changed = True
            elif ev.kind == "desk":
                self._models_dirty = True
        stats.events = len(requests)
        if tenants_changed:
            with self.store.connect() as conn:
                tree = accounts.load_tree(conn)
                self._identities = accounts.identities(conn)
            for site in self.sites:
                site.engine.set_tenants(tree)
        if awards_changed:
            with self.store.connect() as conn:
                self._award_events(conn, now, events)
        if self._models_dirty:
            with self.store.connect() as conn:
                self._model_events(conn, now, events)
        reports = list(self._late)
        self._late = []
        # One poll per executor: sites that share one (every local site) are watched together.
        watches: dict[int, tuple[Executor, dict[int, int]]] = {}
        for site in self.sites:
            eng = site.engine
            watch = watches.setdefault(id(site.executor), (site.executor, {}))[1]
            watch.update({jid: eng.job(jid).attempt for jid in eng.running()})
            watch.update(eng.held())
        for executor, watch in watches.values():
            reports += executor.poll(watch)
        stats.reports = len(reports)
        billed = self._bill(reports, now)
        self._models_dirty = self._models_dirty or bool(billed and self._models)  # (counted in the next turn)
        for r in reports:
            where = self._site_of.get(r.job_id)
            if where is not None:
                events[where.index].extend(self._report_events(now, [r]))
        for site in self.sites:
            for nr in site.executor.nodes():
                i = site.node_index.get(nr.node)
                if i is None:
                    continue
                up = bool(site.engine.cap.node_up[i])
                if nr.state == "down" and up:
                    events[site.index].append(NodeFailed(now, i, reason=nr.reason or "down"))
                    node_states.append((site.stored.id, i, "down", nr.reason))
                elif nr.state == "up" and not up:
                    events[site.index].append(NodeRepaired(now, i))
                    node_states.append((site.stored.id, i, "up", ""))
        routes.update(self._reroute(now, events))
        t0 = time.perf_counter()
        actions: list[tuple[_Site, Any]] = []
        for site in self.sites:
            batch = events[site.index]
            batch.append(Tick(now))
            actions += [(site, a) for a in site.engine.handle(batch)]
            site.view.settle()
        stats.cycle_s = time.perf_counter() - t0
        stats.actions = len(actions)
        t1 = time.perf_counter()
        self._persist(actions, [ev.seq for ev in requests], node_states, now, billed, routes, refused)
        stats.persist_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        self._act()
        stats.act_s = time.perf_counter() - t2
        self._forecast_step(now)
        self.stats.append(stats)
        if len(self.stats) > 10_000:
            del self.stats[:5_000]
        return stats

    def run(self, *, poll_s: float = 0.2, stop: Callable[[], bool] = lambda: False) -> None:
        """Step until ``stop()``. A store that is locked or unreachable is waited for, and the engine is then
        rebuilt from it (a step it failed to persist did not happen). A lost lease ends the loop (LeaseLostError)."""
        backoff = 0.0
        broken = False
        last_check = time.monotonic()
        while not stop():
            try:
                if broken:
                    self.recover()
                    broken = False
                s = self.step()
            except (OperationalError, OSError) as exc:
                # The store is locked or unreachable, or the machine is out of something (processes, files) for a
                # moment: wait, then rebuild from the store, since this step may not have been persisted.
                backoff = min(5.0, max(0.2, backoff * 2))
                log.warning("%s; trying again in %.1f s", getattr(exc, "orig", None) or exc, backoff)
                broken = True
                time.sleep(backoff)
                continue
            backoff = 0.0
            if self.lease is not None and time.monotonic() - last_check > HEARTBEAT_S:
                self.lease.check()
                last_check = time.monotonic()
            if not (s.submitted or s.events or s.reports or s.actions):
                time.sleep(poll_s)

    # ---- helpers ----------------------------------------------------------------------------------------------
    def _limit(self, job: Job, attempt: int, started: float) -> None:
        if job.estimate_s is not None and math.isfinite(job.estimate_s):
            heapq.heappush(self._deadlines, (started + job.estimate_s + TIME_LIMIT_GRACE_S, int(job.id), attempt))

    def _over_time(self, now: float) -> list[tuple[int, Event]]:
        """Cancellations of the running attempts that have passed their time limit."""
        out: list[tuple[int, Event]] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, jid, attempt = heapq.heappop(self._deadlines)
            site = self._site_of.get(jid)
            rec = site.engine.job(jid) if site is not None and jid in site.engine else None
            if rec is not None and rec.state is JobState.RUNNING and rec.attempt == attempt:
                limit = rec.job.estimate_s or 0.0
                why = f"time limit: it ran past its {_duration(limit)}"
                out.append((jid, JobCancelled(now, JobId(jid), reason=why)))
        return out

    def _bill(self, reports: list[Report], now: float) -> list[dict[str, Any]]:
        """Usage records for attempts that ended: GPUs × (the executor's end − its start), once per attempt."""
        rows = []
        for r in reports:
            known = self._attempts.pop((r.job_id, r.attempt), None)
            if known is None:
                continue  # billed already (a report seen twice), or never started here
            tenant, gpus, started_seen, site, award = known
            started = r.started_at if r.started_at is not None else started_seen
            ended = r.ended_at if r.ended_at is not None else now
            ended = max(ended, started)
            rows.append({"job_id": r.job_id, "attempt": r.attempt, "tenant": tenant, "gpus": gpus,
                         "started_at": started, "ended_at": ended,
                         "gpu_seconds": gpus * (ended - started), "site": site, "award": award})  # fmt: skip
        return rows

    def _report_events(self, now: float, reports: list[Report]) -> list[Event]:
        out: list[Event] = []
        for r in reports:
            jid = JobId(r.job_id)
            if r.kind == "finished":
                out.append(JobFinished(now, jid, r.attempt))
            elif r.kind == "failed":
                out.append(JobFailed(now, jid, r.attempt, exit_code=r.exit_code or 1, reason=r.reason))
            else:
                out.append(JobInterrupted(now, jid, r.attempt, reason=r.reason or "interrupted"))
        return out

    def _persist(
        self,
        actions: list[tuple[_Site, Any]],
        processed: list[int],
        node_states: list[tuple[int, int, str, str]],
        now: float,
        accounting: list[dict[str, Any]],
        routes: dict[int, tuple[_Site, str]] | None = None,
        refused: dict[int, str] | None = None,
    ) -> None:
        updates: dict[int, dict[str, Any]] = {}
        history: list[dict[str, Any]] = []
        # When the executor saw each attempt billed in this step end: a job that finished while no daemon ran ended
        # then, not when this daemon learnt of it.
        ran_until = {(row["job_id"], row["attempt"]): row["ended_at"] for row in accounting}
        for jid, (site, reason) in (routes or {}).items():
            updates[jid] = {"site": site.name}
            if len(self.sites) > 1:  # (a lone site's jobs have nowhere else to go: no story to tell)
                history.append({"time": now, "job_id": jid, "attempt": 0, "old": "submitted", "new": "submitted",
                                "stimulus": "route", "reason": f"routed to {site.name}: {reason}"})  # fmt: skip
        for jid, why in (refused or {}).items():
            updates[jid] = {"state": "rejected", "attempt": 0, "ended_at": now, "reason": why}
            history.append({"time": now, "job_id": jid, "attempt": 0, "old": "submitted", "new": "rejected",
                            "stimulus": "route", "reason": why})  # fmt: skip
        for site in self.sites:
            tlog = site.engine.log
            for i in range(site.log_seen, len(tlog)):
                t = tlog.entry(i)
                jid = t.job_id
                rec = site.engine.job(jid)
                row = updates.setdefault(jid, {})
                row["state"] = t.new.value
                row["attempt"] = t.attempt
                history.append(
                    {"time": t.time, "job_id": jid, "attempt": t.attempt, "old": t.old.value if t.old else None,
                     "new": t.new.value, "stimulus": t.stimulus, "reason": t.reason}
                )  # fmt: skip
                if t.new is JobState.RUNNING:
                    pl = rec.placement
                    assert pl is not None
                    row.update(started_at=t.time, placement=placement_to_json(pl), reason="", est_start=None)
                    where = site.executor.attempt_dir(jid, t.attempt)
                    if where is not None:
                        row["log_dir"] = str(where)
                    row.setdefault("first_started_at", rec.first_start_s)
                    self._attempts[(jid, t.attempt)] = (rec.job.tenant, _gpus(pl), t.time, site.name, rec.award)
                    row["charged_award"] = rec.award
                    self._limit(rec.job, t.attempt, t.time)
                elif t.new is JobState.PENDING:
                    row.update(reason=t.reason)
                elif t.new.terminal:
                    end_s = t.time
                    if t.new in (JobState.COMPLETED, JobState.FAILED):  # its own end, as the executor saw it
                        end_s = min(ran_until.get((jid, t.attempt), t.time), t.time)
                    row.update(ended_at=end_s, exit_code=rec.exit_code, reason=t.reason, est_start=None)
        ended = [jid for jid, values in updates.items() if "state" in values and JobState(values["state"]).terminal]
        starts_stops = []
        for site, a in actions:
            if isinstance(a, StartJob):
                starts_stops.append(
                    {"kind": "start", "job_id": int(a.job_id), "attempt": a.attempt, "payload": {"site": site.name}}
                )
            elif isinstance(a, StopJob):
                starts_stops.append(
                    {
                        "kind": "stop",
                        "job_id": int(a.job_id),
                        "attempt": a.attempt,
                        "payload": {"reason": a.reason.value, "site": site.name},
                    }
                )
            elif isinstance(a, SignalJob):
                starts_stops.append(
                    {
                        "kind": "signal",
                        "job_id": int(a.job_id),
                        "attempt": a.attempt,
                        "payload": {"reason": a.reason, "stop_at": a.stop_s, "site": site.name},
                    }
                )
                history.append(
                    {
                        "time": now,
                        "job_id": int(a.job_id),
                        "attempt": a.attempt,
                        "old": "running",
                        "new": "running",
                        "stimulus": "signal",
                        "reason": f"{a.reason}; it will be stopped in {_duration(a.stop_s - now)}",
                    }
                )
        # Why waiting jobs wait, as the admit policy said in this turn (an award used up, say).
        for site in self.sites:
            eng = site.engine
            for jid in eng.waits_changed:
                if jid in eng and eng.state_of(jid) is JobState.PENDING:
                    why = eng.job(jid).wait_reason
                    if why or "state" not in updates.get(jid, {}):  # (else: the transition's own reason)
                        updates.setdefault(jid, {})["reason"] = why
            eng.waits_changed.clear()
        idle = not (updates or starts_stops or processed or node_states or accounting)
        if idle and now - self._last_beat < HEARTBEAT_S:
            return  # nothing happened: no write (the heartbeat says the daemon lives, every few seconds)
        self._last_beat = now
        with self.store.begin() as conn:
            if self.lease is not None:
                self.lease.fence(conn)
            inbox.mark_processed(conn, processed)
            for jid, values in updates.items():
                if "first_started_at" in values:
                    # Only the first start sets it: keep what the row already has.
                    cur = conn.execute(select(jobs_table.c.first_started_at).where(jobs_table.c.id == jid)).scalar()
                    if cur is not None:
                        values["first_started_at"] = cur
                jobstore.update_job(conn, jid, **values)
            jobstore.record_transitions(conn, history)
            jobstore.record_usage(conn, accounting)
            for site_id, idx, state, reason in node_states:
                set_node_state(conn, site_id, idx, state, reason)
            outbox.append(conn, starts_stops)
            set_meta(conn, "daemon_heartbeat", f"{now:.3f}")
        # Durable now: the engines need not remember it. Their history is in the store.
        for site in self.sites:
            site.engine.log = TransitionLog()
            site.log_seen = 0
        self._forget.update(ended)
        for jid in list(self._forget):
            site_of = self._site_of.get(jid)
            if site_of is None:
                self._forget.discard(jid)
                continue
            if jid in site_of.engine.held():
                continue
            self._forget.discard(jid)
            if jid in site_of.engine:
                site_of.engine.forget(jid)
            del self._site_of[jid]

    def _act(self) -> None:
        """Carry out the outbox: start and stop attempts, then mark them done."""
        with self.store.connect() as conn:
            todo = outbox.pending(conn)
            if not todo:
                return
            rows = {
                r.id: r for r in conn.execute(select(jobs_table).where(jobs_table.c.id.in_([a.job_id for a in todo])))
            }
        done = []
        for action in todo:
            row = rows.get(action.job_id)
            key = (action.job_id, action.attempt)
            site = self._site_named(row.site if row is not None else action.payload.get("site"))
            try:
                if action.kind == "start" and row is not None:
                    if row.attempt == action.attempt and row.state == "running" and row.placement:
                        site.executor.start(self._launch(row, site))
                elif action.kind == "stop":
                    site.executor.stop(action.job_id, action.attempt)
                elif action.kind == "signal":
                    site.executor.signal(action.job_id, action.attempt)
            except LaunchError as exc:
                self._start_failed(key, str(exc))
            except Exception as exc:  # the executor or the machine failed, perhaps for a moment: try again
                first, tries = self._start_errors.get(key, (time.monotonic(), 0))
                self._start_errors[key] = (first, tries + 1)
                log.warning("%s of job %d attempt %d failed (try %d): %s", action.kind, *key, tries + 1, exc)
                if action.kind != "start" or time.monotonic() - first < START_RETRY_S:
                    continue
                self._start_failed(key, f"{exc} (tried {tries + 1} times over {START_RETRY_S:.0f} s)")
            self._start_errors.pop(key, None)
            done.append(action.seq)
        with self.store.begin() as conn:
            if self.lease is not None:
                self.lease.fence(conn)
            outbox.mark_done(conn, done)

    def _start_failed(self, key: tuple[int, int], why: str) -> None:
        """This attempt could not be launched: it fails at the next step, with the reason, and nothing else does."""
        now = self.clock()
        self._late.append(Report(key[0], key[1], "failed", None, f"could not start: {why}", now, now))

    def _launch(self, row: Any, site: _Site | None = None) -> Launch:
        pl = placement_from_json(row.placement)
        topo = (site or self._site_named(row.site)).topo
        names = [topo.node_names[n] for n in pl.nodes]
        local = [[g - int(topo.gpu_start[n]) for g in gpus] for n, gpus in zip(pl.nodes, pl.node_gpus, strict=True)]
        who = self._identities.get(row.tenant)
        if not isinstance(who, Identity):
            raise LaunchError(f"tenant {row.tenant!r} has no account to run as: {who or 'unknown tenant'}")
        return Launch(
            job_id=int(row.id),
            attempt=int(row.attempt),
            command=list(row.command),
            env={str(k): str(v) for k, v in (row.env or {}).items()},
            tenant=row.tenant,
            nodes=names,
            node_gpus=local,
            cpu_milli=list(pl.cpu),
            mem_mib=list(pl.mem),
            gpu_milli=pl.gpu_milli,
            uid=who.uid,
            gid=who.gid,
            groups=list(who.groups),
            user=who.user,
        )

    def forecast(self, now: float) -> None:
        """Write each waiting job's estimated start (``squeue --start``) now, in this process."""
        self._write_forecast(_forecast_all([x.engine for x in self.sites], now))

    def pending(self) -> list[int]:
        return [jid for x in self.sites for jid in x.engine.pending()]

    def _forecast_step(self, now: float) -> None:
        """Keep the estimates fresh without stalling the loop.

        Playing out a long queue takes seconds (10k waiting jobs on 100k GPUs: about 5 s), so a single-threaded
        daemon forks: the child plays the queue out on its copy-on-write snapshot of the engine and sends the
        starts back through a pipe, while the loop goes on; a later step writes them. A new forecast starts no
        sooner than ``forecast_every_s`` after the last, and at most every ten times its cost. (Where other
        threads run, as in tests, forking is unsafe, and the forecast runs inline.)"""
        run = self._forecast_run
        if run is not None:
            result = run.poll()
            if result is None:
                return
            self._forecast_run = None
            self._forecast_cost_s = run.elapsed()
            if result.starts is not None:
                pending = set(self.pending())
                self._write_forecast({jid: t for jid, t in result.starts.items() if jid in pending})
        if now - self._last_forecast < max(self.forecast_every_s, 10 * self._forecast_cost_s):
            return
        self._last_forecast = now
        if self.fork_forecast and threading.active_count() == 1 and self.pending():
            try:
                self._forecast_run = _ForecastRun.start([x.engine for x in self.sites], now)
            except OSError as exc:  # no process to spare now: the estimates wait for the next round
                log.warning("no forecast this round: %s", exc)
        else:
            t0 = time.perf_counter()
            self.forecast(now)
            self._forecast_cost_s = time.perf_counter() - t0

    def _write_forecast(self, starts: dict[int, float]) -> None:
        pending = self.pending()
        if pending:
            with self.store.begin() as conn:
                if self.lease is not None:
                    self.lease.fence(conn)
                jobstore.set_est_starts(conn, {jid: starts.get(jid) for jid in pending})

    def _max_seen_in_store(self) -> int:
        with self.store.connect() as conn:
            top = conn.execute(
                select(func.max(jobs_table.c.id)).where(jobs_table.c.state != jobstore.SUBMITTED)
            ).scalar()
        return int(top or 0)


def _forecast_all(engines: list[Engine], now: float) -> dict[int, float]:
    """Every site's forecast; job ids are the store's, so they do not collide."""
    out: dict[int, float] = {}
    for eng in engines:
        out.update(forecast_starts(eng, now))
    return out


def _gpus(pl: Placement) -> float:
    return pl.num_gpus * pl.gpu_milli / 1000


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:g} s"
    if s < 7200:
        return f"{s / 60:g} min"
    return f"{s / 3600:g} h"


@dataclass
class _Outcome:
    starts: dict[int, float] | None  # None: the child failed


@dataclass
class _ForecastRun:
    """A forecast in a forked child process; :meth:`poll` collects its answer without blocking."""

    pid: int
    fd: int
    began: float
    buf: bytearray = field(default_factory=bytearray)

    @classmethod
    def start(cls, engines: list[Engine], now: float) -> _ForecastRun:
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            raise
        if pid == 0:  # the child: play the queue out, send the answer, leave without running any cleanup
            code = 0
            try:
                os.close(r)
                data = pickle.dumps(_forecast_all(engines, now), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(w, "wb") as out:
                    out.write(data)
            except BaseException:
                code = 1
                with contextlib.suppress(BaseException):
                    traceback.print_exc()  # into the daemon's own log: a forecast that fails must say why
                    sys.stderr.flush()
            finally:
                os._exit(code)
        os.close(w)
        os.set_blocking(r, False)
        return cls(pid, r, time.perf_counter())

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def poll(self) -> _Outcome | None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                return None  # still working
            if not chunk:
                break
            self.buf += chunk
        os.close(self.fd)
        _, status = os.waitpid(self.pid, 0)
        if status != 0 or not self.buf:
            log.warning("the forecast failed (wait status %d); the estimates stay as they were", status)
            return _Outcome(None)
        return _Outcome(pickle.loads(bytes(self.buf)))
