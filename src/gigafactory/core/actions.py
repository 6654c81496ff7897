"""Actions: what the engine tells its driver to do. Frozen and slotted.

The twin applies them to its simulated site; the control plane persists them in one transaction and then lets
its executors carry them out, idempotently, keyed by ``(job_id, attempt)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gigafactory.core.jobs import JobId
from gigafactory.core.placement import Placement
from gigafactory.core.status import Status

__all__ = ["Action", "RejectJob", "SignalJob", "StartJob", "StopJob", "StopReason", "Wake"]


class StopReason(enum.Enum):
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    NODE_FAILED = "node-failed"
    AWARD = "award"  # its award ran out, and the grace after the checkpoint signal is over


@dataclass(frozen=True, slots=True)
class Action:
    time: float


@dataclass(frozen=True, slots=True)
class StartJob(Action):
    job_id: JobId
    attempt: int
    placement: Placement

    def __init__(self, time: float, job_id: JobId, attempt: int, placement: Placement) -> None:
        # Written out (frozen: through object.__setattr__): compiled, a dataclass-generated __init__ stays
        # interpreted and costs about six times as much (gigafactory._native); one is made per start.
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "job_id", job_id)
        object.__setattr__(self, "attempt", attempt)
        object.__setattr__(self, "placement", placement)


@dataclass(frozen=True, slots=True)
class StopJob(Action):
    """Stop a running attempt. With ``requeue`` the job goes back to the queue for its next attempt.

    ``graceful``: the job is asked to checkpoint on its way out and keeps all its progress (a suspend, as
    Tiresias preempts); otherwise it is killed and keeps only what its last checkpoint saved.
    """

    job_id: JobId
    attempt: int
    reason: StopReason
    requeue: bool
    graceful: bool = False


@dataclass(frozen=True, slots=True)
class SignalJob(Action):
    """Ask a running attempt to checkpoint now: it will be stopped at ``stop_s`` (as Slurm's ``--signal`` warns a job
    before its time limit). The control plane sends the job SIGUSR1; the twin's jobs keep their progress when the
    stop comes, since it is graceful."""

    job_id: JobId
    attempt: int
    stop_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class RejectJob(Action):
    job_id: JobId
    status: Status


@dataclass(frozen=True, slots=True)
class Wake(Action):
    """Ask the driver for a :class:`~gigafactory.core.events.Tick` at ``time`` (time-driven policies)."""
