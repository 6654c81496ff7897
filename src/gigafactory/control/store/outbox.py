"""The outbox: what executors must carry out. The only writer of the ``actions`` table.

The daemon appends the engine's start and stop actions in the same transaction as the job-state changes that
go with them, and only then lets the executors act. An action is marked done once its executor has carried it
out; after a crash, actions not yet done are carried out again, which is safe because executors are idempotent
per (job, attempt).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gigafactory.control.store.schema import actions

__all__ = ["append", "mark_done", "pending"]


def append(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        now = time.time()
        conn.execute(actions.insert(), [{"time": now, "done": False, "done_at": None, **r} for r in rows])


def pending(conn: Connection, limit: int = 10_000) -> list[Any]:
    return list(conn.execute(select(actions).where(actions.c.done.is_(False)).order_by(actions.c.seq).limit(limit)))


def mark_done(conn: Connection, seqs: Sequence[int]) -> None:
    if seqs:
        conn.execute(actions.update().where(actions.c.seq.in_(list(seqs))).values(done=True, done_at=time.time()))
