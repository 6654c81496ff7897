"""The extension points of the scheduler, each a small Protocol, and their registries.

============  ===========================================  =====================================
point         decides                                      protocol
============  ===========================================  =====================================
``order``     which pending job goes first                 :class:`OrderPolicy`
``admit``     may this tenant start this job now           :class:`AdmitPolicy`
``backfill``  may a later job jump ahead of a blocked one  :class:`BackfillPolicy`
``preempt``   whom to stop for a blocked job               :class:`PreemptPolicy`
``place``     which nodes and GPUs                         :class:`PlacePolicy`
``cycle``     when a scheduling pass runs                  :class:`CyclePolicy`
``route``     which site of a network gets a job           :class:`RoutePolicy` (filters: :class:`RouteFilter`)
============  ===========================================  =====================================

Policies are pure: they read the job, the :class:`~gigafactory.core.capacity.Capacity`, the engine's read-only
:class:`SchedulerView` and the context they are handed, and return values. They never mutate state and never
read a clock; time comes in as ``now``. Randomness comes only from the seeded generator in the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from gigafactory.core.awards import AwardBook
from gigafactory.core.capacity import Capacity
from gigafactory.core.compute import ModelCompute
from gigafactory.core.jobs import Job
from gigafactory.core.placement import Placement
from gigafactory.core.registry import Registry
from gigafactory.core.spec import Param
from gigafactory.core.status import Status
from gigafactory.core.tenants import TenantTree

__all__ = [
    "ADMIT",
    "BACKFILL",
    "CYCLE",
    "ORDER",
    "PLACE",
    "PREEMPT",
    "ROUTE",
    "AdmitPolicy",
    "BackfillPolicy",
    "CyclePolicy",
    "GroupedOrder",
    "JobView",
    "OrderPolicy",
    "PlaceContext",
    "PlacePolicy",
    "Planner",
    "PolicyFactory",
    "PreemptPolicy",
    "Reservation",
    "RouteFilter",
    "RoutePolicy",
    "SchedulerView",
    "SiteView",
]

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


class JobView(Protocol):
    """What policies may read of a job the engine holds (the engine's ``JobRecord``)."""

    @property
    def job(self) -> Job: ...

    @property
    def attempt(self) -> int: ...

    @property
    def started_s(self) -> float | None: ...

    @property
    def placement(self) -> Placement | None: ...

    @property
    def key(self) -> tuple[Any, ...]: ...

    def attained_gpu_s(self, now: float) -> float: ...


class SchedulerView(Protocol):
    """The engine's state, read-only, for policies that decide from more than one job."""

    @property
    def now(self) -> float: ...

    @property
    def tenants(self) -> TenantTree | None: ...

    @property
    def awards(self) -> AwardBook:
        """The awards the engine knows and what each has used (empty when there is no access programme)."""
        ...

    @property
    def models(self) -> dict[int, ModelCompute]:
        """What the AI Act desk's ledger says of each model's training compute (empty without a desk)."""
        ...

    def model_running(self, model: int) -> list[JobView]:
        """The running jobs that train ``model``."""
        ...

    def running_views(self) -> list[JobView]: ...

    def running_above(self, key: tuple[Any, ...]) -> list[JobView]:
        """Running jobs whose order key, as of now, is above ``key`` (ranked lower), lowest ranked first."""
        ...

    @property
    def running_version(self) -> int: ...

    def tenant_gpus(self, tenant: str) -> float: ...

    def usage_gpu_s(self, tenant: str) -> float: ...

    def usage_all(self) -> dict[str, float]: ...


class OrderPolicy(Protocol):
    """Sorts the queue.

    ``key`` is computed when a job enters the queue (at submission and at every requeue) from the job and the
    GPU-time it has attained so far; it must be a total order, so end it with the job id. A *grouped* policy
    (``grouped = True``) also puts each job in a group (a tenant) and ranks the groups afresh at every pass
    with ``rank_groups``; the pass then takes the head of the best-ranked group, charges that group for what it
    started (``charge``), and ranks again.

    ``continuous_keys`` declares that a running job's key changes all the time (continuous LAS), not only at the
    times ``key_changes_at`` names: the engine then cannot keep running jobs ranked for preemption and sorts
    them on demand instead.
    """

    @property
    def name(self) -> str: ...

    @property
    def grouped(self) -> bool: ...

    @property
    def continuous_keys(self) -> bool: ...

    def key(self, job: Job, attained_gpu_s: float) -> tuple[Any, ...]: ...

    def key_changes_at(self, job: Job, attained_gpu_s: float, started_s: float) -> float:
        """For a job running since ``started_s`` with that much service then: when its key next changes."""
        ...


class GroupedOrder(OrderPolicy, Protocol):
    @property
    def half_life_s(self) -> float: ...

    def group(self, job: Job) -> str: ...

    def rank_groups(self, groups: list[str], view: SchedulerView, charged: dict[str, float]) -> dict[str, Any]: ...

    def charge(self, job: Job) -> float: ...


class AdmitPolicy(Protocol):
    """May ``job`` start now, as far as its tenant's quota goes? ``Status.over_quota(...)`` if not.

    ``award_grace_s`` declares that the policy enforces awards on running jobs too: when the award a running job
    charges runs out, the engine signals the job to checkpoint and stops it (requeued, gracefully) this many
    seconds later. ``None``: running jobs are never stopped for their award.

    ``admits_all`` declares that the policy never refuses a job: the engine then skips asking it, and may stop a
    pass's walk early (no verdict, and so no waiting reason, is left unasked).
    """

    @property
    def name(self) -> str: ...

    @property
    def admits_all(self) -> bool: ...

    @property
    def award_grace_s(self) -> float | None: ...

    def admit(self, job: Job, view: SchedulerView) -> Status: ...


class PreemptPolicy(Protocol):
    """Which running jobs may be stopped so that the blocked ``job`` can start, in the order to try them.

    The engine stops only as many of them, in this order, as the job needs to fit, and requeues them. With
    ``graceful`` they are suspended (they checkpoint and keep their progress); otherwise they are killed.

    Declared capabilities, read by the engine instead of the policy's name:

    * ``stops_jobs``: False if ``candidates`` is always empty; the engine then skips preemption altogether;
    * ``ranks_running``: the candidates are the running jobs the order ranks below ``job``
      (``view.running_above(job.key)``); the engine then keeps running jobs ranked by their order keys so that
      this costs a bisection, unless the order's keys are continuous.
    """

    @property
    def name(self) -> str: ...

    @property
    def stops_jobs(self) -> bool: ...

    @property
    def ranks_running(self) -> bool: ...

    @property
    def graceful(self) -> bool: ...

    def candidates(self, job: JobView, view: SchedulerView) -> list[JobView]: ...


class CyclePolicy(Protocol):
    """When passes run: on every change (``round_s`` = 0) or only on a fixed round (every ``round_s`` seconds)."""

    @property
    def name(self) -> str: ...

    @property
    def round_s(self) -> float: ...


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
    At most ``depth`` jobs after the head are tested per pass, as Slurm's ``bf_max_job_test``, and the scan
    behind the head runs at most every ``interval`` seconds (0: on every pass), as Slurm's ``bf_interval``.
    """

    @property
    def name(self) -> str: ...

    @property
    def depth(self) -> int: ...

    @property
    def interval(self) -> float: ...

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


class SiteView(Protocol):
    """One site of a network, as a router sees it: what it is, what it costs, and what its own engine says."""

    @property
    def name(self) -> str: ...

    @property
    def country(self) -> str: ...

    @property
    def price_eur_mwh(self) -> float: ...

    @property
    def carbon_g_kwh(self) -> float: ...

    @property
    def gpus(self) -> int: ...

    def load(self) -> float:
        """(GPUs held + GPUs asked for by waiting jobs) / GPUs: above 1 means a queue."""
        ...

    def estimate_start(self, job: Job, now: float) -> float:
        """When the site's engine expects ``job`` to start if it were sent there now (``inf``: not while nodes
        stay down)."""
        ...

    def energy_mwh(self, job: Job) -> float:
        """Facility energy of the job's run here at its time limit: IT power × PUE × hours."""
        ...


class RouteFilter(Protocol):
    """Rules a site out for a job: the reason, or ``None`` if the site may take it."""

    @property
    def name(self) -> str: ...

    def excludes(self, job: Job, site: SiteView) -> str | None: ...


class RoutePolicy(Protocol):
    """Chooses among the sites the filters left (never empty): the index into ``sites`` and why, in words."""

    @property
    def name(self) -> str: ...

    def choose(self, job: Job, sites: list[SiteView], now: float, rng: np.random.Generator) -> tuple[int, str]: ...


ORDER: Registry[PolicyFactory] = Registry("order policy")
ADMIT: Registry[PolicyFactory] = Registry("admission policy")
PLACE: Registry[PolicyFactory] = Registry("placement policy")
BACKFILL: Registry[PolicyFactory] = Registry("backfill policy")
PREEMPT: Registry[PolicyFactory] = Registry("preemption policy")
CYCLE: Registry[PolicyFactory] = Registry("cycle policy")
ROUTE: Registry[PolicyFactory] = Registry("route policy")  # choosers and filters; a filter's object has ``excludes``
