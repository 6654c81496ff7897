"""Estimated start times, by running a copy of the engine forward on a virtual clock.

This is what ``squeue --start`` answers in Slurm, computed the gigafactory way: the same engine and policy that will
make the decision play the future out. Running jobs end at their estimate (or, without one, after
``default_runtime_s`` from their start, as Slurm assumes a job runs to its time limit); jobs started in the forecast
end the same way. No new submissions or failures are assumed, so an estimate is what happens if nothing else
changes, and it moves as the world does.

Pure: the live engine is not touched, and no clock is read.
"""

from __future__ import annotations

import copy
import math

from gigafactory.core.actions import StartJob, Wake
from gigafactory.core.agenda import Agenda
from gigafactory.core.events import Event, JobFinished, Tick
from gigafactory.core.jobs import JobId, JobState
from gigafactory.engine.engine import Engine
from gigafactory.engine.log import TransitionLog

__all__ = ["forecast_starts"]

_END, _WAKE = 0, 1


def forecast_starts(
    engine: Engine,
    now: float,
    *,
    default_runtime_s: float = 24 * 3600.0,
    horizon_s: float = 30 * 24 * 3600.0,
    max_events: int = 50_000,
) -> dict[int, float]:
    """Estimated start (absolute time) of each waiting job that starts within ``horizon_s``; others are absent.

    ``max_events`` bounds the work: the forecast stops early on very long queues, and jobs it did not reach have
    no estimate.
    """
    waiting = set(engine.pending())
    if not waiting:
        return {}
    sim = copy.deepcopy(engine, {id(engine.log): TransitionLog()})  # the log is history: not needed to go on
    sim.keep_log = False
    now = max(now, sim.now)
    end_at = now + horizon_s

    def runtime(job_id: int) -> float:
        est = sim.job(job_id).job.estimate_s
        return default_runtime_s if est is None or not math.isfinite(est) else est

    agenda = Agenda()  # (kind, job, attempt): an attempt's end, or a wake-up the engine asked for
    for jid in sim.running():
        rec = sim.job(jid)
        started = rec.started_s if rec.started_s is not None else now
        agenda.add(max(started + runtime(jid), now), _END, jid, rec.attempt)
    starts: dict[int, float] = {}
    # Attempts being stopped are assumed gone now (they get a grace period of seconds, not hours).
    batch: list[Event] = [*(JobFinished(now, JobId(jid), a) for jid, a in sim.held().items()), Tick(now)]
    t = now
    events = 0
    while True:
        for action in sim.handle(batch):
            if isinstance(action, StartJob):
                if action.job_id in waiting and action.job_id not in starts:
                    starts[action.job_id] = t
                agenda.add(t + runtime(action.job_id), _END, action.job_id, action.attempt)
            elif isinstance(action, Wake) and action.time > t:
                agenda.add(action.time, _WAKE)
        events += len(batch)
        if len(starts) == len(waiting) or not agenda or events >= max_events:
            break
        t = agenda.next_time()
        if t > end_at:
            break
        batch = []
        for kind, jid, attempt, _ in agenda.pop_at(t):
            if kind == _WAKE:
                batch.append(Tick(t))
            elif sim.state_of(jid) is JobState.RUNNING and sim.job(jid).attempt == attempt:
                batch.append(JobFinished(t, JobId(jid), attempt))
        if not batch:
            batch = [Tick(t)]
    return starts
