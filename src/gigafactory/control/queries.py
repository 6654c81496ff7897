"""Read-side questions the API and the dashboard both ask of the store: the queue, node use, tenants' usage against
their share, utilisation over time. Reads only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from gigafactory.control.store import accounts
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.schema import events, jobs, node_log, nodes, sites, tenants, usage
from gigafactory.control.store.site import node_rows

__all__ = [
    "JOB_SORTS",
    "SiteInfo",
    "entitlement_series",
    "node_history",
    "node_jobs",
    "node_states",
    "node_use",
    "queue",
    "search_jobs",
    "site_summaries",
    "tenant_summaries",
    "utilisation_series",
]


@dataclass(frozen=True)
class SiteInfo:
    """What the API needs to know of the site to check requests and name nodes."""

    name: str
    spec: str
    node_names: list[str]
    num_gpus: int
    max_gpus_per_node: int
    gpus_by_model: dict[str, int]
    domain_gpus: int  # the largest NVLink domain
    pod_gpus: int  # the largest pod
    id: int = 0
    country: str | None = None


def queue(
    conn: Connection, tenant: str | None = None, limit: int = 1000, site: str | None = None
) -> list[tuple[int | None, Any]]:
    """Running jobs, then waiting ones by estimated start (then id), each with its place among the waiting jobs
    of the whole site (a tenant sees where it stands among everyone, not among its own jobs only). With ``site``,
    that site's jobs (and the jobs not routed yet)."""
    running = jobstore.list_jobs(conn, tenant=tenant, states=["running"], limit=limit, site=site)
    order = (jobs.c.est_start.is_(None), jobs.c.est_start, jobs.c.id)
    waiting_here: Any = jobs.c.state.in_(["pending", "submitted"])
    if site is not None:
        waiting_here = waiting_here & ((jobs.c.site == site) | jobs.c.site.is_(None))
    # A job's place is among the jobs waiting at its own site (those not routed yet, among themselves).
    ranked = (
        select(jobs, func.row_number().over(partition_by=jobs.c.site, order_by=order).label("position"))
        .where(waiting_here)
        .subquery()
    )
    q = select(ranked)
    if tenant is not None:
        q = q.where(ranked.c.tenant == tenant)
    waiting = conn.execute(q.order_by(ranked.c.position, ranked.c.site, ranked.c.id).limit(limit)).all()
    return [(None, r) for r in running] + [(int(r.position), r) for r in waiting]


def node_use(conn: Connection, first_site: str = "") -> tuple[list[dict[str, Any]], dict[tuple[str, int], float]]:
    """Nodes (as rows, each with its ``site``) and the GPUs in use on each, by (site, node index), from the running
    jobs' placements. A job without a site (from a store older than networks) is on ``first_site``."""
    used: dict[tuple[str, int], float] = {}
    for site, pl in conn.execute(select(jobs.c.site, jobs.c.placement).where(jobs.c.state == "running")):
        if not pl:
            continue
        for n, gpus in zip(pl["nodes"], pl["gpus"], strict=True):
            key = (site or first_site, n)
            used[key] = used.get(key, 0.0) + len(gpus) * pl["gpu_milli"] / 1000.0
    return node_rows(conn), used


def site_summaries(conn: Connection, sites: list[Any]) -> list[dict[str, Any]]:
    """Each site's load: GPUs in use and asked for, jobs running and waiting, nodes down and drained."""
    first = sites[0].name if sites else ""
    stats: dict[str, dict[str, float]] = {
        s.name: {"used": 0.0, "asked": 0.0, "running": 0, "waiting": 0, "down": 0, "drained": 0} for s in sites
    }
    q = select(jobs.c.site, jobs.c.state, func.count(), func.sum(jobs.c.gpus * jobs.c.gpu_milli)).where(
        jobs.c.state.in_(["running", "pending"])
    )
    for site, state, n, milli in conn.execute(q.group_by(jobs.c.site, jobs.c.state)):
        st = stats.get(site or first)
        if st is None:
            continue
        if state == "running":
            st["running"] += n
            st["used"] += (milli or 0) / 1000.0
        else:
            st["waiting"] += n
            st["asked"] += (milli or 0) / 1000.0
    for row in node_rows(conn):
        st = stats.get(str(row["site"]))
        if st is not None and row["state"] in ("down", "drained"):
            st[str(row["state"])] += 1
    out = []
    for s in sites:
        st = stats[s.name]
        gpus = s.topology.num_gpus
        out.append({"name": s.name, "spec": s.spec, "country": s.country, "gpus": gpus, "gpus_used": st["used"],
                    "gpus_asked": st["asked"], "load": (st["used"] + st["asked"]) / max(gpus, 1),
                    "jobs_running": int(st["running"]), "jobs_waiting": int(st["waiting"]),
                    "nodes_down": int(st["down"]), "nodes_drained": int(st["drained"]),
                    "price_eur_mwh": s.price_eur_mwh, "carbon_g_kwh": s.carbon_g_kwh, "pue": s.pue})  # fmt: skip
    return out


def tenant_summaries(conn: Connection, only: str | None = None) -> list[dict[str, Any]]:
    tree = accounts.load_tree(conn)
    names = tree.names() if tree is not None else []
    if only is not None:
        names = [n for n in names if n == only]
    spent = jobstore.usage_by_tenant(conn)
    running: dict[str, float] = {}
    for tenant, gpus, milli in conn.execute(
        select(jobs.c.tenant, jobs.c.gpus, jobs.c.gpu_milli).where(jobs.c.state == "running")
    ):
        running[tenant] = running.get(tenant, 0.0) + gpus * milli / 1000.0
    extra = {r.name: r for r in conn.execute(select(tenants.c.name, tenants.c.uid, tenants.c.unix_user,
                                                               tenants.c.max_jobs, tenants.c.max_rate))}  # fmt: skip
    out = []
    for name in names:
        assert tree is not None
        t = tree[name]
        x = extra.get(name)
        out.append(
            {
                "name": name,
                "parent": t.parent,
                "share": t.share,
                "share_fraction": tree.normalised_share(name),
                "guarantee": t.guarantee,
                "limit": t.limit,
                "gpus_running": running.get(name, 0.0),
                "gpu_hours": spent.get(name, 0.0) / 3600.0,
                "jobs": jobstore.count_by_state(conn, name),
                "uid": x.uid if x is not None else None,
                "unix_user": x.unix_user if x is not None else None,
                "max_jobs": x.max_jobs if x is not None else None,
                "max_rate": x.max_rate if x is not None else None,
            }
        )
    return out


def utilisation_series(
    conn: Connection, *, since: float, until: float, buckets: int = 120, tenant: str | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mean GPUs in use per time bucket, per tenant, from finished attempts (``usage``) and running ones.

    The window starts no earlier than the first submission: a control plane that is ten minutes old shows ten
    minutes, not an hour of zeros that would also drag its mean down."""
    first = conn.execute(select(func.min(jobs.c.submitted_at))).scalar()
    since = max(since, min(float(first) if first is not None else until, until - 60.0))
    edges = np.linspace(since, until, buckets + 1)
    width = max((until - since) / buckets, 1e-9)
    series: dict[str, np.ndarray] = {}

    def add(tenant_name: str, gpus: float, start: float, end: float) -> None:
        if end <= since or start >= until or gpus <= 0:
            return
        arr = series.setdefault(tenant_name, np.zeros(buckets))
        lo = np.clip(edges[:-1], start, end)
        hi = np.clip(edges[1:], start, end)
        arr += gpus * (hi - lo) / width

    q = select(usage.c.tenant, usage.c.gpus, usage.c.started_at, usage.c.ended_at).where(
        usage.c.ended_at >= since, usage.c.started_at <= until
    )
    if tenant is not None:
        q = q.where(usage.c.tenant == tenant)
    for t, gpus, start, end in conn.execute(q):
        add(t, gpus, start, end)
    q2 = select(jobs.c.tenant, jobs.c.gpus, jobs.c.gpu_milli, jobs.c.started_at).where(jobs.c.state == "running")
    if tenant is not None:
        q2 = q2.where(jobs.c.tenant == tenant)
    for t, gpus, milli, start in conn.execute(q2):
        add(t, gpus * milli / 1000.0, start if start is not None else until, until)
    return edges[:-1], series


def since_default(now: float, hours: float) -> float:
    return now - hours * 3600.0 if math.isfinite(hours) else 0.0


def entitlement_series(
    conn: Connection, *, since: float, until: float, total_gpus: float, buckets: int = 120
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """GPUs each tenant used and was entitled to, mean per time bucket (report/fairness.py: demand-capped max-min
    down the tenant tree; a job asks for its GPUs from submission until it ends).

    Entitlements depend on every tenant's demand, so all tenants are read; the caller shows a tenant only its own."""
    from gigafactory.report.fairness import entitlement

    times, used = utilisation_series(conn, since=since, until=until, buckets=buckets)
    start = float(times[0]) if len(times) else since
    edges = np.linspace(start, until, buckets + 1)
    width = max((until - start) / buckets, 1e-9)
    tree = accounts.load_tree(conn)
    demand: dict[str, np.ndarray] = {}
    q = select(jobs.c.tenant, jobs.c.gpus, jobs.c.gpu_milli, jobs.c.submitted_at, jobs.c.ended_at).where(
        jobs.c.submitted_at <= until, (jobs.c.ended_at.is_(None)) | (jobs.c.ended_at >= start)
    )
    for t, gpus, milli, submitted, ended in conn.execute(q):
        end = until if ended is None else float(ended)
        lo = np.clip(edges[:-1], float(submitted), end)
        hi = np.clip(edges[1:], float(submitted), end)
        demand.setdefault(t, np.zeros(buckets))
        demand[t] += gpus * milli / 1000.0 * (hi - lo) / width
    names = sorted(set(demand) | set(used) | set(tree.leaves() if tree is not None else []))
    want = np.stack([demand.get(n, np.zeros(buckets)) for n in names], axis=1) if names else np.zeros((buckets, 0))
    owed = entitlement(np.full(buckets, float(total_gpus)), want, names, tree)
    entitled = {n: owed[:, k] for k, n in enumerate(names)}
    return times, {n: used.get(n, np.zeros(buckets)) for n in names}, entitled


# ---- the jobs page and the node page -------------------------------------------------------------------------
JOB_SORTS = ("id", "submitted", "started", "ended", "gpus", "state", "tenant", "name")
_SORT_COLUMNS = {"id": jobs.c.id, "submitted": jobs.c.submitted_at, "started": jobs.c.started_at,
                 "ended": jobs.c.ended_at, "gpus": jobs.c.gpus, "state": jobs.c.state, "tenant": jobs.c.tenant,
                 "name": jobs.c.name}  # fmt: skip


def search_jobs(
    conn: Connection,
    *,
    tenant: str | None = None,
    states: list[str] | None = None,
    site: str | None = None,
    since: float | None = None,
    until: float | None = None,
    text: str = "",
    sort: str = "id",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Any], int]:
    """Jobs of every state (one page of them) and how many match in all: by tenant, states, site, submission time
    (``since`` ≤ submitted < ``until``) and ``text`` (a job id, or a part of the name, case-insensitive)."""
    conds: list[Any] = []
    if tenant is not None:
        conds.append(jobs.c.tenant == tenant)
    if states:
        conds.append(jobs.c.state.in_(states))
    if site is not None:
        conds.append(jobs.c.site == site)
    if since is not None:
        conds.append(jobs.c.submitted_at >= since)
    if until is not None:
        conds.append(jobs.c.submitted_at < until)
    if text:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        named = jobs.c.name.ilike(like, escape="\\")
        conds.append(
            (jobs.c.id == int(text)) | named if text.isascii() and text.isdigit() and len(text) < 19 else named
        )
    total = int(conn.execute(select(func.count()).select_from(jobs).where(*conds)).scalar() or 0)
    col = _SORT_COLUMNS[sort]
    order = [col.is_(None), col.desc() if descending else col.asc(), jobs.c.id.desc() if descending else jobs.c.id]
    rows = conn.execute(select(jobs).where(*conds).order_by(*order).limit(limit).offset(offset)).all()
    return list(rows), total


def node_jobs(conn: Connection, first_site: str = "") -> dict[tuple[str, int], list[tuple[int, str, str, float]]]:
    """The running jobs on each node, by (site, node index): (job id, tenant, name, GPUs it holds there)."""
    out: dict[tuple[str, int], list[tuple[int, str, str, float]]] = {}
    q = select(jobs.c.id, jobs.c.tenant, jobs.c.name, jobs.c.site, jobs.c.placement).where(jobs.c.state == "running")
    for jid, tenant, name, site, pl in conn.execute(q.order_by(jobs.c.id)):
        if not pl:
            continue
        for n, gpus in zip(pl["nodes"], pl["gpus"], strict=True):
            out.setdefault((site or first_site, n), []).append((jid, tenant, name, len(gpus) * pl["gpu_milli"] / 1000))
    return out


def node_history(conn: Connection, site: str, idx: int, first_site: str = "", scan: int = 20_000) -> dict[str, Any]:
    """What the store knows of one node's past, newest first: its state changes (failures, drains, repairs, with
    their reasons; ``node_log``), the drains and resumes asked for it (the inbox keeps them), and the jobs whose
    latest attempt ran on it (among the last ``scan`` jobs placed)."""
    site_row = conn.execute(select(sites.c.id).where(sites.c.name == site)).first()
    states: list[dict[str, Any]] = []
    if site_row is not None:
        logged = (
            select(node_log.c.time, node_log.c.state, node_log.c.reason)
            .where(node_log.c.site_id == site_row.id, node_log.c.idx == idx)
            .order_by(node_log.c.time.desc(), node_log.c.id.desc())
            .limit(500)
        )
        states = [{"time": t, "state": state, "reason": why} for t, state, why in conn.execute(logged)]
    asked = []
    for r in conn.execute(
        select(events).where(events.c.kind.in_(["drain", "resume"]), events.c.node == idx).order_by(events.c.seq.desc())
    ):
        if (r.payload or {}).get("site", first_site) in (site, None):
            asked.append({"time": r.time, "kind": r.kind, "reason": (r.payload or {}).get("reason", "")})
    ran = []
    q = (
        select(jobs.c.id, jobs.c.tenant, jobs.c.name, jobs.c.state, jobs.c.site, jobs.c.placement, jobs.c.started_at,
               jobs.c.ended_at, jobs.c.reason, jobs.c.attempt)
        .where(jobs.c.placement.is_not(None))
        .order_by(jobs.c.id.desc())
        .limit(scan)
    )  # fmt: skip
    for r in conn.execute(q):
        if (r.site or first_site) == site and r.placement and idx in r.placement.get("nodes", ()):
            ran.append(r)
    return {"states": states, "asked": asked, "jobs": ran}


def node_states(conn: Connection, site_id: int, only: list[int] | None = None) -> dict[int, tuple[str, str, float]]:
    """Node index → (state, reason, since when): the site's nodes that are not up, or, with ``only``, those nodes
    whatever their state. (The dashboard takes the rest of a node, its name, GPUs, rack and pod, from the site's
    topology: at 25,000 nodes, reading every row is most of a page's time.)"""
    q = select(nodes.c.idx, nodes.c.state, nodes.c.reason, nodes.c.updated_at).where(nodes.c.site_id == site_id)
    q = q.where(nodes.c.state != "up") if only is None else q.where(nodes.c.idx.in_(only))
    return {int(i): (str(s), str(r or ""), float(t)) for i, s, r, t in conn.execute(q)}
