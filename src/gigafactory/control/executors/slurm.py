"""``slurm``: jobs on a real Slurm cluster, through ``sbatch``, ``squeue``, ``sinfo``, ``scancel`` and ``sacct -c``.

The engine decides; Slurm carries out. Each attempt becomes one Slurm batch job named ``gf-<plane>-<job>-<attempt>``
(``<plane>`` identifies this control plane's store, so that several can share a cluster), pinned
to the engine's nodes (``--nodelist``) with the engine's GPU count (``--gres=gpu:N`` per node, or ``--gpus=N`` when
the nodes get different counts), and ``--no-requeue``: when a node fails, Slurm ends the job as ``NODE_FAIL``, this
executor reports the attempt *interrupted*, and the engine requeues it as a new attempt (from its last checkpoint).

Idempotent per (job, attempt): the Slurm id is kept in the attempt's directory, and before submitting, the
executor looks for a Slurm job of that name (a crash between ``sbatch`` and writing the id leaves one), so an attempt
is submitted once however often it is started.

Slurm states map to reports as follows: ``COMPLETED`` → finished; ``FAILED``, ``TIMEOUT``, ``OUT_OF_MEMORY``,
``DEADLINE``, ``CANCELLED`` (by someone else) → failed; ``NODE_FAIL``, ``BOOT_FAIL``, ``PREEMPTED`` → interrupted.
Nodes that Slurm has ``down`` or ``fail`` are reported down, which the engine turns into interruptions and requeues.

A fraction of a GPU has no GRES in Slurm without MPS or shards; such a job asks Slurm for no GPU and gets the
engine's GPU index in ``CUDA_VISIBLE_DEVICES`` from the batch script.

Jobs never run as root or as the control plane. When the control plane runs as root, ``sbatch`` itself runs as the
tenant's mapped account (``admin tenant NAME --unix-user U``): Slurm authenticates the submission as that user
(munge) and runs the job as that user, as with any user's ``sbatch``. A tenant with no account cannot run on Slurm,
and its job fails with that reason. ``sbatch`` gets a bare environment (``PATH`` and ``SLURM_CONF``), so nothing of
the control plane's, and no ``SBATCH_*`` variable of the tenant's, reaches it. The batch script, sent on its stdin,
sets the job's environment (:func:`~.base.job_environment`).

The attempt's directory is laid out as for the local executor: the control plane's records, the logs (created
here and owned by the tenant; Slurm opens them as the user, for appending), and ``work/``, the job's cwd. The jobs
directory must therefore be reachable by the tenants' accounts on every node. Accounting comes from Slurm's own
completion record: the start and end that ``sacct -c`` reports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from gigafactory.control.executors.base import (
    SAFE_PATH,
    Launch,
    LaunchError,
    NodeReport,
    Report,
    attempt_dir,
    job_environment,
)
from gigafactory.control.executors.local import passage
from gigafactory.control.identity import isolating
from gigafactory.core.errors import ConfigError, UserError
from gigafactory.core.topology import Topology

__all__ = ["SlurmError", "SlurmExecutor", "site_from_slurm"]

FINISHED = {"COMPLETED"}
FAILED = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "DEADLINE", "CANCELLED"}
INTERRUPTED = {"NODE_FAIL", "BOOT_FAIL", "PREEMPTED"}
# An attempt Slurm has no record of (not queued, not in the completion log) for this long is reported lost.
LOST_AFTER_S = 120.0


class SlurmError(UserError):
    """A Slurm command failed (the cluster is down or unreachable, or refused a request)."""


def _slurm(
    args: list[str], *, timeout: float = 30.0, check: bool = True, conf: str | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run a Slurm client command; ``conf``: the slurm.conf of the cluster to ask (else ``$SLURM_CONF``)."""
    if conf is not None:
        kw["env"] = {**(kw.get("env") or os.environ), "SLURM_CONF": conf}
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{args[0]}: not found; the slurm executor needs Slurm's client commands (sbatch, squeue, scontrol, sacct) "
            "and SLURM_CONF naming the cluster's slurm.conf"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"{' '.join(args[:2])} did not answer in {timeout:g} s") from exc
    if check and proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()] or ["no message"]
        said = next((line for line in lines if "fatal" in line), lines[-1])  # the line that says why
        hint = (
            "" if conf or os.environ.get("SLURM_CONF") else " (SLURM_CONF is not set: is this a Slurm client machine?)"
        )
        raise SlurmError(f"{' '.join(args[:3])} failed (exit {proc.returncode}): {said.strip()[:300]}{hint}")
    return proc


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def job_name(plane: str, job_id: int, attempt: int) -> str:
    return f"gf-{plane}-{job_id}-{attempt}"


def site_from_slurm(name: str | None = None, conf: str | None = None) -> Topology:
    """The site as Slurm sees it: one node per Slurm node, its GPUs from its ``gpu`` GRES; each node is its own
    NVLink domain (HGX-style), all in one pod. ``conf``: the cluster's slurm.conf (else ``$SLURM_CONF``)."""
    out = _slurm(["scontrol", "show", "nodes", "-o"], conf=conf).stdout
    rows = []
    for line in out.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if "NodeName" not in fields:
            continue
        model, gpus = "gpu", 0
        for gres in fields.get("Gres", "").split(","):
            parts = gres.split("(")[0].split(":")
            if parts[0] == "gpu" and len(parts) >= 2:
                gpus = int(parts[-1])
                model = parts[1] if len(parts) == 3 else "gpu"
        rows.append(
            (fields["NodeName"], model, gpus, int(fields.get("CPUTot", "1")), int(fields.get("RealMemory", "1")))
        )
    if not rows:
        raise ConfigError("scontrol show nodes lists no nodes: is SLURM_CONF set and the cluster up?")
    cluster = name
    if cluster is None:
        for line in _slurm(["scontrol", "show", "config"], conf=conf).stdout.splitlines():
            if line.startswith("ClusterName"):
                cluster = line.split("=", 1)[1].strip()
    models = sorted({r[1] for r in rows})
    return Topology.from_columns(
        cluster or "slurm",
        models=models,
        node_model=np.array([models.index(r[1]) for r in rows]),
        node_gpus=np.array([r[2] for r in rows]),
        node_cpu=np.array([r[3] * 1000 for r in rows]),
        node_mem=np.array([r[4] for r in rows]),
        node_names=[r[0] for r in rows],
    )


class SlurmExecutor:
    name = "slurm"

    def __init__(self, jobs_root: Path, plane: str, *, partition: str | None = None, conf: str | None = None) -> None:
        self.root = jobs_root
        self.plane = plane
        self.partition = partition
        self.conf = conf  # the cluster's slurm.conf; None: $SLURM_CONF (a network may have a cluster per site)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        self._ids: dict[tuple[int, int], str] = {}
        self._missing_since: dict[tuple[int, int], float] = {}

    def job_name(self, job_id: int, attempt: int) -> str:
        return job_name(self.plane, job_id, attempt)

    def attempt_dir(self, job_id: int, attempt: int) -> Path:
        return attempt_dir(self.root, job_id, attempt)

    # ---- the interface --------------------------------------------------------------------------------------
    def start(self, launch: Launch) -> None:
        key = (launch.job_id, launch.attempt)
        d = self.attempt_dir(*key)
        passage(d, launch.gid if isolating() and launch.uid is not None else None)
        if self._slurm_id(*key) is not None:
            return  # submitted already: never twice
        found = self._find(self.job_name(*key))
        if found is not None:
            self._remember(key, found)
            return
        if (d / "start_error").exists():
            return  # refused before: poll reports it
        if isolating() and launch.user is None:
            raise LaunchError(
                f"tenant {launch.tenant!r} has no Unix account, and Slurm runs jobs as accounts: map one with "
                f"`gigafactory admin tenant {launch.tenant} --unix-user USER`"
            )
        self._prepare(d, launch)
        as_user: dict[str, Any] = {}
        if isolating():
            as_user = {"user": launch.uid, "group": launch.gid, "extra_groups": launch.groups}
        env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8"}
        if self.conf or os.environ.get("SLURM_CONF"):
            env["SLURM_CONF"] = self.conf or os.environ["SLURM_CONF"]
        proc = _slurm(self._sbatch_args(launch, d), check=False, input=self._script(launch, d), env=env,
                      cwd="/", **as_user)  # fmt: skip
        if proc.returncode != 0 and "Batch job submission failed" in proc.stderr:
            # Slurm refused this job for good (a bad partition, a request no node can meet): the attempt fails,
            # and the refusal is kept where poll finds it, even after a restart. Anything else (slurmctld
            # unreachable, a timeout) raises, and the start is tried again.
            _write_atomic(d / "start_error", proc.stderr.strip().splitlines()[-1][:500])
            return
        if proc.returncode != 0:
            raise SlurmError(f"sbatch failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
        self._remember(key, proc.stdout.strip().split(";")[0])

    @staticmethod
    def _prepare(d: Path, launch: Launch) -> None:
        """The workspace and the logs, owned by the tenant, in a directory that is not (so they cannot be swapped)."""
        owner = (launch.uid, launch.gid) if isolating() and launch.uid is not None and launch.gid is not None else None
        for name in ("work", "work/tmp"):
            with contextlib.suppress(FileExistsError):
                (d / name).mkdir(mode=0o700)
            if owner is not None:
                os.lchown(d / name, *owner)
        for name in ("stdout.log", "stderr.log"):
            fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            try:
                if owner is not None:
                    os.fchown(fd, *owner)
            finally:
                os.close(fd)

    def stop(self, job_id: int, attempt: int) -> None:
        sid = self._slurm_id(job_id, attempt) or self._find(self.job_name(job_id, attempt))
        if sid is not None:
            _slurm(["scancel", sid], check=False, conf=self.conf)

    def signal(self, job_id: int, attempt: int) -> None:
        """Ask the attempt to checkpoint: SIGUSR1 to its batch script and every step (``scancel --signal --full``), as
        Slurm's own ``--signal`` does; the job's processes start with SIGUSR1 ignored (see :meth:`_script`), so only
        a program that installs a handler for it gets it, and no other is ended by it."""
        sid = self._slurm_id(job_id, attempt) or self._find(self.job_name(job_id, attempt))
        if sid is not None:
            _slurm(["scancel", "--signal=USR1", "--full", sid], check=False, conf=self.conf)

    def poll(self, running: dict[int, int]) -> list[Report]:
        if not running:
            return []
        queued = self._squeue()
        ended: dict[str, tuple[str, int, float | None, float | None]] | None = None
        out: list[Report] = []
        now = time.monotonic()
        for job_id, attempt in running.items():
            key = (job_id, attempt)
            sid = self._slurm_id(job_id, attempt)
            refused = self.attempt_dir(job_id, attempt) / "start_error"
            if sid is None and refused.exists():
                now_s = time.time()
                out.append(Report(job_id, attempt, "failed", 1, f"Slurm refused it: {refused.read_text().strip()}",
                                  now_s, now_s))  # fmt: skip
                continue
            if sid is None:
                sid = queued.get(self.job_name(job_id, attempt), (None, ""))[0]
                if sid is None:
                    continue  # not submitted yet (the daemon's outbox will start it)
                self._remember(key, sid)
            if sid in {s for s, _ in queued.values()}:
                self._missing_since.pop(key, None)
                continue
            if ended is None:
                ended = self._sacct()
            if sid not in ended:
                first = self._missing_since.setdefault(key, now)
                if now - first > LOST_AFTER_S:
                    out.append(Report(job_id, attempt, "interrupted", None, f"Slurm job {sid} vanished"))
                continue
            self._missing_since.pop(key, None)
            state, code, began, finished = ended[sid]
            if state in FINISHED:
                out.append(Report(job_id, attempt, "finished", 0, "", began, finished))
            elif state in INTERRUPTED:
                out.append(Report(job_id, attempt, "interrupted", None, f"Slurm {state}", began, finished))
            else:
                reason = f"Slurm {state}" + (f", exit code {code}" if code else "")
                out.append(Report(job_id, attempt, "failed", code or 1, reason, began, finished))
        return out

    def nodes(self) -> list[NodeReport]:
        out = _slurm(["sinfo", "-h", "-N", "-o", "%N|%T|%E"], conf=self.conf).stdout
        reports: dict[str, NodeReport] = {}
        for line in out.splitlines():
            node, state, reason = [*line.split("|"), "", ""][:3]
            down = state.rstrip("*~#!%$@^-").lower() in ("down", "fail", "failing", "unknown") or state.startswith(
                "down"
            )
            reports[node] = NodeReport(node, "down" if down else "up", "" if reason == "none" else reason)
        return list(reports.values())

    # ---- helpers ---------------------------------------------------------------------------------------------
    def _sbatch_args(self, launch: Launch, d: Path) -> list[str]:
        per_node = [len(g) for g in launch.node_gpus]
        args = [
            "sbatch", "--parsable", f"--job-name={self.job_name(launch.job_id, launch.attempt)}",
            f"--nodelist={','.join(launch.nodes)}", f"--nodes={len(launch.nodes)}", "--ntasks-per-node=1",
            "--no-requeue", f"--chdir={d / 'work'}", f"--output={d / 'stdout.log'}", f"--error={d / 'stderr.log'}",
            "--open-mode=append", "--export=ALL",
            f"--comment=gigafactory tenant {launch.tenant}",
            f"--cpus-per-task={max(1, -(-max(launch.cpu_milli or [0]) // 1000))}",
            f"--mem={max(1, max(launch.mem_mib or [0]))}",
        ]  # fmt: skip
        if self.partition:
            args.append(f"--partition={self.partition}")
        if launch.gpu_milli >= 1000 and sum(per_node) > 0:
            if len(set(per_node)) == 1:
                args.append(f"--gres=gpu:{per_node[0]}")
            else:
                args.append(f"--gpus={sum(per_node)}")
        return args

    def _script(self, launch: Launch, d: Path) -> str:
        lines = ["#!/bin/sh", "# written by gigafactory's slurm executor"]
        gpus = ",".join(str(g) for g in launch.node_gpus[0]) if launch.gpu_milli < 1000 else None
        env = job_environment(launch, d / "work", self.plane, gpus)
        lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
        command = " ".join(shlex.quote(a) for a in launch.command)
        # SIGUSR1 (the checkpoint signal) starts ignored, and stays so through exec, so that a program that does not
        # catch it is not ended by it; one that installs a handler (Python's signal.signal, say) gets it.
        lines.append("trap '' USR1")
        if len(launch.nodes) > 1:
            lines.append(f'exec srun --kill-on-bad-exit=1 sh -c \'trap "" USR1; exec "$@"\' sh {command}')
        else:
            lines.append(f"exec {command}")
        return "\n".join(lines) + "\n"

    def _slurm_id(self, job_id: int, attempt: int) -> str | None:
        key = (job_id, attempt)
        if key in self._ids:
            return self._ids[key]
        try:
            sid = (self.attempt_dir(job_id, attempt) / "slurm_id").read_text().strip()
        except FileNotFoundError:
            return None
        if sid:
            self._ids[key] = sid
        return sid or None

    def _remember(self, key: tuple[int, int], sid: str) -> None:
        self._ids[key] = sid
        _write_atomic(self.attempt_dir(*key) / "slurm_id", sid)

    def _find(self, name: str) -> str | None:
        """A Slurm job of this name, queued or ended."""
        for sid, (n, _) in ((s, v) for s, v in self._squeue_by_id().items()):
            if n == name:
                return sid
        for line in _slurm(
            ["sacct", "-c", "-P", "-n", "-o", "JobID,JobName", "--name", name], check=False, conf=self.conf
        ).stdout.splitlines():
            parts = line.split("|")
            if len(parts) >= 2 and parts[1] == name:
                return parts[0]
        return None

    def _squeue_by_id(self) -> dict[str, tuple[str, str]]:
        out = _slurm(["squeue", "-h", "-o", "%i|%j|%T"], conf=self.conf).stdout
        rows = {}
        for line in out.splitlines():
            sid, name, state = [*line.split("|"), "", ""][:3]
            rows[sid] = (name, state)
        return rows

    def _squeue(self) -> dict[str, tuple[str, str]]:
        """Our queued or running Slurm jobs by name: name → (Slurm id, state)."""
        return {
            name: (sid, state)
            for sid, (name, state) in self._squeue_by_id().items()
            if name.startswith(f"gf-{self.plane}-")
        }

    def _sacct(self) -> dict[str, tuple[str, int, float | None, float | None]]:
        """Ended Slurm jobs from the completion log: id → (state, exit code, start, end)."""
        out = _slurm(
            ["sacct", "-c", "-P", "-n", "-o", "JobID,State,ExitCode,Start,End"], check=False, conf=self.conf
        ).stdout
        rows = {}
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) < 5:
                continue
            state = parts[1].split()[0] if parts[1] else ""
            try:
                code = int(parts[2].split(":")[0])
            except ValueError:
                code = 0
            rows[parts[0]] = (state, code, _when(parts[3]), _when(parts[4]))
        return rows


def _when(text: str) -> float | None:
    """A time as sacct prints it (local time, ``2026-12-01T16:03:05``), as Unix time; None for Unknown/None."""
    try:
        return dt.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return None
