"""Job progress with checkpoints: how much work an attempt does, saves and loses, in closed form.

Vocabulary (all in seconds):

* **work**: uninterrupted run time a job needs in total; the job is done when its saved work plus an attempt's
  progress reaches it.
* **restart** (``u0``): wall time at the start of every attempt before progress begins (loading a checkpoint,
  warming up). Charged on every start, the first included.
* **checkpoint interval** (``Δt``): work between two checkpoints. Every ``Δt`` of work the job stops for
  ``write`` (``w``) seconds to write one; when the write ends, everything so far is saved.
* An attempt that is interrupted keeps the work saved by its last completed checkpoint and **loses** the rest.

An attempt from saved work ``W0`` therefore runs: ``u0``, then cycles of ``Δt`` work and ``w`` writing, until the
work is done (no checkpoint is written at the very end). Everything here is a pure function of the elapsed wall
time, so neither the twin nor the engine needs an event per checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Checkpointing", "Progress", "attempt_wall", "daly_interval", "progress_at", "young_interval"]


@dataclass(frozen=True, slots=True)
class Checkpointing:
    interval_s: float | None = None  # work between checkpoints; None: the job never checkpoints
    write_s: float = 0.0
    restart_s: float = 0.0

    def __post_init__(self) -> None:
        if self.interval_s is not None and not self.interval_s > 0:
            raise ValueError(f"checkpoint interval {self.interval_s} must be positive")
        if self.write_s < 0 or self.restart_s < 0:
            raise ValueError("checkpoint write and restart times must not be negative")


NO_CHECKPOINTS = Checkpointing()


@dataclass(frozen=True, slots=True)
class Progress:
    """What ``elapsed`` seconds of one attempt amount to."""

    work_s: float  # work done in this attempt
    saved_s: float  # of which saved by a completed checkpoint
    checkpoint_s: float  # wall time spent writing checkpoints
    restart_s: float  # wall time spent restarting

    def __init__(self, work_s: float, saved_s: float, checkpoint_s: float, restart_s: float) -> None:
        # Written out: compiled (gigafactory._native), a dataclass-generated __init__ stays interpreted, and the
        # twin makes one per attempt's end.
        object.__setattr__(self, "work_s", work_s)
        object.__setattr__(self, "saved_s", saved_s)
        object.__setattr__(self, "checkpoint_s", checkpoint_s)
        object.__setattr__(self, "restart_s", restart_s)

    @property
    def unsaved_s(self) -> float:
        return self.work_s - self.saved_s


def attempt_wall(work_left_s: float, ck: Checkpointing) -> float:
    """Wall time for an attempt to do ``work_left_s`` of work, uninterrupted."""
    if work_left_s <= 0:
        return ck.restart_s
    writes = 0 if ck.interval_s is None else max(math.ceil(work_left_s / ck.interval_s) - 1, 0)
    return ck.restart_s + work_left_s + writes * ck.write_s


def progress_at(elapsed_s: float, work_left_s: float, ck: Checkpointing) -> Progress:
    """The state of an attempt ``elapsed_s`` after it started, if it is interrupted then."""
    if elapsed_s <= ck.restart_s:
        return Progress(0.0, 0.0, 0.0, max(elapsed_s, 0.0))
    run = elapsed_s - ck.restart_s
    if ck.interval_s is None:
        work = min(run, work_left_s)
        return Progress(work, 0.0, 0.0, ck.restart_s)
    cycle = ck.interval_s + ck.write_s
    full = math.floor(run / cycle)
    saved = full * ck.interval_s
    into = run - full * cycle
    if saved >= work_left_s:  # the work was done before this moment
        writes = max(math.ceil(work_left_s / ck.interval_s) - 1, 0)
        return Progress(work_left_s, work_left_s, writes * ck.write_s, ck.restart_s)
    if into <= ck.interval_s:
        work = min(saved + into, work_left_s)
        return Progress(work, saved, full * ck.write_s, ck.restart_s)
    # Mid-write: the work of this cycle is done but not yet saved.
    work = min(saved + ck.interval_s, work_left_s)
    return Progress(work, saved, full * ck.write_s + (into - ck.interval_s), ck.restart_s)


def young_interval(write_s: float, mtbf_s: float) -> float:
    """Young (1974): ``τ = sqrt(2 δ M)``."""
    return math.sqrt(2.0 * write_s * mtbf_s)


def daly_interval(write_s: float, mtbf_s: float) -> float:
    """Daly (2006), higher order, for ``δ < 2M``: ``τ = sqrt(2δM)·[1 + ⅓·sqrt(δ/2M) + (δ/2M)/9] − δ``; else ``M``."""
    if write_s <= 0:
        raise ValueError("young-daly needs a positive checkpoint write time")
    if not math.isfinite(mtbf_s):
        return math.inf  # nothing fails: never checkpoint
    if write_s >= 2.0 * mtbf_s:
        return mtbf_s
    x = write_s / (2.0 * mtbf_s)
    return math.sqrt(2.0 * write_s * mtbf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - write_s
