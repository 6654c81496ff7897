"""``quota``: a tenant never holds more GPUs than its limit, nor than the limit of any account above it.

Limits come from the tenant tree (``Tenant.limit``, in GPUs). A job over quota is passed over, not made the head
of the queue: it waits without blocking others. Guarantees are kept by preemption (``reclaim``), since idle
guaranteed capacity may be borrowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.core.jobs import Job
from gigafactory.core.status import OK, Status
from gigafactory.policy.base import ADMIT, PolicyFactory, SchedulerView


@dataclass(frozen=True, slots=True)
class Quota:
    name: str = "quota"
    admits_all = False
    award_grace_s: float | None = None

    def admit(self, job: Job, view: SchedulerView) -> Status:
        tree = view.tenants
        if tree is None or job.tenant not in tree:
            return OK
        need = job.request.gpu_equivalent
        for account in tree.path(job.tenant):
            limit = tree[account].limit
            if limit is None:
                continue
            held = _held(account, view)
            if held + need > limit + 1e-9:
                return Status.over_quota(f"{account} holds {held:g} of its {limit} GPUs; this job needs {need:g}")
        return OK


def _held(account: str, view: SchedulerView) -> float:
    tree = view.tenants
    assert tree is not None
    kids = tree.children(account)
    if not kids:
        return view.tenant_gpus(account)
    return sum(_held(k, view) for k in kids)


ADMIT.add("quota", PolicyFactory(Quota, "tenants stay within their GPU limits, all the way up the tree", {}))
