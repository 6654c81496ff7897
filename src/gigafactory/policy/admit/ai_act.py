"""``ai-act``: a job that would take its model over 10^25 FLOP of training compute waits until the model's provider
has recorded the Art. 52 notification (the AI Act desk, ``docs/desk.md``).

A job names its model (``Job.model``). The projection errs high: the compute its model has counted (attempts that
ended), plus every running job of the model and this one at their GPUs × their time limit (24 h without one) × the
FLOP per GPU-second the desk assumes (the site's peak × the upper end of the utilisation range). Over 10^25, the job
is parked (like a job whose award cannot pay) with the reason, until the desk says more (a notification, say).
The ``award`` policy applies it too with ``ai_act``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.core.compute import ASSUMED_RUN_S, SYSTEMIC_RISK_FLOP, sig2
from gigafactory.core.jobs import Job
from gigafactory.core.status import OK, Status
from gigafactory.policy.base import ADMIT, PolicyFactory, SchedulerView

__all__ = ["AiAct", "hold_for_notification"]


def hold_for_notification(job: Job, view: SchedulerView) -> Status:
    if job.model is None:
        return OK
    mc = view.models.get(job.model)
    if mc is None or mc.notified:
        return OK

    def flop(j: Job) -> float:
        return j.request.gpu_equivalent * (j.estimate_s or ASSUMED_RUN_S) * mc.flop_per_gpu_s

    projected = mc.counted_flop + sum(flop(r.job) for r in view.model_running(job.model)) + flop(job)
    if projected > SYSTEMIC_RISK_FLOP:
        return Status.unfunded(
            f"model {job.model}: with this job its training compute could reach {sig2(projected)} FLOP, over 10^25 "
            "(Art. 51(2)); it starts once the provider records the Art. 52 notification"
        )
    return OK


@dataclass(frozen=True, slots=True)
class AiAct:
    name: str = "ai-act"
    admits_all = False
    award_grace_s: float | None = None

    def admit(self, job: Job, view: SchedulerView) -> Status:
        return hold_for_notification(job, view)


ADMIT.add("ai-act", PolicyFactory(AiAct, "a job that would take its model over 10^25 FLOP waits for the "
                                            "provider's Art. 52 notification", {}))  # fmt: skip
