"""Tenant A attacks tenant B and the control plane, with real jobs on the real daemon and local executor.

Every attack is a shell command that A submits as an ordinary job. It prints ``LEAK`` followed by what it got
whenever an attempt succeeds. The test then checks that A's output holds no ``LEAK`` and none of the secrets, that
nothing A tried to change has changed, and that B's job ran to its end untouched. The same attacks as the
issue reported them: reading B's logs, environment and launch record; reading the database, the admin token and
the runner's records; writing the database, the usage table, the runner and B's exit status; seeing the server's
environment; and signalling B's processes and the daemon.

Isolation needs root (CI runs as root). Unprivileged, every job runs as the control plane's user, and the test says
so and skips.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from gigafactory.control.config import init_control, remove_control
from gigafactory.control.executors import runner as runner_module
from gigafactory.control.executors.local import MAX_PROCS
from gigafactory.control.identity import Identity, isolating
from gigafactory.control.store import jobs as jobstore

from .conftest import Plane, make_plane, run_until

pytestmark = pytest.mark.skipif(not isolating(), reason="tenant isolation needs the control plane to run as root")

B_SECRET = "b-secret-9f3a1c"
SERVER_SECRET = "server-secret-77ab0e"


def state(plane: Plane, jid: int) -> str:
    with plane.store.connect() as conn:
        row = jobstore.get_job(conn, jid)
    assert row is not None
    return str(row.state)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _attacks(plane: Plane, b_job: int, *, reads_only: bool = False) -> str:
    data, jobs = plane.cfg.data_dir, plane.jobs
    b = jobs / str(b_job) / "1"
    runner = Path(runner_module.__file__)
    db = data / "gigafactory.db"
    lines = [
        # Reading what is not A's.
        f"cat {b}/stdout.log && echo LEAK b-stdout",
        f"stat {b}/stdout.log && echo LEAK b-stat",
        f"cat {b}/launch.json && echo LEAK b-launch",
        f"ls {b}/work && echo LEAK b-workspace",
        f"cat {b}/claim/runner.json && echo LEAK b-runner-record",
        f"ls {jobs} && echo LEAK list-jobs",
        f"cat {data}/admin.token && echo LEAK admin-token",
        f"cat {db} > /dev/null && echo LEAK database",
        "cat ../launch.json && echo LEAK own-launch",
        # Every process's environment: B's secret and the server's token must be nowhere.
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f 2>/dev/null; done | "
        f"grep -e {B_SECRET} -e {SERVER_SECRET} && echo LEAK environ",
        f"env | grep -e {SERVER_SECRET} -e GIGAFACTORY_TOKEN && echo LEAK own-env",
    ]
    if reads_only:
        return "; ".join(f"({line}) 2>/dev/null" for line in lines)
    lines += [
        # Writing what is not A's.
        f"echo 0 > {b}/status.json && echo LEAK wrote-b-status",
        "echo '{}' > ../status.json && echo LEAK forged-own-accounting",
        f"echo x >> {db} && echo LEAK wrote-database",
        f"sqlite3 {db} 'update usage set tenant=\"startup-b\"' && echo LEAK usage",
        f"echo x >> {runner} && echo LEAK wrote-runner",
        f"touch {runner.parent}/evil.py && echo LEAK wrote-runner-dir",
        f"ln -s {data}/admin.token {b}/stdout.log && echo LEAK swapped-b-log",
        # Signals.
        "pkill -f '^sleep 8.12[3]' && echo LEAK killed-b",
        f"kill -TERM {os.getpid()} && echo LEAK signalled-daemon",
        "grep NoNewPrivs /proc/self/status",
        "ulimit -p",  # (dash: -p is the processes limit)
        "id -u",
    ]
    return "; ".join(f"({line}) 2>/dev/null" for line in lines)


def test_a_hostile_tenant_reaches_nothing_of_another_or_of_the_control_plane(tmp_path: Path, monkeypatch) -> None:
    plane = make_plane(tmp_path / "gf")
    monkeypatch.setenv("GIGAFACTORY_TOKEN", SERVER_SECRET)  # as if the server had been started with it exported
    d = plane.daemon()
    with plane.store.begin() as conn:
        (b_job,) = jobstore.insert_jobs(conn, [{
            "tenant": "startup-b", "name": "victim", "gpus": 1, "env": {"B_KEY": B_SECRET},
            "command": ["sh", "-c", "echo $0; exec sleep 8.123", B_SECRET],
        }])  # fmt: skip
    b_out = plane.jobs / f"{b_job}/1/stdout.log"
    run_until(d, lambda: b_out.exists() and B_SECRET in b_out.read_text())
    watched = {p: _digest(p) for p in (plane.cfg.data_dir / "gigafactory.db", Path(runner_module.__file__),
                                       plane.cfg.admin_token_file)}  # fmt: skip
    with plane.store.begin() as conn:
        (a_job,) = jobstore.insert_jobs(
            conn, [{"tenant": "lab-a", "name": "attacker", "gpus": 1, "command": ["sh", "-c", _attacks(plane, b_job)]}]
        )
    run_until(d, lambda: state(plane, a_job) == "completed", timeout=60)
    out = (plane.jobs / f"{a_job}/1/stdout.log").read_text()
    assert "LEAK" not in out, out
    # The attacks are real: run as the control plane's user (as every job ran before isolation), they succeed.
    control = subprocess.run(["sh", "-c", _attacks(plane, b_job, reads_only=True)], capture_output=True, text=True,
                             cwd=plane.jobs / f"{a_job}/1/work")  # fmt: skip
    leaks = set(re.findall(r"LEAK (\S+)", control.stdout))
    assert {"b-stdout", "b-launch", "admin-token", "database", "environ", "own-env"} <= leaks, leaks
    assert B_SECRET not in out and SERVER_SECRET not in out and plane.admin_token not in out
    a_uid = int(out.split()[-1])
    assert a_uid not in (0, os.geteuid())  # it ran as neither root nor the control plane
    assert int(out.split()[-2]) == MAX_PROCS  # and its uid may not take the machine's last pid
    assert out.split()[-4:-2] == ["NoNewPrivs:", "1"]  # nor gain privileges through a setuid program
    for path, digest in watched.items():
        assert _digest(path) == digest, f"{path} changed"
    # B ran to its end, untouched, billed from its own runner's times; so did A, as A.
    run_until(d, lambda: state(plane, b_job) == "completed", timeout=30)
    status = json.loads((plane.jobs / f"{b_job}/1/status.json").read_text())
    assert status["exit_code"] == 0
    assert (plane.jobs / f"{b_job}/1/stdout.log").read_text() == f"{B_SECRET}\n"
    with sqlite3.connect(plane.cfg.data_dir / "gigafactory.db") as db:
        billed = dict(db.execute("select job_id, tenant from usage").fetchall())
    assert billed == {b_job: "startup-b", a_job: "lab-a"}
    plane.store.dispose()


def test_the_layout_on_disk_keeps_tenants_apart(tmp_path: Path) -> None:
    """Modes and owners, as the trust model states them: the data directory is the control plane's alone; each
    attempt's workspace and logs are its tenant's; the records beside them are the control plane's."""
    plane = make_plane(tmp_path / "gf")
    d = plane.daemon()
    with plane.store.begin() as conn:
        (jid,) = jobstore.insert_jobs(conn, [{"tenant": "lab-a", "command": ["true"], "gpus": 1}])
    run_until(d, lambda: state(plane, jid) == "completed")
    identity = d._identities["lab-a"]
    assert isinstance(identity, Identity), identity  # (a str says why the tenant cannot run)
    tenant_uid = identity.uid
    me = os.geteuid()

    def owner_mode(p: Path) -> tuple[int, int]:
        st = p.lstat()
        return st.st_uid, st.st_mode & 0o777

    a = plane.jobs / f"{jid}/1"
    assert owner_mode(plane.cfg.data_dir) == (me, 0o700)
    assert owner_mode(plane.cfg.admin_token_file) == (me, 0o600)
    assert owner_mode(a) == owner_mode(a.parent) == (me, 0o710)
    assert a.stat().st_gid == a.parent.stat().st_gid == tenant_uid  # only the tenant's group may pass through
    assert owner_mode(a / "work") == (tenant_uid, 0o700)
    assert owner_mode(a / "stdout.log") == (tenant_uid, 0o600)
    for record in ("launch.json", "status.json", "claim/runner.json"):
        assert owner_mode(a / record) == (me, 0o600), record
    launch = json.loads((a / "launch.json").read_text())
    assert sorted(launch["env"]) == ["CUDA_VISIBLE_DEVICES", "GIGAFACTORY_ATTEMPT", "GIGAFACTORY_JOB_ID",
                                     "GIGAFACTORY_NODES", "GIGAFACTORY_RUN", "GIGAFACTORY_TENANT", "HOME", "LANG",
                                     "PATH", "TMPDIR"]  # fmt: skip
    plane.store.dispose()


def test_two_control_planes_on_one_host_never_share_a_uid(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GIGAFACTORY_UID_REGISTRY", str(tmp_path / "uids"))
    a, b = make_plane(tmp_path / "a"), make_plane(tmp_path / "b")

    def uids(plane: Plane) -> set[int]:
        with plane.store.connect() as conn:
            return {r[0] for r in conn.execute(text("select uid from tenants"))}

    assert len(uids(a)) == len(uids(b)) == 3 and uids(a).isdisjoint(uids(b))
    claims = sorted(p.name for p in (tmp_path / "uids").iterdir())
    assert claims == sorted(str(u) for u in uids(a) | uids(b))
    # A control plane whose data directory has merely vanished (from our view: it may live in another mount
    # namespace) keeps its uids; only one taken down on purpose frees them.
    a.store.dispose()
    held = uids(a)
    shutil.rmtree(tmp_path / "a")
    c = make_plane(tmp_path / "c")
    freed = uids(c)
    assert freed.isdisjoint(held | uids(b))
    c.store.dispose()
    remove_control(c.cfg)  # taken down on purpose (the demo does this): its uids are free again
    assert not freed & {int(p.name) for p in (tmp_path / "uids").iterdir()}
    d = make_plane(tmp_path / "d")
    # (Which free uids d gets depends on which ones processes elsewhere on the host run as at that moment: tests
    # running beside this one. It asked for them again, lowest first, so it takes at least one of c's.)
    assert uids(d).isdisjoint(held | uids(b)) and uids(d) & freed
    # A store whose uids another control plane took meanwhile gets new ones at its next start.
    with b.store.begin() as conn:
        conn.execute(text("update tenants set uid = :u where name = 'lab-a'"), {"u": min(uids(d))})
    init_control(b.cfg).dispose()
    assert uids(b).isdisjoint(uids(d))
    # A uid that some process runs as is never handed out.
    busy = subprocess.Popen(["setpriv", f"--reuid={max(uids(b) | uids(d)) + 1}", "--clear-groups", "sleep", "30"])
    try:
        e = make_plane(tmp_path / "e")
        assert max(uids(b) | uids(d)) + 1 not in uids(e)
        e.store.dispose()
    finally:
        busy.kill()
        busy.wait()
    for plane in (b, d):
        plane.store.dispose()
