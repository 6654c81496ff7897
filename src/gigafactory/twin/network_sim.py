"""The twin of a network: every site's engine on one virtual clock, jobs routed at submission.

The driver is :mod:`gigafactory.twin.sim`'s, with one engine per site. At each instant the events due at each
site (attempt ends, repairs, wake-ups, failures) are gathered per site, the instant's submissions are routed by
the :class:`~gigafactory.network.router.Router` (which asks the sites' engines, as they stood before this
instant, plus what was routed to them in it), and each site that has events gets one ``handle``. A job stays on
its site: an interrupted attempt is requeued there.

A job no allowed site could ever hold is rejected at submission, with the reason, and counted as ``rejected``.
Each site's power cap is honoured by keeping the nodes it cannot power drained ("power cap").

Per site and overall: the single-site summary (utilisation, queueing, JCT, ...), plus energy (MWh: the GPU-time
of the jobs it ran × system power per GPU × PUE; idle draw is not counted), its cost (× the electricity price,
EUR) and emissions (× the carbon intensity, t CO2e), and the jobs each site received.
"""

from __future__ import annotations

import heapq
import math
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gigafactory.core.actions import RejectJob, StartJob, StopJob, Wake
from gigafactory.core.agenda import Agenda
from gigafactory.core.errors import ConfigError
from gigafactory.core.events import Event, JobSubmitted, NodeDrained, Tick
from gigafactory.core.status import Status
from gigafactory.core.tenants import TenantTree
from gigafactory.engine.engine import Engine
from gigafactory.network.model import Network
from gigafactory.network.router import Router, SiteState
from gigafactory.policy.profile import Profile, RouteProfile, parse_profile, parse_route
from gigafactory.twin.attempts import Attempts
from gigafactory.twin.failures import Failure, FailureModel
from gigafactory.twin.metrics import UNFINISHED, Metrics, Series
from gigafactory.twin.sim import Progress, _Spares, waiting_reasons
from gigafactory.twin.windows import Jobs, Window, measure, steady_window
from gigafactory.twin.workload import Workload

__all__ = ["NetworkResult", "NetworkSimulation", "Restriction"]

_END, _TICK, _REPAIR = 0, 1, 2
Restriction = tuple[tuple[str, ...] | None, tuple[str, ...] | None]  # (sites, countries) a job may use


@dataclass
class NetworkResult:
    summary: dict[str, Any]  # overall, with "sites": {name: per-site summary}
    series: Series  # the whole network
    site_series: dict[str, Series]
    site_of: np.ndarray  # per job: the index of its site, -1 if it was rejected
    reasons: list[str]  # per job: why it went where it went (or why nowhere)
    workload: Workload
    tenants: TenantTree | None


class _SiteLog:
    """What one site saw: changes of GPUs allocated and jobs queued, and GPU-time per tenant."""

    def __init__(self, tenants: int) -> None:
        self.t_alloc = array("d")
        self.d_alloc = array("d")
        self.t_queue = array("d")
        self.d_queue = array("d")
        self.tenant_gpu_s = np.zeros(tenants)

    def ran(self, t: float, gpus: float, tenant: int, run_s: float) -> None:
        """An attempt holding ``gpus`` for ``tenant`` ended or stopped at ``t`` after ``run_s`` seconds."""
        self.t_alloc.append(t)
        self.d_alloc.append(-gpus)
        self.tenant_gpu_s[tenant] += gpus * run_s


class NetworkSimulation:
    def __init__(
        self,
        network: Network,
        workload: Workload,
        profile: Profile | str = "default",
        route: RouteProfile | str | None = None,
        *,
        seed: int = 0,
        tenants: TenantTree | None = None,
        failures: FailureModel | None = None,
        restrictions: Sequence[Restriction | None] | None = None,
        validate: bool = False,
        keep_log: bool = False,
        horizon_s: float | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.network = network
        self.workload = workload
        self.profile = parse_profile(profile) if isinstance(profile, str) else profile
        self.route = (
            parse_route(route if route is not None else network.route) if not isinstance(route, RouteProfile) else route
        )
        self.seed = seed
        self.tenants = tenants
        self.failures = failures if failures is not None and failures.enabled else None
        self.spares = failures.spares_per_pod if failures is not None else 0
        self.horizon_s = math.inf if horizon_s is None else horizon_s
        self.stuck = False  # the run ended with jobs that could never start (see Attempts.stuck)
        self.progress = progress
        if restrictions is not None and len(restrictions) != len(workload):
            raise ValueError(f"{len(restrictions)} restrictions for {len(workload)} jobs")
        self.restrictions = restrictions
        self.states = [
            SiteState(
                spec,
                Engine(
                    spec.topology, self.profile, tenants=tenants, seed=seed + k, validate=validate, keep_log=keep_log
                ),
            )
            for k, spec in enumerate(network.sites)
        ]
        self.router = Router(self.states, self.route, seed=seed)
        self._check_fits()
        self.metrics = Metrics(len(workload), network.num_gpus, len(workload.tenants))
        # Checkpoint intervals follow the failure rate of the largest site's nodes (sites differ little in it).
        largest = max(network.sites, key=lambda s: s.topology.num_gpus).topology
        self.checkpoints = workload.checkpointing(failures, largest)

    def _check_fits(self) -> None:
        """Refuse, as the single-site twin does, a workload with a job that no site could ever hold, wherever it
        were allowed to go (a job that only its residency keeps out is rejected at its submission instead)."""
        wl = self.workload
        seen: set[int] = set()
        for i in range(len(wl)):
            req = wl.request(i)
            if id(req) in seen:
                continue
            seen.add(id(req))
            job = wl.job(i)
            reasons = [s.engine.never_fits(job) for s in self.states]
            if all(r is not None for r in reasons):
                why = "; ".join(f"{s.name}: {r}" for s, r in zip(self.states, reasons, strict=True))
                raise ConfigError(f"workload {wl.name!r}: job {i} could never run on any site of the network ({why})")

    def run(self) -> NetworkResult:
        wall0 = time.perf_counter()
        wl = self.workload
        met = self.metrics
        states = self.states
        engines = [s.engine for s in states]
        router = self.router
        nsites = len(states)
        logs = [_SiteLog(len(wl.tenants)) for _ in states]
        submit = wl.submit_s.tolist()
        ckpt = self.checkpoints
        restrict = self.restrictions
        n = len(submit)
        site_of = np.full(n, -1, np.int64)
        reasons = [""] * n
        jobs = Attempts(wl, ckpt, met)
        tenant, gpu_eq = jobs.tenant, jobs.gpu_eq
        agenda = Agenda()  # items: (kind, job or node, attempt, site)
        i = 0
        next_report = 0
        step = max(n // 100, 1)
        horizon = self.horizon_s
        stream = self._failures()
        failure = next(stream, None)
        spares = [_Spares(s.spec.topology, self.spares) for s in states]
        batches: list[list[Event]] = [[] for _ in states]
        for k, state in enumerate(states):
            batches[k].extend(spares[k].initial())
            powered = state.spec.powered_nodes()
            batches[k].extend(
                NodeDrained(0.0, node, reason="power cap") for node in range(powered, state.spec.topology.num_nodes)
            )
        initial = any(batches)
        t = 0.0
        while jobs.remaining > 0 or initial:
            if not initial and jobs.stuck(i >= n, len(agenda)):
                self.stuck = True
                break
            t = min(
                submit[i] if i < n else math.inf,
                agenda.next_time(),
                failure[0] if failure is not None else math.inf,
            )
            if initial:
                t = min(t, 0.0)
                initial = False
            if t > horizon or math.isinf(t):
                break
            for kind, a, att, s in agenda.pop_at(t):
                if kind == _TICK:
                    batches[s].append(Tick(t))
                elif kind == _REPAIR:
                    batches[s].extend(spares[s].repaired(t, a))
                else:
                    ended = jobs.end(a, att, t)
                    if ended is not None:
                        event, run_s = ended
                        batches[s].append(event)
                        logs[s].ran(t, gpu_eq[a], tenant[a], run_s)
            while failure is not None and failure[0] == t:
                _, s, _, f = failure
                for node in f.nodes:
                    events, repair_at = spares[s].failed(t, node, f)
                    batches[s].extend(events)
                    if repair_at is not None:
                        if repair_at <= t:
                            batches[s].extend(spares[s].repaired(t, node))
                        else:
                            agenda.add(repair_at, _REPAIR, node, 0, s)
                failure = next(stream, None)
            first = i
            while i < n and submit[i] == t:
                rule = restrict[i] if restrict is not None else None
                job_obj = wl.job(i, ckpt[i]) if rule is None else wl.job(i, ckpt[i], *rule)
                routed = router.route_job(job_obj, t)
                if isinstance(routed, Status):
                    reasons[i] = str(routed)
                    met.submitted(t, 1)
                    jobs.reject(i, t)
                else:
                    s = routed.site
                    site_of[i] = s
                    reasons[i] = routed.reason
                    batches[s].append(JobSubmitted(t, job_obj))
                    log = logs[s]
                    log.t_queue.append(t)
                    log.d_queue.append(1)
                    met.submitted(t, 1)
                i += 1
            for s in range(nsites):
                batch = batches[s]
                if not batch:
                    continue
                batches[s] = []
                log = logs[s]
                for action in engines[s].handle(batch):
                    if isinstance(action, StartJob):
                        job = action.job_id
                        agenda.add(jobs.start(job, action.attempt, t), _END, job, action.attempt, s)
                        log.t_alloc.append(t)
                        log.d_alloc.append(gpu_eq[job])
                        log.t_queue.append(t)
                        log.d_queue.append(-1)
                    elif isinstance(action, StopJob):
                        job = action.job_id
                        ran_s = jobs.stop(action, t)
                        if ran_s is None:
                            continue
                        log.ran(t, gpu_eq[job], tenant[job], ran_s)
                        if action.requeue:
                            log.t_queue.append(t)
                            log.d_queue.append(1)
                    elif isinstance(action, RejectJob):
                        jobs.reject(action.job_id, t)
                        log.t_queue.append(t)
                        log.d_queue.append(-1)
                    elif isinstance(action, Wake):
                        agenda.add(max(action.time, t), _TICK, -1, 0, s)
                states[s].settle()
            if i > first and self.progress is not None and i >= next_report:
                self.progress(i / n if n else 1.0, t)
                next_report = i + step
        if self.progress is not None:
            self.progress(1.0, t)
        met.failures = sum(sp.failures for sp in spares)
        return self._result(time.perf_counter() - wall0, logs, site_of, reasons, spares)

    def _failures(self) -> Iterator[tuple[float, int, int, Failure]]:
        """Every site's failures, merged in time order: (time, site, sequence, failure)."""
        if self.failures is None:
            return iter(())
        model = self.failures

        def one(k: int) -> Iterator[tuple[float, int, int, Failure]]:
            for j, f in enumerate(model.stream(self.states[k].spec.topology, self.seed + 1009 * k)):
                yield (f.time, k, j, f)

        return heapq.merge(*(one(k) for k in range(len(self.states))))

    def _windows(self, summary: dict[str, Any], start: float, stop: float) -> None:
        """The network's whole-run fairness and slowdown, and its steady-state window (twin/windows.py): the
        network's GPUs as one pool, entitlements down the tenant tree across every site."""
        wl = self.workload
        jobs = Jobs.of(wl, self.tenants)
        whole = measure(self.metrics, Window(start, stop, "the whole run: first submission to last end"), jobs)
        summary["window"] = whole["window"]
        summary["fairness"] = whole["fairness"]
        summary["slowdown"] = whole["slowdown"]
        summary["tenants"] = whole["tenants"]
        arrived = wl.submit_s[wl.submit_s <= stop]
        last = float(arrived[-1]) if arrived.size else start
        summary["steady"] = measure(self.metrics, steady_window(self.metrics, start, last, stop), jobs)

    def _result(
        self,
        wall_s: float,
        logs: list[_SiteLog],
        site_of: np.ndarray,
        reasons: list[str],
        spares: list[_Spares],
    ) -> NetworkResult:
        wl = self.workload
        met = self.metrics
        cut = self.horizon_s if (met.state == UNFINISHED).any() else None
        summary: dict[str, Any] = met.summarise(wl.submit_s, wl.gpu_equivalent, until=cut)
        summary["waiting_at_end"] = waiting_reasons([st.engine for st in self.states])
        summary["stuck"] = self.stuck
        start = float(wl.submit_s[0]) if len(wl) else 0.0
        stop = start + max(summary["makespan_s"], 1.0)
        sites: dict[str, dict[str, Any]] = {}
        site_series: dict[str, Series] = {}
        totals = {"energy_mwh": 0.0, "cost_eur": 0.0, "emissions_t": 0.0}
        for k, st in enumerate(self.states):
            idx = np.flatnonzero(site_of == k)
            part = met.part(idx, st.gpus, logs[k].t_alloc, logs[k].d_alloc, logs[k].t_queue, logs[k].d_queue,
                            logs[k].tenant_gpu_s)  # fmt: skip
            part.failures = spares[k].failures
            s = part.summarise(wl.submit_s[idx], wl.gpu_equivalent[idx])
            # Over the network's window, not the site's own makespan: so sites compare, and the network's figure is
            # their GPU-weighted mean.
            s["utilisation"] = round(part.utilisation(start, stop), 6)
            gpu_s = float(logs[k].tenant_gpu_s.sum())
            energy = st.job_energy_mwh(gpu_s, 1.0)
            spec = st.spec
            s.update(
                {
                    "country": spec.country,
                    "preset": spec.preset,
                    "gpus": st.gpus,
                    "powered_gpus": int(spec.topology.node_gpus[: spec.powered_nodes()].sum()),
                    "received": int(idx.size),
                    "received_share": round(idx.size / max(len(wl), 1), 6),
                    "energy_mwh": round(energy, 6),
                    "cost_eur": round(energy * spec.price_eur_mwh, 2),
                    "emissions_t": round(energy * spec.carbon_g_kwh / 1000.0, 6),
                    "price_eur_mwh": spec.price_eur_mwh,
                    "carbon_g_kwh": spec.carbon_g_kwh,
                    "pue": spec.pue,
                    "power_cap_mw": spec.power_cap_mw,
                    "full_power_mw": round(spec.full_power_mw(), 3),
                }
            )
            for key in totals:
                totals[key] += s[key]
            sites[spec.name] = s
            site_series[spec.name] = part.series(start, stop)
        routed = site_of >= 0
        why: dict[str, int] = {}
        for i in np.flatnonzero(~routed).tolist():
            why[reasons[i]] = why.get(reasons[i], 0) + 1
        summary.update(
            {
                "energy_mwh": round(totals["energy_mwh"], 6),
                "cost_eur": round(totals["cost_eur"], 2),
                "emissions_t": round(totals["emissions_t"], 6),
                "eur_per_gpu_hour": round(totals["cost_eur"] / summary["gpu_hours"], 4)
                if summary["gpu_hours"]
                else None,
                "unroutable": int((~routed).sum()),  # rejected at submission: no allowed site could hold them
                "unroutable_reasons": dict(sorted(why.items(), key=lambda kv: -kv[1])[:5]),
                "wall_s": round(wall_s, 3),
                "policy": str(self.profile),
                "route": str(self.route),
                "seed": self.seed,
                "network": self.network.name,
                "gpus": self.network.num_gpus,
                "workload": wl.name,
                "failure_model": self.failures.name if self.failures is not None else "none",
                "offered_load": round(wl.gpu_seconds() / (self.network.num_gpus * wl.span_s()), 4)
                if wl.span_s() > 0
                else None,
                "sites": sites,
            }
        )
        self._windows(summary, start, stop)
        return NetworkResult(summary, met.series(start, stop), site_series, site_of, reasons, wl, self.tenants)
