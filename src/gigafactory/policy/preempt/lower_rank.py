"""``preempt`` (:class:`PreemptLowerRank`): a blocked job may stop running jobs that the order policy now ranks
below it, lowest first.

Running jobs are ranked by the key they would get if they entered the queue now (for ``las``, with the service
they have attained so far), so under Tiresias' 2D-LAS a job demoted past the threshold can be stopped for a job
still in the first queue. The stopped jobs are suspended, as Tiresias does: they checkpoint on the way out, go back
to the queue and resume where they were (``graceful=false`` kills them instead, losing unsaved work).
"""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.core.spec import Param
from gigafactory.policy.base import PREEMPT, JobView, OrderPolicy, PolicyFactory, SchedulerView


@dataclass(frozen=True, slots=True)
class PreemptLowerRank:
    order: OrderPolicy | None = None  # bound by the profile to its order policy
    graceful: bool = True
    name: str = "preempt"
    stops_jobs = True
    ranks_running = True  # its candidates are ``view.running_above(key)``

    def candidates(self, job: JobView, view: SchedulerView) -> list[JobView]:
        if self.order is None or self.order.grouped:
            return []
        return view.running_above(job.key)

    def __deepcopy__(self, memo: dict[int, object]) -> PreemptLowerRank:
        return self  # immutable: a copy of the engine (the forecast's) shares it


def _build(graceful: bool = True, order: OrderPolicy | None = None) -> PreemptLowerRank:
    return PreemptLowerRank(order, graceful)


PREEMPT.add(
    "preempt",
    PolicyFactory(
        _build,
        "stop running jobs the order ranks lower, lowest first",
        {"graceful": Param(bool, True, help="suspend (keep progress) rather than kill")},
        context=("order",),
    ),
)
