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
            started = other.started_s if other.started_s is not None else now
            lost = progress_at(now - started, math.inf, other.job.checkpoint).unsaved_s
            scored.append((lost * other.job.request.gpu_equivalent, -started, other.job.id, other))
        scored.sort(key=lambda s: s[:3])
        # The engine stops a prefix of this list (or part of one): no prefix may push a borrower below its guarantee.
        left: dict[str, float] = {}  # what each borrower would hold once the candidates so far were stopped
        out = []
        for *_, other in scored:
            owner = other.job.tenant
            owed = (tree[owner].guarantee or 0) if owner in tree else 0
            held = left.get(owner, view.tenant_gpus(owner)) - other.job.request.gpu_equivalent
            if held < owed - 1e-9:
                continue  # stopping it would push its tenant below its own guarantee
            left[owner] = held
            out.append(other)
        return out


PREEMPT.add(
    "reclaim",
    PolicyFactory(Reclaim, "tenants under their guarantee take back borrowed GPUs, losing the least work", {}),
)
