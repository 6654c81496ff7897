"""The planner over a network: each site with its own size, model, PUE and price; totals that are the sums."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gigafactory.core.errors import ConfigError
from gigafactory.core.topology import Topology
from gigafactory.network import Network, SiteSpec, network_preset
from gigafactory.plan import PlanInputs, plan, plan_network
from gigafactory.plan.network import SUMMED

TEMPLATE = PlanInputs(utilisation=0.7, ettr=0.95, mfu=0.45)


def test_eu_2030_totals_are_the_sums_of_its_sites() -> None:
    net = network_preset("eu-2030")
    p = plan_network(net, TEMPLATE)
    assert [s.name for s in p.sites] == list(net.names)
    assert p.gpus == 562_040 == sum(s.result.inputs.gpus for s in p.sites)
    for key in SUMMED:
        values = [getattr(s.result, key) for s in p.sites]
        assert p.totals[key] == math.fsum(values), key
        assert p.totals[key] == pytest.approx(sum(values), rel=1e-12), key
    assert p.cost_per_gpu_hour_eur == p.totals["tco_per_year_eur"] / p.totals["delivered_gpu_hours"]
    costs = [s.result.cost_per_gpu_hour_eur for s in p.sites]
    assert min(costs) < p.cost_per_gpu_hour_eur < max(costs)


def test_each_site_keeps_its_own_pue_price_and_model() -> None:
    net = network_preset("eu-2030")
    p = plan_network(net, TEMPLATE)
    for spec, site in zip(net.sites, p.sites, strict=True):
        i = site.result.inputs
        assert (i.pue, i.price_eur_mwh, i.gpus) == (spec.pue, spec.price_eur_mwh, spec.topology.num_gpus)
        assert i.gpu_model == spec.topology.models[0]
        # The template's economics, everywhere.
        assert (i.utilisation, i.ettr, i.mfu) == (0.7, 0.95, 0.45)
        assert site.result == plan(i)
    by = {s.name: s.result for s in p.sites}
    assert by["it-gigafactory"].inputs.gpu_model == "H100"
    assert by["fi-gigafactory"].inputs.gpu_model == "GB200"
    # Same hardware, cheaper power and a lower PUE: Finland beats Germany.
    assert by["fi-gigafactory"].cost_per_gpu_hour_eur < by["de-gigafactory"].cost_per_gpu_hour_eur
    assert by["fi-gigafactory"].facility_mw == pytest.approx(by["fi-gigafactory"].it_mw * 1.15)
    assert p.cheapest_run_site == "fi-gigafactory"


def test_a_sites_utilisation_can_be_its_own() -> None:
    net = network_preset("pair")
    p = plan_network(net, TEMPLATE, {"de-1": 0.4})
    by = {s.name: s.result.inputs.utilisation for s in p.sites}
    assert by == {"de-1": 0.4, "fr-1": 0.7}


def test_a_site_that_mixes_gpu_models_is_refused() -> None:
    topo = Topology.from_columns(
        "mixed", models=("H100", "B200"), node_model=np.array([0, 1]), node_gpus=np.array([8, 8]),
        node_cpu=np.array([64_000, 64_000]), node_mem=np.array([1 << 20, 1 << 20]),
    )  # fmt: skip
    site = SiteSpec("mix-1", "slurm", "DE", 200.0, 300.0, 1.2).on(topo)
    with pytest.raises(ConfigError, match="site mix-1 mixes GPU models"):
        plan_network(Network("n", (site,)), TEMPLATE)
