"""``award``: a job starts only while the award it charges can pay, and stops when the award runs out.

The access programme (calls, applications, awards) grants tenants GPU-hours valid for a window. Under this policy:

* a job charges an award: the one it names, or its tenant's active award (``AwardBook.resolve``);
* it does not start while that award is used up, expired, or not yet valid, and its reason says which, e.g.
  ``award 12: 0.4 of 10 GPU-hours left``; with ``safe``, a job with a time limit also waits until what is left
  covers its GPUs × its limit (Slurm's ``safe`` limit enforcement);
* a tenant with no award at all runs on its share of the site, unless it sits under the ``pool`` account of the
  tenant tree (the public part that access calls draw on: see ``docs/programme.md``): those need an award;
* when the award of a running job runs out (used up at the rate its jobs use it, or its window ends), the engine
  sends the job a checkpoint signal, and stops it ``grace_s`` later, gracefully, back to the queue, where it waits
  for more hours (``award_grace_s``). An award is therefore never overrun by more than its jobs' GPUs × ``grace_s``.

With ``quota``, the ``quota`` policy's GPU limits are kept as well; with ``ai_act``, the ``ai-act`` policy's hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from gigafactory.core.jobs import Job
from gigafactory.core.spec import Param
from gigafactory.core.status import OK, Status
from gigafactory.policy.admit.ai_act import hold_for_notification
from gigafactory.policy.admit.quota import Quota
from gigafactory.policy.base import ADMIT, PolicyFactory, SchedulerView

_QUOTA = Quota()


@dataclass(frozen=True, slots=True)
class AwardAdmit:
    name: str = "award"
    admits_all = False
    grace_s: float = 300.0
    pool: str = "public"
    safe: bool = False
    quota: bool = False
    ai_act: bool = False

    @property
    def award_grace_s(self) -> float | None:
        return self.grace_s

    def admit(self, job: Job, view: SchedulerView) -> Status:
        if self.quota:
            st = _QUOTA.admit(job, view)
            if not st.ok:
                return st
        if self.ai_act:
            st = hold_for_notification(job, view)
            if not st.ok:
                return st
        book = view.awards
        award, why = book.resolve(job, view.now)
        if why:
            return Status.unfunded(why)
        if award is None:
            tree = view.tenants
            if self.pool and tree is not None and job.tenant in tree and self.pool in tree.path(job.tenant):
                return Status.unfunded(f"{job.tenant} draws on the {self.pool} pool and has no award")
            return OK
        if self.safe and job.estimate_s is not None:
            need = job.request.gpu_equivalent * job.estimate_s
            left = book.left_gpu_s(award, view.now)
            if need > left:
                a = book[award]
                return Status.unfunded(
                    f"award {award}: {left / 3600:.3g} of {a.gpu_hours:g} GPU-hours left; this job may use "
                    f"{need / 3600:.3g} ({job.request.gpu_equivalent:g} GPUs × its {job.estimate_s / 3600:g} h limit)"
                )
        return OK


ADMIT.add(
    "award",
    PolicyFactory(
        AwardAdmit,
        "jobs charge their tenant's award: none starts without hours left, and a running one is stopped when it ends",
        {
            "grace_s": Param(float, 300.0, minimum=0.0, help="seconds from the checkpoint signal to the stop"),
            "pool": Param(str, "public", help="tenants under this account need an award to run at all"),
            "safe": Param(bool, False, help="a job with a time limit starts only if the award covers all of it"),
            "quota": Param(bool, False, help="keep the quota policy's GPU limits too"),
            "ai_act": Param(
                bool,
                False,
                help="also hold jobs that would take their model over 10^25 FLOP "
                "before the provider's notification (the ai-act policy)",
            ),
        },
    ),
)
