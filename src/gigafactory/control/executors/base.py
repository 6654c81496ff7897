"""The executor interface: how the daemon makes jobs run, stop, and tell how they ended.

Every call is idempotent per (job, attempt): starting an attempt twice runs it once, stopping a stopped one does
nothing, and polling reports the same end for the same attempt however often it is asked. That is what lets the
daemon persist its decisions first and act second, and after a crash simply act again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = ["Executor", "Launch", "NodeReport", "Report", "attempt_dir"]


def attempt_dir(data_dir: Path, job_id: int, attempt: int) -> Path:
    """Where an attempt's working directory and its ``stdout.log`` and ``stderr.log`` are, for every executor."""
    return data_dir / "jobs" / str(job_id) / str(attempt)


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


@dataclass(frozen=True)
class Report:
    """How an attempt ended: ``finished`` (exit 0), ``failed`` (non-zero), or ``interrupted`` (lost, e.g. its
    node died): requeue it."""

    job_id: int
    attempt: int
    kind: str
    exit_code: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class NodeReport:
    node: str
    state: str  # up | down
    reason: str = ""


class Executor(Protocol):
    name: str

    def start(self, launch: Launch) -> None: ...

    def stop(self, job_id: int, attempt: int) -> None: ...

    def poll(self, running: dict[int, int]) -> list[Report]:
        """Ends of the given attempts (job id → attempt) since they started; say nothing of those still running."""
        ...

    def nodes(self) -> list[NodeReport]:
        """Node states the executor sees (a Slurm node going down); empty if it has no view of its own."""
        ...
