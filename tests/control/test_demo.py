"""The main job, as `make demo` runs it: the control plane on embedded defaults with real jobs; and --twin-only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gigafactory.control.executors import LocalExecutor

from .conftest import free_port


def test_demo_runs_real_jobs_and_serves_the_dashboard(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "demo"
    r = subprocess.run(
        [sys.executable, "-m", "gigafactory", "demo", "--out", str(out), "--port", str(port), "--for", "20"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout
    assert "submitted 9 real jobs for lab-a, startup-b, uni-c" in text
    assert f"dashboard: http://127.0.0.1:{port}/login?token=gf_" in text
    assert "as tenant uni-c:" in text
    lines = [line.split() for line in text.splitlines() if line.strip().startswith("job")]
    ended = {(w[3], w[4]) for w in lines if len(w) >= 5}
    assert ("broken-config", "failed") in ended and ("eval-harness", "completed") in ended
    assert "Traceback" not in r.stderr
    # Real processes ran: their output is where the job says.
    logs = sorted(out.glob("jobs/*/1/stdout.log"))
    assert any("training on GPUs" in p.read_text() for p in logs)
    assert (out / "gigafactory.db").exists() and (out / "admin.token").stat().st_mode & 0o077 == 0
    # It stopped after 20 s with the longer jobs unfinished: it stopped them too, and says so.
    assert "job(s) still running" in text
    time.sleep(1.0)
    assert LocalExecutor(out).stop_all() == 0  # nothing of it still runs


def test_demo_twin_only_simulates(tmp_path: Path) -> None:
    out = tmp_path / "twin"
    r = subprocess.run([sys.executable, "-m", "gigafactory", "demo", "--twin-only", "--days", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["jobs"] > 1000 and 0 < summary["utilisation"] <= 1
    assert (out / "report.html").stat().st_size > 100_000
