"""``reclaim``: a tenant below its guarantee may take back GPUs that other tenants borrowed.

A blocked job may stop running jobs of tenants that hold more than their guarantee (borrowers), as long as its
own tenant, with the job, stays within its guarantee. Among the borrowers' jobs it stops first those that lose
the least work: the GPU-seconds of progress since their last checkpoint (see :mod:`gigafactory.core.progress`),
then the most recently started. A borrower is never pushed below its own guarantee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gigafactory.core.progress import progress_at
from gigafactory.policy.base import PREEMPT, JobView, PolicyFactory, SchedulerView


@dataclass(frozen=True, slots=True)
class Reclaim:
    name: str = "reclaim"
    graceful: bool = False  # reclaimed jobs are killed: they lose the work since their last checkpoint
    stops_jobs = True
    ranks_running = False

    def candidates(self, job: JobView, view: SchedulerView) -> list[JobView]:
        tree = view.tenants
        tenant = job.job.tenant
        if tree is None or tenant not in tree:
            return []
        guarantee = tree[tenant].guarantee or 0
        if view.tenant_gpus(tenant) + job.job.request.gpu_equivalent > guarantee + 1e-9:
            return []
        now = view.now
        scored = []
        for other in view.running_views():
            owner = other.job.tenant
            if owner == tenant:
                continue
            owed = (tree[owner].guarantee or 0) if owner in tree else 0
            if view.tenant_gpus(owner) - other.job.request.gpu_equivalent < owed - 1e-9:
                continue  # stopping it would push its tenant below its own guarantee
            started = other.started_s if other.started_s is not None else now
            lost = progress_at(now - started, math.inf, other.job.checkpoint).unsaved_s
            scored.append((lost * other.job.request.gpu_equivalent, -started, other.job.id, other))
        scored.sort(key=lambda s: s[:3])
        return [s[3] for s in scored]


PREEMPT.add(
    "reclaim",
    PolicyFactory(Reclaim, "tenants under their guarantee take back borrowed GPUs, losing the least work", {}),
)
