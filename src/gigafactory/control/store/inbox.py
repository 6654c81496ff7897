"""The inbox: requests the daemon must turn into engine events. The only writer of the ``events`` table.

The API appends cancellations, node drains and resumes, tenant-tree changes and award changes; the daemon reads the
unprocessed ones in order and marks them processed in the same transaction as their effects. (Submissions are
not in the inbox: they are the jobs in state ``submitted``.)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gigafactory.control.store.schema import events

__all__ = ["append", "mark_processed", "unprocessed"]

KINDS = ("cancel", "drain", "resume", "tenants", "awards", "desk")


def append(conn: Connection, kind: str, *, job_id: int | None = None, node: int | None = None, **payload: Any) -> None:
    assert kind in KINDS, kind
    conn.execute(
        events.insert().values(time=time.time(), kind=kind, job_id=job_id, node=node, payload=payload, processed=False)
    )


def unprocessed(conn: Connection, limit: int = 10_000) -> list[Any]:
    return list(conn.execute(select(events).where(events.c.processed.is_(False)).order_by(events.c.seq).limit(limit)))


def mark_processed(conn: Connection, seqs: Sequence[int]) -> None:
    if seqs:
        conn.execute(events.update().where(events.c.seq.in_(list(seqs))).values(processed=True))
