"""Growth scenarios: the path's arithmetic (pure), and a short real run of the twin that writes its outputs."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest

from gigafactory.core.errors import ConfigError
from gigafactory.network import network_preset
from gigafactory.plan import (
    GrowthScenario,
    PlanInputs,
    ScaleMeasurement,
    SiteInputs,
    growth_path,
    growth_year,
    network_inputs,
    outrun,
    parse_target,
)
from gigafactory.plan.growth import capacity_factor, dominant_model, scale_preset, year_unmet_share

EU = network_inputs(network_preset("eu-2030"), PlanInputs())


def test_capacity_reaches_exactly_the_target_on_a_geometric_path() -> None:
    sc = GrowthScenario(2025, 2031, 3.0)
    path = growth_path(sc, EU)
    assert [s.year for s in path] == list(range(2025, 2032))
    assert path[0].factor == 1.0 and path[-1].factor == 3.0
    assert path[0].gpus == 562_040
    assert path[-1].gpus == 3 * 562_040  # every site exactly tripled
    for s in path[-1].sites:
        base = next(b for b in EU if b.name == s.name)
        assert s.inputs.gpus == 3 * base.inputs.gpus
        assert (s.inputs.pue, s.inputs.price_eur_mwh) == (base.inputs.pue, base.inputs.price_eur_mwh)
    # Geometric: the same ratio every year.
    ratios = [b.factor / a.factor for a, b in itertools.pairwise(path)]
    assert ratios == pytest.approx([3 ** (1 / 6)] * 6)
    assert capacity_factor(GrowthScenario(2025, 2027, 2.5), 2027) == 2.5


def test_demand_and_offered_load() -> None:
    sc = GrowthScenario(2025, 2031, 3.0, demand_growth=0.4, start_load=0.8)
    path = growth_path(sc, EU)
    assert path[0].offered_load == pytest.approx(0.8)
    assert path[0].demand_gpu_hours == pytest.approx(0.8 * 562_040 * 8_760)
    assert path[3].demand_gpu_hours == pytest.approx(path[0].demand_gpu_hours * 1.4**3)
    assert path[-1].offered_load == pytest.approx(0.8 * 1.4**6 / 3, rel=1e-6)
    for s in path:
        assert s.capacity_gpu_hours == s.gpus * 8_760
        assert s.offered_load == pytest.approx(s.demand_gpu_hours / s.capacity_gpu_hours)


@pytest.mark.parametrize(("text", "value"), [("3x", 3.0), ("3", 3.0), ("2.5x", 2.5), (" 4X ", 4.0), ("1.5×", 1.5)])
def test_targets(text: str, value: float) -> None:
    assert parse_target(text) == value


@pytest.mark.parametrize("text", ["abc", "", "x", "0x", "-2x", "nanx", "infx"])
def test_bad_targets(text: str) -> None:
    with pytest.raises(ConfigError, match="must be a multiple above 0, such as 3x"):
        parse_target(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"from_year": 2031, "to_year": 2025}, "from=2031 is after to=2025"),
        ({"from_year": 2025, "to_year": 2025}, "give at least two"),
        ({"target": 0.0}, "target=0 must be greater than 0"),
        ({"demand_growth": -1.0}, "demand_growth=-1 must be greater than -1"),
        ({"start_load": 0.0}, "start_load=0 must be greater than 0"),
    ],
)
def test_bad_scenarios(kwargs: dict[str, float], message: str) -> None:
    base = {"from_year": 2025, "to_year": 2031, "target": 3.0}
    with pytest.raises(ConfigError, match=message):
        GrowthScenario(**{**base, **kwargs})  # type: ignore[arg-type]


def _measured(unstarted: float, utilisation: float = 0.9, load: float = 1.2) -> ScaleMeasurement:
    return ScaleMeasurement("gb200-nvl72:racks=14", 1008, 14.0, (1,), load, load, utilisation, 3600.0, 7200.0,
                            unstarted, 100, 10, 1.0)  # fmt: skip


def test_the_unmet_share_of_a_year() -> None:
    # No backlog at the end: capacity kept up, whatever the utilisation.
    assert year_unmet_share(_measured(0.0, utilisation=0.7, load=0.8)) == 0.0
    assert year_unmet_share(_measured(0.005, utilisation=0.7, load=0.8)) == 0.005
    # A backlog: the GPUs serve at the utilisation reached, and the rest is unmet.
    assert year_unmet_share(_measured(0.4, utilisation=0.99, load=2.0)) == pytest.approx(1 - 0.99 / 2.0)
    # Never less than what was left unstarted.
    assert year_unmet_share(_measured(0.3, utilisation=0.95, load=1.2)) == 0.3
    with pytest.raises(ConfigError, match=r"unstarted_share=1\.5"):
        year_unmet_share(_measured(1.5))


def test_a_year_maps_the_measures_onto_the_full_size() -> None:
    path = growth_path(GrowthScenario(2025, 2031, 3.0), EU)
    y = growth_year("eu-2030", path[-1], _measured(0.25, utilisation=0.95, load=path[-1].offered_load))
    assert y.unmet_share == pytest.approx(1 - 0.95 / path[-1].offered_load)
    assert y.unmet_gpu_hours == pytest.approx(path[-1].demand_gpu_hours - 0.95 * path[-1].capacity_gpu_hours)
    assert y.served_gpu_hours + y.unmet_gpu_hours == pytest.approx(path[-1].demand_gpu_hours)
    assert all(s.result.inputs.utilisation == 0.95 for s in y.plan.sites)  # cost at the measured utilisation
    assert y.plan.gpus == path[-1].gpus
    row = y.row()
    assert row["queue_mean_s"] == 3600.0 and row["unmet_share"] == y.unmet_share and row["year"] == 2031
    assert row["twin_unstarted_share"] == 0.25
    assert row["facility_mw"] == pytest.approx(3 * sum(s.inputs.gpus * s.inputs.system_watts * s.inputs.pue
                                                       for s in EU) / 1e6)  # fmt: skip


def test_outrun_says_where_and_by_how_much() -> None:
    path = growth_path(GrowthScenario(2025, 2031, 3.0, demand_growth=0.4), EU)
    years = [growth_year("eu-2030", s, _measured(max(0.0, 1 - 1 / s.offered_load), 1.0, s.offered_load)) for s in path]
    o = outrun(years)
    over = [s.year for s in path if s.offered_load > 1]
    assert o.years == tuple(over) and over[0] == 2027  # 0.8 × (1.4 / 3^(1/6))^2 = 1.09
    assert o.worst_year == 2031
    assert o.worst_gap_gpu_hours == pytest.approx(path[-1].demand_gpu_hours - path[-1].capacity_gpu_hours)
    assert o.unmet_gpu_hours == pytest.approx(sum(y.unmet_gpu_hours for y in years))
    assert "from 2027" in o.sentence() and "2031" in o.sentence()
    calm = outrun([growth_year("eu-2030", path[0], _measured(0.0))])
    assert calm.years == () and calm.worst_year is None and "keeps ahead" in calm.sentence()


def test_the_scale_model_is_of_the_dominant_model() -> None:
    assert dominant_model(EU) == "GB200"  # 410,040 GB200 against 152,000 H100
    assert scale_preset("GB200", 1008) == "gb200-nvl72:racks=14"
    assert scale_preset("H100", 1000) == "hgx-h100:nodes=125"
    assert scale_preset("B200", 64) == "uniform:nodes=8,gpus=8,model=B200"
    assert scale_preset("GB200", 10) == "gb200-nvl72:racks=1"
    h100 = tuple(replace(s, inputs=replace(s.inputs, gpu_model="H100")) for s in EU[:1])
    assert dominant_model(h100) == "H100"


TINY = (SiteInputs("lab", "", "hgx-h100:nodes=16", PlanInputs(gpus=128, gpu_model="H100")),)


def test_a_short_growth_run_writes_its_report_and_json(tmp_path: Path) -> None:
    from gigafactory.twin.growth import run_growth, write_growth_outputs

    # Demand triples each year while capacity grows by sqrt(3): loads 0.8, 1.39, 2.4.
    sc = GrowthScenario(2025, 2027, 3.0, demand_growth=2.0)
    result = run_growth("lab", TINY, sc, scale=32, days=1.0, seeds=(1,))
    assert result.scale_site == "hgx-h100:nodes=4" and result.scale_gpus == 32
    json_path, html_path = write_growth_outputs(result, tmp_path / "g")
    doc = json.loads(json_path.read_text())
    keys = {"year", "gpus", "it_mw", "facility_mw", "capacity_gpu_hours", "demand_gpu_hours", "offered_load",
            "served_gpu_hours", "unmet_gpu_hours", "unmet_share", "queue_mean_s", "queue_p99_s", "utilisation",
            "tco_per_year_eur", "cost_per_gpu_hour_eur"}  # fmt: skip
    assert [y["year"] for y in doc["years"]] == [2025, 2026, 2027]
    assert all(keys <= set(y) for y in doc["years"])
    first, last = doc["years"][0], doc["years"][-1]
    assert last["gpus"] == 3 * first["gpus"] == 384
    # Measured, not assumed: the overloaded year leaves work unstarted and waits longer.
    assert first["unmet_share"] < 0.05
    assert last["unmet_share"] > 0.2
    assert last["served_gpu_hours"] <= last["capacity_gpu_hours"]  # served never exceeds what the GPUs give
    assert last["queue_mean_s"] > first["queue_mean_s"]
    for y in doc["years"]:
        assert y["twin_offered_load"] == pytest.approx(y["offered_load"], rel=1e-3)  # drawn at exactly the load
    assert doc["outrun"]["years"] == [2026, 2027]
    assert doc["scale_model"]["site"] == "hgx-h100:nodes=4"
    page = html_path.read_text()
    assert "Where demand outruns capacity" in page and "Demand outruns capacity from 2026" in page
    assert page.count("Plotly.newPlot") >= 5  # capacity vs demand, unmet, MW, queueing, cost


def test_a_load_the_twin_cannot_draw_is_refused_before_any_run() -> None:
    from gigafactory.twin.growth import run_growth

    sc = GrowthScenario(2025, 2030, 1.0, demand_growth=1.0)  # 0.8 × 2^5 = 25.6
    with pytest.raises(ConfigError, match=r"year 2028: offered load 6\.40 is more than the growth runner takes \(4\)"):
        run_growth("lab", TINY, sc, scale=32, days=0.1)
