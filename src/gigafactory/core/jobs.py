"""Jobs and what they ask for.

A :class:`JobRequest` says what one job needs:

* ``gpus`` whole GPUs, each of ``gpu_milli`` = 1000; or one GPU shared (``gpus == 1`` and ``gpu_milli < 1000``:
  a fractional, milli-GPU request that takes ``gpu_milli`` from a single GPU); or no GPU (a CPU-only task);
* ``cpu_milli`` and ``mem_mib`` for the whole job (a multi-node job spreads them over its nodes in
  proportion to the GPUs on each);
* ``models``: the GPU models it may run on (``None`` = any);
* ``locality``: all its GPUs in one NVLink domain, in one pod, or anywhere;
* ``gang``: all or nothing. A gang job of more GPUs than a node has takes whole free nodes (plus one node with
  enough free GPUs for the remainder) and starts on all of them at once. A non-gang job may scatter its GPUs
  over any free GPUs; it still starts whole.

A :class:`Job` is a request with an identity, an owner and times. Its lifecycle::

    PENDING ──► RUNNING ──► COMPLETED | FAILED | CANCELLED
       ▲  │        │
       │  ▼        └──► (preempted or interrupted) back to PENDING, next attempt
       │ REJECTED / CANCELLED
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NewType

from gigafactory.core.errors import RequestError
from gigafactory.core.progress import NO_CHECKPOINTS, Checkpointing

__all__ = ["TERMINAL_STATES", "Job", "JobId", "JobRequest", "JobState", "Locality"]

JobId = NewType("JobId", int)


class Locality(enum.Enum):
    ANY = "any"
    POD = "pod"
    DOMAIN = "domain"


class JobState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    # Members are singletons: identity is their equality, so hash by identity (in C), not by name (in Python). The
    # engine keys its counts and its transition table by state on every transition.
    __hash__ = object.__hash__

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED})


@dataclass(frozen=True, slots=True)
class JobRequest:
    gpus: int = 1
    gpu_milli: int = 1000
    cpu_milli: int = 0
    mem_mib: int = 0
    models: tuple[str, ...] | None = None
    locality: Locality = Locality.ANY
    gang: bool = True
    total_milli: int = field(init=False, compare=False, repr=False)  # GPU milli in all
    gpu_equivalent: float = field(init=False, compare=False, repr=False)  # GPUs held, a share counting its fraction

    def __post_init__(self) -> None:
        for name in ("gpus", "gpu_milli", "cpu_milli", "mem_mib"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise RequestError(f"{name}={value!r} must be a whole number")
        if self.gpus < 0:
            raise RequestError(f"gpus={self.gpus} must not be negative")
        if self.cpu_milli < 0 or self.mem_mib < 0:
            raise RequestError("cpu_milli and mem_mib must not be negative")
        if self.gpus == 0 and self.cpu_milli == 0:
            raise RequestError("a job must ask for at least one GPU or some CPU")
        if self.gpus > 0 and not 1 <= self.gpu_milli <= 1000:
            raise RequestError(f"gpu_milli={self.gpu_milli} must be between 1 and 1000")
        if self.gpus > 1 and self.gpu_milli != 1000:
            raise RequestError(
                f"a fractional request (gpu_milli={self.gpu_milli}) takes part of one GPU, not of {self.gpus}"
            )
        if self.models is not None:
            if not self.models:
                raise RequestError("models=() allows no GPU model; use None for any model")
            object.__setattr__(self, "models", tuple(sorted(set(self.models))))
        total = self.gpus * self.gpu_milli if self.gpus else 0
        object.__setattr__(self, "total_milli", total)
        object.__setattr__(self, "gpu_equivalent", total / 1000.0)

    @property
    def fractional(self) -> bool:
        return self.gpus == 1 and self.gpu_milli < 1000

    def __deepcopy__(self, memo: dict[int, object]) -> JobRequest:
        return self  # immutable: a copy of the engine (the forecast's) shares it


@dataclass(frozen=True, slots=True)
class Job:
    id: JobId
    request: JobRequest
    submit_s: float
    tenant: str = "default"
    estimate_s: float | None = None  # the user's run-time limit, used by backfill; None = unknown
    priority: int = 0
    name: str = ""
    immediate: bool = False  # start in the pass that follows submission, or be rejected (Slurm's --immediate)
    checkpoint: Checkpointing = NO_CHECKPOINTS  # how it saves its work (see core.progress)
    # Where in a network it may run (None = anywhere): site names and ISO country codes; both must allow a site.
    sites: tuple[str, ...] | None = None
    countries: tuple[str, ...] | None = None
    reroute: bool = False  # after a site failure, may it be routed to another allowed site (else: requeued there)
    award: int | None = None  # the award it charges (None: its tenant's active award, if it has any)
    model: int | None = None  # the AI model it trains (the AI Act desk's ledger), if its tenant says so

    def __init__(
        self,
        id: JobId,
        request: JobRequest,
        submit_s: float,
        tenant: str = "default",
        estimate_s: float | None = None,
        priority: int = 0,
        name: str = "",
        immediate: bool = False,
        checkpoint: Checkpointing = NO_CHECKPOINTS,
        sites: tuple[str, ...] | None = None,
        countries: tuple[str, ...] | None = None,
        reroute: bool = False,
        award: int | None = None,
        model: int | None = None,
    ) -> None:
        # Written out (frozen: through object.__setattr__): compiled, a dataclass-generated __init__ stays
        # interpreted and costs about six times as much (gigafactory._native); the twin makes one per job.
        if estimate_s is not None and not estimate_s >= 0:  # (NaN too: every expected end is compared)
            raise RequestError(f"estimate_s={estimate_s!r} must be a number of seconds, not negative")
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "request", request)
        object.__setattr__(self, "submit_s", submit_s)
        object.__setattr__(self, "tenant", tenant)
        object.__setattr__(self, "estimate_s", estimate_s)
        object.__setattr__(self, "priority", priority)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "immediate", immediate)
        object.__setattr__(self, "checkpoint", checkpoint)
        object.__setattr__(self, "sites", sites)
        object.__setattr__(self, "countries", countries)
        object.__setattr__(self, "reroute", reroute)
        object.__setattr__(self, "award", award)
        object.__setattr__(self, "model", model)

    def __deepcopy__(self, memo: dict[int, object]) -> Job:
        return self  # immutable: a copy of the engine (the forecast's) shares it
