"""``twin compare``: policies × seeds with intervals from scipy, and clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from gigafactory.core.errors import ConfigError
from gigafactory.twin.compare import MEASURES, _paired, check_plan, compare
from gigafactory.twin.experiment import Experiment

BIN = Path(sys.executable).parent
SMALL = Experiment(site="hgx-h100:nodes=4", workload="llm:load=1.2,tenants=2", days=1.5)


@pytest.mark.parametrize(
    ("policies", "seeds", "message"),
    [
        (["fifo+easy+topology", "fifo+easy+topology"], [1, 2], "policy 'fifo+easy+topology' is listed twice"),
        (["default", "fifo+easy+topology"], [1, 2], "the same profile as 'default'"),
        (["fifo+easy+topology"], [3], "seeds 3: a 95% interval needs at least 2 seeds"),
        (["fifo+easy+topology"], [1, 2, 1], "seed 1 is listed twice"),
        (["fifo+nope+topology"], [1, 2], "nope"),
        ([], [1, 2], "at least one --policy"),
    ],
)
def test_a_plan_that_cannot_give_intervals_is_refused_naming_the_value(
    policies: list[str], seeds: list[int], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        check_plan(SMALL, policies, seeds)


def test_paired_difference_inside_and_outside_the_noise() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    clear = _paired(a, a + np.array([0.9, 1.1, 1.0, 0.95, 1.05]))
    assert not clear["inside_noise"] and clear["low"] > 0
    noisy = _paired(a, a + np.array([0.5, -0.6, 0.4, -0.5, 0.1]))
    assert noisy["inside_noise"] and noisy["low"] < 0 < noisy["high"]
    ci = stats.ttest_rel(a + np.array([0.5, -0.6, 0.4, -0.5, 0.1]), a).confidence_interval(0.95)
    assert (noisy["low"], noisy["high"]) == (round(ci.low, 6), round(ci.high, 6))
    same = _paired(a, a)
    assert same["inside_noise"] and same["difference"] == 0


def test_compare_runs_every_policy_and_seed_and_its_intervals_are_scipys() -> None:
    result = compare(SMALL, ["fifo+easy+topology", "sjf+easy+topology"], [1, 2, 3], processes=2)
    assert {(r["policy"], r["seed"]) for r in result["runs"]} == {
        (p, s) for p in ("fifo+easy+topology", "sjf+easy+topology") for s in (1, 2, 3)
    }
    for p, row in result["table"].items():
        for key, c in row.items():
            v = np.array(c["values"], dtype=float)
            assert c["mean"] == pytest.approx(v.mean(), abs=1e-6), (p, key)
            if np.ptp(v) > 0:
                low, high = stats.t.interval(0.95, v.size - 1, loc=v.mean(), scale=stats.sem(v))
                bounds = next(m.bounds for m in MEASURES if m.key == key)
                # Clipped to what the measure can be (a JCT is never negative, a utilisation never above 1).
                assert c["clipped"] == (low < bounds[0] or high > bounds[1])
                assert (c["low"], c["high"]) == (
                    pytest.approx(max(low, bounds[0]), abs=1e-6),
                    pytest.approx(min(high, bounds[1]), abs=1e-6),
                )
    # Paired runs see the same jobs: the same seed gives the same number of jobs under both policies.
    jobs = {(r["policy"], r["seed"]): r["summary"]["jobs"] for r in result["runs"]}
    assert all(jobs[("fifo+easy+topology", s)] == jobs[("sjf+easy+topology", s)] for s in (1, 2, 3))
    assert {pr["measure"] for pr in result["pairs"]} >= {"utilisation", "fairness_deviation"}
    # Per-tenant shares over time are kept for the report, for the first seed.
    assert set(result["_shares"]) == {"fifo+easy+topology", "sjf+easy+topology"}


def test_the_cli_writes_the_table_and_the_report_and_refuses_one_seed(tmp_path: Path) -> None:
    exe = str(BIN / "gigafactory")
    base = [exe, "twin", "compare", "--site", "hgx-h100:nodes=4", "--workload", "llm:load=1.2,tenants=2",
            "--days", "1", "--policy", "fifo+easy+topology", "--policy", "fair-share+easy+topology"]  # fmt: skip
    one = subprocess.run([*base, "--seeds", "4", "--out", str(tmp_path / "x")], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert one.returncode == 2 and "seeds 4" in one.stderr and "at least 2 seeds" in one.stderr
    assert not (tmp_path / "x").exists()
    ok = subprocess.run([*base, "--seeds", "1-2", "--jobs", "1", "--out", str(tmp_path / "c")], capture_output=True,
                        text=True, timeout=600, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "paired differences" in ok.stdout and "fair-share+easy+topology" in ok.stdout
    data = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert data["seeds"] == [1, 2] and data["confidence"] == 0.95 and "scipy" in data["method"]
    md = (tmp_path / "c" / "compare.md").read_text()
    assert "| `fair-share+easy+topology` |" in md and "[" in md
    html = (tmp_path / "c" / "compare.html").read_text()
    assert "one point per seed" in html and "share received (solid) and entitled (dashed)" in html


def test_compare_takes_the_config_files_seeds_and_says_what_the_runs_shared(tmp_path: Path) -> None:
    config = tmp_path / "exp.toml"
    config.write_text('site = "hgx-h100:nodes=4"\nworkload = "llm:load=1.2,tenants=2"\ndays = 1\nseeds = [3, 4]\n'
                      'failures = "llama3"\nhorizon_days = 2\n')  # fmt: skip
    out = tmp_path / "c"
    r = subprocess.run([str(BIN / "gigafactory"), "twin", "compare", "--config", str(config), "--policy", "fifo",
                        "--policy", "default", "--jobs", "1", "--out", str(out), "-q"],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "compare.json").read_text())
    assert data["seeds"] == [3, 4] and data["failures"] == "llama3" and data["horizon_days"] == 2
    assert data["profiles"] == {"fifo": "fifo+none+best-fit", "default": "fifo+easy+topology"}
    md = (out / "compare.md").read_text()
    assert "failures: llama3" in md and "horizon: day 2" in md and "fifo = fifo+none+best-fit" in md
    # An output path that is a file, and seeds with an empty item, are refused by name.
    (tmp_path / "file").write_text("")
    bad = subprocess.run([str(BIN / "gigafactory"), "twin", "compare", "--config", str(config), "--policy", "fifo",
                          "--out", str(tmp_path / "file")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "is a file" in bad.stderr
    bad = subprocess.run([str(BIN / "gigafactory"), "twin", "compare", "--config", str(config), "--policy", "fifo",
                          "--seeds", "1,,2"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "empty item" in bad.stderr


def test_twin_run_refuses_a_seed_given_twice() -> None:
    with pytest.raises(ConfigError, match="seed 1 is given twice"):
        Experiment(site="hgx-h100:nodes=4", seeds=(1, 1)).check()
