"""The planner over several sites: each site with its own GPUs, GPU model, PUE and electricity price, and the
network's totals.

A site's size and GPU model come from its topology (its preset, or the topology given with ``SiteSpec.on``); the
economics (capital costs, depreciation, utilisation, ETTR, MFU) are the same for every site and come from a
template :class:`~gigafactory.plan.model.PlanInputs`, whose own size, model, watts, PUE and price are not used.

Totals are sums over the sites (``math.fsum``, in the network's order) for everything that adds up: GPUs, MW, MWh,
euros, GPU-hours. The network's cost per GPU-hour is its total TCO over its total delivered GPU-hours, not a mean of
the sites' figures. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gigafactory.core.errors import ConfigError
from gigafactory.network.model import Network, SiteSpec
from gigafactory.plan.model import PlanInputs, PlanResult, plan

__all__ = ["SUMMED", "NetworkPlan", "SiteInputs", "SitePlan", "network_inputs", "plan_network", "plan_sites"]

# The figures a network's totals add up over its sites.
SUMMED = (
    "it_mw",
    "facility_mw",
    "annual_energy_mwh",
    "annual_energy_cost_eur",
    "capex_gpus_eur",
    "capex_facility_eur",
    "capex_eur",
    "annual_depreciation_eur",
    "annual_opex_eur",
    "tco_per_year_eur",
    "delivered_gpu_hours",
)


@dataclass(frozen=True, slots=True)
class SiteInputs:
    name: str
    country: str  # "" for a lone site outside a network
    preset: str
    inputs: PlanInputs


@dataclass(frozen=True, slots=True)
class SitePlan:
    name: str
    country: str
    preset: str
    result: PlanResult


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    name: str
    sites: tuple[SitePlan, ...]
    gpus: int
    totals: dict[str, float]  # each of SUMMED, summed over the sites
    cost_per_gpu_hour_eur: float  # total TCO / total delivered GPU-hours
    cheapest_run_site: str | None  # where the training run costs least; None if no site's peak is known

    def figures(self) -> dict[str, Any]:
        return {"gpus": self.gpus, **self.totals, "cost_per_gpu_hour_eur": self.cost_per_gpu_hour_eur}


def site_model(spec: SiteSpec) -> tuple[str, int]:
    """The site's one GPU model and its GPUs. A site that mixes models is refused: plan one model per site."""
    by_model = spec.topology.gpus_by_model()
    if len(by_model) != 1:
        mix = ", ".join(f"{n:,} {m}" for m, n in sorted(by_model.items()))
        raise ConfigError(f"site {spec.name} mixes GPU models ({mix}); the planner takes one model per site")
    ((model, gpus),) = by_model.items()
    return model, gpus


def network_inputs(
    network: Network, template: PlanInputs, utilisation: Mapping[str, float] | None = None
) -> tuple[SiteInputs, ...]:
    """Each site's inputs: its GPUs, model, PUE and price; the template's economics, except a site's utilisation
    where ``utilisation`` names the site (a network run measured each site's own)."""
    out = []
    for spec in network.sites:
        model, gpus = site_model(spec)
        inputs = replace(
            template,
            gpus=gpus,
            gpu_model=model,
            watts=None,
            pue=spec.pue,
            price_eur_mwh=spec.price_eur_mwh,
            utilisation=(utilisation or {}).get(spec.name, template.utilisation),
        )
        out.append(SiteInputs(spec.name, spec.country, spec.preset, inputs))
    return tuple(out)


def plan_sites(name: str, sites: Sequence[SiteInputs]) -> NetworkPlan:
    if not sites:
        raise ConfigError(f"network {name!r} has no sites to plan")
    plans = tuple(SitePlan(s.name, s.country, s.preset, plan(s.inputs)) for s in sites)
    totals = {key: math.fsum(getattr(p.result, key) for p in plans) for key in SUMMED}
    runs = [(p.result.run_cost_eur, k) for k, p in enumerate(plans) if p.result.run_cost_eur is not None]
    cheapest = plans[min(runs)[1]].name if runs else None
    return NetworkPlan(
        name=name,
        sites=plans,
        gpus=sum(p.result.inputs.gpus for p in plans),
        totals=totals,
        cost_per_gpu_hour_eur=totals["tco_per_year_eur"] / totals["delivered_gpu_hours"],
        cheapest_run_site=cheapest,
    )


def plan_network(network: Network, template: PlanInputs, utilisation: Mapping[str, float] | None = None) -> NetworkPlan:
    """Plan every site of ``network`` with the template's economics, and the network's totals."""
    return plan_sites(network.name, network_inputs(network, template, utilisation))
