"""The planner's arithmetic for one site: cases checked by hand, exact identities for any input, the defaults
against the published figures they come from, and every bad input refused with its field named."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gigafactory.core.errors import ConfigError, UserError
from gigafactory.plan import DEFAULTS, PlanInputs, describe_inputs, plan

HAND = PlanInputs(
    gpus=1_000,
    gpu_model="GB200",
    watts=1_000.0,
    pue=1.2,
    price_eur_mwh=100.0,
    capex_eur_per_gpu=10_000.0,
    capex_eur_per_mw=5_000_000.0,
    depreciation_years=5.0,
    facility_depreciation_years=15.0,
    utilisation=0.5,
    ettr=0.8,
    mfu=0.4,
)


def test_a_case_checked_by_hand() -> None:
    r = plan(HAND)
    assert r.it_mw == 1.0  # 1,000 GPUs × 1,000 W
    assert r.facility_mw == 1.2  # × PUE 1.2
    assert r.annual_energy_mwh == pytest.approx(1.2 * 8_760 * 0.5)  # 5,256 MWh: busy half the year
    assert r.annual_energy_mwh == pytest.approx(5_256.0)
    assert r.annual_energy_cost_eur == pytest.approx(525_600.0)  # × €100/MWh
    assert r.capex_gpus_eur == 10_000_000.0
    assert r.capex_facility_eur == 6_000_000.0  # 1.2 MW × €5M
    assert r.annual_depreciation_eur == pytest.approx(2_000_000.0 + 400_000.0)  # 10M / 5 + 6M / 15
    assert r.annual_opex_eur == 0.0
    assert r.tco_per_year_eur == pytest.approx(2_925_600.0)
    assert r.delivered_gpu_hours == pytest.approx(3_504_000.0)  # 1,000 × 8,760 × 0.5 × 0.8
    assert r.cost_per_gpu_hour_eur == pytest.approx(2_925_600.0 / 3_504_000.0)
    # 1e25 FLOP at 2,500 TFLOP/s × 0.4 = 1e15 FLOP/s per GPU: 1e10 GPU-seconds.
    assert r.run_gpu_hours == pytest.approx(1e10 / 3600)
    # 400 useful GPU-hours an hour (1,000 × 0.5 × 0.8).
    assert r.run_wall_days == pytest.approx(1e10 / 3600 / 400 / 24)
    assert r.run_cost_eur == pytest.approx(1e10 / 3600 * 2_925_600.0 / 3_504_000.0)


def test_idle_power_opex_and_run_share() -> None:
    from dataclasses import replace

    r = plan(replace(HAND, idle_power_fraction=0.2, opex_fraction=0.05, run_share=0.25))
    assert r.annual_energy_mwh == pytest.approx(1.2 * 8_760 * (0.5 + 0.5 * 0.2))
    assert r.annual_opex_eur == pytest.approx(0.05 * 16_000_000.0)
    assert r.run_wall_days == pytest.approx(1e10 / 3600 / 100 / 24)  # a quarter of the site: four times as long
    assert r.run_gpu_hours is not None
    assert r.run_cost_eur == pytest.approx(r.run_gpu_hours * r.cost_per_gpu_hour_eur)


shares = st.floats(0.01, 1.0)


@settings(max_examples=300, deadline=None)
@given(
    gpus=st.integers(1, 2_000_000),
    watts=st.floats(1.0, 20_000.0),
    pue=st.floats(1.0, 3.0),
    price=st.floats(0.0, 2_000.0),
    capex_gpu=st.floats(0.0, 1e6),
    capex_mw=st.floats(0.0, 1e8),
    years=st.floats(0.5, 30.0),
    u=shares,
    ettr=shares,
    idle=st.floats(0.0, 1.0),
)
def test_identities_hold_exactly_for_any_input(
    gpus: int,
    watts: float,
    pue: float,
    price: float,
    capex_gpu: float,
    capex_mw: float,
    years: float,
    u: float,
    ettr: float,
    idle: float,
) -> None:
    i = PlanInputs(
        gpus=gpus, watts=watts, pue=pue, price_eur_mwh=price, capex_eur_per_gpu=capex_gpu, capex_eur_per_mw=capex_mw,
        depreciation_years=years, utilisation=u, ettr=ettr, idle_power_fraction=idle,
    )  # fmt: skip
    r = plan(i)
    assert r.it_mw == gpus * watts / 1e6
    assert r.facility_mw == r.it_mw * pue  # exactly IT × PUE
    assert r.annual_energy_cost_eur == r.annual_energy_mwh * price  # exactly MWh × price
    assert r.annual_energy_mwh == r.facility_mw * 8_760 * (u + (1 - u) * idle)
    assert r.tco_per_year_eur == r.annual_depreciation_eur + r.annual_energy_cost_eur + r.annual_opex_eur
    assert r.cost_per_gpu_hour_eur * r.delivered_gpu_hours == pytest.approx(r.tco_per_year_eur)
    assert r.facility_mw >= r.it_mw


def test_the_defaults_reproduce_the_published_figures() -> None:
    # A GB200 NVL72 rack draws 132 kW (B6: 120-132 kW).
    assert plan(PlanInputs(gpus=72, gpu_model="GB200")).it_mw == pytest.approx(0.132)
    # xAI's 100k-H100 site was approved for 150 MW (B6): 127.5 MW of IT at PUE 1.18.
    assert plan(PlanInputs(gpus=100_000, gpu_model="H100", pue=1.18)).facility_mw == pytest.approx(150, rel=0.01)
    # Compute + facility per GB200 GPU: ($3.4M + $2.5M) / 72 at 1.08 $/EUR, near the EU's ~EUR 77k per GPU.
    r = plan(PlanInputs(gpus=72))
    assert r.capex_eur / 72 == pytest.approx(5.9e6 / 72 / 1.08)
    assert r.capex_eur / 72 == pytest.approx(77_000, rel=0.03)
    d = PlanInputs()
    assert (d.gpus, d.gpu_model, d.pue, d.price_eur_mwh, d.mfu) == (100_008, "GB200", 1.3, 190.0, 0.40)
    assert d.system_watts == pytest.approx(132_000 / 72)


def test_every_default_has_a_source() -> None:
    from dataclasses import fields

    names = {f.name for f in fields(PlanInputs)}
    assert set(DEFAULTS) == names
    assert all(DEFAULTS[n].source for n in names)
    described = describe_inputs(PlanInputs(pue=1.1), {"pue": "--pue"})
    assert described["pue"] == {"value": 1.1, "default": False, "source": "--pue"}
    assert described["price_eur_mwh"]["default"] is True
    assert "Eurostat" in described["price_eur_mwh"]["source"]
    assert described["watts"]["value"] == pytest.approx(132_000 / 72)  # the catalogue's figure, not None


def test_an_unknown_model_plans_with_its_watts_but_has_no_run() -> None:
    r = plan(PlanInputs(gpus=10, gpu_model="MI300X", watts=1_500.0))
    assert r.it_mw == pytest.approx(0.015)
    assert r.run_gpu_hours is None and r.run_cost_eur is None and r.run_wall_days is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"pue": 0.9}, "pue=0.9 must be at least 1"),
        ({"price_eur_mwh": -1.0}, "price_eur_mwh=-1 must be at least 0"),
        ({"capex_eur_per_gpu": -5.0}, "capex_eur_per_gpu=-5 must be at least 0"),
        ({"capex_eur_per_mw": -5.0}, "capex_eur_per_mw=-5 must be at least 0"),
        ({"opex_fraction": -0.1}, "opex_fraction=-0.1 must be at least 0"),
        ({"utilisation": 0.0}, "utilisation=0 must be a share in (0, 1]"),
        ({"utilisation": 1.5}, "utilisation=1.5 must be a share in (0, 1]"),
        ({"ettr": 0.0}, "ettr=0 must be a share"),
        ({"ettr": 1.01}, "ettr=1.01 must be a share"),
        ({"mfu": -0.4}, "mfu=-0.4 must be a share"),
        ({"mfu": 2.0}, "mfu=2 must be a share"),
        ({"run_share": 0.0}, "run_share=0 must be a share"),
        ({"gpus": 0}, "gpus=0 must be at least 1"),
        ({"gpus": -8}, "gpus=-8 must be at least 1"),
        ({"gpus": 1.5}, "gpus=1.5 must be a whole number"),
        ({"depreciation_years": 0.0}, "depreciation_years=0 must be greater than 0"),
        ({"facility_depreciation_years": -1.0}, "facility_depreciation_years=-1 must be greater than 0"),
        ({"watts": 0.0}, "watts=0 must be greater than 0"),
        ({"gpu_model": "TPU9"}, "gpu_model='TPU9' is not in the catalogue"),
        ({"pue": float("nan")}, "pue=nan must be a finite number"),
        ({"price_eur_mwh": float("inf")}, "price_eur_mwh=inf must be a finite number"),
        ({"idle_power_fraction": 1.5}, "idle_power_fraction=1.5 must be between 0 and 1"),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as exc:
        PlanInputs(**bad)  # type: ignore[arg-type]
    assert isinstance(exc.value, UserError)
