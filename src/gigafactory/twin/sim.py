"""The digital twin's driver: the engine on a virtual clock.

A heap of ``(time, sequence, kind, job, attempt)`` holds what will happen (a job ending, a wake-up the engine
asked for); the sequence number breaks ties in order of scheduling, so runs are deterministic. Submissions are
merged in from the workload's sorted ``submit_s`` column rather than pushed onto the heap, which keeps the heap
as small as the number of running jobs.

Every distinct instant becomes one ``engine.handle(batch)`` call with all events of that instant: job ends
first (in heap order), then submissions (in workload order). The driver applies the actions: a start schedules
the job's end, a stop voids it, a wake-up schedules a tick.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gigafactory.core.actions import RejectJob, StartJob, StopJob, Wake
from gigafactory.core.events import Event, JobCancelled, JobFailed, JobFinished, JobSubmitted, Tick
from gigafactory.core.jobs import JobId
from gigafactory.core.tenants import TenantTree
from gigafactory.core.topology import Topology
from gigafactory.engine.engine import Engine
from gigafactory.policy.profile import Profile, parse_profile
from gigafactory.twin.metrics import CANCELLED, COMPLETED, FAILED, Metrics, Series
from gigafactory.twin.workload import CANCELLED as W_CANCELLED
from gigafactory.twin.workload import FAILED as W_FAILED
from gigafactory.twin.workload import Workload

__all__ = ["SimResult", "Simulation"]

_END, _TICK = 0, 1
Progress = Callable[[float, float], None]  # (fraction of submissions done, simulated time)


@dataclass
class SimResult:
    summary: dict[str, Any]
    series: Series
    metrics: Metrics
    engine: Engine
    workload: Workload
    tenants: TenantTree | None


class Simulation:
    def __init__(
        self,
        topo: Topology,
        workload: Workload,
        profile: Profile | str = "default",
        *,
        seed: int = 0,
        tenants: TenantTree | None = None,
        validate: bool = False,
        keep_log: bool = True,
        horizon_s: float | None = None,
        progress: Progress | None = None,
        labels: dict[str, Any] | None = None,
    ) -> None:
        workload.check_fits(topo)
        self.topo = topo
        self.workload = workload
        self.profile = parse_profile(profile) if isinstance(profile, str) else profile
        self.seed = seed
        self.tenants = tenants
        self.horizon_s = math.inf if horizon_s is None else horizon_s
        self.progress = progress
        self.labels = labels or {}
        self.engine = Engine(topo, self.profile, tenants=tenants, seed=seed, validate=validate, keep_log=keep_log)
        self.metrics = Metrics(len(workload), topo.num_gpus, len(workload.tenants))

    def run(self) -> SimResult:
        wall0 = time.perf_counter()
        wl = self.workload
        eng = self.engine
        met = self.metrics
        submit = wl.submit_s.tolist()
        runtime = wl.runtime_s.tolist()
        outcome = wl.outcome.tolist()
        tenant = wl.tenant.tolist()
        gpu_eq = wl.gpu_equivalent.tolist()
        n = len(submit)
        attempt = [0] * n  # running attempt per job, 0 when not running
        heap: list[tuple[float, int, int, int, int]] = []
        seq = 0
        i = 0
        next_report = 0
        step = max(n // 100, 1)
        horizon = self.horizon_s
        t = 0.0
        while i < n or heap:
            t = min(submit[i] if i < n else math.inf, heap[0][0] if heap else math.inf)
            if t > horizon:
                break
            batch: list[Event] = []
            while heap and heap[0][0] == t:
                _, _, kind, job, att = heapq.heappop(heap)
                if kind == _TICK:
                    batch.append(Tick(t))
                    continue
                if attempt[job] != att:
                    continue  # stopped before it could end
                attempt[job] = 0
                jid = JobId(job)
                o = outcome[job]
                met.stopped(job, t, gpu_eq[job], tenant[job], requeued=False)
                if o == W_FAILED:
                    batch.append(JobFailed(t, jid, att, exit_code=1))
                    met.ended(job, t, FAILED)
                elif o == W_CANCELLED:
                    batch.append(JobCancelled(t, jid, reason="cancelled by user while running"))
                    met.ended(job, t, CANCELLED)
                else:
                    batch.append(JobFinished(t, jid, att))
                    met.ended(job, t, COMPLETED)
            first = i
            while i < n and submit[i] == t:
                batch.append(JobSubmitted(t, wl.job(i)))
                i += 1
            if i > first:
                met.submitted(t, i - first)
            for action in eng.handle(batch):
                if isinstance(action, StartJob):
                    job = action.job_id
                    attempt[job] = action.attempt
                    met.started(job, t, gpu_eq[job])
                    seq += 1
                    heapq.heappush(heap, (t + runtime[job], seq, _END, job, action.attempt))
                elif isinstance(action, StopJob):
                    job = action.job_id
                    if attempt[job] == action.attempt:
                        attempt[job] = 0
                        met.stopped(job, t, gpu_eq[job], tenant[job], requeued=action.requeue)
                        if not action.requeue:
                            met.ended(job, t, CANCELLED)
                elif isinstance(action, RejectJob):
                    met.rejected(action.job_id, t)
                elif isinstance(action, Wake):
                    seq += 1
                    heapq.heappush(heap, (max(action.time, t), seq, _TICK, -1, 0))
            if self.progress is not None and i >= next_report:
                self.progress(i / n if n else 1.0, t)
                next_report = i + step
        if self.progress is not None:
            self.progress(1.0, t)
        wall = time.perf_counter() - wall0
        return self._result(wall)

    def _result(self, wall_s: float) -> SimResult:
        wl = self.workload
        met = self.metrics
        summary: dict[str, Any] = {**self.labels}
        summary.update(met.summarise(wl.submit_s))
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
                "offered_load": _offered_load(wl, self.topo.num_gpus),
            }
        )
        summary["tenants"] = self._tenant_table()
        start = float(wl.submit_s[0]) if len(wl) else 0.0
        series = met.series(start, start + max(summary["makespan_s"], 1.0))
        return SimResult(summary, series, met, self.engine, wl, self.tenants)

    def _tenant_table(self) -> dict[str, dict[str, float]]:
        wl = self.workload
        met = self.metrics
        total = float(met.tenant_gpu_s.sum())
        owed = {}
        if self.tenants is not None:
            owed = {t: self.tenants.normalised_share(t) for t in wl.tenants if t in self.tenants}
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


def _offered_load(wl: Workload, gpus: int) -> float | None:
    span = wl.span_s()
    if span <= 0:
        return None
    return round(wl.gpu_seconds() / (gpus * span), 4)
