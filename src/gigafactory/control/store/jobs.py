"""Jobs, their accounting and their history. The only writer of the ``jobs``, ``usage`` and ``transitions`` tables.

A submission is a row in state ``submitted``: the API inserts it (in one short transaction, so a submission
is durable the moment the API answers), and the daemon picks it up in id order and moves it through the
engine's states. Everything after submission is written by the daemon, in the same transaction that marks what it
processed and queues what the executors must do.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from gigafactory.control.store.schema import jobs, transitions, usage

__all__ = [
    "SUBMITTED",
    "count_by_state",
    "count_waiting",
    "get_job",
    "gpu_seconds_by_job",
    "insert_jobs",
    "keyed_jobs",
    "list_jobs",
    "record_transitions",
    "record_usage",
    "set_est_starts",
    "stopping_attempts",
    "submitted",
    "update_job",
    "usage_by_tenant",
]

SUBMITTED = "submitted"
ACTIVE = ("submitted", "pending", "running")


def insert_jobs(
    conn: Connection, rows: Sequence[dict[str, Any]], known: dict[tuple[str, str], int] | None = None
) -> list[int]:
    """Insert submissions in one statement; returns their ids in the order of ``rows``.

    A row with a ``client_key`` its tenant has used before (or earlier in ``rows``) is not inserted again: its id
    is the stored job's. So a client that lost an answer may send the same submission again. ``known``: the
    stored jobs of the keys in ``rows``, if the caller has looked them up already.
    """
    if not rows:
        return []
    if known is None:
        known = _keyed_ids(conn, [(r["tenant"], r["client_key"]) for r in rows if r.get("client_key")])
    else:
        known = dict(known)
    fresh: list[dict[str, Any]] = []
    slots: list[int | tuple[str, str]] = []  # per row: an index into fresh, or the key of an earlier job
    now = time.time()
    for row in rows:
        key = (row["tenant"], row["client_key"]) if row.get("client_key") else None
        if key is not None and key in known:
            slots.append(key)
            continue
        if key is not None:
            known[key] = -1 - len(fresh)  # taken by this call: later repeats get the same job
        slots.append(len(fresh))
        fresh.append({**_DEFAULTS, "submitted_at": now, **row})
    ids: list[int] = []
    if fresh:
        result = conn.execute(jobs.insert().returning(jobs.c.id, sort_by_parameter_order=True), fresh)
        ids = [int(r[0]) for r in result]
    out = []
    for slot in slots:
        if isinstance(slot, int):
            out.append(ids[slot])
        else:
            jid = known[slot]
            out.append(jid if jid > 0 else ids[-1 - jid])
    return out


def _keyed_ids(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    return {key: jid for key, (jid, _) in keyed_jobs(conn, keys).items()}


def keyed_jobs(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str | None]]:
    """The stored jobs of these (tenant, key) pairs, with the fingerprint each was submitted with, found through
    the (tenant, client_key) index."""
    by_tenant: dict[str, set[str]] = {}
    for tenant, key in keys:
        by_tenant.setdefault(tenant, set()).add(key)
    found: dict[tuple[str, str], tuple[int, str | None]] = {}
    for tenant, names in by_tenant.items():
        ordered = sorted(names)
        for at in range(0, len(ordered), 10_000):
            q = select(jobs.c.client_key, jobs.c.id, jobs.c.client_hash).where(
                jobs.c.tenant == tenant, jobs.c.client_key.in_(ordered[at : at + 10_000])
            )
            found.update(((tenant, key), (int(jid), digest)) for key, jid, digest in conn.execute(q))
    return found


def count_waiting(conn: Connection, tenant: str) -> int:
    """The tenant's jobs submitted or waiting (what its ``max_jobs`` limits)."""
    q = select(func.count()).where(jobs.c.tenant == tenant, jobs.c.state.in_([SUBMITTED, "pending"]))
    return int(conn.execute(q).scalar() or 0)


_DEFAULTS: dict[str, Any] = {
    "state": SUBMITTED,
    "attempt": 0,
    "reason": "",
    "log_dir": "",
    "name": "",
    "env": {},
    "cpu_milli": 0,
    "mem_mib": 0,
    "models": None,
    "locality": "any",
    "estimate_s": None,
    "priority": 0,
    "ckpt_s": None,
    "ckpt_write_s": 0.0,
    "gpu_milli": 1000,
    "client_key": None,
    "client_hash": None,
    "site": None,
    "sites": None,
    "countries": None,
    "reroute": False,
    "award": None,
    "ai_model": None,
    "ai_purpose": None,
}


def submitted(conn: Connection, limit: int) -> list[Any]:
    return list(conn.execute(select(jobs).where(jobs.c.state == SUBMITTED).order_by(jobs.c.id).limit(limit)))


def get_job(conn: Connection, job_id: int) -> Any | None:
    return conn.execute(select(jobs).where(jobs.c.id == job_id)).first()


def list_jobs(
    conn: Connection,
    *,
    tenant: str | None = None,
    states: Iterable[str] | None = None,
    limit: int = 100,
    offset: int = 0,
    order: str = "id",
    site: str | None = None,
) -> list[Any]:
    q = select(jobs)
    if tenant is not None:
        q = q.where(jobs.c.tenant == tenant)
    if site is not None:
        q = q.where(jobs.c.site == site)
    if states is not None:
        q = q.where(jobs.c.state.in_(list(states)))
    q = (
        q.order_by(jobs.c.est_start.is_(None), jobs.c.est_start, jobs.c.id)
        if order == "est_start"
        else q.order_by(jobs.c.id)
    )
    return list(conn.execute(q.limit(limit).offset(offset)))


def count_by_state(conn: Connection, tenant: str | None = None) -> dict[str, int]:
    q = select(jobs.c.state, func.count()).group_by(jobs.c.state)
    if tenant is not None:
        q = q.where(jobs.c.tenant == tenant)
    return {state: int(n) for state, n in conn.execute(q)}


def update_job(conn: Connection, job_id: int, **values: Any) -> None:
    conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))


def set_est_starts(conn: Connection, starts: dict[int, float | None]) -> None:
    """Write the forecast's estimated start of each waiting job (None: beyond the forecast), in one statement."""
    rows = [{"jid": jid, "est": est} for jid, est in starts.items()]
    if rows:
        conn.execute(jobs.update().where(jobs.c.id == bindparam("jid")).values(est_start=bindparam("est")), rows)


def record_usage(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Bill ended attempts; an attempt already billed is left as it is (one record per (job, attempt))."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(usage).on_conflict_do_nothing(index_elements=["job_id", "attempt"]), list(rows))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(usage).on_conflict_do_nothing(index_elements=["job_id", "attempt"]), list(rows))


def stopping_attempts(conn: Connection) -> list[Any]:
    """Attempts that started, are no longer running and have no usage record yet: stopped, and not yet reported
    gone by their executor. Their GPUs stay held (the daemon restores them as such after a restart)."""
    billed = select(usage.c.id).where(usage.c.job_id == jobs.c.id, usage.c.attempt == jobs.c.attempt).exists()
    cols = (jobs.c.id, jobs.c.attempt, jobs.c.tenant, jobs.c.state, jobs.c.placement, jobs.c.started_at, jobs.c.site,
            jobs.c.charged_award)  # fmt: skip
    q = select(*cols).where(jobs.c.attempt >= 1, jobs.c.state != "running", jobs.c.placement.is_not(None), ~billed)
    return list(conn.execute(q.order_by(jobs.c.id)))


def record_transitions(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(transitions.insert(), list(rows))


def story(conn: Connection, job_id: int) -> list[Any]:
    return list(conn.execute(select(transitions).where(transitions.c.job_id == job_id).order_by(transitions.c.seq)))


def gpu_seconds_by_job(conn: Connection, job_ids: Sequence[int]) -> dict[int, float]:
    """GPU-seconds of the ended attempts of each job (what a restarted daemon owes each tenant's usage)."""
    out: dict[int, float] = {}
    for at in range(0, len(job_ids), 10_000):  # bounded IN lists
        chunk = job_ids[at : at + 10_000]
        q = select(usage.c.job_id, func.sum(usage.c.gpu_seconds)).where(usage.c.job_id.in_(chunk))
        out.update((int(j), float(s)) for j, s in conn.execute(q.group_by(usage.c.job_id)))
    return out


def usage_by_tenant(conn: Connection, since: float = 0.0, site: str | None = None) -> dict[str, float]:
    q = select(usage.c.tenant, func.sum(usage.c.gpu_seconds)).where(usage.c.ended_at >= since)
    if site is not None:
        q = q.where(usage.c.site == site)
    return {t: float(s or 0.0) for t, s in conn.execute(q.group_by(usage.c.tenant))}


def usage_series(conn: Connection, bucket_s: float, since: float) -> list[tuple[str, float, float]]:
    """(tenant, bucket start, GPU-seconds ended in that bucket) for usage records since ``since``."""
    rows = conn.execute(select(usage.c.tenant, usage.c.ended_at, usage.c.gpu_seconds).where(usage.c.ended_at >= since))
    out: dict[tuple[str, float], float] = {}
    for tenant, ended, gpu_s in rows:
        key = (tenant, since + bucket_s * int((ended - since) // bucket_s))
        out[key] = out.get(key, 0.0) + gpu_s
    return sorted((t, b, v) for (t, b), v in out.items())
