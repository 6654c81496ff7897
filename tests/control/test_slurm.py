"""The Slurm executor against a real multi-node Slurm cluster (Debian's Slurm, fake GPUs), started here by
``scripts/slurm-cluster.sh``: submit, complete, fail, cancel, node failure → requeue, and idempotent starts.

Run as root (as CI runs it), jobs go to Slurm as the tenants' own accounts, which the test creates
(``gf-lab-a``, ...), and the cluster and the jobs directory live where those accounts can reach them."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine as Store

from gigafactory.control.config import ControlConfig, init_control
from gigafactory.control.daemon import Daemon
from gigafactory.control.executors.base import Executor, Launch
from gigafactory.control.executors.slurm import SlurmExecutor, site_from_slurm
from gigafactory.control.identity import isolating
from gigafactory.control.serve import make_executor
from gigafactory.control.store import accounts, inbox
from gigafactory.control.store import jobs as jobstore

from .conftest import TENANTS, run_until

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm-cluster.sh"
NODES, GPUS = 3, 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # The daemons live in /usr/sbin, which is on root's PATH but not a normal user's ($GIGAFACTORY_SBIN: where else
    # to look; test_setup.py empties it to play a machine without Slurm).
    daemons = os.pathsep.join([os.environ.get("PATH", ""), os.environ.get("GIGAFACTORY_SBIN", "/usr/sbin:/sbin")])
    if shutil.which("slurmctld", path=daemons) is None or shutil.which("munged", path=daemons) is None:
        if os.environ.get("GIGAFACTORY_REQUIRE_SLURM") == "1":
            pytest.fail("Slurm is required here (apt-get install slurmctld slurmd slurm-client munge)")
        pytest.skip("Slurm is not installed (Debian: slurmctld slurmd slurm-client munge)")
    # Outside pytest's private temporary directory: the tenants' accounts must reach slurm.conf and munge's socket.
    d = Path(tempfile.mkdtemp(prefix="gf-slurm-", dir="/tmp"))
    d.chmod(0o755)
    old = os.environ.get("SLURM_CONF")
    # Each test process gets a cluster of its own on ports of its own (xdist may spread this module's tests).
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = 6900 + 100 * (int(worker) if worker.isdigit() else 0)
    env = {**os.environ, "SLURM_BASE_PORT": str(base)}
    subprocess.run([str(SCRIPT), "start", str(d), str(NODES), str(GPUS)], check=True, timeout=120, env=env)
    os.environ["SLURM_CONF"] = str(d / "slurm.conf")
    try:
        yield d
    finally:
        subprocess.run([str(SCRIPT), "stop", str(d)], check=False, timeout=120)
        shutil.rmtree(d, ignore_errors=True)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


def unix_user(name: str) -> str:
    """A system account for a tenant's jobs (created once; the test cluster needs real accounts)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    return name


def slurm_store(tmp_path: Path) -> tuple[ControlConfig, Store]:
    """A control plane for the cluster, its tenants mapped to accounts, its jobs where those accounts reach them."""
    jobs = Path(tempfile.mkdtemp(prefix="gf-jobs-", dir="/tmp"))
    jobs.chmod(0o711)
    cfg = ControlConfig(tmp_path / "gf", jobs_dir=jobs)
    store = init_control(cfg, site="slurm", executor="slurm", tenants=TENANTS, topology=site_from_slurm())
    if isolating():
        with store.begin() as conn:
            for t in TENANTS:
                accounts.put_tenant(conn, t, capacity_gpus=NODES * GPUS, unix_user=unix_user(f"gf-{t.name}"))
    return cfg, store


@pytest.fixture
def slurm_plane(cluster: Path, tmp_path: Path) -> Iterator[tuple[Daemon, ControlConfig]]:
    cfg, store = slurm_store(tmp_path)
    d = Daemon(store, make_executor(cfg, store))
    yield d, cfg
    subprocess.run(["scancel", "--quiet", "--name", ",".join(_our_names(d))], check=False)
    store.dispose()
    assert cfg.jobs_dir is not None
    shutil.rmtree(cfg.jobs_dir, ignore_errors=True)


def slurm(ex: Executor | list[Executor]) -> SlurmExecutor:
    """The daemon's executor, a Slurm one (the job names below are Slurm's)."""
    assert isinstance(ex, SlurmExecutor)
    return ex


def _our_names(d: Daemon) -> list[str]:
    with d.store.connect() as conn:
        rows = jobstore.list_jobs(conn, limit=1000)
    return [slurm(d.executor).job_name(r.id, a) for r in rows for a in range(1, r.attempt + 1)] or ["none"]


def submit(d: Daemon, *specs: dict) -> list[int]:
    with d.store.begin() as conn:
        return jobstore.insert_jobs(conn, [{"tenant": "lab-a", "name": "", **s} for s in specs])


def row(d: Daemon, jid: int):
    with d.store.connect() as conn:
        return jobstore.get_job(conn, jid)


def ended(d: Daemon, *ids: int):
    return lambda: all(row(d, i).state in ("completed", "failed", "cancelled") for i in ids)


def test_the_site_is_read_from_slurm(cluster: Path) -> None:
    topo = site_from_slurm()
    assert topo.num_nodes == NODES and topo.num_gpus == NODES * GPUS
    assert list(topo.node_names) == [f"node{i}" for i in range(1, NODES + 1)]


def test_submit_complete_and_fail(slurm_plane: tuple[Daemon, ControlConfig]) -> None:
    d, cfg = slurm_plane
    show = "echo $(hostname) gpus=$CUDA_VISIBLE_DEVICES job=$GIGAFACTORY_JOB_ID"
    one, multi, bad = submit(
        d,
        {"command": ["sh", "-c", show], "gpus": 3},
        {"command": ["sh", "-c", show], "gpus": 16},  # two whole nodes: srun runs it on both
        {"command": ["sh", "-c", "echo failing >&2; exit 3"], "gpus": 1},
    )
    run_until(d, ended(d, one, multi, bad), timeout=90, poll=0.3)
    assert (row(d, one).state, row(d, one).exit_code) == ("completed", 0)
    assert row(d, multi).state == "completed"
    assert (row(d, bad).state, row(d, bad).exit_code) == ("failed", 3)
    jobs = cfg.jobs_dir
    assert jobs is not None
    out = (jobs / f"{one}/1/stdout.log").read_text().split()
    assert out[2] == f"job={one}" and len(out[1].removeprefix("gpus=").split(",")) == 3  # Slurm bound 3 GPUs
    lines = (jobs / f"{multi}/1/stdout.log").read_text().splitlines()
    assert len(lines) == 2 and all(len(line.split()[1].removeprefix("gpus=").split(",")) == 8 for line in lines)
    assert "failing" in (jobs / f"{bad}/1/stderr.log").read_text()
    assert len(row(d, multi).placement["nodes"]) == 2
    if isolating():  # Slurm ran it as the tenant's account, in its own workspace
        assert (jobs / f"{one}/1/work").stat().st_uid == pwd.getpwnam("gf-lab-a").pw_uid
        assert (jobs / f"{one}/1/stdout.log").stat().st_uid == pwd.getpwnam("gf-lab-a").pw_uid


def test_cancel_stops_the_slurm_job(slurm_plane: tuple[Daemon, ControlConfig]) -> None:
    d, _ = slurm_plane
    (jid,) = submit(d, {"command": ["sleep", "300"], "gpus": 8})
    name = slurm(d.executor).job_name(jid, 1)
    run_until(d, lambda: _squeue_state(name) == "RUNNING", timeout=60, poll=0.3)
    with d.store.begin() as conn:
        inbox.append(conn, "cancel", job_id=jid, reason="cancelled by the test")
    run_until(d, ended(d, jid), timeout=30, poll=0.3)
    assert row(d, jid).state == "cancelled"
    deadline = time.monotonic() + 30
    while _squeue_state(name) not in (None, "COMPLETING", "CANCELLED"):
        assert time.monotonic() < deadline, "Slurm still runs the cancelled job"
        time.sleep(0.3)


def test_the_checkpoint_signal_reaches_only_programs_that_catch_it(slurm_plane: tuple[Daemon, ControlConfig]) -> None:
    d, cfg = slurm_plane
    catch = ("import signal, time, pathlib\n"
             "signal.signal(signal.SIGUSR1, lambda *a: pathlib.Path('checkpointed').write_text('yes'))\n"
             "time.sleep(300)\n")  # fmt: skip
    catcher, plain = submit(
        d, {"command": ["python3", "-c", catch], "gpus": 1}, {"command": ["sleep", "300"], "gpus": 1}
    )
    run_until(d, lambda: all(_squeue_state(slurm(d.executor).job_name(j, 1)) == "RUNNING" for j in (catcher, plain)),
              timeout=60, poll=0.3)  # fmt: skip
    time.sleep(1.0)  # (the handler is installed once Python has started)
    for j in (catcher, plain):
        slurm(d.executor).signal(j, 1)
    jobs = cfg.jobs_dir
    assert jobs is not None
    deadline = time.monotonic() + 30
    while not (jobs / f"{catcher}/1/work/checkpointed").exists():
        assert time.monotonic() < deadline, "the program that catches SIGUSR1 did not get it"
        time.sleep(0.3)
    time.sleep(1.0)
    assert _squeue_state(slurm(d.executor).job_name(plain, 1)) == "RUNNING"  # the other was not ended by it
    with d.store.begin() as conn:
        for j in (catcher, plain):
            inbox.append(conn, "cancel", job_id=j, reason="done")
    run_until(d, ended(d, catcher, plain), timeout=30, poll=0.3)


def test_node_failure_interrupts_and_requeues(slurm_plane: tuple[Daemon, ControlConfig]) -> None:
    """A node going down ends the Slurm job (NODE_FAIL); the engine requeues it as attempt 2 elsewhere."""
    d, cfg = slurm_plane
    script = 'if [ "$GIGAFACTORY_ATTEMPT" = 1 ]; then sleep 300; else echo resumed; fi'
    (jid,) = submit(d, {"command": ["sh", "-c", script], "gpus": 8, "ckpt_s": 60.0})
    run_until(d, lambda: _squeue_state(slurm(d.executor).job_name(jid, 1)) == "RUNNING", timeout=60, poll=0.3)
    node = row(d, jid).placement["nodes"][0]
    name = d.topo.node_names[node]
    subprocess.run(["scontrol", "update", f"nodename={name}", "state=down", "reason=test-failure"], check=True)
    try:
        run_until(d, ended(d, jid), timeout=90, poll=0.3)
        r = row(d, jid)
        assert (r.state, r.attempt) == ("completed", 2)
        assert r.placement["nodes"] != [node]
        with d.store.connect() as conn:
            story = [(t.attempt, t.new, t.stimulus) for t in jobstore.story(conn, jid)]
        assert any(a == 1 and new == "pending" for a, new, _ in story), story
        assert cfg.jobs_dir is not None
        assert (cfg.jobs_dir / f"{jid}/2/stdout.log").read_text() == "resumed\n"
    finally:
        subprocess.run(["scontrol", "update", f"nodename={name}", "state=resume"], check=False)
    # The node comes back, and the engine may use it again.
    run_until(d, lambda: bool(d.engine.cap.node_up[node]), timeout=30, poll=0.3)


def test_start_is_idempotent_per_attempt(cluster: Path, tmp_path: Path) -> None:
    jobs = Path(tempfile.mkdtemp(prefix="gf-jobs-", dir="/tmp"))
    jobs.chmod(0o711)
    ex = SlurmExecutor(jobs, "t1")
    user = pwd.getpwnam(unix_user("gf-lab-a")) if isolating() else None
    launch = Launch(job_id=999, attempt=1, command=["sleep", "30"], env={}, tenant="lab-a", nodes=["node1"],
                    node_gpus=[[0]], cpu_milli=[0], mem_mib=[0], gpu_milli=1000,
                    uid=user.pw_uid if user else None, gid=user.pw_gid if user else None,
                    user=user.pw_name if user else None)  # fmt: skip
    ex.start(launch)
    ex.start(launch)
    SlurmExecutor(jobs, "t1").start(launch)  # a restarted daemon
    (jobs / "999/1/slurm_id").unlink()  # a crash between sbatch and remembering the id
    SlurmExecutor(jobs, "t1").start(launch)
    out = subprocess.run(["squeue", "-h", "--name", ex.job_name(999, 1), "-o", "%i"], capture_output=True, text=True)
    assert len(out.stdout.split()) == 1
    ex.stop(999, 1)
    shutil.rmtree(jobs, ignore_errors=True)


def _squeue_state(name: str) -> str | None:
    out = subprocess.run(["squeue", "-h", "--name", name, "-o", "%T"], capture_output=True, text=True).stdout.split()
    return out[0] if out else None


def test_a_job_slurm_refuses_fails_instead_of_stalling_the_daemon(cluster: Path, tmp_path: Path) -> None:
    cfg, store = slurm_store(tmp_path)
    assert cfg.jobs_dir is not None
    d = Daemon(store, SlurmExecutor(cfg.jobs_dir, "t2", partition="no-such-partition"))
    (jid,) = submit(d, {"command": ["true"], "gpus": 1})
    run_until(d, ended(d, jid), timeout=30, poll=0.2)
    r = row(d, jid)
    assert r.state == "failed" and "Slurm refused it" in r.reason and "partition" in r.reason.lower()
    # A restarted daemon sees the same refusal, and submits nothing.
    assert (cfg.jobs_dir / f"{jid}/1/start_error").exists()
    SlurmExecutor(cfg.jobs_dir, "t2", partition="no-such-partition").start(d._launch(row(d, jid)))
    assert not (cfg.jobs_dir / f"{jid}/1/slurm_id").exists()
    store.dispose()
    shutil.rmtree(cfg.jobs_dir, ignore_errors=True)


def test_a_tenant_without_an_account_fails_with_the_reason(cluster: Path, tmp_path: Path) -> None:
    """Slurm runs jobs as accounts: a tenant with none cannot run there, and is told how to get one."""
    if not isolating():
        pytest.skip("needs root: without it every job runs as the control plane's user")
    cfg, store = slurm_store(tmp_path)
    with store.begin() as conn:
        accounts.put_tenant(conn, TENANTS[2], capacity_gpus=NODES * GPUS, unix_user=None)
    d = Daemon(store, make_executor(cfg, store))
    with store.begin() as conn:
        (jid,) = jobstore.insert_jobs(conn, [{"tenant": "uni-c", "command": ["true"], "gpus": 1}])
    run_until(d, ended(d, jid), timeout=30, poll=0.2)
    r = row(d, jid)
    assert r.state == "failed" and "--unix-user" in r.reason
    store.dispose()


def test_a_hostile_tenant_on_slurm_reaches_nothing_of_another(slurm_plane: tuple[Daemon, ControlConfig],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The attack suite's cases that apply on Slurm: jobs run as their tenants' accounts, so A can read neither
    B's output nor the control plane's secrets, and sees no environment but its own."""
    if not isolating():
        pytest.skip("tenant isolation needs the control plane to run as root")
    d, cfg = slurm_plane
    monkeypatch.setenv("GIGAFACTORY_TOKEN", "server-secret-5150")  # as if exported where the daemon runs
    secret = "b-secret-on-slurm"
    with d.store.begin() as conn:
        (b,) = jobstore.insert_jobs(conn, [{"tenant": "startup-b", "command": ["sh", "-c", "echo $0; sleep 15", secret],
                                            "gpus": 1, "env": {"B_KEY": secret}}])  # fmt: skip
    jobs = cfg.jobs_dir
    assert jobs is not None
    run_until(d, lambda: secret in (jobs / f"{b}/1/stdout.log").read_text() if (jobs / f"{b}/1/stdout.log").exists()
              else False, timeout=60, poll=0.3)  # fmt: skip
    attacks = "; ".join(f"({line}) 2>/dev/null" for line in [
        f"cat {jobs}/{b}/1/stdout.log && echo LEAK b-stdout",
        f"ls {jobs}/{b}/1/work && echo LEAK b-workspace",
        f"cat {cfg.data_dir}/admin.token && echo LEAK admin-token",
        f"echo x >> {jobs}/{b}/1/stdout.log && echo LEAK wrote-b-log",
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f 2>/dev/null; done | "
        f"grep -e {secret} -e server-secret-5150 && echo LEAK environ",
        "env | grep -e server-secret -e GIGAFACTORY_TOKEN && echo LEAK env",  # (Slurm adds SLURM_* of its own)
        "id -un",
    ])  # fmt: skip
    with d.store.begin() as conn:
        (a,) = jobstore.insert_jobs(conn, [{"tenant": "lab-a", "command": ["sh", "-c", attacks], "gpus": 1}])
    run_until(d, ended(d, a), timeout=90, poll=0.3)
    out = (jobs / f"{a}/1/stdout.log").read_text()
    assert row(d, a).state == "completed", row(d, a).reason
    assert "LEAK" not in out and secret not in out, out
    assert out.split()[-1] == "gf-lab-a"


@pytest.fixture
def two_clusters(cluster: Path) -> Iterator[tuple[Path, Path]]:
    """Two more Slurm clusters on this machine, each on ports and a munge socket of its own (the module's cluster
    fixture has checked that Slurm is here)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = 7600 + 200 * (int(worker) if worker.isdigit() else 0)
    dirs = []
    for k in range(2):
        d = Path(tempfile.mkdtemp(prefix=f"gf-slurm{k}-", dir="/tmp"))
        d.chmod(0o755)
        env = {**os.environ, "SLURM_BASE_PORT": str(base + 100 * k)}
        subprocess.run([str(SCRIPT), "start", str(d), "2", "4"], check=True, timeout=120, env=env)
        dirs.append(d)
    try:
        yield dirs[0], dirs[1]
    finally:
        for d in dirs:
            subprocess.run([str(SCRIPT), "stop", str(d)], check=False, timeout=120)
            shutil.rmtree(d, ignore_errors=True)


def test_a_network_of_two_slurm_clusters(two_clusters: tuple[Path, Path], tmp_path: Path) -> None:
    """Each site its own Slurm cluster: jobs route by where they can start and where they may go, run on their
    site's cluster, and are accounted per site."""
    from gigafactory.control.serve import make_executors
    from gigafactory.control.store.schema import usage
    from gigafactory.control.store.site import load_sites
    from gigafactory.network import Network, SiteSpec

    de, fr = two_clusters
    net = Network(
        "two-clusters",
        (
            SiteSpec("de-1", "slurm", "DE", 235.9, 381.0, 1.3, executor={"kind": "slurm", "conf": f"{de}/slurm.conf"}),
            SiteSpec("fr-1", "slurm", "FR", 178.5, 56.0, 1.3, executor={"kind": "slurm", "conf": f"{fr}/slurm.conf"}),
        ),
    )
    jobs = Path(tempfile.mkdtemp(prefix="gf-jobs-", dir="/tmp"))
    jobs.chmod(0o711)
    cfg = ControlConfig(tmp_path / "gf", jobs_dir=jobs)
    store = init_control(cfg, network=net, tenants=TENANTS)
    if isolating():
        with store.begin() as conn:
            for t in TENANTS:
                accounts.put_tenant(conn, t, capacity_gpus=16, unix_user=unix_user(f"gf-{t.name}"))
    with store.connect() as conn:
        sites = load_sites(conn)
    assert [(x.name, x.topology.num_gpus, list(x.topology.node_names)) for x in sites] == [
        ("de-1", 8, ["node1", "node2"]), ("fr-1", 8, ["node1", "node2"])
    ]  # fmt: skip
    executors = make_executors(cfg, store, sites)
    d = Daemon(store, executors)
    try:
        (fill,) = submit(d, {"command": ["sleep", "60"], "gpus": 8, "sites": ["de-1"]})
        run_until(d, lambda: row(d, fill).state == "running", timeout=60, poll=0.2)
        free = submit(d, *({"command": ["true"], "gpus": 1} for _ in range(2)))
        (german,) = submit(d, {"command": ["true"], "gpus": 1, "countries": ["DE"]})
        run_until(d, ended(d, *free), timeout=90, poll=0.2)
        assert [row(d, j).site for j in free] == ["fr-1", "fr-1"]
        assert [row(d, j).state for j in free] == ["completed", "completed"]
        assert (row(d, german).site, row(d, german).state) == ("de-1", "pending")
        # The fill runs on de-1's cluster, not on fr-1's.
        names = {c: subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True,
                                   env={**os.environ, "SLURM_CONF": f"{c}/slurm.conf"}).stdout.split()
                 for c in (de, fr)}  # fmt: skip
        assert slurm(executors[0]).job_name(fill, 1) in names[de] and not names[fr]
        with store.begin() as conn:
            inbox.append(conn, "cancel", job_id=fill, reason="make room")
        run_until(d, ended(d, german, fill), timeout=90, poll=0.2)
        assert row(d, german).state == "completed"
        with store.connect() as conn:
            billed = {r.job_id: r.site for r in conn.execute(usage.select())}
        assert billed == {fill: "de-1", german: "de-1", free[0]: "fr-1", free[1]: "fr-1"}
    finally:
        store.dispose()
        shutil.rmtree(jobs, ignore_errors=True)
