"""``cheapest-energy`` and ``lowest-carbon``: the site where the run costs least, or emits least, among those
that can start it soon enough.

Energy of a run at a site = IT power of its GPUs × the site's PUE × its time limit (``SiteView.energy_mwh``);
its cost is that × the site's electricity price, its emissions that × the site's carbon intensity. SkyPilot picks
the cheapest region *with capacity*; likewise only sites whose engine expects to start the job within
``max_wait_h`` hours compete on price. When none can, the job goes where it starts soonest, so that a cheap site
does not collect an endless queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gigafactory.core.jobs import Job
from gigafactory.core.spec import Param
from gigafactory.policy.base import ROUTE, PolicyFactory, SiteView
from gigafactory.policy.route.earliest_start import describe_wait


@dataclass(frozen=True, slots=True)
class _ByCost:
    name: str
    label: str
    unit: str
    cost: Callable[[Job, SiteView], float]
    max_wait_h: float = 1.0

    def choose(self, job: Job, sites: list[SiteView], now: float, rng: np.random.Generator) -> tuple[int, str]:
        starts = [s.estimate_start(job, now) for s in sites]
        soon = [k for k in range(len(sites)) if starts[k] - now <= self.max_wait_h * 3600.0]
        if not soon:
            best = min(range(len(sites)), key=lambda k: (starts[k], sites[k].name))
            return best, (
                f"no site can start it within {self.max_wait_h:g} h; earliest estimated start: "
                f"{describe_wait(starts[best] - now)}"
            )
        costs = {k: self.cost(job, sites[k]) for k in soon}
        best = min(soon, key=lambda k: (costs[k], starts[k], sites[k].name))
        return best, (
            f"{self.label} of {len(soon)} sites that can start it within {self.max_wait_h:g} h: "
            f"{costs[best]:,.3g} {self.unit}, start {describe_wait(starts[best] - now)}"
        )


def _eur(job: Job, site: SiteView) -> float:
    return site.energy_mwh(job) * site.price_eur_mwh


def _t_co2(job: Job, site: SiteView) -> float:
    return site.energy_mwh(job) * site.carbon_g_kwh / 1000.0  # MWh × g/kWh = kg; / 1000 = t


def cheapest(max_wait_h: float = 1.0) -> _ByCost:
    return _ByCost("cheapest-energy", "cheapest energy", "EUR", _eur, max_wait_h)


def lowest_carbon(max_wait_h: float = 1.0) -> _ByCost:
    return _ByCost("lowest-carbon", "lowest emissions", "t CO2", _t_co2, max_wait_h)


_WAIT = {"max_wait_h": Param(float, 1.0, minimum=0.0, help="only sites that can start it within this many hours")}
ROUTE.add(
    "cheapest-energy", PolicyFactory(cheapest, "the lowest energy bill among sites that can start it soon", _WAIT)
)
ROUTE.add(
    "lowest-carbon", PolicyFactory(lowest_carbon, "the lowest emissions among sites that can start it soon", _WAIT)
)
