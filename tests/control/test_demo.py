"""The main job, as a newcomer runs it: ``make demo``'s command in a fresh clone, with the default relative data
directory, seeing real jobs complete; and ``--twin-only``."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from gigafactory.control.executors.runner import proc_start
from gigafactory.control.identity import isolating

from .conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def _make_demo_command() -> list[str]:
    """What `make demo` runs once the environment is installed, as the Makefile says it."""
    out = subprocess.run(["make", "-s", "-n", "-C", str(REPO), "demo"], capture_output=True, text=True, check=True)
    line = [x for x in out.stdout.splitlines() if "gigafactory" in x][-1]
    return shlex.split(line)


def test_make_demo_runs_real_jobs_from_a_fresh_clone(tmp_path: Path) -> None:
    command = _make_demo_command()
    assert command == [".venv/bin/gigafactory", "demo"], command  # relative: it runs from the checkout
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (clone / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the environment `make` would install
    port = free_port()
    proc = subprocess.Popen(
        command, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200", "GIGAFACTORY_PORT": str(port)}, start_new_session=True,
    )  # fmt: skip
    seen: list[str] = []
    deadline = time.monotonic() + 120
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "jobs ended" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as the demo tells the newcomer
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(seen) + rest
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert "submitted 9 real jobs for lab-a, startup-b, uni-c" in text
    assert f"dashboard as the admin: http://127.0.0.1:{port}/login?code=gfc_" in text
    assert "gf_" not in text.replace("gfc_", "")  # no token is printed, only one-time codes
    assert "all 9 jobs ended (8 completed, 1 failed as intended)" in text, text[-3000:]
    # The data went where a newcomer expects it: under the clone, relative to where the command ran.
    data = clone / "out" / "control-demo"
    assert (data / "gigafactory.db").exists() and data.stat().st_mode & 0o077 == 0
    jobs = data / "jobs"
    if isolating():  # run as root, the jobs live in the spool, where their tenants' uids reach them
        jobs = Path(os.environ["GIGAFACTORY_SPOOL"]) / _meta(data, "plane_id")
    logs = sorted(jobs.glob("*/1/stdout.log"))
    assert len(logs) == 9 and any("training on GPUs" in p.read_text() for p in logs)
    # Nothing of it still runs.
    for info in jobs.glob("*/*/claim/runner.json"):
        record = json.loads(info.read_text())
        assert proc_start(record["pid"]) != record["start"], f"{info.parent} still runs"


def _meta(data: Path, key: str) -> str:
    import sqlite3

    with sqlite3.connect(data / "gigafactory.db") as db:
        return str(db.execute("select value from meta where key = ?", (key,)).fetchone()[0])


def test_demo_twin_only_simulates(tmp_path: Path) -> None:
    out = tmp_path / "twin"
    r = subprocess.run([sys.executable, "-m", "gigafactory", "demo", "--twin-only", "--days", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["jobs"] > 1000 and 0 < summary["utilisation"] <= 1
    assert (out / "report.html").stat().st_size > 100_000
