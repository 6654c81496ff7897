"""Programme reports: GPU-hours, energy and cost, by funder, member state, organisation, call, award or tenant.

Read-only. Every figure comes from the usage table (one record per job attempt, billed from the executor's own
times: see the daemon), so a report adds up to the site's accounting exactly.

* **GPU-hours**: the attempt's GPUs × its run time.
* **Energy**: GPU-hours × the site's system power per GPU at full load (``core/hardware.py``: the node's or NVL72
  rack's maximum power over its GPUs) × the site's PUE. A site without figures of its own (a lone site started
  without a network file) takes :data:`DEFAULT_PUE` and :data:`DEFAULT_PRICE_EUR_MWH`.
* **Cost**: energy × the site's electricity price. (Energy only: capital and operations are the planner's.)

Who a record counts for:

* **award** and **call**: the award the attempt charged, and that award's call;
* **organisation**: the organisation named on the awarded application; other usage counts for its tenant;
* **member-state**: the country named on the awarded application, or a private investor's own country for its
  account's usage; otherwise ``unknown``;
* **funder**: usage of a private investor's account counts for that investor; usage charged to awards, or by
  accounts under the ``public`` pool, is shared among the public funders (the EU and member states) in proportion
  to their contributions to the site in effect at the time of the report; the rest is ``not funded``;
* **tenant**: the account that ran it.

Who sees what: an admin sees every record; a tenant only its own; a reviewer the usage charged to awards of the
calls it reviews.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from gigafactory.control.store import programme
from gigafactory.control.store.accounts import Principal, load_tree
from gigafactory.control.store.schema import applications, awards, calls, funders, jobs, usage
from gigafactory.control.store.site import load_sites
from gigafactory.core.errors import UserError
from gigafactory.core.hardware import system_watts

__all__ = ["BY", "DEFAULT_PRICE_EUR_MWH", "DEFAULT_PUE", "award_use", "programme_report", "to_csv"]

BY = ("funder", "member-state", "organisation", "call", "award", "tenant")
DEFAULT_PUE = 1.3  # the top of B6's 1.1-1.3 for new large sites (docs/planning.md)
DEFAULT_PRICE_EUR_MWH = 190.0  # EU non-household electricity, H2 2024 average (B6)
COLUMNS = ("key", "label", "gpu_hours", "energy_mwh", "cost_eur", "attempts")


def programme_report(conn: Connection, by: str, who: Principal) -> list[dict[str, Any]]:
    if by not in BY:
        raise UserError(f"by={by!r}; allowed: {', '.join(BY)}")
    per_site = _site_figures(conn)
    award_rows = {r.id: r for r in conn.execute(
        select(awards.c.id, awards.c.call_id, awards.c.tenant, calls.c.name.label("call_name"),
               applications.c.organisation, applications.c.country, applications.c.title)
        .join(calls, calls.c.id == awards.c.call_id)
        .join(applications, applications.c.id == awards.c.application_id)
    ).all()}  # fmt: skip
    q = select(usage.c.tenant, usage.c.site, usage.c.award, usage.c.gpu_seconds)
    if not who.admin:
        if who.role == "reviewer":
            mine = [a for a, r in award_rows.items() if r.call_id in {c.id for c in programme.visible_calls(conn, who)}]
            q = q.where(usage.c.award.in_(mine))
        else:
            q = q.where(usage.c.tenant == who.tenant)
    records = conn.execute(q).all()
    investors = {r.tenant: r for r in conn.execute(select(funders).where(funders.c.kind == "private")).all()}
    tree = load_tree(conn)
    pooled = set()
    if tree is not None and programme.POOL in tree:
        pooled = {t for t in tree.leaves() if programme.POOL in tree.path(t)}
    public_split = _public_split(conn) if by == "funder" else {}
    out: dict[str, dict[str, Any]] = {}

    def add(key: str, label: str, gpu_h: float, site: str, weight: float = 1.0) -> None:
        watts, pue, price = per_site.get(site, (1000.0, DEFAULT_PUE, DEFAULT_PRICE_EUR_MWH))
        mwh = gpu_h * weight * watts * pue / 1e6
        row = out.setdefault(key, {"key": key, "label": label, "gpu_hours": 0.0, "energy_mwh": 0.0, "cost_eur": 0.0,
                                   "attempts": 0})  # fmt: skip
        row["gpu_hours"] += gpu_h * weight
        row["energy_mwh"] += mwh
        row["cost_eur"] += mwh * price
        row["attempts"] += 1

    for u in records:
        gpu_h = float(u.gpu_seconds) / 3600.0
        a = award_rows.get(u.award) if u.award is not None else None
        site = u.site or ""
        if by == "award":
            add(str(u.award) if a else "none", f"{a.title} ({a.tenant})" if a else "no award", gpu_h, site)
        elif by == "call":
            add(str(a.call_id) if a else "none", a.call_name if a else "no call", gpu_h, site)
        elif by == "organisation":
            org = a.organisation if a else u.tenant
            add(org, org, gpu_h, site)
        elif by == "member-state":
            inv = investors.get(u.tenant)
            country = (a.country if a else None) or (inv.country if inv is not None else None) or "unknown"
            add(country, country, gpu_h, site)
        elif by == "tenant":
            add(u.tenant, u.tenant, gpu_h, site)
        else:  # funder
            inv = investors.get(u.tenant)
            if inv is not None and a is None:
                add(inv.name, f"{inv.name} (private)", gpu_h, site)
            elif (a is not None or u.tenant in pooled) and public_split.get(site):
                for name, (kind, weight) in public_split[site].items():
                    add(name, f"{name} ({kind})", gpu_h, site, weight)  # (each counts the attempts it shares)
            else:
                add("not funded", "not funded", gpu_h, site)
    rows = sorted(out.values(), key=lambda r: (-r["gpu_hours"], r["key"]))
    for r in rows:
        r["gpu_hours"] = round(r["gpu_hours"], 4)
        r["energy_mwh"] = round(r["energy_mwh"], 9)
        r["cost_eur"] = round(r["cost_eur"], 6)
    return rows


def award_use(conn: Connection, ids: list[int], now: float | None = None) -> dict[int, float]:
    """GPU-hours used of each of the awards ``ids``: billed to it by attempts that ended, and, with ``now``, used
    so far by the attempts that charge it and are not billed yet (running, or stopped and still stopping)."""
    q = select(usage.c.award, func.sum(usage.c.gpu_seconds)).where(usage.c.award.in_(ids)).group_by(usage.c.award)
    out = {int(a): float(g) / 3600.0 for a, g in conn.execute(q).all()}
    if now is not None:
        unbilled = (
            select(jobs.c.charged_award, jobs.c.gpus, jobs.c.gpu_milli, jobs.c.started_at)
            .outerjoin(usage, (usage.c.job_id == jobs.c.id) & (usage.c.attempt == jobs.c.attempt))
            .where(jobs.c.charged_award.in_(ids), jobs.c.attempt > 0, jobs.c.started_at.is_not(None),
                   usage.c.id.is_(None))
        )  # fmt: skip
        for a, gpus, milli, started in conn.execute(unbilled).all():
            if started is not None:
                out[int(a)] = out.get(int(a), 0.0) + gpus * milli / 1000 * max(now - started, 0.0) / 3600.0
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r[k]) for k in COLUMNS})
    return buf.getvalue()


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR) gets a leading
    apostrophe: organisations and titles are a tenant's free text, and tenants are hostile."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _site_figures(conn: Connection) -> dict[str, tuple[float, float, float]]:
    """Site name -> (system watts per GPU, PUE, EUR/MWh)."""
    out = {}
    for st in load_sites(conn):
        topo = st.topology
        gpus = [int(g) for g in topo.node_gpus]
        watts = sum(system_watts(topo.models[int(m)]) * g for m, g in zip(topo.node_model, gpus, strict=True))
        price = st.price_eur_mwh if st.price_eur_mwh is not None else DEFAULT_PRICE_EUR_MWH
        out[st.name] = (watts / (sum(gpus) or 1), st.pue or DEFAULT_PUE, price)
    return out


def _public_split(conn: Connection) -> dict[str, dict[str, tuple[str, float]]]:
    """Site -> public funder -> (kind, share of the site's public money), as contributions stand now."""
    per_site: dict[str, dict[str, tuple[str, float]]] = {}
    for c in programme.contributions_at(conn, time.time()):
        if c["kind"] != "private" and c["amount_eur"] > 0:
            per_site.setdefault(c["site"], {})[c["name"]] = (c["kind"], c["amount_eur"])
    for site, funded in per_site.items():
        total = sum(v for _, v in funded.values())
        per_site[site] = {n: (k, v / total) for n, (k, v) in sorted(funded.items())}
    return per_site
