"""Faults, as the trust model promises to survive them: kill -9 of ``serve``; a second ``serve`` or daemon on one
store; a cancelled job that leaves processes behind or ignores SIGTERM; kill -9 of a runner; a locked store; and
a hundred kills of the daemon with billing checked to the second."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from gigafactory.control.crashtest import crash_run
from gigafactory.control.executors.runner import proc_start
from gigafactory.control.store import inbox
from gigafactory.control.store import jobs as jobstore

from .conftest import Plane, free_port, make_plane, run_until


def _processes(*words: str) -> list[int]:
    """Live processes whose command line holds all of ``words``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(w in cmd for w in words) and proc_start(int(name)) is not None:
            found.append(int(name))
    return found


def _running(*argv: str) -> list[int]:
    """Live processes whose arguments are exactly ``argv`` (not a shell whose script mentions them)."""
    want = "\0".join(argv).encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if Path(f"/proc/{name}/cmdline").read_bytes() == want and proc_start(int(name)) is not None:
                found.append(int(name))
        except OSError:
            continue
    return found


def _wait(pred, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)


def _serve(data: Path, port: int, *set_up: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gigafactory", "serve", "--data-dir", str(data), "--port",
                             str(port), *set_up], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_one_controller_per_store_across_kill_9_of_serve(tmp_path: Path) -> None:
    data = tmp_path / "gf"
    port = free_port()
    first = _serve(data, port, "--site", "uniform:nodes=2,gpus=8")
    try:
        _wait(lambda: _up(port) and len(_processes("gigafactory", "daemon", str(data))) == 1, what="serve is up")
        (daemon,) = _processes("gigafactory", "daemon", str(data))
        # A second serve on the same store refuses, and names the first.
        second = subprocess.run([sys.executable, "-m", "gigafactory", "serve", "--data-dir", str(data), "--port",
                                 str(free_port())], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert second.returncode != 0 and "already has a serve" in second.stderr and f"pid {first.pid}" in second.stderr
        # So does a second daemon, naming the one that holds the store.
        lone = subprocess.run([sys.executable, "-m", "gigafactory", "daemon", "--data-dir", str(data)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert lone.returncode != 0 and "already has a daemon" in lone.stderr and f"pid {daemon}" in lone.stderr
        # kill -9 of serve: its daemon does not outlive it.
        first.kill()
        first.wait()
        _wait(lambda: proc_start(daemon) is None, 10, "the daemon died with serve")
        # A restarted serve, without repeating its set-up, runs alone.
        again = _serve(data, port)
        try:
            _wait(lambda: _up(port), what="the restarted serve answers")
            _wait(lambda: len(_processes("gigafactory", "daemon", str(data))) == 1, what="its daemon runs")
            time.sleep(1.5)
            assert len(_processes("gigafactory", "daemon", str(data))) == 1
        finally:
            again.send_signal(signal.SIGHUP)  # the terminal went away: serve and its daemon end
            again.wait(30)
            _wait(lambda: not _processes("gigafactory", "daemon", str(data)), 10, "the daemon ended on SIGHUP")
    finally:
        if first.poll() is None:
            first.kill()


def _tree_gone(plane: Plane, jid: int, *marks: str) -> bool:
    return not any(_processes(mark) for mark in marks)


@pytest.mark.parametrize(
    ("command", "marks"),
    [
        ("sleep 301 & sleep 302", ["sleep 301", "sleep 302"]),  # a child left in the background
        ("setsid sleep 303 & trap '' TERM; sleep 304", ["sleep 303", "sleep 304"]),  # escapes the group, ignores TERM
    ],
)
def test_a_cancelled_job_is_stopped_as_a_whole_within_the_grace_period(
    tmp_path: Path, command: str, marks: list[str]
) -> None:
    plane = make_plane(tmp_path / "gf", kill_wait_s=1)
    d = plane.daemon()
    with plane.store.begin() as conn:
        (jid,) = jobstore.insert_jobs(conn, [{"tenant": "lab-a", "command": ["sh", "-c", command], "gpus": 32}])
        (nxt,) = jobstore.insert_jobs(conn, [{"tenant": "uni-c", "command": ["true"], "gpus": 32}])
    run_until(d, lambda: all(_processes(m) for m in marks))
    t0 = time.monotonic()
    with plane.store.begin() as conn:
        inbox.append(conn, "cancel", job_id=jid, reason="cancelled by the test")
    seen_next_running_with_leftovers = []

    def done() -> bool:
        with plane.store.connect() as conn:
            row = jobstore.get_job(conn, nxt)
        assert row is not None
        if row.state != "pending" and not _tree_gone(plane, jid, *marks):
            seen_next_running_with_leftovers.append(row.state)
        return str(row.state) == "completed"

    run_until(d, done, timeout=20)
    assert time.monotonic() - t0 < 1 + 5  # the grace period, and a little
    assert _tree_gone(plane, jid, *marks)
    assert seen_next_running_with_leftovers == []  # its GPUs went to the next job only once it was gone
    plane.store.dispose()


def test_kill_9_of_a_runner_never_leaves_two_copies_running(tmp_path: Path) -> None:
    plane = make_plane(tmp_path / "gf")
    d = plane.daemon()
    script = 'if [ "$GIGAFACTORY_ATTEMPT" = 1 ]; then sleep 311 & sleep 312; else echo second; fi'
    with plane.store.begin() as conn:
        (jid,) = jobstore.insert_jobs(conn, [{"tenant": "lab-a", "command": ["sh", "-c", script], "gpus": 1,
                                              "ckpt_s": 60.0}])  # fmt: skip
    run_until(d, lambda: bool(_running("sleep", "311")) and bool(_running("sleep", "312")))
    record = json.loads((plane.jobs / f"{jid}/1/claim/runner.json").read_text())
    os.kill(record["pid"], signal.SIGKILL)
    overlap = []

    def second_done() -> bool:
        if (plane.jobs / f"{jid}/2/claim").exists() and (_running("sleep", "311") or _running("sleep", "312")):
            overlap.append(True)
        with plane.store.connect() as conn:
            row = jobstore.get_job(conn, jid)
        assert row is not None
        return str(row.state) == "completed"

    run_until(d, second_done, timeout=30)
    assert overlap == [] and not _running("sleep", "311") and not _running("sleep", "312")
    assert (plane.jobs / f"{jid}/2/stdout.log").read_text() == "second\n"
    plane.store.dispose()


def test_the_daemon_waits_out_a_locked_store(tmp_path: Path) -> None:
    """SQLite held locked by someone else for longer than its busy timeout: the daemon waits, then goes on."""
    plane = make_plane(tmp_path / "gf")
    d = plane.daemon()
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            d.run(poll_s=0.05, stop=stop.is_set)
        except BaseException as exc:
            errors.append(exc)

    lock = sqlite3.connect(plane.cfg.data_dir / "gigafactory.db", timeout=30)
    lock.execute("begin exclusive")
    worker = threading.Thread(target=loop)
    worker.start()
    time.sleep(12)  # longer than the store's 10 s busy timeout
    lock.rollback()
    lock.close()
    with plane.store.begin() as conn:
        (jid,) = jobstore.insert_jobs(conn, [{"tenant": "lab-a", "command": ["true"], "gpus": 1}])

    def finished() -> bool:
        with plane.store.connect() as conn:
            row = jobstore.get_job(conn, jid)
        assert row is not None
        return str(row.state) == "completed"

    _wait(finished, 30, "a job after the lock")
    stop.set()
    worker.join(10)
    assert errors == [] and not worker.is_alive()
    plane.store.dispose()


def test_a_hundred_kills_of_the_daemon_bill_every_attempt_to_the_second(tmp_path: Path) -> None:
    r = crash_run(tmp_path / "gf", jobs=300, kills=100, seed=11, kill_every_s=(0.05, 0.4), max_sleep_s=0.5)
    assert r.kills == 100
    assert r.problems == []
    assert r.worst_billing_error_s <= 1.0
    assert r.billed_gpu_s == pytest.approx(r.ran_gpu_s, rel=1e-9)
