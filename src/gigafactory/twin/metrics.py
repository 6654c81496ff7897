"""What a simulation measures, recorded as it runs and summarised at the end.

During the run only cheap appends happen: per job its first start, end and final state, and two change logs
(GPUs allocated, jobs queued) as ``(time, delta)`` pairs. Everything else (utilisation over time, JCT and
queueing-delay distributions, per-tenant GPU-hours) is computed once, vectorised, by :meth:`Metrics.summarise`.

Definitions:

* **utilisation**: GPU-time allocated / (GPUs × the span from the first submission to the last job end, or to
  the horizon when one cut the run with jobs unfinished);
  a fractional GPU counts as its fraction.
* **JCT** (job completion time): end − submission, over jobs that ran and ended (completed, failed by
  themselves, or cancelled while running).
* **queueing delay**: first start − submission, over jobs that started.
* **share received**: a tenant's GPU-hours / all GPU-hours; **share owed**: its normalised share of the tree.
* **interruptions**: attempts stopped by a failure; **preemptions**: attempts stopped by the scheduler.
* **MTBI** (job-level mean time between interruptions): the running time of jobs of at least ``mtbi_min_gpus``
  GPUs divided by their interruptions.
* **ETTR** (effective training time ratio): work kept / (end - first start), per job; the GPU-time weighted
  version sums both over jobs. Restarts, checkpoint writes and work lost to interruptions are what it misses.
* **goodput / lost / checkpoint / restart GPU-hours**: GPU-time spent on work kept, on work later lost, writing
  checkpoints and restarting.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Metrics", "Series", "binned_mean"]

FloatArray = npt.NDArray[np.float64]

# Final-state codes in ``Metrics.state``.
UNFINISHED, COMPLETED, FAILED, CANCELLED, REJECTED = 0, 1, 2, 3, 4
STATE_NAMES = ("unfinished", "completed", "failed", "cancelled", "rejected")


@dataclass(frozen=True)
class Series:
    """Time series on regular bins, for reports."""

    t_s: FloatArray  # bin starts
    utilisation: FloatArray  # mean fraction of GPUs allocated in the bin
    queue: FloatArray  # mean number of pending jobs in the bin


def binned_mean(times: FloatArray, deltas: FloatArray, edges: FloatArray) -> FloatArray:
    """Time-average of a step function over each ``[edges[k], edges[k+1])``.

    The function starts at 0 and jumps by ``deltas[i]`` at ``times[i]`` (times non-decreasing).
    """
    if times.size == 0:
        return np.zeros(edges.size - 1)
    level = np.cumsum(deltas)
    # Integral up to each change point.
    area = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))])

    def integral(t: FloatArray) -> FloatArray:
        k = np.searchsorted(times, t, side="right") - 1
        before = k < 0
        k = np.maximum(k, 0)
        out = area[k] + level[k] * (t - times[k])
        out[before] = 0.0
        return out

    f = integral(edges)
    width = np.diff(edges)
    return np.divide(np.diff(f), width, out=np.zeros_like(width), where=width > 0)


class Metrics:
    def __init__(self, num_jobs: int, num_gpus: int, num_tenants: int) -> None:
        self.num_gpus = num_gpus
        self.first_start = np.full(num_jobs, np.nan)
        self.end = np.full(num_jobs, np.nan)
        self.state = np.zeros(num_jobs, np.int8)
        self.attempts = np.zeros(num_jobs, np.int32)
        self._run_start = np.full(num_jobs, np.nan)
        self.tenant_gpu_s = np.zeros(num_tenants)
        self.run_s = np.zeros(num_jobs)
        self.kept_s = np.zeros(num_jobs)
        self.lost_s = np.zeros(num_jobs)
        self.ckpt_s = np.zeros(num_jobs)
        self.restart_s = np.zeros(num_jobs)
        self.interrupts = np.zeros(num_jobs, np.int32)
        self.preempts = np.zeros(num_jobs, np.int32)
        self.failures = 0  # node failures that happened (set by the driver)
        self._t_alloc = array("d")
        self._d_alloc = array("d")
        self._t_queue = array("d")
        self._d_queue = array("d")
        self._j_alloc = array("q")  # the job of each allocation change, for per-tenant allocation over time
        self._t_cap = array("d")  # GPUs leaving (-) or re-entering (+) service: failures, drains, repairs
        self._d_cap = array("d")

    # ---- recording (hot path) -----------------------------------------------------------------------------
    def submitted(self, t: float, count: int) -> None:
        self._t_queue.append(t)
        self._d_queue.append(count)

    def rejected(self, job: int, t: float) -> None:
        self.state[job] = REJECTED
        self.end[job] = t
        self._t_queue.append(t)
        self._d_queue.append(-1)

    def started(self, job: int, t: float, gpus: float) -> None:
        if self.attempts[job] == 0:
            self.first_start[job] = t
        self.attempts[job] += 1
        self._run_start[job] = t
        self._t_alloc.append(t)
        self._d_alloc.append(gpus)
        self._j_alloc.append(job)
        self._t_queue.append(t)
        self._d_queue.append(-1)

    def stopped(self, job: int, t: float, gpus: float, tenant: int, *, requeued: bool) -> None:
        self.tenant_gpu_s[tenant] += gpus * (t - self._run_start[job])
        self._t_alloc.append(t)
        self._d_alloc.append(-gpus)
        self._j_alloc.append(job)
        if requeued:
            self._t_queue.append(t)
            self._d_queue.append(1)

    def cut(self, job: int, t: float, gpus: float, tenant: int) -> None:
        """The run stopped at ``t`` (its horizon) with ``job`` running: its GPU-time so far counts, though the attempt
        never ended."""
        self.tenant_gpu_s[tenant] += gpus * (t - self._run_start[job])

    def capacity(self, t: float, gpus: float) -> None:
        """``gpus`` GPUs left service (negative) or came back (positive) at ``t``."""
        self._t_cap.append(t)
        self._d_cap.append(gpus)

    def attempt_over(self, job: int, run_s: float, lost_s: float, ckpt_s: float, restart_s: float) -> None:
        self.run_s[job] += run_s
        self.lost_s[job] += lost_s
        self.ckpt_s[job] += ckpt_s
        self.restart_s[job] += restart_s

    def kept(self, job: int, work_s: float) -> None:
        self.kept_s[job] = work_s

    def interrupted(self, job: int, *, preempted: bool) -> None:
        if preempted:
            self.preempts[job] += 1
        else:
            self.interrupts[job] += 1

    def ended(self, job: int, t: float, state: int) -> None:
        self.end[job] = t
        self.state[job] = state

    def cancelled_pending(self, job: int, t: float) -> None:
        self.end[job] = t
        self.state[job] = CANCELLED
        self._t_queue.append(t)
        self._d_queue.append(-1)

    def part(
        self,
        idx: np.ndarray,
        num_gpus: int,
        t_alloc: array,
        d_alloc: array,
        t_queue: array,
        d_queue: array,
        tenant_gpu_s: FloatArray,
    ) -> Metrics:
        """The metrics of the jobs ``idx`` alone (one site of a network), with that site's own change logs."""
        out = Metrics(0, num_gpus, tenant_gpu_s.size)
        for name in ("first_start", "end", "state", "attempts", "_run_start", "run_s", "kept_s", "lost_s", "ckpt_s",
                     "restart_s", "interrupts", "preempts"):  # fmt: skip
            setattr(out, name, getattr(self, name)[idx])
        out.tenant_gpu_s = tenant_gpu_s
        out._t_alloc, out._d_alloc, out._t_queue, out._d_queue = t_alloc, d_alloc, t_queue, d_queue
        out._j_alloc = array("q")  # a site's log does not name its jobs: no per-tenant measures for a part
        return out

    # ---- summary ------------------------------------------------------------------------------------------
    def utilisation(self, start: float, stop: float) -> float:
        """Mean share of GPUs allocated over ``[start, stop]``."""
        if stop <= start:
            return 0.0
        t_alloc = np.frombuffer(self._t_alloc, dtype=np.float64)
        d_alloc = np.frombuffer(self._d_alloc, dtype=np.float64)
        return float(binned_mean(t_alloc, d_alloc, np.array([start, stop]))[0]) / self.num_gpus

    def series(self, start: float, stop: float, max_bins: int = 1000) -> Series:
        span = max(stop - start, 1.0)
        width = _nice_width(span / max_bins)
        edges = start + np.arange(0, span + width, width)
        t_alloc = np.frombuffer(self._t_alloc, dtype=np.float64)
        d_alloc = np.frombuffer(self._d_alloc, dtype=np.float64)
        t_queue = np.frombuffer(self._t_queue, dtype=np.float64)
        d_queue = np.frombuffer(self._d_queue, dtype=np.float64)
        return Series(
            t_s=edges[:-1],
            utilisation=binned_mean(t_alloc, d_alloc, edges) / self.num_gpus,
            queue=binned_mean(t_queue, d_queue, edges),
        )

    def summarise(
        self,
        submit_s: FloatArray,
        gpus: np.ndarray | None = None,
        mtbi_min_gpus: int = 256,
        until: float | None = None,
    ) -> dict[str, Any]:
        """``until``: where the clock stopped when a horizon cut the run with jobs unfinished; the run's span then
        reaches it (otherwise the span ends at the last job's end)."""
        start = float(submit_s[0]) if submit_s.size else 0.0
        ran = ~np.isnan(self.first_start)
        ended = ran & (self.state != UNFINISHED) & (self.state != REJECTED)
        stop = float(np.nanmax(self.end)) if np.isfinite(self.end).any() else start
        if until is not None and math.isfinite(until):
            stop = max(stop, until)
        t_alloc = np.frombuffer(self._t_alloc, dtype=np.float64)
        d_alloc = np.frombuffer(self._d_alloc, dtype=np.float64)
        busy = float(binned_mean(t_alloc, d_alloc, np.array([start, stop]))[0]) if stop > start else 0.0
        jct = self.end[ended] - submit_s[ended]
        wait = self.first_start[ran] - submit_s[ran]
        # Queueing is the wait before the first start; a job stopped and requeued waits again. ``waited`` counts
        # every wait of the jobs that ended: their time from submission to end that no attempt of theirs ran.
        waited = np.maximum(jct - self.run_s[ended], 0.0)
        counts = np.bincount(self.state, minlength=len(STATE_NAMES))
        return {
            "jobs": int(submit_s.size),
            **{name: int(counts[i]) for i, name in enumerate(STATE_NAMES) if name != "unfinished"},
            "unfinished": int(counts[UNFINISHED]),
            "started": int(ran.sum()),
            "restarts": int(np.maximum(self.attempts - 1, 0).sum()),
            "utilisation": round(busy / self.num_gpus, 6),
            "gpu_hours": round(float(self.tenant_gpu_s.sum()) / 3600.0, 3),
            "avg_jct_s": _stat(jct, "mean"),
            "p50_jct_s": _stat(jct, 50),
            "p99_jct_s": _stat(jct, 99),
            "avg_queue_s": _stat(wait, "mean"),
            "p50_queue_s": _stat(wait, 50),
            "p99_queue_s": _stat(wait, 99),
            "avg_waited_s": _stat(waited, "mean"),
            "p99_waited_s": _stat(waited, 99),
            "makespan_s": round(stop - start, 3),
            **self._reliability(submit_s, gpus, mtbi_min_gpus, ended),
        }

    def _reliability(
        self, submit_s: FloatArray, gpus: np.ndarray | None, mtbi_min_gpus: int, ended: np.ndarray
    ) -> dict[str, Any]:
        g = np.ones(submit_s.size) if gpus is None else np.asarray(gpus, dtype=np.float64)
        big = g >= mtbi_min_gpus
        big_interrupts = int(self.interrupts[big].sum())
        held = self.end - self.first_start
        ok = ended & (g > 0) & (held > 0)
        weighted = float((g[ok] * held[ok]).sum())
        per_job = self.kept_s[ok] / held[ok]
        return {
            "failures": int(self.failures),
            "interruptions": int(self.interrupts.sum()),
            "preemptions": int(self.preempts.sum()),
            "mtbi_min_gpus": mtbi_min_gpus,
            "mtbi_h": round(float(self.run_s[big].sum()) / 3600.0 / big_interrupts, 4) if big_interrupts else None,
            "ettr": round(float((g[ok] * self.kept_s[ok]).sum()) / weighted, 6) if weighted > 0 else None,
            "ettr_job_mean": round(float(per_job.mean()), 6) if per_job.size else None,
            "goodput_gpu_h": round(float((g * self.kept_s).sum()) / 3600.0, 3),
            "lost_gpu_h": round(float((g * self.lost_s).sum()) / 3600.0, 3),
            "checkpoint_gpu_h": round(float((g * self.ckpt_s).sum()) / 3600.0, 3),
            "restart_gpu_h": round(float((g * self.restart_s).sum()) / 3600.0, 3),
        }

    def jct(self, submit_s: FloatArray) -> FloatArray:
        ended = ~np.isnan(self.first_start) & (self.state != UNFINISHED) & (self.state != REJECTED)
        return np.sort(self.end[ended] - submit_s[ended])

    def waits(self, submit_s: FloatArray) -> FloatArray:
        ran = ~np.isnan(self.first_start)
        return np.sort(self.first_start[ran] - submit_s[ran])


def _stat(values: FloatArray, what: str | float) -> float | None:
    if values.size == 0:
        return None
    v = float(values.mean()) if isinstance(what, str) else float(np.percentile(values, what))
    return round(v, 3)


def _nice_width(raw: float) -> float:
    """A bin width of at least ``raw`` seconds that reads well: 1 min, 5 min, 15 min, 1 h, 6 h, 1 d, 1 w."""
    for w in (60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86_400.0, 7 * 86_400.0):
        if w >= raw:
            return w
    return float(np.ceil(raw / 86_400.0) * 86_400.0)
