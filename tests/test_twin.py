"""The twin: workloads, the generator's calibration, metrics, the driver and the report."""

from __future__ import annotations

import numpy as np
import pytest

from gigafactory.core import ConfigError, build_site
from gigafactory.twin import Simulation, Workload, load_workload
from gigafactory.twin.metrics import binned_mean
from gigafactory.twin.report import build_report


def test_workload_sorts_by_submission_and_validates() -> None:
    wl = Workload.build("w", {"submit_s": [5, 1, 3], "gpus": [1, 2, 3], "runtime_s": [10, 20, 30]})
    assert wl.submit_s.tolist() == [1, 3, 5]
    assert wl.gpus.tolist() == [2, 3, 1]
    assert wl.job(0).request.gpus == 2
    with pytest.raises(ConfigError, match="job 1 has a run time that is not positive"):
        Workload.build("w", {"submit_s": [0, 1], "gpus": [1, 1], "runtime_s": [5, 0]})
    with pytest.raises(ConfigError, match="job 0 asks for a negative number of GPUs"):
        Workload.build("w", {"submit_s": [0], "gpus": [-1], "runtime_s": [5]})
    with pytest.raises(ConfigError, match="lacks column 'runtime_s'"):
        Workload.build("w", {"submit_s": [0], "gpus": [1]})


def test_identical_requests_share_one_object() -> None:
    wl = Workload.build("w", {"submit_s": [0, 1], "gpus": [4, 4], "runtime_s": [1, 2]})
    assert wl.request(0) is wl.request(1)


def test_binned_mean_integrates_a_step_function() -> None:
    # 0 until t=1, 2 until t=3, then 0.
    times = np.array([1.0, 3.0])
    deltas = np.array([2.0, -2.0])
    got = binned_mean(times, deltas, np.array([0.0, 2.0, 4.0]))
    assert got.tolist() == pytest.approx([1.0, 1.0])


def test_llm_generator_is_calibrated_to_acme() -> None:
    """Median 1 GPU; jobs of 256+ GPUs are a few % of jobs but most GPU time; ~40% fail or are cancelled;
    the offered load is near the target. (AcmeTrace: Kalos 4.3% of jobs / 96.3% of GPU time; 46% not
    completed.)"""
    topo = build_site("gb200-nvl72:racks=1389")
    loads = []
    for seed in range(4):
        wl, tree = load_workload("llm:load=0.8", topo, days=30, seed=seed)
        gpu_time = wl.gpu_equivalent * wl.runtime_s
        big = wl.gpus >= 256
        assert np.median(wl.gpus) == 1
        assert 0.03 < big.mean() < 0.05
        assert gpu_time[big].sum() / gpu_time.sum() > 0.9
        assert 0.38 < (wl.outcome != 0).mean() < 0.50
        assert wl.gpus.max() <= topo.num_gpus // 6
        assert (wl.estimate_s >= wl.runtime_s).all()
        assert tree is not None and len(tree.names()) == 10
        loads.append(wl.gpu_seconds() / (topo.num_gpus * 30 * 86_400))
    assert np.mean(loads) == pytest.approx(0.8, rel=0.15)


def test_llm_scales_to_small_sites() -> None:
    topo = build_site("uniform:nodes=8,gpus=8")
    wl, _ = load_workload("llm:load=0.5,tenants=3", topo, days=5, seed=1)
    assert wl.gpus.max() <= 64 // 6
    assert set(wl.tenants) == {"eurollm", "openscience", "medai"}


def test_simulation_end_to_end_small() -> None:
    topo = build_site("hgx-h100:nodes=16")
    wl, tree = load_workload("llm:load=0.9", topo, days=3, seed=2)
    result = Simulation(topo, wl, "fifo+easy+best-fit", seed=2, tenants=tree, validate=True).run()
    s = result.summary
    for key in (
        "jobs", "completed", "utilisation", "avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_queue_s", "p99_queue_s",
        "makespan_s", "events", "wall_s", "policy", "seed",
    ):  # fmt: skip
        assert key in s
    assert s["jobs"] == len(wl)
    assert s["unfinished"] == 0
    assert s["events"] == 2 * len(wl)  # a submission and an end per job
    assert 0.3 < s["utilisation"] <= 1.0
    assert s["p50_jct_s"] <= s["p99_jct_s"]
    shares = s["tenants"]
    assert sum(t["share_received"] for t in shares.values()) == pytest.approx(1.0, abs=1e-4)
    assert sum(t["share_owed"] for t in shares.values()) == pytest.approx(1.0, abs=1e-4)
    # GPU-hours add up: the sum over tenants equals the workload's work.
    assert s["gpu_hours"] == pytest.approx(wl.gpu_seconds() / 3600, abs=1e-3)


def test_backfill_beats_strict_fifo_on_queueing() -> None:
    topo = build_site("hgx-h100:nodes=16")
    wl, _ = load_workload("llm:load=0.95", topo, days=4, seed=5)
    strict = Simulation(topo, wl, "fifo+none+best-fit", seed=5).run().summary
    easy = Simulation(topo, wl, "fifo+easy+best-fit", seed=5).run().summary
    assert easy["avg_queue_s"] < strict["avg_queue_s"]
    assert easy["backfilled"] > 0


def test_horizon_leaves_jobs_unfinished() -> None:
    topo = build_site("uniform:nodes=2,gpus=8")
    wl, _ = load_workload("single:gpus=8,hours=10", topo, days=1, seed=0)
    s = Simulation(topo, wl, "fifo", horizon_s=3600).run().summary
    assert s["unfinished"] == 1 and s["completed"] == 0


def test_report_is_self_contained_html() -> None:
    topo = build_site("uniform:nodes=4,gpus=8")
    wl, tree = load_workload("llm:load=0.7,tenants=3", topo, days=1, seed=0)
    html = build_report(Simulation(topo, wl, "default", tenants=tree).run()).html()
    assert html.startswith("<!doctype html>")
    for title in ("Share of GPUs allocated", "Queue length", "CDF over jobs", "GPU-hours by tenant",
                  "Steady state: days", "Share received (solid) and entitled (dashed), per hour",
                  "Bounded slowdown by job size", "Fairness per hour"):  # fmt: skip
        assert title in html
    assert "<script src=" not in html  # plotly.js is inlined: works offline
    assert "Plotly.newPlot" in html


def test_the_summary_says_what_load_was_asked_and_who_decides_failures() -> None:
    """A generator draws jobs by chance, so the sampled load differs from the one asked for; and a job that fails
    by itself (the workload's outcome model) is not a job the site interrupted. Both are said, not left to guess."""
    from rich.console import Console

    from gigafactory.cli.app import summary_table

    topo = build_site("hgx-h100:nodes=4")
    wl, tree = load_workload("llm:load=0.85,tenants=2", topo, days=3, seed=1)
    s = Simulation(topo, wl, "default", seed=1, tenants=tree, keep_log=False).run().summary
    assert s["offered_load_target"] == 0.85 and s["offered_load"] != 0.85
    assert s["failed"] > 0 and s["outcome_model"].startswith("llm: AcmeTrace")
    assert s["interruptions"] == 0 and s["failure_model"] == "none"
    console = Console(width=200, record=True)
    console.print(summary_table(s))
    text = console.export_text()
    assert f"{s['offered_load']:.2f} (asked 0.85)" in text and "the sampled jobs' GPU-time" in text
    assert "ended by themselves; who does: llm: AcmeTrace" in text
    assert "requeued, not failed (no failure model)" in text
    # A trace without failed or cancelled jobs names no outcome model, and asks for no load.
    trace = Workload.build("t", {"submit_s": [0.0, 1.0], "gpus": [1, 1], "runtime_s": [10.0, 10.0]})
    s2 = Simulation(topo, trace, "default", seed=1, keep_log=False).run().summary
    assert s2["outcome_model"] == "none" and s2["offered_load_target"] is None


def test_a_wait_after_a_preemption_counts_in_waited_not_in_queueing() -> None:
    """Job 0 runs from 0; job 1 (higher priority) arrives at 10 and takes the GPU for 20 s; job 0 is stopped,
    requeued, and starts again at 30. Both first started at once (queueing 0); job 0 waited 20 s in all."""
    topo = build_site("uniform:nodes=1,gpus=1")
    wl = Workload.build("w", {"submit_s": [0.0, 10.0], "gpus": [1, 1], "runtime_s": [100.0, 20.0], "priority": [0, 9]})
    s = Simulation(topo, wl, "priority+none+preempt+first-fit", seed=0).run().summary
    assert (s["preemptions"], s["restarts"]) == (1, 1)
    assert (s["avg_queue_s"], s["p99_queue_s"]) == (0.0, 0.0)
    assert s["avg_waited_s"] == 10.0 and s["p99_waited_s"] == pytest.approx(19.8)
