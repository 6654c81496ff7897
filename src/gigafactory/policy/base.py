"""The extension points of the scheduler, each a small Protocol, and their registries.

============  ==========================================  =====================================
point         decides                                     protocol
============  ==========================================  =====================================
``order``     which pending job goes first                :class:`OrderPolicy`
``place``     which nodes and GPUs                        :class:`PlacePolicy`
``backfill``  may a later job jump ahead of a blocked one :class:`BackfillPolicy`
============  ==========================================  =====================================

Policies are pure: they read the job, the :class:`~gigafactory.core.capacity.Capacity` and the context they
are handed, and return values. They never mutate capacity and never read a clock; time comes in as ``now``.
Randomness comes only from the seeded generator in the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import Job
from gigafactory.core.placement import Placement
from gigafactory.core.registry import Registry
from gigafactory.core.spec import Param
from gigafactory.core.status import Status

__all__ = [
    "BACKFILL",
    "ORDER",
    "PLACE",
    "BackfillPolicy",
    "OrderPolicy",
    "PlaceContext",
    "PlacePolicy",
    "Planner",
    "PolicyFactory",
    "Reservation",
]

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


class OrderPolicy(Protocol):
    """Sorts the queue. ``key`` must be a total order: end it with the job id."""

    @property
    def name(self) -> str: ...

    def key(self, job: Job) -> tuple[Any, ...]: ...


@dataclass(frozen=True, slots=True)
class PlaceContext:
    rng: np.random.Generator
    exclude: BoolArray | None = None  # nodes a backfilled job may not use (a reservation holds them)


class PlacePolicy(Protocol):
    """Chooses nodes and GPUs for one job on the current capacity, or says why it cannot."""

    @property
    def name(self) -> str: ...

    def place(self, job: Job, cap: Capacity, ctx: PlaceContext) -> Placement | Status: ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """The head job's promise: it will start at ``start_s`` at the latest, on nodes it holds back now.

    ``nodes`` is a mask over the site's nodes, ``node_ids`` the same nodes as indices; both are empty when the
    head cannot start on the nodes that are up (then nothing that starts now can delay it).
    """

    job_id: int
    start_s: float
    nodes: BoolArray
    node_ids: IntArray


class Planner(Protocol):
    """What the engine offers backfill: when could ``job`` start if running jobs end on time, and on which
    nodes? ``None`` when it cannot start on the nodes that are up."""

    @property
    def num_nodes(self) -> int: ...

    def earliest(self, job: Job, now: float) -> tuple[float, IntArray] | None: ...


class BackfillPolicy(Protocol):
    """Decides what may start after the first job that does not fit (the *head*).

    ``reserve`` returns a reservation for the head, or ``None`` to end the pass (no backfill).
    ``exclusion`` says which nodes a later job must avoid to keep the reservation, or ``None`` if any.
    At most ``depth`` jobs after the head are tested per pass, as Slurm's ``bf_max_job_test``.
    """

    @property
    def name(self) -> str: ...

    @property
    def depth(self) -> int: ...

    def reserve(self, head: Job, planner: Planner, now: float) -> Reservation | None: ...

    def exclusion(self, job: Job, now: float, reservation: Reservation) -> BoolArray | None: ...


@dataclass(frozen=True, slots=True)
class PolicyFactory:
    """A registered policy: how to build it, what parameters it takes, and one line about it.

    ``params`` are set from profile strings. ``context`` names the richer objects an experiment may hand the
    factory, such as ``target`` (the target workload of a fragmentation-aware placement policy).
    """

    build: Callable[..., Any]
    summary: str
    params: dict[str, Param]
    context: tuple[str, ...] = ()

    def make(self, **context: Any) -> Any:
        """Build with defaults, passing only the context this policy takes."""
        return self.build(**{k: v for k, v in context.items() if k in self.context})


ORDER: Registry[PolicyFactory] = Registry("order policy")
PLACE: Registry[PolicyFactory] = Registry("placement policy")
BACKFILL: Registry[PolicyFactory] = Registry("backfill policy")
