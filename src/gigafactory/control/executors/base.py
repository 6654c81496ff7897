"""The executor interface: how the daemon makes jobs run, stop, and tell how they ended.

Every call is idempotent per (job, attempt): starting an attempt twice runs it once, stopping a stopped one does
nothing, and polling reports the same end for the same attempt however often it is asked. That is what lets the
daemon persist its decisions first and act second, and after a crash simply act again.

An attempt's end is reported only once none of its processes is left (a stopped one included), with the times it
really started and ended: the daemon frees its GPUs and bills it from that report.

What a job receives is the same on every executor (:func:`job_environment`): ``PATH``, ``HOME`` (its own
workspace), ``LANG``, ``TMPDIR``, then its own ``env``, then ``CUDA_VISIBLE_DEVICES`` and the ``GIGAFACTORY_*``
variables, which it cannot override. Nothing of the control plane's own environment is passed on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gigafactory.core.errors import UserError

__all__ = ["SAFE_PATH", "Executor", "Launch", "LaunchError", "NodeReport", "Report", "attempt_dir", "job_environment"]

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class LaunchError(UserError):
    """This attempt can never be launched (the executor refused it for good): it fails, with this reason."""


def attempt_dir(jobs_root: Path, job_id: int, attempt: int) -> Path:
    """Where an attempt's records, its ``stdout.log`` and ``stderr.log`` and its workspace ``work/`` are."""
    return jobs_root / str(job_id) / str(attempt)


@dataclass(frozen=True)
class Launch:
    """One attempt to run: what, where, and with which GPUs."""

    job_id: int
    attempt: int
    command: list[str]
    env: dict[str, str]
    tenant: str
    nodes: list[str]  # node names, in placement order
    node_gpus: list[list[int]]  # per node, the GPU indices on that node (0-based, as CUDA numbers them)
    cpu_milli: list[int] = field(default_factory=list)
    mem_mib: list[int] = field(default_factory=list)
    gpu_milli: int = 1000
    uid: int | None = None  # who it runs as (None: as the control plane, when isolation is off)
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    user: str | None = None  # the tenant's mapped account, if it has one


def job_environment(launch: Launch, workdir: Path, plane: str, gpus: str | None) -> dict[str, str]:
    """The whole environment of a job (see the module docstring); ``gpus`` None leaves ``CUDA_VISIBLE_DEVICES`` to
    the executor (Slurm sets it)."""
    env = {"PATH": SAFE_PATH, "HOME": str(workdir), "LANG": "C.UTF-8", "TMPDIR": str(workdir / "tmp")}
    if launch.user:
        env.update(USER=launch.user, LOGNAME=launch.user)
    env.update(launch.env)
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus
    env.update(
        GIGAFACTORY_JOB_ID=str(launch.job_id),
        GIGAFACTORY_ATTEMPT=str(launch.attempt),
        GIGAFACTORY_TENANT=launch.tenant,
        GIGAFACTORY_NODES=",".join(launch.nodes),
        GIGAFACTORY_RUN=f"{plane}.{launch.job_id}.{launch.attempt}",
    )
    return env


@dataclass(frozen=True)
class Report:
    """How an attempt ended: ``finished`` (exit 0), ``failed`` (non-zero), or ``interrupted`` (stopped, or lost
    when its node died): requeue it. ``started_at`` and ``ended_at`` are when its processes really began and when
    the last of them was gone (Unix time), for accounting; None where the executor could not tell."""

    job_id: int
    attempt: int
    kind: str
    exit_code: int | None = None
    reason: str = ""
    started_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class NodeReport:
    node: str
    state: str  # up | down
    reason: str = ""


class Executor(Protocol):
    name: str

    def attempt_dir(self, job_id: int, attempt: int) -> Path | None:
        """Where the attempt's output is (recorded as the job's ``log_dir``), if it has one on this machine."""
        ...

    def start(self, launch: Launch) -> None:
        """Launch the attempt. :class:`LaunchError` if it can never run; any other error is retried."""
        ...

    def stop(self, job_id: int, attempt: int) -> None: ...

    def signal(self, job_id: int, attempt: int) -> None:
        """Send the attempt the checkpoint signal (SIGUSR1); it is stopped later. Idempotent, best effort."""
        ...

    def poll(self, running: dict[int, int]) -> list[Report]:
        """Ends of the given attempts (job id → attempt), running or being stopped; say nothing of those whose
        processes still live."""
        ...

    def nodes(self) -> list[NodeReport]:
        """Node states the executor sees (a Slurm node going down); empty if it has no view of its own."""
        ...
