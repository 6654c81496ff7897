"""The command line, end to end: outputs, determinism, and one clear line for every bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gigafactory.cli.app import app

runner = CliRunner()
SMALL = ["--site", "hgx-h100:nodes=8", "--workload", "llm:load=0.8,tenants=4", "--days", "2"]


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_twin_run_writes_summary_and_report(tmp_path: Path) -> None:
    code, out = invoke("twin", "run", *SMALL, "--policy", "sjf+easy+best-fit", "--seed", "3", "--out", str(tmp_path))
    assert code == 0, out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["policy"] == "sjf+easy+best-fit"
    assert summary["seed"] == 3
    assert summary["site"] == "hgx-h100:nodes=8"
    assert summary["jobs"] > 100
    assert (tmp_path / "report.html").stat().st_size > 100_000
    assert "utilisation" in out


def test_same_seed_gives_the_same_summary_apart_from_wall_time(tmp_path: Path) -> None:
    for name in ("a", "b"):
        code, out = invoke("twin", "run", *SMALL, "--seed", "9", "--out", str(tmp_path / name), "-q")
        assert code == 0, out
    a, b = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("a", "b"))
    for volatile in ("wall_s", "events_per_s"):
        a.pop(volatile), b.pop(volatile)
    assert a == b
    code, _ = invoke("twin", "run", *SMALL, "--seed", "10", "--out", str(tmp_path / "c"), "-q")
    c = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert c["avg_jct_s"] != a["avg_jct_s"]


def test_experiment_toml_with_several_seeds(tmp_path: Path) -> None:
    config = tmp_path / "exp.toml"
    config.write_text(
        'site = "uniform:nodes=4,gpus=8"\nworkload = "llm:load=0.6,tenants=2"\ndays = 1\nseeds = [1, 2]\n'
        '[policy]\norder = "fifo"\nbackfill = { name = "easy", depth = 20 }\nplace = "packing"\n'
    )
    code, out = invoke("twin", "run", "--config", str(config), "--out", str(tmp_path / "o"), "-q")
    assert code == 0, out
    combined = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [r["seed"] for r in combined["runs"]] == [1, 2]
    assert combined["runs"][0]["policy"] == "fifo+easy:depth=20+packing"
    assert "utilisation" in combined["mean"]
    assert (tmp_path / "o" / "seed-2" / "report.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--policy", "fifo+bogus"],
            "unknown policy 'bogus'; known: order: fair-share, fifo, las, priority, sjf; admit:",
        ),
        (["--site", "nope"], "unknown site preset 'nope'; known: gb200-nvl72, hgx-h100, uniform"),
        (["--site", "uniform:nodez=3"], "unknown parameter 'nodez'; allowed: cpu, gpus"),
        (["--site", "uniform:nodes=0"], "nodes='0' must be at least 1"),
        (["--site", "uniform:gpus=-8"], "gpus='-8' must be at least 1"),
        (["--site", "uniform:model=X100"], "unknown GPU model 'X100'; known: A100, B200, GB200, H100, H200"),
        (["--workload", "llm:model=X100"], "model='X100' is not on this site; it has GB200"),
        (
            ["--workload", "single:gpus=200000"],
            "job 0 asks for 200,000 GPUs; the site gb200-nvl72:racks=1389 has 100,008",
        ),
        (["--workload", "single:gpus=0"], "gpus='0' must be at least 1"),
        (
            ["--site", "uniform:nodes=4,gpus=8", "--workload", "single:gpus=16,locality=domain"],
            "job 0 asks for 16 GPUs in one NVLink domain; the largest NVLink domain of uniform:nodes=4,gpus=8 has 8",
        ),
        (["--workload", "nope"], "unknown workload 'nope'; known: llm, philly, pollux, single"),
        (["--workload", "llm:load=-1"], "load='-1' must be greater than 0"),
        (["--workload", "llm:lod=0.5"], "unknown parameter 'lod'; allowed: "),
        (["--workload", "llm:lod=0.5"], "(did you mean 'load'?)"),
        (["--workload", "philly:/no/such/dir/philly.csv"], "(nor its directory /no/such/dir: is $DATA set?"),
        (["--days", "0"], "days=0.0 must be greater than 0"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    code, out = invoke("twin", "run", *args, "--out", str(tmp_path), "-q")
    assert code == 2
    assert message in out
    assert "Traceback" not in out
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('site = "uniform:nodes=2"\nworkload =\n', "not valid TOML"),
        ('sight = "x"\n', "unknown key 'sight'; allowed: days, failures, horizon_days, name, network, out, policy"),
        ('days = "ten"\n', "days = 'ten' must be a number"),
        ('seeds = [1, "a"]\n', "seeds must be a list of whole numbers"),
        ('policy = "fifo+fifo"\n', "names two order policies"),
    ],
)
def test_bad_experiment_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "exp.toml"
    config.write_text(text)
    code, out = invoke("twin", "run", "--config", str(config), "-q")
    assert code == 2
    assert str(config) in out.replace("\n", "")
    assert message in out


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    code, out = invoke("twin", "run", "--config", str(tmp_path / "missing.toml"))
    assert code == 2
    assert "cannot read the experiment file" in out


def test_listing_commands() -> None:
    code, out = invoke("policies")
    assert code == 0 and "topology" in out and "easy" in out and "fifo+easy+topology" in out
    assert "earliest-start" in out and "cheapest-energy" in out  # route policies too
    code, out = invoke("presets")
    assert code == 0 and "gb200-nvl72" in out and "eu-2030" in out
    code, out = invoke("workloads")
    assert code == 0 and "llm" in out


def test_console_script_runs_and_fails_cleanly(tmp_path: Path) -> None:
    exe = shutil.which("gigafactory") or str(Path(sys.executable).parent / "gigafactory")
    ok = subprocess.run(
        [exe, "twin", "run", *SMALL, "--out", str(tmp_path), "-q"], capture_output=True, text=True, timeout=300
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["jobs"] > 0
    bad = subprocess.run([exe, "twin", "run", "--site", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: unknown site preset 'nope'; known: gb200-nvl72, hgx-h100, uniform"
    ]


def test_tenant_tree_from_a_file_with_fair_share_quota_and_reclaim(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(
        '[[tenant]]\nname = "eu"\nshare = 3\nguarantee = 32\n'
        '[[tenant]]\nname = "eurollm"\nparent = "eu"\nguarantee = 16\n'
        '[[tenant]]\nname = "openscience"\nparent = "eu"\n'
        '[[tenant]]\nname = "medai"\nlimit = 16\n'
    )
    code, out = invoke(
        "twin", "run", "--site", "hgx-h100:nodes=8", "--workload", "llm:load=0.9,tenants=3", "--days", "2",
        "--tenants", str(tenants), "--policy", "fair-share+quota+reclaim+easy+best-fit",
        "--out", str(tmp_path / "o"), "-q",
    )  # fmt: skip
    assert code == 0, out
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    owed = {name: t["share_owed"] for name, t in summary["tenants"].items()}
    assert owed == {"eurollm": 0.375, "openscience": 0.375, "medai": 0.25}
    assert summary["policy"] == "fair-share+none+best-fit+quota+reclaim".replace("none", "easy")


def test_jobs_that_can_never_start_end_the_run_with_their_reason_even_with_failures(tmp_path: Path) -> None:
    """medai may never hold more than 8 GPUs and asks for more: those jobs wait for good. Failures (an endless
    stream) must not keep the run going once nothing else can happen; the summary and the console say why the jobs
    were left waiting, and no one is owed GPUs beyond its limit."""
    tenants = tmp_path / "tenants.toml"
    tenants.write_text('[[tenant]]\nname = "eurollm"\n[[tenant]]\nname = "openscience"\n'
                       '[[tenant]]\nname = "medai"\nlimit = 8\n')  # fmt: skip
    exe = shutil.which("gigafactory") or str(Path(sys.executable).parent / "gigafactory")
    run = subprocess.run(
        [exe, "twin", "run", "--site", "hgx-h100:nodes=16", "--workload", "llm:load=0.8,tenants=3", "--days", "1",
         "--tenants", str(tenants), "--policy", "fifo+quota+easy+best-fit", "--failures", "rsc1",
         "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["stuck"] is True
    waiting = summary["waiting_at_end"]
    assert sum(waiting.values()) == summary["unfinished"] > 0
    assert all(reason.startswith("medai holds") and "of its 8 GPUs" in reason for reason in waiting)
    assert "still waiting when nothing left could start them: medai holds" in " ".join(run.stdout.split())
    hours = (summary["window"]["to_s"] - summary["window"]["from_s"]) / 3600
    assert 0 < summary["tenants"]["medai"]["owed_not_received_gpu_h"] <= 8 * hours
    # The network twin ends the same way, and says the same.
    net = subprocess.run(
        [exe, "twin", "run", "--network", "pair", "--workload", "llm:load=0.8,tenants=3", "--days", "1",
         "--tenants", str(tenants), "--policy", "fifo+quota+easy+best-fit", "--failures", "rsc1",
         "--out", str(tmp_path / "n"), "-q"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert net.returncode == 0, net.stderr
    summary = json.loads((tmp_path / "n" / "summary.json").read_text())
    assert summary["stuck"] is True and sum(summary["waiting_at_end"].values()) == summary["unfinished"] > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[tenant]]\nname = "a"\nparent = "b"\n[[tenant]]\nname = "b"\nparent = "a"\n', "cycle through"),
        ('[[tenant]]\nname = "a"\nshare = "big"\n', "share = 'big' is not a number"),
        ('[[tenant]]\nname = "a"\nshare = 0\n', "share=0.0 must be greater than 0"),
        ('[[tenant]]\nname = "a"\nguarantee = 100\n', "guarantees under the site add up to 100 GPUs, above its 64"),
        ('[[tenant]]\nname = "a"\nparent = "ghost"\n', "parent 'ghost' is not a tenant"),
        ('[[tenant]]\nname = "a"\n', "the workload's tenant 'eurollm' is not a leaf of the tenant tree"),
    ],
)
def test_inconsistent_tenant_trees_are_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    tenants = tmp_path / "t.toml"
    tenants.write_text(text)
    code, out = invoke("twin", "run", "--site", "hgx-h100:nodes=8", "--workload", "llm:tenants=2", "--days", "1",
                       "--tenants", str(tenants), "--out", str(tmp_path / "o"), "-q")  # fmt: skip
    assert code == 2
    assert message in out
    assert "Traceback" not in out
