"""``local``: jobs as processes on this machine. Needs no GPU.

Each attempt gets a directory ``DATA/jobs/<job>/<attempt>/`` and is run by a small POSIX shell runner, started in
a session of its own (``setsid -f``) so that the daemon dying does not take jobs with it. The runner:

1. claims the attempt by creating ``claim/`` (``mkdir`` is atomic): a second runner for the same attempt exits at
   once, so an attempt never runs twice, however many times it is started;
2. records its pid, runs the command with ``CUDA_VISIBLE_DEVICES`` set to the GPUs placed (their indices on the
   node), stdout and stderr to ``stdout.log`` and ``stderr.log``;
3. writes the exit status to ``exit_code`` (through a rename, so it is whole or absent).

Polling reads those files: an exit code means finished or failed; a claim whose runner is gone without one means
the attempt was lost (interrupted); no claim yet means it has not started, and a start is repeated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from gigafactory.control.executors.base import Launch, NodeReport, Report, attempt_dir

__all__ = ["LocalExecutor"]

RUNNER = r"""#!/bin/sh
# gigafactory local runner: claim, run, record the exit status. Arguments: attempt directory, then the command.
dir="$1"; shift
mkdir "$dir/claim" 2>/dev/null || exit 0
echo $$ > "$dir/pid.tmp" && mv "$dir/pid.tmp" "$dir/pid"
child=
trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi' TERM INT
"$@" > "$dir/stdout.log" 2> "$dir/stderr.log" < /dev/null &
child=$!
while :; do
    wait "$child"; code=$?
    kill -0 "$child" 2>/dev/null || break
done
echo "$code" > "$dir/exit.tmp" && mv "$dir/exit.tmp" "$dir/exit_code"
"""

# An attempt whose start was carried out but whose runner has not claimed it after this long is started again.
UNCLAIMED_RETRY_S = 10.0


class LocalExecutor:
    name = "local"

    def __init__(self, data_dir: Path, *, unclaimed_retry_s: float = UNCLAIMED_RETRY_S) -> None:
        self.data_dir = data_dir
        self.unclaimed_retry_s = unclaimed_retry_s
        self.root = data_dir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.runner = data_dir / "runner.sh"
        if not self.runner.exists() or self.runner.read_text() != RUNNER:
            tmp = self.runner.with_suffix(".tmp")
            tmp.write_text(RUNNER)
            tmp.replace(self.runner)
        self._started_at: dict[tuple[int, int], float] = {}
        self._launches: dict[tuple[int, int], Launch] = {}

    def attempt_dir(self, job_id: int, attempt: int) -> Path:
        return attempt_dir(self.data_dir, job_id, attempt)

    def start(self, launch: Launch) -> None:
        d = self.attempt_dir(launch.job_id, launch.attempt)
        d.mkdir(parents=True, exist_ok=True)
        if (d / "claim").exists():
            return  # already running or run: never twice
        gpus = ",".join(str(g) for g in (launch.node_gpus[0] if launch.node_gpus else []))
        env = {
            **os.environ,
            **launch.env,
            "CUDA_VISIBLE_DEVICES": gpus,
            "GIGAFACTORY_JOB_ID": str(launch.job_id),
            "GIGAFACTORY_ATTEMPT": str(launch.attempt),
            "GIGAFACTORY_NODES": ",".join(launch.nodes),
            "GIGAFACTORY_TENANT": launch.tenant,
        }
        # What was launched, whole: a later daemon process can start it again if the runner never claimed it.
        tmp = d / "launch.tmp"
        tmp.write_text(json.dumps({**dataclasses.asdict(launch), "cuda_visible_devices": gpus}))
        tmp.replace(d / "launch.json")
        # `setsid -f` detaches the runner at once (a session of its own, not our child): the daemon holds no
        # process handles, and its death (or kill -9) leaves every job running.
        subprocess.run(  # the tenant's command: what it is for
            ["setsid", "-f", "/bin/sh", str(self.runner), str(d), *launch.command],
            env=env,
            cwd=str(d),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        self._started_at[(launch.job_id, launch.attempt)] = time.monotonic()
        self._launches[(launch.job_id, launch.attempt)] = launch

    def stop(self, job_id: int, attempt: int) -> None:
        pid = self._runner_pid(self.attempt_dir(job_id, attempt))
        if pid is not None and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def poll(self, running: dict[int, int]) -> list[Report]:
        out: list[Report] = []
        now = time.monotonic()
        for job_id, attempt in running.items():
            d = self.attempt_dir(job_id, attempt)
            code = _read_int(d / "exit_code")
            if code is not None:
                kind = "finished" if code == 0 else "failed"
                out.append(Report(job_id, attempt, kind, code, "" if code == 0 else f"exit code {code}"))
                continue
            if not (d / "claim").exists():
                started = self._started_at.get((job_id, attempt))
                if started is None:
                    # Carried out before this process started (a restart): give the runner time, then start again.
                    self._started_at[(job_id, attempt)] = now
                elif now - started > self.unclaimed_retry_s:
                    again = self._launches.get((job_id, attempt)) or _read_launch(d)
                    if again is not None:
                        self.start(again)
                continue
            pid = self._runner_pid(d)
            if pid is None:
                continue  # claimed a moment ago; the pid file follows
            if not _alive(pid, d):
                # Look once more: the runner may have written its exit code just now.
                code = _read_int(d / "exit_code")
                if code is not None:
                    kind = "finished" if code == 0 else "failed"
                    out.append(Report(job_id, attempt, kind, code, "" if code == 0 else f"exit code {code}"))
                else:
                    out.append(Report(job_id, attempt, "interrupted", None, "the runner died without an exit code"))
        return out

    def stop_all(self) -> int:
        """Stop every attempt still running under this data directory (the demo does this when it ends; a real
        control plane leaves jobs running across its own restarts). Returns how many were stopped."""
        stopped = 0
        for pidfile in self.root.glob("*/*/pid"):
            d = pidfile.parent
            pid = _read_int(pidfile)
            if pid is not None and not (d / "exit_code").exists() and _alive(pid, d):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                    stopped += 1
        return stopped

    def nodes(self) -> list[NodeReport]:
        return []

    def claims(self, job_id: int) -> list[int]:
        """The attempts of ``job_id`` that actually ran (for checks: each runs at most once)."""
        base = self.root / str(job_id)
        if not base.exists():
            return []
        return sorted(int(p.name) for p in base.iterdir() if (p / "claim").exists())

    @staticmethod
    def _runner_pid(d: Path) -> int | None:
        return _read_int(d / "pid")


def _read_launch(d: Path) -> Launch | None:
    try:
        data = json.loads((d / "launch.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    data.pop("cuda_visible_devices", None)
    return Launch(**data)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _alive(pid: int, attempt_dir: Path | None = None) -> bool:
    """Is ``pid`` a live process (and, with ``attempt_dir``, our runner for that attempt, not a reused pid)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False  # a zombie has exited
    if attempt_dir is not None:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, PermissionError):
            return False
        return str(attempt_dir).encode() in cmdline
    return True
