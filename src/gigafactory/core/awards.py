"""Awards: GPU-hours granted to a tenant by an access call, valid for a window of time.

An award is what the access programme hands out (``control/programme``): a tenant may use ``gpu_hours`` of GPU
time between ``start_s`` and ``end_s``. The engine keeps an :class:`AwardBook` of
them, charges every attempt of a job to one award, and an ``admit`` policy (``award``) refuses to start a job whose
award is used up or out of its window; the engine stops a running job when its award runs out (see the policy).

The award book (:class:`AwardBook`): every award the engine knows, and how much of each is used, exactly and lazily.

Each running attempt charged to an award adds its GPUs to the award's *rate*; between changes the award is used at
that constant rate, so ``used(t) = used(since) + rate × (t − since)`` is exact. Written only by the engine (on
:class:`~gigafactory.core.events.AwardChanged`, and when an attempt charged to an award starts or ends).

Which award a job charges (:meth:`AwardBook.resolve`): the one it names, which must be its tenant's; otherwise its
tenant's active award (valid now, with GPU-hours left), and when it has several, the one whose window ends first
(so hours that would expire are used before hours that would keep). A job whose tenant has no award at all charges
none; the ``award`` admit policy decides whether that tenant may run without one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gigafactory.core.calendar import utc_minute
from gigafactory.core.errors import RequestError
from gigafactory.core.jobs import Job

__all__ = ["LEFT_EPS_GPU_S", "Award", "AwardBook"]

LEFT_EPS_GPU_S = 1e-6  # an award with less than this left is used up (floating-point dust)


@dataclass(frozen=True, slots=True)
class Award:
    id: int
    tenant: str
    gpu_hours: float
    start_s: float = -math.inf
    end_s: float = math.inf
    label: str = ""  # what it is, for reasons and reports (e.g. the call's name)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gpu_hours) and self.gpu_hours >= 0):
            raise RequestError(f"award {self.id}: gpu_hours={self.gpu_hours!r} must be a number >= 0")
        if not self.end_s > self.start_s:
            raise RequestError(f"award {self.id}: its validity ends ({self.end_s}) before it starts ({self.start_s})")

    @property
    def gpu_s(self) -> float:
        return self.gpu_hours * 3600.0

    def valid_at(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


class AwardBook:
    def __init__(self) -> None:
        self._awards: dict[int, Award] = {}
        self._by_tenant: dict[str, list[int]] = {}
        self._used: dict[int, float] = {}  # GPU-seconds as of _since
        self._since: dict[int, float] = {}
        self._rate: dict[int, float] = {}  # GPUs charging it now
        self._jobs: dict[int, dict[int, float]] = {}  # award -> running job -> GPUs
        self._version = 0  # changes with every grant and charge; answers of resolve are kept for one version
        self._resolved: dict[tuple[str, int | None], tuple[int, float, tuple[int | None, str]]] = {}

    def __bool__(self) -> bool:
        return bool(self._awards)

    def __contains__(self, award_id: object) -> bool:
        return award_id in self._awards

    def __getitem__(self, award_id: int) -> Award:
        return self._awards[award_id]

    def awards(self) -> list[Award]:
        return [self._awards[k] for k in sorted(self._awards)]

    def of_tenant(self, tenant: str) -> list[Award]:
        return [self._awards[k] for k in self._by_tenant.get(tenant, ())]

    def put(self, award: Award, now: float, used_gpu_s: float | None = None) -> None:
        """Grant or change an award. ``used_gpu_s`` sets what it has used (after a restart); else it keeps it."""
        old = self._awards.get(award.id)
        if old is not None and old.tenant != award.tenant:
            self._by_tenant[old.tenant].remove(award.id)
            if self._jobs.get(award.id):
                raise ValueError(f"award {award.id} moves to another tenant while jobs charge it")
        if old is None or old.tenant != award.tenant:
            ids = self._by_tenant.setdefault(award.tenant, [])
            ids.append(award.id)
            ids.sort()
        self._awards[award.id] = award
        self._version += 1
        self._advance(award.id, now)
        if used_gpu_s is not None:
            self._used[award.id] = used_gpu_s

    def _advance(self, award_id: int, now: float) -> None:
        last = self._since.get(award_id)
        if last is not None and now > last:
            self._used[award_id] = self._used.get(award_id, 0.0) + self._rate.get(award_id, 0.0) * (now - last)
        if last is None or now > last:
            self._since[award_id] = now
        self._used.setdefault(award_id, 0.0)

    def used_gpu_s(self, award_id: int, now: float) -> float:
        since = self._since.get(award_id, now)
        return self._used.get(award_id, 0.0) + self._rate.get(award_id, 0.0) * max(now - since, 0.0)

    def left_gpu_s(self, award_id: int, now: float) -> float:
        return self._awards[award_id].gpu_s - self.used_gpu_s(award_id, now)

    def resolve(self, job: Job, now: float) -> tuple[int | None, str]:
        """``(award, "")``: the award ``job`` would charge now, or ``(None, "")`` if its tenant has none at all;
        ``(award or None, why)`` when the award it would charge cannot pay for it now."""
        key = (job.tenant, job.award)
        hit = self._resolved.get(key)
        if hit is not None and hit[0] == self._version and hit[1] == now:
            return hit[2]
        answer = self._resolve(job, now)
        if len(self._resolved) > 10_000:
            self._resolved.clear()
        self._resolved[key] = (self._version, now, answer)
        return answer

    def _resolve(self, job: Job, now: float) -> tuple[int | None, str]:
        if job.award is not None:
            a = self._awards.get(job.award)
            if a is None:
                return None, f"award {job.award} does not exist"
            if a.tenant != job.tenant:
                return None, f"award {job.award} is not {job.tenant}'s"
            return a.id, "" if self.usable(a.id, now) else self.why_not(a.id, now)
        ids = self._by_tenant.get(job.tenant)
        if not ids:
            return None, ""
        usable = [i for i in ids if self.usable(i, now)]
        if usable:
            return min(usable, key=lambda i: (self._awards[i].end_s, i)), ""
        # None usable: say why with the one that was (or will be) closest to usable.
        future = [i for i in ids if self._awards[i].start_s > now]
        if future:
            first = min(future, key=lambda i: (self._awards[i].start_s, i))
            return None, self.why_not(first, now)
        last = max(ids, key=lambda i: (self._awards[i].end_s, i))
        return None, self.why_not(last, now)

    def usable(self, award_id: int, now: float) -> bool:
        a = self._awards[award_id]
        return a.start_s <= now < a.end_s and self.left_gpu_s(award_id, now) > LEFT_EPS_GPU_S

    def next_start(self, tenant: str, now: float) -> float:
        """When the tenant's next award that is not valid yet becomes valid (inf if none)."""
        return min((self._awards[i].start_s for i in self._by_tenant.get(tenant, ()) if self._awards[i].start_s > now),
                   default=math.inf)  # fmt: skip

    def why_not(self, award_id: int, now: float) -> str:
        """Why the award cannot pay for a start now, or "" if it can."""
        a = self._awards[award_id]
        if now < a.start_s:
            return f"award {a.id}: valid from {_when(a.start_s)}, not yet"
        if now >= a.end_s:
            return f"award {a.id}: expired at {_when(a.end_s)}"
        left = self.left_gpu_s(award_id, now)
        if left <= LEFT_EPS_GPU_S:
            return f"award {a.id}: {_hours(max(left, 0.0))} of {a.gpu_hours:g} GPU-hours left"
        return ""

    # ---- charging (the engine's) --------------------------------------------------------------------------
    def start(self, award_id: int, job_id: int, gpus: float, now: float, since: float | None = None) -> None:
        """``job_id`` charges ``gpus`` to the award from ``since`` (default now; earlier for a restored attempt)."""
        self._advance(award_id, now)
        self._version += 1
        self._rate[award_id] = self._rate.get(award_id, 0.0) + gpus
        self._jobs.setdefault(award_id, {})[job_id] = gpus
        if since is not None and since < now:
            self._used[award_id] += gpus * (now - since)

    def stop(self, award_id: int, job_id: int, now: float) -> None:
        self._advance(award_id, now)
        self._version += 1
        gpus = self._jobs[award_id].pop(job_id)
        if not self._jobs[award_id]:
            del self._jobs[award_id]
            self._rate.pop(award_id, None)
        else:
            self._rate[award_id] -= gpus

    def charging(self) -> list[int]:
        """Awards that running jobs charge now."""
        return sorted(self._jobs)

    def jobs_on(self, award_id: int) -> list[int]:
        return sorted(self._jobs.get(award_id, ()))

    def runs_out_at(self, award_id: int, now: float) -> float:
        """When the award can pay no longer at its present rate: used up, or out of its window."""
        a = self._awards[award_id]
        rate = self._rate.get(award_id, 0.0)
        left = self.left_gpu_s(award_id, now)
        used_up = now + max(left, 0.0) / rate if rate > 0 else math.inf
        return min(used_up, a.end_s)


def _hours(gpu_s: float) -> str:
    h = gpu_s / 3600.0
    return f"{h:.2g}" if 0 < h < 1 else f"{h:,.1f}".removesuffix(".0")


def _when(t: float) -> str:
    """A time in the engine's seconds: the control plane's are Unix times (shown as UTC), the twin's start at 0."""
    return utc_minute(t) if t > 1e9 else f"t={t / 3600:g} h"
