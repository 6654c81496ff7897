"""The digital twin's driver: the engine on a virtual clock.

Three sources of events are merged in time order:

* submissions, from the workload's sorted ``submit_s`` column;
* failures, from a lazy :class:`~gigafactory.twin.failures.FailureStream`;
* an :class:`~gigafactory.core.agenda.Agenda` for what the simulation itself scheduled: a job's attempt ending,
  a node's repair, a wake-up the engine asked for; one instant's items come in the order they were scheduled,
  so runs are deterministic.

Every distinct instant becomes one ``engine.handle(batch)`` call: the agenda's items first (in its order), then
failures, then submissions (in workload order). The driver applies the actions: a start schedules the attempt's
end, a stop settles what the attempt saved and lost (both kept by :class:`~gigafactory.twin.attempts.Attempts`,
which the network twin shares), a wake-up schedules a tick. The run ends when every job has, at the horizon, or
once nothing left to deliver could start the jobs still waiting (:meth:`~gigafactory.twin.attempts.Attempts.stuck`;
a failure stream alone would move the clock on for ever); ``waiting_at_end`` says why they wait.

Hot spares: with ``spares_per_pod = K`` the failure model keeps K nodes per pod drained and idle; when a node
fails, a spare of its pod is resumed at once, and a repaired node becomes a spare again.
"""

from __future__ import annotations

import gc
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gigafactory.core.actions import RejectJob, StartJob, StopJob, StopReason, Wake
from gigafactory.core.agenda import Agenda
from gigafactory.core.awards import Award
from gigafactory.core.events import (
    AwardChanged,
    Event,
    JobSubmitted,
    NodeDrained,
    NodeFailed,
    NodeRepaired,
    NodeResumed,
    Tick,
)
from gigafactory.core.tenants import TenantTree
from gigafactory.core.topology import Topology
from gigafactory.engine.engine import Engine
from gigafactory.policy.profile import Profile, parse_profile
from gigafactory.twin.attempts import Attempts
from gigafactory.twin.failures import Failure, FailureModel
from gigafactory.twin.metrics import UNFINISHED, Metrics, Series
from gigafactory.twin.windows import Jobs, Window, given_window, measure, share_series, steady_window
from gigafactory.twin.workload import Workload

__all__ = ["SimResult", "Simulation"]

_END, _TICK, _REPAIR = 0, 1, 2
Progress = Callable[[float, float], None]  # (fraction of submissions done, simulated time)


@dataclass
class SimResult:
    summary: dict[str, Any]
    series: Series
    metrics: Metrics
    engine: Engine
    workload: Workload
    tenants: TenantTree | None
    shares: dict[str, Any] | None = None  # per-tenant received and entitled shares over time (twin/windows.py)


class Simulation:
    def __init__(
        self,
        topo: Topology,
        workload: Workload,
        profile: Profile | str = "default",
        *,
        seed: int = 0,
        tenants: TenantTree | None = None,
        failures: FailureModel | None = None,
        validate: bool = False,
        keep_log: bool = False,
        horizon_s: float | None = None,
        progress: Progress | None = None,
        labels: dict[str, Any] | None = None,
        mtbi_min_gpus: int = 256,
        awards: list[Award] | None = None,
        window_days: tuple[float, float] | None = None,
    ) -> None:
        workload.check_fits(topo)
        self.topo = topo
        self.workload = workload
        self.profile = parse_profile(profile) if isinstance(profile, str) else profile
        self.seed = seed
        self.tenants = tenants
        self.failures = failures if failures is not None and failures.enabled else None
        self.spares = failures.spares_per_pod if failures is not None else 0
        self.horizon_s = math.inf if horizon_s is None else horizon_s
        self.progress = progress
        self.labels = labels or {}
        self.mtbi_min_gpus = mtbi_min_gpus
        self.engine = Engine(topo, self.profile, tenants=tenants, seed=seed, validate=validate, keep_log=keep_log)
        self.metrics = Metrics(len(workload), topo.num_gpus, len(workload.tenants))
        self.checkpoints = workload.checkpointing(failures, topo)
        self.awards = awards or []  # an access programme's awards, all known from the start
        self.award_stops = 0
        self.stuck = False  # the run ended with jobs that could never start (see Attempts.stuck)
        self.window_days = window_days  # the steady-state window, if given; else found (twin/windows.py)

    def run(self) -> SimResult:
        """Simulate until every job has ended (or the horizon, or nothing left can start); see :meth:`_run`."""
        # A run makes records and keys by the hundred thousand, most of them long-lived: at the collector's
        # default threshold (a young collection every 700 allocations) it scans them over and over (6% of a
        # fair-share replay of Philly). The threshold is the process's: put back as it was.
        threshold = gc.get_threshold()
        gc.set_threshold(max(threshold[0], 100_000), *threshold[1:])
        try:
            return self._run()
        finally:
            gc.set_threshold(*threshold)

    def _run(self) -> SimResult:
        wall0 = time.perf_counter()
        wl = self.workload
        eng = self.engine
        met = self.metrics
        submit = wl.submit_s.tolist()
        ckpt = self.checkpoints
        n = len(submit)
        jobs = Attempts(wl, ckpt, met)
        agenda = Agenda()
        i = 0
        next_report = 0
        step = max(n // 100, 1)
        horizon = self.horizon_s
        stream: Iterator[Failure] = (
            iter(()) if self.failures is None else iter(self.failures.stream(self.topo, self.seed))
        )
        failure = next(stream, None)
        spares = _Spares(self.topo, self.spares)
        t = 0.0
        tracked, out_of_service = self.failures is not None or self.spares > 0, self._capacity_tracker()
        initial: list[Event] = spares.initial()
        initial += [AwardChanged(0.0, a) for a in self.awards]
        while jobs.remaining > 0 or initial:
            if not initial and jobs.stuck(i >= n, len(agenda)):
                self.stuck = True
                break
            t = min(
                submit[i] if i < n else math.inf,
                agenda.next_time(),
                failure.time if failure is not None else math.inf,
            )
            if initial:
                t = min(t, 0.0)
            if t > horizon or math.isinf(t):
                break
            batch: list[Event] = initial
            initial = []
            for kind, a, att, _ in agenda.pop_at(t):
                if kind == _TICK:
                    batch.append(Tick(t))
                elif kind == _REPAIR:
                    batch.extend(spares.repaired(t, a))
                else:
                    ended = jobs.end(a, att, t)
                    if ended is not None:
                        batch.append(ended[0])
            while failure is not None and failure.time == t:
                for node in failure.nodes:
                    events, repair_at = spares.failed(t, node, failure)
                    batch.extend(events)
                    if repair_at is not None:
                        if repair_at <= t:
                            batch.extend(spares.repaired(t, node))
                        else:
                            agenda.add(repair_at, _REPAIR, node)
                failure = next(stream, None)
            first = i
            while i < n and submit[i] == t:
                batch.append(JobSubmitted(t, wl.job(i, ckpt[i])))
                i += 1
            if i > first:
                met.submitted(t, i - first)
            if tracked:
                out_of_service(t, batch)
            for action in eng.handle(batch):
                if isinstance(action, StartJob):
                    agenda.add(jobs.start(action.job_id, action.attempt, t), _END, action.job_id, action.attempt)
                elif isinstance(action, StopJob):
                    if jobs.stop(action, t) is not None and action.reason is StopReason.AWARD:
                        self.award_stops += 1
                elif isinstance(action, RejectJob):
                    jobs.reject(action.job_id, t)
                elif isinstance(action, Wake):
                    agenda.add(max(action.time, t), _TICK)
            if self.progress is not None and i >= next_report:
                self.progress(i / n if n else 1.0, t)
                next_report = i + step
        if self.progress is not None:
            self.progress(1.0, t)
        if jobs.remaining > 0 and math.isfinite(horizon):
            for job in range(n):
                if jobs.attempt[job]:
                    met.cut(job, horizon, jobs.gpu_eq[job], jobs.tenant[job])
        met.failures = spares.failures
        return self._result(time.perf_counter() - wall0)

    def _capacity_tracker(self) -> Callable[[float, list[Event]], None]:
        """Records in the metrics the GPUs that failures and drains take out of service, and repairs bring back."""
        down: set[int] = set()
        node_gpus = self.topo.node_gpus
        met = self.metrics

        def track(t: float, batch: list[Event]) -> None:
            for ev in batch:
                if isinstance(ev, (NodeFailed, NodeDrained)):
                    if ev.node not in down:
                        down.add(ev.node)
                        met.capacity(t, -float(node_gpus[ev.node]))
                elif isinstance(ev, (NodeRepaired, NodeResumed)) and ev.node in down:
                    down.discard(ev.node)
                    met.capacity(t, float(node_gpus[ev.node]))

        return track

    def _result(self, wall_s: float) -> SimResult:
        wl = self.workload
        met = self.metrics
        summary: dict[str, Any] = {**self.labels}
        cut = self.horizon_s if (met.state == UNFINISHED).any() and math.isfinite(self.horizon_s) else None
        summary.update(met.summarise(wl.submit_s, wl.gpu_equivalent, self.mtbi_min_gpus, until=cut))
        # Jobs the workload holds that would have arrived after the horizon: never submitted (counted in unfinished).
        summary["not_arrived"] = int((wl.submit_s > self.horizon_s).sum()) if cut is not None else 0
        stats = self.engine.stats
        summary.update(
            {
                "events": stats.events,
                "passes": stats.passes,
                "backfilled": stats.backfilled,
                "wall_s": round(wall_s, 3),
                "events_per_s": round(stats.events / wall_s, 1) if wall_s > 0 else None,
                "policy": str(self.profile),
                "seed": self.seed,
                "site": self.topo.name,
                "gpus": self.topo.num_gpus,
                "workload": wl.name,
                "failure_model": self.failures.name if self.failures is not None else "none",
                "offered_load": _offered_load(wl, self.topo.num_gpus),
                "offered_load_target": wl.target_load,
                "outcome_model": wl.outcome_model if len(wl) and (wl.outcome != 0).any() else "none",
            }
        )
        summary["waiting_at_end"] = waiting_reasons([self.engine])
        summary["stuck"] = self.stuck
        summary["tenants"] = self._tenant_table()
        if self.awards:
            summary["programme"] = self._programme()
        start = float(wl.submit_s[0]) if len(wl) else 0.0
        stop = start + max(summary["makespan_s"], 1.0)
        jobs = Jobs.of(wl, self.tenants)
        self._windows(summary, start, stop, cut, jobs)
        series = met.series(start, stop)
        shares = share_series(met, start, stop, jobs)
        return SimResult(summary, series, met, self.engine, wl, self.tenants, shares)

    def _windows(self, summary: dict[str, Any], start: float, stop: float, cut: float | None, jobs: Jobs) -> None:
        """Adds the whole run's windowed figures (fairness, slowdown, per-tenant service) and the steady state's."""
        met = self.metrics
        rule = "the whole run: first submission to " + ("the horizon, which cut it" if cut is not None else "last end")
        whole = measure(met, Window(start, stop, rule), jobs)
        summary["window"] = whole.pop("window")
        summary["fairness"] = whole["fairness"]
        summary["slowdown"] = whole["slowdown"]
        for name, figures in whole["tenants"].items():
            summary["tenants"][name].update(
                {k: v for k, v in figures.items() if k not in ("gpu_hours", "share_received", "jobs_submitted")}
            )
        arrivals = self.workload.submit_s[self.workload.submit_s <= stop]
        last_arrival = float(arrivals[-1]) if arrivals.size else start
        steady = (
            given_window(self.window_days, start, stop)
            if self.window_days is not None
            else steady_window(met, start, last_arrival, stop)
        )
        summary["steady"] = measure(met, steady, jobs)

    def _programme(self) -> dict[str, Any]:
        """What the access programme granted and what was used of it, as of the end of the run."""
        book = self.engine.awards
        end = self.engine.now
        used = {a.id: book.used_gpu_s(a.id, end) / 3600.0 for a in self.awards}
        granted = sum(a.gpu_hours for a in self.awards)
        waiting = [self.engine.job(j) for j in self.engine.pending()]
        return {
            "awards": len(self.awards),
            "gpu_hours_awarded": round(granted, 3),
            "gpu_hours_used": round(sum(used.values()), 3),
            "awards_used_up": sum(1 for a in self.awards if used[a.id] >= a.gpu_hours - 1e-6),
            "largest_overrun_gpu_hours": round(max((used[a.id] - a.gpu_hours for a in self.awards), default=0.0), 4),
            "jobs_stopped_for_award": self.award_stops,
            "jobs_left_waiting_for_award": sum(1 for r in waiting if r.wait_reason),
        }

    def _tenant_table(self) -> dict[str, dict[str, float]]:
        wl = self.workload
        met = self.metrics
        total = float(met.tenant_gpu_s.sum())
        owed = {}
        if self.tenants is not None:
            leaves = [t for t in wl.tenants if t in self.tenants]
            norm = sum(self.tenants.normalised_share(t) for t in leaves) or 1.0
            owed = {t: self.tenants.normalised_share(t) / norm for t in leaves}
        out = {}
        for k, name in enumerate(wl.tenants):
            gpu_s = float(met.tenant_gpu_s[k])
            out[name] = {
                "jobs": int((wl.tenant == k).sum()),
                "gpu_hours": round(gpu_s / 3600.0, 3),
                "share_received": round(gpu_s / total, 6) if total else 0.0,
                "share_owed": round(owed.get(name, 1.0 / len(wl.tenants)), 6),
            }
        return out


class _Spares:
    """Which nodes are down, and the hot spares of each pod (see the module docstring)."""

    def __init__(self, topo: Topology, per_pod: int) -> None:
        self.topo = topo
        self.per_pod = per_pod
        self.down: set[int] = set()
        self.free: dict[int, list[int]] = {}  # pod -> idle spare nodes
        self.is_spare: set[int] = set()
        self.replaced: set[int] = set()  # failed nodes whose place a spare took: they come back as spares
        self.failures = 0

    def initial(self) -> list[Event]:
        if not self.per_pod:
            return []
        events: list[Event] = []
        topo = self.topo
        for pod in range(topo.num_pods):
            a, b = int(topo.pod_start[pod]), int(topo.pod_start[pod + 1])
            nodes = list(range(max(a, b - self.per_pod), b))
            self.free[pod] = nodes
            self.is_spare.update(nodes)
            events.extend(NodeDrained(0.0, n, reason="hot spare") for n in nodes)
        return events

    def failed(self, t: float, node: int, failure: Failure) -> tuple[list[Event], float | None]:
        if node in self.down:
            return [], None
        self.failures += 1
        self.down.add(node)
        events: list[Event] = [NodeFailed(t, node, reason=f"{failure.kind} failure")]
        if node in self.is_spare:
            self.free[int(self.topo.node_pod[node])].remove(node)
        elif self.per_pod:
            pod = int(self.topo.node_pod[node])
            if self.free.get(pod):
                spare = self.free[pod].pop(0)
                self.is_spare.discard(spare)
                self.replaced.add(node)
                events.append(NodeResumed(t, spare))
        return events, t + failure.repair_s

    def repaired(self, t: float, node: int) -> list[Event]:
        self.down.discard(node)
        events: list[Event] = [NodeRepaired(t, node)]
        if node in self.is_spare:
            self.free[int(self.topo.node_pod[node])].append(node)
        elif node in self.replaced:
            self.replaced.discard(node)
            self.is_spare.add(node)
            self.free[int(self.topo.node_pod[node])].append(node)
            events.append(NodeDrained(t, node, reason="hot spare"))
        return events


def waiting_reasons(engines: list[Engine]) -> dict[str, int]:
    """Why the jobs still waiting at the end of a run wait: the admission policy's reason (over quota, no award),
    or that there was no room; with how many jobs, most first."""
    why: Counter[str] = Counter()
    for engine in engines:
        why.update(engine.job(jid).wait_reason or "no room for it" for jid in engine.pending())
    return dict(why.most_common())


def _offered_load(wl: Workload, gpus: int) -> float | None:
    span = wl.span_s()
    if span <= 0:
        return None
    return round(wl.gpu_seconds() / (gpus * span), 4)
