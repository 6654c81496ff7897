"""``local``: jobs as processes on this machine. It needs no GPU.

Each attempt has a directory ``JOBS/<job>/<attempt>/`` (``JOBS`` is ``DATA/jobs`` by default):

==================  ==============  =====================================================================
path                owner, mode     what
==================  ==============  =====================================================================
``.``               plane, 0710     group: the tenant's gid, which may pass through to ``work/`` (and nobody
                                    else), but may list or create nothing; so is ``JOBS/<job>/``
``launch.json``     plane, 0600     what to run, as whom, with which environment (written before the start)
``claim/``, ...     plane, 0600     the runner's records: ``claim/runner.json``, ``status.json``, ``runner.log``
``stdout.log``      tenant, 0600    the job's output, opened by the runner (the tenant cannot swap it)
``stderr.log``      tenant, 0600
``work/``           tenant, 0700    the job's cwd and ``$HOME`` (``work/tmp`` is its ``$TMPDIR``)
==================  ==============  =====================================================================

Every attempt is run by :mod:`.runner`, started detached (``setsid -f``), so the daemon's death leaves every job
running. The runner claims the attempt, runs it as the tenant's uid, contains it (a process group, a subreaper,
and a cgroup v2 where the host allows one), stops it as a whole, and records its real start and end.

Polling reads the runner's records. If the runner has written the end, the attempt has ended and its processes are
gone. If the runner died without writing it (``kill -9``), nothing is reported until every leftover process of the
attempt is killed: the cgroup's, or, without one, those whose session or ``GIGAFACTORY_RUN`` marks them as the
attempt's. Only then is the attempt reported *interrupted*, so it is never requeued while a copy still runs. If the
runner never claimed the attempt, the start is repeated a few times, and then the attempt *fails* with what the
runner said. Nothing retries silently forever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gigafactory.control.executors import runner
from gigafactory.control.executors.base import (
    SAFE_PATH,
    Launch,
    NodeReport,
    Report,
    attempt_dir,
    job_environment,
)

__all__ = ["LocalExecutor", "cgroup_base", "containment_note", "passage"]

RUNNER = Path(runner.__file__).resolve()
# An attempt whose start was carried out but whose runner has not claimed it after this long is started again, at
# most START_TRIES times in all; then it fails.
UNCLAIMED_RETRY_S = 10.0
START_TRIES = 3
KILL_WAIT_S = 10.0


def _max_procs() -> int:
    """Processes (threads count) a tenant's uid may have on this machine: an eighth of its pids, within 1,024
    and 65,536, so that no tenant, however hostile, can take the machine's last pid."""
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 32768
    return min(65536, max(1024, pid_max // 8))


MAX_PROCS = _max_procs()


def cgroup_base(name: str) -> Path | None:
    """A cgroup v2 directory for this control plane's attempts, inside the daemon's own cgroup, if the host lets us
    make one (as root, or where systemd delegated the cgroup); None otherwise."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        own = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
    except (OSError, StopIteration):
        return None
    for line in mounts:
        pre, _, post = line.partition(" - ")
        if post.split()[:1] == ["cgroup2"]:
            base = Path(pre.split()[4]) / own.strip().lstrip("/") / f"gigafactory-{name}"
            try:
                base.mkdir(exist_ok=True)
            except OSError:
                return None
            if not (base / "cgroup.procs").exists():
                return None
            # Limits for the attempts, where the host lends us these controllers (a pure cgroup v2 host).
            for controller in ("+pids", "+memory"):
                with contextlib.suppress(OSError):
                    (base / "cgroup.subtree_control").write_text(controller)
            return base
    return None


def containment_note(base: Path | None) -> str:
    """How this host lets attempts be contained, in words (``serve`` and ``/health`` show it)."""
    if base is None:
        return ("process groups and a subreaper (no cgroup v2 this process may use: a job that escapes both, with "
                "its runner killed, can outlive its stop; memory requests are not enforced)")  # fmt: skip
    try:
        lent = set((base / "cgroup.subtree_control").read_text().split())
    except OSError:
        lent = set()
    missing = [name for name, c in (("memory requests", "memory"), ("a pids cap per job", "pids")) if c not in lent]
    if not missing:
        return "a cgroup v2 per attempt, with its memory request and a pids cap enforced"
    return (f"a cgroup v2 per attempt (stopped as a whole), but the host lends no controller for "
            f"{' or '.join(missing)}: those are not enforced (processes are capped per tenant uid)")  # fmt: skip


class LocalExecutor:
    name = "local"

    def __init__(
        self,
        jobs_root: Path,
        *,
        plane: str = "local",
        kill_wait_s: float = KILL_WAIT_S,
        unclaimed_retry_s: float = UNCLAIMED_RETRY_S,
        cgroups: bool = True,
    ) -> None:
        self.root = jobs_root
        self.plane = plane
        self.kill_wait_s = kill_wait_s
        self.unclaimed_retry_s = unclaimed_retry_s
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        self.cgroups = cgroup_base(plane) if cgroups else None
        self.containment = containment_note(self.cgroups)
        self._started_at: dict[tuple[int, int], float] = {}

    def attempt_dir(self, job_id: int, attempt: int) -> Path:
        return attempt_dir(self.root, job_id, attempt)

    # ---- the interface --------------------------------------------------------------------------------------
    def start(self, launch: Launch) -> None:
        d = self.attempt_dir(launch.job_id, launch.attempt)
        passage(d, launch.gid if launch.uid is not None else None)
        if (d / "claim").exists():
            return  # already running or run: never twice
        gpus = ",".join(str(g) for g in (launch.node_gpus[0] if launch.node_gpus else []))
        cgroup = self.cgroups / f"job-{launch.job_id}-{launch.attempt}" if self.cgroups is not None else None
        record = {
            **dataclasses.asdict(launch),
            "env": job_environment(launch, d / "work", self.plane, gpus),
            "kill_wait_s": self.kill_wait_s,
            "cgroup": str(cgroup) if cgroup is not None else None,
            "max_procs": MAX_PROCS,
        }
        _write_private(d / "launch.json", json.dumps(record))
        self._spawn(d)
        self._started_at[(launch.job_id, launch.attempt)] = time.monotonic()

    def _spawn(self, d: Path) -> None:
        tries = _read_int(d / "starts") or 0
        _write_private(d / "starts", str(tries + 1))
        log = os.open(d / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            # `setsid -f` detaches the runner at once (a session of its own, not our child): the daemon holds no
            # process handles, and its death (or kill -9) leaves every job running. The runner gets no environment
            # of ours, and none of our descriptors (the daemon's lease among them).
            subprocess.run(
                ["setsid", "-f", sys.executable, "-I", "-S", str(RUNNER), str(d)],
                env={"PATH": SAFE_PATH, "LANG": "C.UTF-8"},
                cwd=str(d),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                check=True,
                close_fds=True,
            )
        finally:
            os.close(log)

    def stop(self, job_id: int, attempt: int) -> None:
        d = self.attempt_dir(job_id, attempt)
        passage(d, None)
        # First the mark, then the signal: a runner that has not read the mark yet will; one that has is signalled.
        # No runner yet: take the attempt from under it, so that nothing runs and the stop is over at once.
        _write_private(d / "stop", "")
        pid = _live_runner(d)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        elif not (d / "claim").exists():
            _claim_dead(d)

    def signal(self, job_id: int, attempt: int) -> None:
        """Ask the attempt to checkpoint: its runner passes SIGUSR1 on to the job's process group."""
        pid = _live_runner(self.attempt_dir(job_id, attempt))
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)

    def poll(self, running: dict[int, int]) -> list[Report]:
        out: list[Report] = []
        now = time.monotonic()
        for job_id, attempt in running.items():
            d = self.attempt_dir(job_id, attempt)
            status = _read_json(d / "status.json")
            if status is not None and "ended" in status:
                out.append(_report(job_id, attempt, status))
                continue
            if not (d / "claim").exists():
                report = self._unclaimed(job_id, attempt, d, now)
                if report is not None:
                    out.append(report)
                continue
            if (_read_json(d / "claim" / "runner.json") or {}).get("abandoned"):
                when = (d / "claim").stat().st_mtime  # taken from under any runner: nothing of it ever ran
                out.append(Report(job_id, attempt, "interrupted", None, "stopped before it started", when, when))
                continue
            if _live_runner(d) is not None:
                continue
            # The runner died without recording an end (kill -9, OOM): end what it left, then report the loss.
            status = _read_json(d / "status.json")
            if status is not None and "ended" in status:
                out.append(_report(job_id, attempt, status))
            elif self._kill_leftovers(d):
                ended = time.time()
                started = status.get("started") if status else None  # none: it died before the job began
                out.append(Report(job_id, attempt, "interrupted", None, "the runner died; its processes were killed",
                                  started if started is not None else ended, ended))  # fmt: skip
        return out

    def nodes(self) -> list[NodeReport]:
        return []

    # ---- helpers --------------------------------------------------------------------------------------------
    def _unclaimed(self, job_id: int, attempt: int, d: Path, now: float) -> Report | None:
        """A start that has not been claimed: give the runner time, start it again, and in the end fail it."""
        key = (job_id, attempt)
        started = self._started_at.get(key)
        if started is None:
            self._started_at[key] = now  # carried out before this process started (a restart): give it time
            return None
        if now - started <= self.unclaimed_retry_s:
            return None
        if not (d / "launch.json").exists() or (_read_int(d / "starts") or 0) >= START_TRIES:
            if not _claim_dead(d):
                return None  # a runner claimed it just now after all: it runs, and is watched as any other
            if not (d / "launch.json").exists():
                why = "the start was lost before it was written down"
            else:
                why = f"the runner never started: {_tail(d / 'runner.log', 300).strip() or 'no message'}"
            when = time.time()
            return Report(job_id, attempt, "failed", None, why, when, when)  # nothing ran: nothing to bill
        self._started_at[key] = now
        try:
            self._spawn(d)
        except (OSError, subprocess.CalledProcessError) as exc:
            return Report(job_id, attempt, "failed", None, f"the runner cannot be started: {exc}", ended_at=time.time())
        return None

    def _kill_leftovers(self, d: Path) -> bool:
        """Kill whatever is left of an attempt whose runner died; True once nothing is left."""
        info = _read_json(d / "claim" / "runner.json") or {}
        launch = _read_json(d / "launch.json") or {}
        cgroup = info.get("cgroup") or launch.get("cgroup")
        left = set(runner.cgroup_pids(cgroup))
        mark = launch.get("env", {}).get("GIGAFACTORY_RUN", "").encode()
        session = info.get("child")
        if mark:
            left |= set(_marked(mark, session, launch.get("uid")))
        if not left:
            if cgroup:
                with contextlib.suppress(OSError):
                    os.rmdir(cgroup)
            return True
        runner.kill_cgroup(cgroup)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return False

    def stop_all(self, wait_s: float | None = None) -> int:
        """Stop every attempt still running under this executor and wait until they are gone (the demo does this
        when it ends; a real control plane leaves jobs running across its own restarts). Returns how many."""
        stopping = []
        for claim in self.root.glob("*/*/claim"):
            d = claim.parent
            status = _read_json(d / "status.json")
            if status is None or "ended" not in status:
                self.stop(int(d.parent.name), int(d.name))
                stopping.append(d)
        stopping_at_first = list(stopping)
        deadline = time.monotonic() + (self.kill_wait_s + 5.0 if wait_s is None else wait_s)
        while stopping and time.monotonic() < deadline:
            stopping = [d for d in stopping if "ended" not in (_read_json(d / "status.json") or {})]
            stopping = [d for d in stopping if _live_runner(d) is not None or not self._kill_leftovers(d)]
            time.sleep(0.05)
        return len(stopping_at_first)

    def claims(self, job_id: int) -> list[int]:
        """The attempts of ``job_id`` that actually ran (for checks: each runs at most once)."""
        base = self.root / str(job_id)
        if not base.exists():
            return []
        return sorted(int(p.name) for p in base.iterdir() if (p / "claim").exists())


def _report(job_id: int, attempt: int, status: dict[str, Any]) -> Report:
    code = status.get("exit_code")
    ended = status.get("ended")
    started = status.get("started")
    times = {"started_at": started if started is not None else ended, "ended_at": ended}  # never began: 0 s
    reason = str(status.get("reason") or "")
    if status.get("stopped") or status.get("interrupted"):
        return Report(job_id, attempt, "interrupted", code, reason or "stopped", **times)
    if code == 0:
        return Report(job_id, attempt, "finished", 0, "", **times)
    return Report(job_id, attempt, "failed", code if code is not None else 1, reason or f"exit code {code}", **times)


def passage(d: Path, gid: int | None) -> None:
    """Make an attempt's directory and its job's: the control plane's, which the tenant's group ``gid`` alone may
    pass through (0710) to reach its workspace; with no ``gid`` (isolation off, or nothing to run), 0700."""
    for path in (d.parent, d):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if gid is None:
                continue
        if gid is not None:
            os.chown(path, -1, gid)
            path.chmod(0o710)


def _claim_dead(d: Path) -> bool:
    """Claim an attempt for no runner, so that a runner starting late can never run it unwatched. False if a runner
    holds the claim already."""
    passage(d, None)
    _write_private(d / "stop", "")
    mine = d / "claim.abandoned"
    mine.mkdir(mode=0o700, exist_ok=True)
    _write_private(mine / "runner.json", json.dumps({"pid": None, "abandoned": True}))
    try:
        mine.rename(d / "claim")
    except OSError:
        (mine / "runner.json").unlink(missing_ok=True)
        mine.rmdir()
        return False
    return True


def _marked(mark: bytes, session: int | None, uid: int | None) -> list[int]:
    """Processes of an attempt whose runner is gone: those in the job's session, or carrying its mark, and running
    as its tenant's uid (a pid, and so a session id, may have been reused by someone else's process since)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if uid is not None and os.stat(f"/proc/{name}").st_uid != uid:
                continue
            stat = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            if stat[0] in (b"Z", b"X"):
                continue
            if session is not None and int(stat[3]) == session:
                found.append(int(name))
                continue
            env = Path(f"/proc/{name}/environ").read_bytes()
        except (OSError, IndexError):
            continue
        if b"GIGAFACTORY_RUN=" + mark + b"\0" in env:
            found.append(int(name))
    return found


def _live_runner(d: Path) -> int | None:
    """The pid of the attempt's runner if it still runs (the same process: pid and start time both match)."""
    info = _read_json(d / "claim" / "runner.json")
    if not info:
        return None
    pid, start = info.get("pid"), info.get("start")
    if not isinstance(pid, int) or runner.proc_start(pid) != start:
        return None
    return pid


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _tail(path: Path, size: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
