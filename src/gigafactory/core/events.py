"""Events: what the engine is told. Frozen, slotted, and each carries the time it happened at (seconds).

The twin creates them on its virtual clock; the control plane creates them from its store and executors on the
wall clock. The engine never creates time itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gigafactory.core.awards import Award
from gigafactory.core.compute import ModelCompute
from gigafactory.core.jobs import Job, JobId
from gigafactory.core.placement import Placement

__all__ = [
    "AttemptStopping",
    "AwardChanged",
    "CheckpointWritten",
    "Event",
    "JobCancelled",
    "JobFailed",
    "JobFinished",
    "JobInterrupted",
    "JobRestored",
    "JobSubmitted",
    "ModelChanged",
    "NodeDrained",
    "NodeFailed",
    "NodeRepaired",
    "NodeResumed",
    "Tick",
]


@dataclass(frozen=True, slots=True)
class Event:
    """``stimulus``: the caller's name for what caused the event (the control plane gives the id of the API request
    it came from); the engine's transition log records it with every transition the event causes, so a job's
    history links back to its cause. Empty: the event's type names it."""

    time: float
    stimulus: str = field(default="", kw_only=True)


@dataclass(frozen=True, slots=True)
class JobSubmitted(Event):
    job: Job

    def __init__(self, time: float, job: Job, *, stimulus: str = "") -> None:
        # Written out (frozen: through object.__setattr__): compiled, a dataclass-generated __init__ stays
        # interpreted and costs about six times as much (gigafactory._native); one is made per job.
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "stimulus", stimulus)
        object.__setattr__(self, "job", job)


@dataclass(frozen=True, slots=True)
class JobCancelled(Event):
    job_id: JobId
    reason: str = "cancelled by user"


@dataclass(frozen=True, slots=True)
class JobFinished(Event):
    """An attempt ended by itself with exit code 0."""

    job_id: JobId
    attempt: int

    def __init__(self, time: float, job_id: JobId, attempt: int, *, stimulus: str = "") -> None:
        # Written out (frozen: through object.__setattr__): compiled, a dataclass-generated __init__ stays
        # interpreted and costs about six times as much (gigafactory._native); one is made per job.
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "stimulus", stimulus)
        object.__setattr__(self, "job_id", job_id)
        object.__setattr__(self, "attempt", attempt)


@dataclass(frozen=True, slots=True)
class JobFailed(Event):
    """An attempt ended by itself with a non-zero exit code: the job's own failure, not the hardware's."""

    job_id: JobId
    attempt: int
    exit_code: int = 1
    reason: str = ""


@dataclass(frozen=True, slots=True)
class JobInterrupted(Event):
    """An attempt was killed by the infrastructure (a lost node, a dead executor); the job goes back to the queue."""

    job_id: JobId
    attempt: int
    reason: str = "interrupted"


@dataclass(frozen=True, slots=True)
class JobRestored(Event):
    """A job the driver's records hold, handed back after a restart: running ``placement`` since ``started_s`` as
    ``attempt``, or, with no placement, waiting after ``attempt`` attempts. ``attained_gpu_s`` is the GPU-time it
    received in attempts that have ended; ``award`` the award its running attempt charges."""

    job: Job
    attempt: int
    placement: Placement | None = None
    started_s: float | None = None
    attained_gpu_s: float = 0.0
    award: int | None = None  # the award the running attempt charges


@dataclass(frozen=True, slots=True)
class AttemptStopping(Event):
    """After a restart: ``attempt`` of the job was stopped, and its processes may still hold ``placement``. Given
    before the jobs are restored; the placement stays taken until a report says the attempt ended."""

    job_id: JobId
    attempt: int
    placement: Placement


@dataclass(frozen=True, slots=True)
class CheckpointWritten(Event):
    job_id: JobId
    attempt: int
    work_s: float  # work done, in seconds of uninterrupted run time, that the checkpoint holds


@dataclass(frozen=True, slots=True)
class NodeFailed(Event):
    node: int
    reason: str = "failed"


@dataclass(frozen=True, slots=True)
class NodeRepaired(Event):
    node: int


@dataclass(frozen=True, slots=True)
class NodeDrained(Event):
    """No new job may start on the node; jobs already there run on."""

    node: int
    reason: str = "drained"


@dataclass(frozen=True, slots=True)
class NodeResumed(Event):
    node: int


@dataclass(frozen=True, slots=True)
class AwardChanged(Event):
    """An award is granted or changed (more hours, a new window; a revoked award ends now). ``used_gpu_s``, given
    when the driver rebuilds the engine, is what ended attempts have already used of it."""

    award: Award
    used_gpu_s: float | None = None


@dataclass(frozen=True, slots=True)
class ModelChanged(Event):
    """What the AI Act desk's ledger says of a model's training compute (for the ``ai-act`` admission hold)."""

    compute: ModelCompute


@dataclass(frozen=True, slots=True)
class Tick(Event):
    """A wake-up the engine asked for with a :class:`~gigafactory.core.actions.Wake` action."""
