"""The transition log: every state change of every job, with the stimulus that caused it.

Stored as compact columns (``array``), not objects, so a year of a 100k-GPU site (millions of transitions) fits
in tens of megabytes. :meth:`TransitionLog.story` rebuilds one job's history, in the manner of Dask's
``story(key)``.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gigafactory.core.jobs import JobState

__all__ = ["STATES", "Transition", "TransitionLog"]

STATES: tuple[JobState | None, ...] = (None, *JobState)
_STATE_CODE = {s: i for i, s in enumerate(STATES)}


@dataclass(frozen=True, slots=True)
class Transition:
    time: float
    job_id: int
    attempt: int
    old: JobState | None  # None: the job was not known before
    new: JobState
    stimulus: str  # the event that caused it, e.g. "JobFinished#42", or "schedule@JobSubmitted#17"
    reason: str = ""

    def __str__(self) -> str:
        old = self.old.value if self.old else "-"
        why = f" ({self.reason})" if self.reason else ""
        return f"t={self.time:.1f} job {self.job_id} #{self.attempt}: {old} -> {self.new.value} by {self.stimulus}{why}"


class TransitionLog:
    def __init__(self) -> None:
        self._time = array("d")
        self._job = array("q")
        self._attempt = array("l")
        self._old = array("b")
        self._new = array("b")
        self._kind = array("h")  # the cause's kind: an event type, or a pass after one (a few dozen at most)
        self._seq = array("q")
        self._reasons: dict[int, str] = {}
        self._given: dict[int, str] = {}  # entry -> the caller's stimulus id, where it gave one
        self._kinds: list[str] = []
        self._kind_code: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._time)

    def add(
        self,
        time: float,
        job_id: int,
        attempt: int,
        old: JobState | None,
        new: JobState,
        kind: str,
        seq: int,
        reason: str = "",
        given: str = "",
    ) -> None:
        code = self._kind_code.get(kind)
        if code is None:
            code = self._kind_code[kind] = len(self._kinds)
            self._kinds.append(kind)
        if reason:
            self._reasons[len(self._time)] = reason
        if given:
            self._given[len(self._time)] = given
        self._time.append(time)
        self._job.append(job_id)
        self._attempt.append(attempt)
        self._old.append(_STATE_CODE[old])
        self._new.append(_STATE_CODE[new])
        self._kind.append(code)
        self._seq.append(seq)

    def entry(self, i: int) -> Transition:
        new = STATES[self._new[i]]
        assert new is not None
        return Transition(
            time=self._time[i],
            job_id=self._job[i],
            attempt=self._attempt[i],
            old=STATES[self._old[i]],
            new=new,
            stimulus=self._given.get(i) or f"{self._kinds[self._kind[i]]}#{self._seq[i]}",
            reason=self._reasons.get(i, ""),
        )

    def story(self, job_id: int) -> list[Transition]:
        if not self._job:
            return []
        hits = np.flatnonzero(np.frombuffer(self._job, dtype=np.int64) == job_id)
        return [self.entry(int(i)) for i in hits]

    def __iter__(self) -> Iterator[Transition]:
        return (self.entry(i) for i in range(len(self)))
