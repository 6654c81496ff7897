"""Philly and Pollux readers, bad rows, and the Tiresias check against the Pollux paper (B2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gigafactory.cli.app import app
from gigafactory.core import TraceError, build_site
from gigafactory.twin import Simulation, load_workload
from gigafactory.twin.workloads.philly import read_philly
from gigafactory.twin.workloads.pollux import read_pollux

runner = CliRunner()
PHILLY_HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"


def test_philly_rows_are_sorted_and_duplicates_kept(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        PHILLY_HEADER
        + "2017-10-02 00:00:10,60.0,1,60.0,aa\n"
        + "2017-10-01 00:00:00,30.0,8,240.0,bb\n"
        + "2017-10-02 00:00:10,60.0,1,60.0,aa\n"
    )
    wl, tree, skipped = read_philly(str(path))
    assert len(wl) == 3 and skipped == 0
    assert wl.submit_s.tolist() == [0.0, 86_410.0, 86_410.0]
    assert wl.gpus.tolist() == [8, 1, 1]
    assert wl.tenants == ("vc-aa", "vc-bb")
    assert tree.names() == ["vc-aa", "vc-bb"]
    window, _, _ = read_philly(str(path), start="2017-10-02", end="2017-10-02")
    assert len(window) == 2 and window.submit_s.tolist() == [0.0, 0.0]


def test_malformed_philly_rows_fail_with_the_line_or_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        PHILLY_HEADER + "2017-10-02 00:00:10,60.0,1,60.0,aa\nyesterday,60.0,1,60.0,aa\n2017-10-02 00:00:10,-5,1,1,aa\n"
    )
    with pytest.raises(TraceError, match=r"p\.csv, line 3, column 'timestamp': 'yesterday' is not a time"):
        read_philly(str(path))
    wl, _, skipped = read_philly(str(path), skip_bad_rows=True)
    assert len(wl) == 1 and skipped == 2


def test_cli_skip_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(PHILLY_HEADER + "2017-10-02 00:00:10,60.0,1,60.0,aa\n2017-10-02,x,1,1,aa\n")
    args = [
        "twin",
        "run",
        "--site",
        "hgx-h100:nodes=2",
        "--workload",
        f"philly:{path}",
        "--out",
        str(tmp_path / "o"),
        "-q",
    ]
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2 and "line 3" in bad.output
    ok = runner.invoke(app, [*args, "--skip-bad-rows"])
    assert ok.exit_code == 0, ok.output
    assert '"skipped_rows": 1' in (tmp_path / "o" / "summary.json").read_text()


def test_real_philly_trace(data_dir: Path) -> None:
    wl, tree, _ = read_philly(str(data_dir / "philly" / "philly.csv"))
    assert len(wl) == 82_247
    assert len(tree.names()) == 15
    assert (np.diff(wl.submit_s) >= 0).all()
    oct_nov, _, _ = read_philly(str(data_dir / "philly" / "philly.csv"), start="2017-10-01", end="2017-11-30")
    # BENCHMARKS.md B3 lower bounds: average and median duration of the Oct-Nov window.
    assert oct_nov.runtime_s.mean() == pytest.approx(11_480, rel=0.01)
    assert np.median(oct_nov.runtime_s) == pytest.approx(1_415, rel=0.01)


def test_pollux_reader(data_dir: Path) -> None:
    wl, _ = read_pollux(str(data_dir / "pollux-rigid" / "0.5-workload-1.csv"))
    assert len(wl) == 80
    assert (wl.restart_s == 30).all()
    assert not wl.request(0).gang  # replicas spread over any free GPUs, as Pollux places them


@pytest.mark.parametrize(("load", "published"), [(0.5, 2_091), (1.0, 4_038)])
def test_tiresias_on_the_pollux_workloads(data_dir: Path, load: float, published: float) -> None:
    """Average JCT over the eight rigid workloads within 5% of the Pollux paper's Tiresias."""
    topo = build_site("uniform:nodes=16,gpus=4")
    jct = []
    for k in range(1, 9):
        wl, _ = load_workload(f"pollux:{data_dir}/pollux-rigid/{load}-workload-{k}.csv", topo, days=1, seed=0)
        jct.append(Simulation(topo, wl, "tiresias", seed=0, keep_log=False).run().summary["avg_jct_s"])
    assert abs(np.mean(jct) / published - 1) <= 0.05
