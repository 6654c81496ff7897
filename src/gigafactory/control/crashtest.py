"""The crash test: kill -9 the daemon at random moments while it runs real jobs, restart it, and check that
nothing was lost or done twice, and that every attempt was billed exactly for the time it ran.

Every job's command first prints ``<job> <attempt>`` to its log, which the runner opens for appending, so an
attempt that ran twice would show two lines. At the end, every job must be in the state its command implies
(exit 0: completed; exit 3: failed with code 3; cancelled while it slept: cancelled), each attempt that ran must
have run exactly once, nothing may still run, and accounting must hold exactly one usage record per attempt that
ran, whose start and end are the runner's own records (within a second). Used by the test suite (a few kills) and
by ``bench/crash.py`` (a hundred).

With a ``network``, the store serves several sites and jobs arrive in waves, one after each kill, so that kills
land while the daemon routes. Some jobs may run only in one country. Then also: every job was routed exactly once
(one ``route`` record in its story, naming the site it ran on), and none ran outside its countries.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from gigafactory.control.config import ControlConfig, init_control, jobs_root
from gigafactory.control.executors.runner import proc_start
from gigafactory.control.store import inbox
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.schema import jobs as jobs_table
from gigafactory.control.store.schema import usage
from gigafactory.core.tenants import Tenant
from gigafactory.network.model import Network

__all__ = ["CrashResult", "crash_run"]

TERMINAL = ("completed", "failed", "cancelled", "rejected")


@dataclass
class CrashResult:
    jobs: int
    kills: int
    wall_s: float
    states: dict[str, int]
    problems: list[str] = field(default_factory=list)
    billed_gpu_s: float = 0.0  # what the usage table holds
    ran_gpu_s: float = 0.0  # what the runners recorded
    worst_billing_error_s: float = 0.0  # the largest gap, per attempt, between the two

    @property
    def ok(self) -> bool:
        return not self.problems


def _daemon(cfg: ControlConfig, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "gigafactory", "daemon", "--data-dir", str(cfg.data_dir)]
    env = {**os.environ, "GIGAFACTORY_DB": cfg.db} if cfg.db else None
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def crash_run(
    data_dir: Path,
    *,
    jobs: int = 1000,
    kills: int = 5,
    seed: int = 0,
    db: str | None = None,
    site: str = "uniform:nodes=16,gpus=8",
    max_sleep_s: float = 0.2,
    timeout_s: float = 600.0,
    kill_every_s: tuple[float, float] = (0.3, 2.0),
    network: Network | None = None,
) -> CrashResult:
    """Run ``jobs`` short jobs through a daemon process that is killed ``kills`` times; check the outcome."""
    rng = random.Random(seed)
    cfg = ControlConfig(data_dir, db, jobs_dir=data_dir.with_name(data_dir.name + "-jobs"))
    tenants = [Tenant("a"), Tenant("b")]
    if network is None:
        store = init_control(cfg, site=site, tenants=tenants, kill_wait_s=2)
    else:
        store = init_control(cfg, network=network, tenants=tenants, kill_wait_s=2)
    countries = sorted({x.country for x in network.sites}) if network is not None else []
    record = 'echo "$GIGAFACTORY_JOB_ID $GIGAFACTORY_ATTEMPT"'
    rows, expect = [], []
    for i in range(jobs):
        kind = rng.choices(["ok", "fail", "cancel"], weights=[90, 5, 5])[0]
        if kind == "ok":
            cmd = f"{record}; sleep {rng.uniform(0, max_sleep_s):.3f}"
        elif kind == "fail":
            cmd = f"{record}; exit 3"
        else:
            cmd = f"{record}; sleep 600"
        row = {"tenant": "ab"[i % 2], "name": kind, "command": ["sh", "-c", cmd], "gpus": rng.choice([1, 1, 2, 4])}
        if countries and rng.random() < 0.3:
            row["countries"] = [rng.choice(countries)]
        rows.append(row)
        expect.append(kind)
    waves = kills + 1 if network is not None else 1
    chunks = [rows[k * len(rows) // waves : (k + 1) * len(rows) // waves] for k in range(waves)]
    want: dict[int, str] = {}
    to_cancel: list[int] = []
    taken = 0

    def add_wave() -> None:
        nonlocal taken
        chunk = chunks.pop(0)
        with store.begin() as conn:
            ids = jobstore.insert_jobs(conn, chunk)
        for jid, kind in zip(ids, expect[taken : taken + len(chunk)], strict=True):
            want[jid] = kind
            if kind == "cancel":
                to_cancel.append(jid)
        taken += len(chunk)

    add_wave()

    log = data_dir.parent / f"{data_dir.name}-daemon.log"
    t0 = time.monotonic()
    proc = _daemon(cfg, log)
    done_kills = 0
    cancels_sent = False
    died: str | None = None
    try:
        while True:
            if time.monotonic() - t0 > timeout_s:
                break
            if done_kills < kills:
                time.sleep(rng.uniform(*kill_every_s))
            if proc.poll() is not None:  # it exited by itself: waiting longer would only run out the clock
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                died = f"the daemon exited by itself (code {proc.returncode}); its log ends: {' | '.join(tail)}"
                break
            if done_kills < kills:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                done_kills += 1
                if chunks:
                    add_wave()  # the next wave arrives while no daemon runs: the next one routes it
                if not cancels_sent and done_kills >= kills // 2 and not chunks:
                    _cancel(store, to_cancel)
                    cancels_sent = True
                proc = _daemon(cfg, log)
                continue
            while chunks:
                add_wave()
            if not cancels_sent:
                _cancel(store, to_cancel)
                cancels_sent = True
            with store.connect() as conn:
                left = conn.execute(select(jobs_table.c.id).where(jobs_table.c.state.not_in(TERMINAL)).limit(1)).first()
            if left is None:
                break
            time.sleep(0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    wall = time.monotonic() - t0
    routing = _check_routes(store, network) if network is not None else []
    result = _check(store, jobs_root(cfg, store), want, done_kills, wall)
    result.problems += routing
    if died is not None:
        result.problems.insert(0, died)
    return result


def _check_routes(store, network: Network) -> list[str]:  # type: ignore[no-untyped-def]
    """Every job that left 'submitted' was routed once, to the site it has, inside its countries."""
    from gigafactory.control.store.schema import transitions

    problems = []
    country = {x.name: x.country for x in network.sites}
    with store.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(jobs_table))}
        routes: Counter[int] = Counter()
        named: dict[int, str] = {}
        for t in conn.execute(select(transitions).where(transitions.c.stimulus == "route")):
            routes[t.job_id] += 1
            named[t.job_id] = t.reason
    for jid, r in rows.items():
        if r.state == "submitted":
            problems.append(f"job {jid} was never routed")
            continue
        if routes[jid] != 1:
            problems.append(f"job {jid} was routed {routes[jid]} times")
            continue
        if r.state == "rejected":
            continue
        if not named[jid].startswith(f"routed to {r.site}:"):
            problems.append(f"job {jid} is on {r.site}, but its story says {named[jid]!r}")
        if r.countries and country.get(r.site) not in r.countries:
            problems.append(f"job {jid} ran on {r.site} ({country.get(r.site)}), outside {r.countries}")
    return problems


def _cancel(store, ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    with store.begin() as conn:
        for jid in ids:
            inbox.append(conn, "cancel", job_id=jid, reason="cancelled by the crash test")


def _check(store, jobs: Path, want: dict[int, str], kills: int, wall: float) -> CrashResult:  # type: ignore[no-untyped-def]
    problems: list[str] = []
    with store.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(jobs_table))}
        billed = list(conn.execute(select(usage)))
    store.dispose()
    used = Counter((r.job_id, r.attempt) for r in billed)
    ran: Counter[tuple[int, int]] = Counter()
    for log in jobs.glob("*/*/stdout.log"):
        for line in log.read_text().splitlines():
            if line.strip():
                ran[(int(line.split()[0]), int(line.split()[1]))] += 1
    states = Counter(r.state for r in rows.values())
    for jid, kind in want.items():
        row = rows.get(jid)
        if row is None:
            problems.append(f"job {jid} is gone from the store")
            continue
        expected = {"ok": "completed", "fail": "failed", "cancel": "cancelled"}[kind]
        if row.state != expected:
            problems.append(f"job {jid} ({kind}) ended {row.state}, not {expected}")
        if kind == "fail" and row.exit_code != 3:
            problems.append(f"job {jid} failed with exit code {row.exit_code}, not 3")
        attempts = [a for (j, a) in ran if j == jid]
        for (j, a), n in ran.items():
            if j == jid and n > 1:
                problems.append(f"job {jid} attempt {a} ran {n} times")
        if kind != "cancel" and not attempts:
            problems.append(f"job {jid} ended {row.state} but never ran")
        for a in attempts:
            if used[(jid, a)] != 1 and row.state in TERMINAL:
                problems.append(f"job {jid} attempt {a} has {used[(jid, a)]} usage records, not 1")
    for (jid, a), n in used.items():
        if n > 1:
            problems.append(f"job {jid} attempt {a} was accounted {n} times")
    # Billing: each record against the runner's own start and end.
    billed_s = ran_s = worst = 0.0
    for u in billed:
        status = _json(jobs / str(u.job_id) / str(u.attempt) / "status.json")
        if status is None or "ended" not in status:
            # No runner ran it (its start was taken back when it was stopped): it must cost nothing.
            if u.gpu_seconds != 0:
                problems.append(f"job {u.job_id} attempt {u.attempt} was billed {u.gpu_seconds:.3f} GPU-s, but no "
                                "runner ran it")  # fmt: skip
            continue
        start = status["started"] if status.get("started") is not None else status["ended"]
        truth = u.gpus * (status["ended"] - start)
        gap = max(abs(u.started_at - start), abs(u.ended_at - status["ended"]))
        worst = max(worst, gap)
        billed_s += u.gpu_seconds
        ran_s += truth
        if gap > 1.0:
            problems.append(f"job {u.job_id} attempt {u.attempt} billed {u.started_at:.3f}-{u.ended_at:.3f}, "
                            f"ran {start:.3f}-{status['ended']:.3f}")  # fmt: skip
    # Nothing of any attempt is left running.
    for info in jobs.glob("*/*/claim/runner.json"):
        record = _json(info) or {}
        pid = record.get("pid")
        if isinstance(pid, int) and proc_start(pid) == record.get("start"):
            problems.append(f"the runner of {info.parent.parent} still runs after the test")
            os.kill(pid, signal.SIGTERM)
    return CrashResult(jobs=len(want), kills=kills, wall_s=wall, states=dict(states), problems=problems,
                       billed_gpu_s=billed_s, ran_gpu_s=ran_s, worst_billing_error_s=worst)  # fmt: skip


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None
