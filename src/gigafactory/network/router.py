"""Routing a job to one site of a network: filters first (residency), then whether the site could ever hold it,
then the route policy's choice among the rest. Pure: the twin and the control plane call the same code.

A :class:`SiteState` is one site as the router sees it (a :class:`~gigafactory.policy.base.SiteView`): its spec
and its engine. Jobs routed to a site since the site's engine last handled events are counted as work *ahead*
(:meth:`SiteState.settle` clears them once the engine has them), so a burst of submissions in one instant does
not all land on the site that looked emptiest before the burst.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gigafactory.core.hardware import system_watts
from gigafactory.core.jobs import Job, JobRequest
from gigafactory.core.status import Status
from gigafactory.engine.engine import Engine
from gigafactory.engine.queue import expected_runtime
from gigafactory.network.model import SiteSpec
from gigafactory.policy.profile import RouteProfile

__all__ = ["Routed", "Router", "SiteState"]


class SiteState:
    def __init__(self, spec: SiteSpec, engine: Engine) -> None:
        self.spec = spec
        self.engine = engine
        self.ahead_gpus = 0.0
        self.ahead_work = 0.0
        topo = engine.topo
        gpus = topo.node_gpus.astype(np.float64)
        watts = np.array([system_watts(m) for m in topo.models])[topo.node_model]
        total = float(gpus.sum())
        self._watts_per_gpu = float((gpus * watts).sum() / total) if total else 0.0
        self._gpus = topo.num_gpus

    # SiteView
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def country(self) -> str:
        return self.spec.country

    @property
    def price_eur_mwh(self) -> float:
        return self.spec.price_eur_mwh

    @property
    def carbon_g_kwh(self) -> float:
        return self.spec.carbon_g_kwh

    @property
    def gpus(self) -> int:
        return self._gpus

    def load(self) -> float:
        return (self.engine.committed_gpus() + self.ahead_gpus) / max(self._gpus, 1)

    def estimate_start(self, job: Job, now: float) -> float:
        return self.engine.estimate_start(job, now, ahead_gpus=self.ahead_gpus, ahead_work_gpu_s=self.ahead_work)

    def energy_mwh(self, job: Job) -> float:
        return self.job_energy_mwh(job.request.gpu_equivalent, expected_runtime(job.estimate_s))

    def job_energy_mwh(self, gpus: float, seconds: float) -> float:
        """Facility energy of ``gpus`` GPUs busy for ``seconds`` here."""
        return gpus * self._watts_per_gpu * self.spec.pue * seconds / 3.6e9

    # bookkeeping
    def sent(self, job: Job) -> None:
        g = job.request.gpu_equivalent
        self.ahead_gpus += g
        self.ahead_work += g * expected_runtime(job.estimate_s)

    def settle(self) -> None:
        """The engine has now handled every job routed here: stop counting them twice."""
        self.ahead_gpus = self.ahead_work = 0.0


@dataclass(frozen=True, slots=True)
class Routed:
    site: int  # index into the router's sites
    name: str
    reason: str


class Router:
    def __init__(self, sites: list[SiteState], route: RouteProfile, *, seed: int = 0) -> None:
        if not sites:
            raise ValueError("a router needs at least one site")
        self.sites = sites
        self.route = route
        self._rng = np.random.default_rng([seed, 7])
        # Which sites could ever hold a request (for a tenant), and why the others cannot: it never changes.
        self._never: dict[tuple[JobRequest, str], tuple[list[str | None], list[int]]] = {}

    def candidates(self, job: Job) -> list[int] | Status:
        """The sites that may take ``job`` and could ever hold it, or why none can."""
        key = (job.request, job.tenant)
        known = self._never.get(key)
        if known is None:
            if len(self._never) > 100_000:
                self._never.clear()
            answers = [s.engine.never_fits(job) for s in self.sites]
            known = self._never[key] = (answers, [k for k, why in enumerate(answers) if why is None])
        never, holding = known
        if job.sites is None and job.countries is None and len(self.route.filters) == 1:
            if holding:  # (the common case: residency allows every site)
                return list(holding)
            allowed = list(range(len(self.sites)))
        else:
            allowed = [
                k for k, site in enumerate(self.sites)
                if all(f.excludes(job, site) is None for f in self.route.filters)
            ]  # fmt: skip
            if not allowed:
                return Status.unresolvable(_no_site(job, self.sites))
            fits = [k for k in allowed if never[k] is None]
            if fits:
                return fits
        why = "; ".join(f"{self.sites[k].name}: {never[k]}" for k in allowed)
        return Status.unresolvable("no allowed site could ever hold it: " + why)

    def route_job(self, job: Job, now: float, *, avoid: int | None = None) -> Routed | Status:
        """Choose the site for ``job`` and count it there as work ahead (see the module docstring). ``avoid``: a site
        that may not be chosen (the one a job is rerouted away from)."""
        fits = self.candidates(job)
        if isinstance(fits, Status):
            return fits
        if avoid is not None:
            fits = [k for k in fits if k != avoid]
            if not fits:
                return Status.unresolvable("no other allowed site could hold it")
        views = [self.sites[k] for k in fits]
        if len(views) == 1:
            k, reason = 0, "the only allowed site that could hold it"
        else:
            k, why = self.route.chooser.choose(job, list(views), now, self._rng)
            reason = f"{self.route.chooser.name}: {why}"
        site = fits[k]
        self.sites[site].sent(job)
        return Routed(site, self.sites[site].name, reason)


def _no_site(job: Job, sites: list[SiteState]) -> str:
    parts = []
    if job.sites is not None:
        parts.append(f"sites {', '.join(job.sites)}")
    if job.countries is not None:
        parts.append(f"countries {', '.join(job.countries)}")
    have = ", ".join(f"{s.name} ({s.country})" for s in sites)
    return f"no site of the network is allowed by its {' and '.join(parts)}; the network has {have}"
