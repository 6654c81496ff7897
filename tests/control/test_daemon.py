"""The daemon with the local executor: real processes, real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from gigafactory.control.executors.runner import proc_start
from gigafactory.control.store import inbox
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.schema import actions, transitions, usage
from gigafactory.control.store.site import node_rows

from .conftest import make_plane, run_until


def submit(plane, *specs: dict) -> list[int]:
    rows = []
    for s in specs:
        rows.append({"tenant": "lab-a", "name": "", **s})
    with plane.store.begin() as conn:
        return jobstore.insert_jobs(conn, rows)


def job(plane, jid: int):
    with plane.store.connect() as conn:
        return jobstore.get_job(conn, jid)


def ended(plane, *ids: int):
    return lambda: all(job(plane, i).state in ("completed", "failed", "cancelled", "rejected") for i in ids)


@pytest.fixture
def plane_db(tmp_path: Path, db_url: str | None):
    p = make_plane(tmp_path / "gf", db_url)
    yield p
    p.store.dispose()


def test_jobs_run_as_processes_with_their_gpus_logs_and_exit_codes(plane_db) -> None:
    plane = plane_db
    d = plane.daemon()
    ok, bad, frac = submit(
        plane,
        {"command": ["sh", "-c", "echo gpus $CUDA_VISIBLE_DEVICES"], "gpus": 3},
        {"command": ["sh", "-c", "echo oops >&2; exit 7"], "gpus": 1},
        {"command": ["sh", "-c", "echo $CUDA_VISIBLE_DEVICES $GIGAFACTORY_JOB_ID"], "gpus": 1, "gpu_milli": 250},
    )
    run_until(d, ended(plane, ok, bad, frac))
    a, b, c = job(plane, ok), job(plane, bad), job(plane, frac)
    assert (a.state, a.exit_code, a.attempt) == ("completed", 0, 1)
    assert a.log_dir == str(plane.jobs / str(ok) / "1")
    assert (b.state, b.exit_code) == ("failed", 7)
    assert c.state == "completed"
    # The GPUs the engine placed are the ones the process saw.
    placed = ",".join(str(g) for g in a.placement["gpus"][0])
    assert len(a.placement["gpus"][0]) == 3
    logs = plane.jobs
    assert (logs / str(ok) / "1" / "stdout.log").read_text().strip() == f"gpus {placed}"
    assert "oops" in (logs / str(bad) / "1" / "stderr.log").read_text()
    assert (logs / str(frac) / "1" / "stdout.log").read_text().split()[1] == str(frac)
    with plane.store.connect() as conn:
        # Accounting: one usage record per ended attempt, GPU-seconds = GPUs × the runner's own times.
        recs = conn.execute(select(usage).order_by(usage.c.job_id)).all()
        assert [(r.job_id, r.attempt) for r in recs] == [(ok, 1), (bad, 1), (frac, 1)]
        assert recs[0].gpus == 3 and recs[2].gpus == 0.25
        for r in recs:
            ran = json.loads((logs / str(r.job_id) / "1" / "status.json").read_text())
            assert (r.started_at, r.ended_at) == (ran["started"], ran["ended"])
            assert r.gpu_seconds == pytest.approx(r.gpus * (ran["ended"] - ran["started"]))
        # The story: submitted -> pending -> running -> completed.
        states = [r.new for r in jobstore.story(conn, ok)]
        assert states == ["pending", "running", "completed"]
        assert conn.execute(select(actions).where(actions.c.done.is_(False))).all() == []


def running_child(plane, jid: int, attempt: int = 1) -> int | None:
    """The pid of the attempt's main process, once the runner has started it."""
    try:
        return int(json.loads((plane.jobs / f"{jid}/{attempt}/claim/runner.json").read_text())["child"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def test_a_running_job_is_cancelled_and_its_process_stopped(plane) -> None:
    d = plane.daemon()
    (jid,) = submit(plane, {"command": ["sleep", "60"], "gpus": 8})
    run_until(d, lambda: job(plane, jid).state == "running" and running_child(plane, jid) is not None)
    pid = running_child(plane, jid)
    assert pid is not None
    with plane.store.begin() as conn:
        inbox.append(conn, "cancel", job_id=jid, reason="cancelled by the test")
    run_until(d, ended(plane, jid))
    row = job(plane, jid)
    assert row.state == "cancelled" and "cancelled by the test" in row.reason
    run_until(d, lambda: d.engine.held() == {})  # its GPUs are free only once it is gone
    assert proc_start(pid) is None


def test_a_job_that_ends_while_no_daemon_runs_keeps_its_own_end_time(plane) -> None:
    """The job's record says when it ended (as its runner saw it), not when the next daemon learnt of it."""
    import time

    d1 = plane.daemon()
    (jid,) = submit(plane, {"command": ["sleep", "0.3"], "gpus": 1})
    run_until(d1, lambda: job(plane, jid).state == "running")
    del d1  # as if it died: the job ends while no daemon runs
    time.sleep(3)
    d2 = plane.daemon()
    run_until(d2, ended(plane, jid))
    row = job(plane, jid)
    assert row.state == "completed"
    assert row.ended_at - row.started_at < 2.0  # its own 0.3 s (and start-up), not the 3 s without a daemon


def test_a_restart_while_an_attempt_is_stopping_keeps_its_gpus_held(plane) -> None:
    """The daemon dies after it stopped an attempt and before the attempt is gone (a job that ignores SIGTERM).
    The next daemon restores the attempt as held (its GPUs are not free yet) and ends it when it is gone. This
    failed once in the kill -9 test: the stopping attempts' query did not read the award they charged."""
    d1 = plane.daemon()
    (jid,) = submit(plane, {"command": ["sh", "-c", "trap '' TERM; sleep 1; sleep 1; sleep 1"], "gpus": 8})
    run_until(d1, lambda: job(plane, jid).state == "running" and running_child(plane, jid) is not None)
    with plane.store.begin() as conn:
        inbox.append(conn, "cancel", job_id=jid, reason="cancelled by the test")
    run_until(d1, lambda: job(plane, jid).state == "cancelled")
    assert d1.engine.held() != {}  # stopping: SIGTERM is ignored
    del d1  # as if it died here
    d2 = plane.daemon()
    assert set(d2.engine.held()) == {jid}
    run_until(d2, lambda: d2.engine.held() == {}, timeout=60)
    assert job(plane, jid).state == "cancelled"


def test_a_pending_job_waits_then_starts_when_gpus_free(plane) -> None:
    d = plane.daemon()
    big, small = submit(
        plane,
        {"command": ["sleep", "1"], "gpus": 32, "estimate_s": 1.0},
        {"command": ["true"], "gpus": 8, "estimate_s": 5.0},
    )
    run_until(d, lambda: job(plane, big).state == "running")
    assert job(plane, small).state == "pending"
    d.forecast(d.clock())
    est = job(plane, small).est_start
    assert est is not None and est >= job(plane, big).started_at
    run_until(d, ended(plane, big, small))
    assert job(plane, small).started_at >= job(plane, big).ended_at


def test_drained_node_gets_no_new_work_until_resumed(plane) -> None:
    d = plane.daemon()
    with plane.store.begin() as conn:
        for node in (1, 2, 3):
            inbox.append(conn, "drain", node=node, reason="maintenance")
    d.step()
    (jid,) = submit(plane, {"command": ["true"], "gpus": 16})
    run_until(d, lambda: job(plane, jid).state == "pending", timeout=5)
    d.step()
    assert job(plane, jid).state == "pending"  # 8 GPUs up, 16 asked
    with plane.store.connect() as conn:
        states = {r["idx"]: r["state"] for r in node_rows(conn)}
    assert states == {0: "up", 1: "drained", 2: "drained", 3: "drained"}
    with plane.store.begin() as conn:
        inbox.append(conn, "resume", node=2)
    run_until(d, ended(plane, jid))
    assert sorted(job(plane, jid).placement["nodes"]) == [0, 2]


def test_restart_recovers_running_and_pending_jobs(plane) -> None:
    """A second daemon on the same store takes over: running jobs finish, pending ones start, none runs twice."""
    d1 = plane.daemon()
    ids = submit(plane, *({"command": ["sleep", "0.5"], "gpus": 8} for _ in range(6)))
    run_until(d1, lambda: sum(job(plane, i).state == "running" for i in ids) == 4)
    del d1  # as if it died: the next one starts from the store alone
    d2 = plane.daemon()
    assert sorted(d2.engine.running()) == sorted(i for i in ids if job(plane, i).state == "running")
    run_until(d2, ended(plane, *ids))
    assert all(job(plane, i).state == "completed" and job(plane, i).attempt == 1 for i in ids)
    assert all(d2.executor.claims(i) == [1] for i in ids)


def test_interrupted_attempt_is_requeued(plane) -> None:
    """A runner killed without writing an end (its machine went away) is an interruption: what it left running is
    killed first, and only then does a new attempt run."""
    d = plane.daemon()
    script = 'if [ "$GIGAFACTORY_ATTEMPT" = 1 ]; then sleep 300 & sleep 301; fi'
    (jid,) = submit(plane, {"command": ["sh", "-c", script], "gpus": 1, "ckpt_s": 60})
    run_until(d, lambda: running_child(plane, jid) is not None)
    runner = json.loads((plane.jobs / f"{jid}/1/claim/runner.json").read_text())["pid"]
    os.kill(runner, signal.SIGKILL)  # no end is written
    run_until(d, ended(plane, jid))
    row = job(plane, jid)
    assert (row.state, row.attempt) == ("completed", 2)
    with plane.store.connect() as conn:
        story = [(r.attempt, r.new) for r in jobstore.story(conn, jid)]
    assert (1, "pending") in story[2:] and story[-1] == (2, "completed")


def test_transitions_are_persisted_for_every_job(plane) -> None:
    d = plane.daemon()
    ids = submit(plane, *({"command": ["true"], "gpus": 1} for _ in range(20)))
    run_until(d, ended(plane, *ids))
    with plane.store.connect() as conn:
        n = conn.execute(select(transitions.c.job_id)).all()
    assert len(n) == 20 * 3


def test_the_daemon_process_forecasts_starts_in_a_forked_child(plane) -> None:
    """The real daemon (single-threaded) plays the queue out in a child process and writes the estimates back."""
    import subprocess
    import time

    big, waiting = submit(
        plane,
        {"command": ["sleep", "30"], "gpus": 32, "estimate_s": 600.0},
        {"command": ["true"], "gpus": 8, "estimate_s": 60.0},
    )
    proc = subprocess.Popen([sys.executable, "-m", "gigafactory", "daemon", "--data-dir", str(plane.cfg.data_dir)])
    plane.store.dispose()
    try:
        deadline = time.monotonic() + 30
        while job(plane, waiting).est_start is None:
            assert time.monotonic() < deadline, "no estimate written"
            assert proc.poll() is None, "the daemon died"
            time.sleep(0.1)
        b, w = job(plane, big), job(plane, waiting)
        assert b.state == "running" and w.state == "pending"
        assert w.est_start == pytest.approx(b.started_at + 600.0, abs=1.0)
    finally:
        proc.terminate()
        proc.wait(10)
        with plane.store.begin() as conn:
            inbox.append(conn, "cancel", job_id=big)
        run_until(plane.daemon(), ended(plane, big))


def test_a_start_that_never_ran_is_started_again_by_a_later_daemon(plane, tmp_path: Path) -> None:
    """A start was carried out, but its runner never claimed the attempt (the machine lost it) and the daemon
    restarted too: the new executor finds the launch on disk and starts it once."""
    import time

    from gigafactory.control.executors import LocalExecutor

    d = plane.daemon()
    (jid,) = submit(plane, {"command": ["sh", "-c", "echo ran"], "gpus": 1})
    d.step()  # decided and carried out: the runner starts and finishes
    attempt = plane.jobs / f"{jid}/1"
    run_until(d, ended(plane, jid))
    # Rewind the attempt to "started but never claimed", as if the runner had been lost before it ran.
    launch = json.loads((attempt / "launch.json").read_text())
    for name in ("status.json", "claim/runner.json", "stdout.log", "stderr.log", "starts"):
        (attempt / name).unlink(missing_ok=True)
    (attempt / "claim").rmdir()
    assert launch["command"] == ["sh", "-c", "echo ran"] and launch["tenant"] == "lab-a"
    ex = LocalExecutor(plane.jobs, unclaimed_retry_s=0.2)
    assert ex.poll({jid: 1}) == []  # first sight: give the runner time
    time.sleep(0.3)
    assert ex.poll({jid: 1}) == []  # started again from launch.json
    deadline = time.monotonic() + 10
    while not (reports := ex.poll({jid: 1})):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [(r.kind, r.exit_code) for r in reports] == [("finished", 0)]
    assert (attempt / "stdout.log").read_text() == "ran\n" and ex.claims(jid) == [1]


def test_a_job_uses_its_workspace_by_its_full_path(plane) -> None:
    """$HOME, $TMPDIR and the cwd are the job's own, reachable by path under whatever uid it runs as."""
    d = plane.daemon()
    script = 'echo a > "$TMPDIR/x" && cat "$TMPDIR/x" && echo b > "$HOME/y" && cat "$PWD/y" && dirname "$(mktemp)"'
    (jid,) = submit(plane, {"command": ["sh", "-c", script], "gpus": 1})
    run_until(d, ended(plane, jid))
    row = job(plane, jid)
    out = (plane.jobs / f"{jid}/1/stdout.log").read_text().split()
    assert row.state == "completed", (plane.jobs / f"{jid}/1/stderr.log").read_text()
    assert out == ["a", "b", str(plane.jobs / f"{jid}/1/work/tmp")]


def test_a_program_that_cannot_be_run_fails_with_the_reason_in_its_log(plane) -> None:
    d = plane.daemon()
    (jid,) = submit(plane, {"command": ["no-such-program", "--flag"], "gpus": 1})
    run_until(d, ended(plane, jid))
    row = job(plane, jid)
    assert (row.state, row.exit_code) == ("failed", 127)
    assert row.reason == "cannot execute 'no-such-program': No such file or directory"
    err = (plane.jobs / f"{jid}/1/stderr.log").read_text()
    assert err == "gigafactory: cannot execute 'no-such-program': No such file or directory\n"


def test_a_job_is_stopped_at_its_time_limit(plane, monkeypatch) -> None:
    """--time is a limit, as in Slurm: backfill trusts it, so a job that overruns it is stopped."""
    from gigafactory.control import daemon as daemon_module

    monkeypatch.setattr(daemon_module, "TIME_LIMIT_GRACE_S", 0.5)
    d = plane.daemon()
    (liar, honest) = submit(plane, {"command": ["sleep", "300"], "gpus": 1, "estimate_s": 1.0},
                            {"command": ["sleep", "1"], "gpus": 1, "estimate_s": 5.0})  # fmt: skip
    run_until(d, ended(plane, liar, honest), timeout=30)
    row = job(plane, liar)
    assert row.state == "cancelled" and row.reason == "time limit: it ran past its 1 s"
    assert row.ended_at - row.started_at < 5
    assert job(plane, honest).state == "completed"


def test_a_runner_that_never_starts_fails_its_job_and_a_late_one_runs_nothing(plane, monkeypatch) -> None:
    import subprocess
    import time

    from gigafactory.control.executors import local
    from gigafactory.control.executors.base import Launch

    ex = local.LocalExecutor(plane.jobs, unclaimed_retry_s=0.05)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: None)  # every start is lost
    ex.start(Launch(job_id=77, attempt=1, command=["sh", "-c", "echo ran"], env={}, tenant="lab-a", nodes=["u00000"],
                    node_gpus=[[0]]))  # fmt: skip
    deadline = time.monotonic() + 10
    while not (reports := ex.poll({77: 1})):
        assert time.monotonic() < deadline
        time.sleep(0.06)
    assert [(r.kind, r.reason.split(":")[0]) for r in reports] == [("failed", "the runner never started")]
    monkeypatch.undo()
    # The runner turns up at last: the attempt is taken, so it runs nothing.
    d = plane.jobs / "77" / "1"
    subprocess.run([sys.executable, "-I", "-S", str(local.RUNNER), str(d)], check=True, timeout=30)
    assert not (d / "status.json").exists() and not (d / "stdout.log").exists()


def test_a_stop_before_the_runner_starts_takes_the_attempt_back_and_costs_nothing(plane, monkeypatch) -> None:
    import subprocess

    from gigafactory.control.executors import local
    from gigafactory.control.executors.base import Launch

    ex = local.LocalExecutor(plane.jobs)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: None)  # the runner is slow to come
    ex.start(Launch(job_id=78, attempt=1, command=["sh", "-c", "echo ran"], env={}, tenant="lab-a", nodes=["u00000"],
                    node_gpus=[[0]]))  # fmt: skip
    ex.stop(78, 1)
    (report,) = ex.poll({78: 1})
    assert (report.kind, report.reason) == ("interrupted", "stopped before it started")
    assert report.started_at == report.ended_at is not None  # nothing ran, so nothing is billed
    monkeypatch.undo()
    d = plane.jobs / "78" / "1"
    subprocess.run([sys.executable, "-I", "-S", str(local.RUNNER), str(d)], check=True, timeout=30)
    assert not (d / "stdout.log").exists()  # the runner came, and ran nothing
