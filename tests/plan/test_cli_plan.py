"""``gigafactory plan`` and ``plan growth`` end to end: JSON keys, the inputs marked default or given, runs read
back, and one clear line with exit code 2 for every bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gigafactory.cli.app import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def plan_json(*args: str) -> dict[str, Any]:
    code, out = invoke("plan", "--json", *args)
    assert code == 0, out
    data: dict[str, Any] = json.loads(out)
    return data


def test_plan_json_has_the_figures_and_marks_the_defaults() -> None:
    doc = plan_json("--gpus", "1000", "--watts", "1000", "--pue", "1.2", "--price", "100", "--utilisation", "0.5")
    for key in ("it_mw", "facility_mw", "annual_energy_mwh", "annual_energy_cost_eur", "cost_per_gpu_hour_eur",
                "tco_per_year_eur", "delivered_gpu_hours", "capex_eur", "run_gpu_hours", "run_wall_days",
                "run_cost_eur"):  # fmt: skip
        assert key in doc, key
    assert doc["it_mw"] == 1.0 and doc["facility_mw"] == 1.2
    assert doc["annual_energy_mwh"] == pytest.approx(5_256.0)
    assert doc["annual_energy_cost_eur"] == pytest.approx(525_600.0)
    inputs = doc["inputs"]
    assert inputs["pue"] == {"value": 1.2, "default": False, "source": "--pue"}
    assert inputs["gpu_model"]["default"] is True and inputs["gpu_model"]["value"] == "GB200"
    assert inputs["mfu"]["default"] is True and inputs["mfu"]["value"] == 0.4
    assert inputs["ettr"]["default"] is True and "B5" in inputs["ettr"]["source"]


def test_plan_of_a_site_preset_and_the_default_site() -> None:
    doc = plan_json("--site", "hgx-h100:nodes=1250", "--pue", "1.15")
    assert doc["site"] == "hgx-h100:nodes=1250"
    assert doc["inputs"]["gpus"]["value"] == 10_000 and doc["inputs"]["gpu_model"]["value"] == "H100"
    assert doc["it_mw"] == pytest.approx(10_000 * 10_200 / 8 / 1e6)
    default = plan_json()
    assert default["site"] == "gb200-nvl72:racks=1389" and default["inputs"]["gpus"]["value"] == 100_008
    assert default["inputs"]["gpus"]["default"] is True


def test_plan_of_a_network() -> None:
    doc = plan_json("--network", "eu-2030", "--mfu", "0.5")
    assert doc["kind"] == "network" and doc["gpus"] == 562_040
    assert len(doc["sites"]) == 11
    assert doc["facility_mw"] == pytest.approx(sum(s["facility_mw"] for s in doc["sites"].values()))
    assert doc["annual_energy_cost_eur"] == pytest.approx(
        sum(s["annual_energy_cost_eur"] for s in doc["sites"].values())
    )
    assert doc["sites"]["fi-gigafactory"]["pue"] == 1.15
    assert doc["inputs"]["mfu"] == {"value": 0.5, "default": False, "source": "--mfu"}
    assert "pue" not in doc["inputs"]  # each site's own
    code, out = invoke("plan", "--network", "pair")
    assert code == 0 and "de-1" in out and "network" in out


def test_from_run_takes_the_measured_utilisation(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out = invoke("twin", "run", "--site", "hgx-h100:nodes=4", "--workload", "llm:load=0.6,tenants=2",
                       "--days", "0.5", "--failures", "llama3", "--out", str(run), "-q")  # fmt: skip
    assert code == 0, out
    summary = json.loads((run / "summary.json").read_text())
    doc = plan_json("--from-run", str(run))
    assert doc["inputs"]["utilisation"]["value"] == summary["utilisation"]
    assert doc["inputs"]["utilisation"]["source"] == f"run {run}"
    assert doc["inputs"]["ettr"]["value"] == summary["ettr"]
    # A flag given beside the run wins.
    assert plan_json("--from-run", str(run), "--utilisation", "0.5")["inputs"]["utilisation"]["value"] == 0.5
    # A run without failures has no ETTR worth taking: the default stays.
    (tmp_path / "calm").mkdir()
    (tmp_path / "calm" / "summary.json").write_text(json.dumps({**summary, "failure_model": "none", "ettr": 0.999}))
    assert plan_json("--from-run", str(tmp_path / "calm"))["inputs"]["ettr"]["default"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pue", "0.9"], "pue=0.9 must be at least 1"),
        (["--price", "-5"], "price_eur_mwh=-5 must be at least 0"),
        (["--capex-gpu", "-1"], "capex_eur_per_gpu=-1 must be at least 0"),
        (["--utilisation", "1.2"], "utilisation=1.2 must be a share"),
        (["--ettr", "0"], "ettr=0 must be a share"),
        (["--mfu", "1.5"], "mfu=1.5 must be a share"),
        (["--gpus", "0"], "gpus=0 must be at least 1"),
        (["--depreciation-years", "0"], "depreciation_years=0 must be greater than 0"),
        (["--gpu-model", "TPU9"], "gpu_model='TPU9' is not in the catalogue"),
        (["--site", "nope"], "unknown site preset 'nope'"),
        (["--site", "hgx-h100:nodes=4", "--gpus", "8"], "give either --site or --gpus"),
        (["--network", "eu-2030", "--pue", "1.2"], "--pue applies to one site"),
        (["--network", "eu-2030", "--site", "hgx-h100"], "give either --site or --network"),
        (["--network", "mars"], "unknown network 'mars'"),
        (["--from-run", "/nonexistent/run"], "no summary.json there"),
        (["growth", "--from", "2031", "--to", "2025"], "from=2031 is after to=2025"),
        (["growth", "--target", "abc"], "target='abc' must be a multiple"),
        (["growth", "--demand-growth", "-2"], "demand_growth=-2 must be greater than -1"),
        (["growth", "--network", "eu-2030", "--price", "80"], "--price applies to one site"),
        (["growth", "--days", "0"], "days=0 must be greater than 0"),
        (["growth", "--demand-growth", "3", "--to", "2030"], "offered load"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], message: str) -> None:
    code, out = invoke("plan", *args)
    assert code == 2, out
    assert message in out
    assert "Traceback" not in out
    assert out.strip().startswith("error:")


def test_plan_growth_writes_its_outputs(tmp_path: Path) -> None:
    out = tmp_path / "g"
    args = ["--site", "hgx-h100:nodes=16", "--from", "2025", "--to", "2027", "--target", "3x", "--demand-growth", "2"]
    code, text = invoke("plan", "growth", *args, "--scale", "32", "--days", "1", "--out", str(out))
    assert code == 0, text
    doc = json.loads((out / "growth.json").read_text())
    assert [y["year"] for y in doc["years"]] == [2025, 2026, 2027]
    assert doc["scenario"] == {"from_year": 2025, "to_year": 2027, "target": 3.0, "demand_growth": 2.0,
                               "start_load": 0.8}  # fmt: skip
    assert (out / "report.html").stat().st_size > 100_000
    assert "Demand outruns capacity from 2026" in text.replace("\n", " ")
