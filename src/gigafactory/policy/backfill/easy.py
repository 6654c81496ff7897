"""``easy``: EASY backfilling (Lifka 1995; Slurm's ``sched/backfill`` with one reservation).

When the head of the queue does not fit, it gets a *reservation*: the earliest time at which it would fit if
running jobs ended at their estimates, and the nodes it would take then. A later job may start now only if it
fits and it either ends (by its estimate) before the reservation starts, or keeps off the reserved nodes. So no
backfilled job can delay the head, as long as jobs keep to their estimates. A job with no estimate is assumed to
run forever. At most ``depth`` jobs after the head are tested per pass (Slurm's ``bf_max_job_test``).

With ``interval`` > 0, the scan behind the head runs at most once every ``interval`` seconds (Slurm's
``bf_interval``, 30 s by default there); passes in between start jobs in order only, and the engine asks for a
wake-up so the deferred scan still happens. On a 100k-GPU site this saves most of the work at no visible cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gigafactory.core.jobs import Job
from gigafactory.core.spec import Param
from gigafactory.policy.base import BACKFILL, BoolArray, Planner, PolicyFactory, Reservation


@dataclass(frozen=True, slots=True)
class Easy:
    depth: int = 100
    interval: float = 0.0
    name: str = "easy"

    def reserve(self, head: Job, planner: Planner, now: float) -> Reservation | None:
        found = planner.earliest(head, now)
        if found is None:
            # The head cannot start even when every running job has ended (nodes are down, say):
            # nothing that starts now can delay it.
            return Reservation(int(head.id), math.inf, np.zeros(0, np.bool_), np.zeros(0, np.int64))
        start, nodes = found
        mask = np.zeros(planner.num_nodes, np.bool_)
        mask[nodes] = True
        return Reservation(int(head.id), start, mask, nodes)

    def exclusion(self, job: Job, now: float, reservation: Reservation) -> BoolArray | None:
        if not reservation.nodes.size:
            return None
        if job.estimate_s is not None and now + job.estimate_s <= reservation.start_s:
            return None
        return reservation.nodes

    def __deepcopy__(self, memo: dict[int, object]) -> Easy:
        return self  # immutable: a copy of the engine (the forecast's) shares it


BACKFILL.add(
    "easy",
    PolicyFactory(
        Easy,
        "EASY: later jobs start if they do not delay the head job's reservation",
        {
            "depth": Param(int, 100, minimum=1, help="jobs tested after the head per pass (bf_max_job_test)"),
            "interval": Param(float, 0.0, minimum=0.0, help="seconds between scans behind the head (bf_interval)"),
        },
    ),
)
