"""The twin's side of each job's attempts: when the running one started, the work it has left, what checkpoints
saved, and what ending or stopping it does to the metrics.

The single-site and the network twin drive the engine the same way and differ only in where a job goes; both keep
their jobs here. A start returns when the attempt will end (from the job's remaining work, restart cost and
checkpoints; :mod:`gigafactory.core.progress`); at that time :meth:`Attempts.end` says how it ended (the
workload's own outcome model decides); a stop settles what the attempt saved and lost.
"""

from __future__ import annotations

from gigafactory.core.actions import StopJob, StopReason
from gigafactory.core.events import Event, JobCancelled, JobFailed, JobFinished
from gigafactory.core.jobs import JobId
from gigafactory.core.progress import Checkpointing, Progress, attempt_wall, progress_at
from gigafactory.twin.metrics import CANCELLED, COMPLETED, FAILED, Metrics
from gigafactory.twin.workload import CANCELLED as W_CANCELLED
from gigafactory.twin.workload import FAILED as W_FAILED
from gigafactory.twin.workload import Workload

__all__ = ["Attempts"]


class Attempts:
    """Per job, its running attempt; ``remaining`` counts the jobs that have not ended yet, ``running`` the
    attempts running now."""

    def __init__(self, wl: Workload, ckpt: list[Checkpointing], met: Metrics) -> None:
        n = len(wl)
        self.work = wl.runtime_s.tolist()
        self.outcome = wl.outcome.tolist()
        self.tenant = wl.tenant.tolist()
        self.gpu_eq = wl.gpu_equivalent.tolist()
        self.ckpt = ckpt
        self.met = met
        self.attempt = [0] * n  # the running attempt, 0 when not running
        self.started = [0.0] * n  # when the running attempt started
        self.left = [0.0] * n  # work left when it started
        self.saved = [0.0] * n  # work saved by checkpoints so far
        self.remaining = n
        self.running = 0

    def start(self, job: int, attempt: int, t: float) -> float:
        """Attempt ``attempt`` of ``job`` starts at ``t``; returns when it will end if nothing stops it."""
        self.attempt[job] = attempt
        self.started[job] = t
        self.running += 1
        left = self.left[job] = max(self.work[job] - self.saved[job], 0.0)
        self.met.started(job, t, self.gpu_eq[job])
        return t + attempt_wall(left, self.ckpt[job])

    def end(self, job: int, attempt: int, t: float) -> tuple[Event, float] | None:
        """The attempt's scheduled end has come: the event that reports it and how long it ran, or ``None`` if it
        was stopped before (the attempt is no longer the running one)."""
        over = self._over(job, attempt, t, requeued=False)
        if over is None:
            return None
        run_s, p = over
        met = self.met
        met.attempt_over(job, run_s, 0.0, p.checkpoint_s, p.restart_s)
        met.kept(job, self.saved[job] + self.left[job])
        self.remaining -= 1
        jid = JobId(job)
        o = self.outcome[job]
        ev: Event
        if o == W_FAILED:
            ev = JobFailed(t, jid, attempt, exit_code=1)
            met.ended(job, t, FAILED)
        elif o == W_CANCELLED:
            ev = JobCancelled(t, jid, reason="cancelled by user while running")
            met.ended(job, t, CANCELLED)
        else:
            ev = JobFinished(t, jid, attempt)
            met.ended(job, t, COMPLETED)
        return ev, run_s

    def stop(self, action: StopJob, t: float) -> float | None:
        """The engine stopped an attempt: settle what it saved (all its work if suspended gracefully, what its
        checkpoints hold if killed) and lost; returns how long it ran, or ``None`` if it had already ended."""
        job = action.job_id
        over = self._over(job, action.attempt, t, requeued=action.requeue)
        if over is None:
            return None
        run_s, p = over
        met = self.met
        if action.requeue:
            kept = p.work_s if action.graceful else p.saved_s
            self.saved[job] += kept
            met.attempt_over(job, run_s, p.work_s - kept, p.checkpoint_s, p.restart_s)
            met.interrupted(job, preempted=action.reason is StopReason.PREEMPTED)
        else:
            met.attempt_over(job, run_s, 0.0, p.checkpoint_s, p.restart_s)
            met.kept(job, self.saved[job] + p.work_s)
            met.ended(job, t, CANCELLED)
            self.remaining -= 1
        return run_s

    def _over(self, job: int, attempt: int, t: float, *, requeued: bool) -> tuple[float, Progress] | None:
        """The running attempt is over at ``t``: how long it ran and what it did, or ``None`` if ``attempt`` is not
        the running one (a stale end or stop)."""
        if self.attempt[job] != attempt:
            return None
        self.attempt[job] = 0
        self.running -= 1
        run_s = t - self.started[job]
        self.met.stopped(job, t, self.gpu_eq[job], self.tenant[job], requeued=requeued)
        return run_s, progress_at(run_s, self.left[job], self.ckpt[job])

    def stuck(self, submitted_all: bool, scheduled: int) -> bool:
        """Can nothing the driver still has to deliver start a waiting job? True once every job has been
        submitted, none is running and nothing is scheduled (no end, repair or wake-up): what jobs still wait can
        never start as things stand, and failures (which only take capacity away until their repair) would move
        the clock on forever."""
        return submitted_all and self.running == 0 and scheduled == 0 and self.remaining > 0

    def reject(self, job: int, t: float) -> None:
        self.met.rejected(job, t)
        self.remaining -= 1
