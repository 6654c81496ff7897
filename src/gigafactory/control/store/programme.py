"""The access programme: funders and their contributions, calls, applications and awards. The only writer of the
``funders``, ``contributions``, ``calls``, ``applications`` and ``awards`` tables.

**From contributions to shares** (the rule, also in ``docs/programme.md``). A contribution is a funder's whole
contribution to a site from the time it takes effect; a later one replaces it, and every one is kept, with the time it
took effect and the time it was recorded. From the contributions in effect, summed over the store's sites:

* each private investor's account (``funders.tenant``, under the root) gets a share equal to its contribution in
  millions of euros;
* the public funders' contributions (the EU and member states) together make the share of the ``public`` account,
  the pool that access calls draw on. Awardees' accounts sit under it, and the ``award`` admit policy lets them run
  only on an award.

Shares are relative weights (the tenant tree normalises them), so a private investor that pays 30% of a site gets
30% of it when every account has work. A changed contribution rewrites the shares in the same transaction.

**Calls, applications, awards.** An admin opens a call on a site: its mode (the EuroHPC access modes: playground,
fast lane up to 50,000 GPU-hours, large scale), its GPU-hour budget, its opening and closing times, the largest single
request, the response time and the validity of an award. A tenant applies while it is open. A reviewer named on the
call (or an admin) moves an application from *submitted* to *under review*, then to *awarded* or *rejected*. An
award is granted against the call's budget in one conditional update (``awarded + hours <= budget``), so no two
concurrent awards can over-spend it, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from gigafactory.control.store import accounts
from gigafactory.control.store.schema import applications, awards, calls, contributions, funders, tenants, tokens
from gigafactory.core.awards import Award
from gigafactory.core.calendar import utc_minute
from gigafactory.core.errors import UserError
from gigafactory.core.tenants import ROOT, Tenant
from gigafactory.network.model import EU_MEMBER_STATES

__all__ = [
    "FUNDER_KINDS",
    "MODES",
    "POOL",
    "CallMode",
    "ProgrammeError",
    "add_funder",
    "apply",
    "contribute",
    "grant",
    "load_awards",
    "open_call",
    "review",
]

POOL = "public"
FUNDER_KINDS = ("eu", "member-state", "private")
DAY_S = 86_400.0
FAST_LANE_MAX_GPU_HOURS = 50_000.0


@dataclass(frozen=True, slots=True)
class CallMode:
    """An access mode's defaults (BENCHMARKS.md B6, the EuroHPC AI-factory access calls). Working days are taken as
    calendar days: a response of 4 working days is due within 4 days here, which is stricter, never looser."""

    name: str
    max_request_gpu_hours: float | None  # None: up to the call's budget
    response_days: float
    validity_days: float


MODES = {
    m.name: m
    for m in (
        # Playground: "entry level": no published size; 5,000 GPU-hours is our assumption (docs/programme.md).
        CallMode("playground", 5_000.0, 2.0, 90.0),
        CallMode("fast-lane", FAST_LANE_MAX_GPU_HOURS, 4.0, 90.0),
        CallMode("large-scale", None, 10.0, 365.0),
    )
}


class ProgrammeError(UserError):
    """Bad or impossible programme input; ``status`` is the HTTP code the API answers with."""

    def __init__(self, message: str, status: int = 422, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


# ---- funders and shares -------------------------------------------------------------------------------------
def add_funder(conn: Connection, name: str, kind: str, country: str | None = None, tenant: str | None = None) -> int:
    if kind not in FUNDER_KINDS:
        raise ProgrammeError(f"kind {kind!r}; allowed: {', '.join(FUNDER_KINDS)}", field="kind")
    if kind == "member-state" and (country is None or country not in EU_MEMBER_STATES):
        raise ProgrammeError(f"a member state needs its ISO code as country (got {country!r})", field="country")
    if kind == "private":
        tenant = tenant or _slug(name)
        if tenant in (ROOT, POOL):
            raise ProgrammeError(f"tenant {tenant!r} is reserved", field="tenant")
    elif tenant is not None:
        raise ProgrammeError("only a private investor has an account of its own; public money goes to the pool",
                             field="tenant")  # fmt: skip
    if conn.execute(select(funders.c.id).where(funders.c.name == name)).first() is not None:
        raise ProgrammeError(f"funder {name!r} exists already", 409, "name")
    row = conn.execute(funders.insert().values(name=name, kind=kind, country=country, tenant=tenant,
                                               created_at=time.time()))  # fmt: skip
    return int(row.inserted_primary_key[0])  # type: ignore[index]


def contribute(
    conn: Connection,
    funder_id: int,
    site: str,
    amount_eur: float,
    *,
    effective_at: float | None = None,
    sites: list[str],
    capacity_gpus: int,
) -> int:
    """Record ``funder_id``'s whole contribution to ``site`` from ``effective_at`` (default now; not in the future),
    then rewrite the shares. Everything happens in the caller's transaction, or not at all."""
    now = time.time()
    if not (math.isfinite(amount_eur) and amount_eur >= 0):
        raise ProgrammeError(f"amount_eur={amount_eur!r} must be a number >= 0", field="amount_eur")
    if site not in sites:
        raise ProgrammeError(f"unknown site {site!r}; sites: {', '.join(sites)}", 404, "site")
    when = now if effective_at is None else effective_at
    if when > now + 60:
        raise ProgrammeError("effective_at is in the future: record a change when it takes effect",
                             field="effective_at")  # fmt: skip
    if conn.execute(select(funders.c.id).where(funders.c.id == funder_id)).first() is None:
        raise ProgrammeError(f"no funder {funder_id}", 404, "funder_id")
    row = conn.execute(contributions.insert().values(funder_id=funder_id, site=site, amount_eur=amount_eur,
                                                     effective_at=when, recorded_at=now))  # fmt: skip
    apply_shares(conn, capacity_gpus=capacity_gpus, at=now)
    return int(row.inserted_primary_key[0])  # type: ignore[index]


def contributions_at(conn: Connection, at: float) -> list[dict[str, Any]]:
    """Each funder's contribution in effect at ``at``, per site (the latest that took effect by then)."""
    rows = conn.execute(
        select(contributions, funders.c.name, funders.c.kind, funders.c.country, funders.c.tenant)
        .join(funders, funders.c.id == contributions.c.funder_id)
        .where(contributions.c.effective_at <= at)
        .order_by(contributions.c.effective_at, contributions.c.id)
    ).all()
    latest: dict[tuple[int, str], Any] = {}
    for r in rows:
        latest[(r.funder_id, r.site)] = r
    return [dict(r._mapping) for _, r in sorted(latest.items())]


def apply_shares(conn: Connection, *, capacity_gpus: int, at: float) -> dict[str, float]:
    """Write the shares the rule gives (see the module); returns account -> share (millions of euros)."""
    private: dict[str, float] = {}
    public = 0.0
    for c in contributions_at(conn, at):
        if c["kind"] == "private":
            private[c["tenant"]] = private.get(c["tenant"], 0.0) + c["amount_eur"]
        else:
            public += c["amount_eur"]
    shares = {name: eur / 1e6 for name, eur in private.items()}
    if public > 0 or conn.execute(select(tenants.c.name).where(tenants.c.name == POOL)).first() is not None:
        shares[POOL] = public / 1e6
    current = {r.name: r for r in conn.execute(select(tenants)).all()}
    for name, share in sorted(shares.items()):
        old = current.get(name)
        share = max(share, 1e-6)  # a share must be > 0: an account whose funder pays nothing keeps almost none
        t = Tenant(name, share, old.parent if old is not None else ROOT, old.guarantee if old else None,
                   old.limit_gpus if old else None)  # fmt: skip
        accounts.put_tenant(conn, t, capacity_gpus=capacity_gpus)
    return shares


# ---- calls ----------------------------------------------------------------------------------------------------
def open_call(
    conn: Connection,
    *,
    name: str,
    site: str,
    sites: list[str],
    mode: str,
    budget_gpu_hours: float,
    opens_at: float,
    closes_at: float,
    max_request_gpu_hours: float | None = None,
    response_days: float | None = None,
    validity_days: float | None = None,
    reviewers: list[str] | None = None,
) -> int:
    m = MODES.get(mode)
    if m is None:
        raise ProgrammeError(f"mode {mode!r}; allowed: {', '.join(MODES)}", field="mode")
    if site not in sites:
        raise ProgrammeError(f"unknown site {site!r}; sites: {', '.join(sites)}", 404, "site")
    _positive("budget_gpu_hours", budget_gpu_hours)
    if not closes_at > opens_at:
        raise ProgrammeError(f"closes_at ({closes_at:.0f}) must be after opens_at ({opens_at:.0f})", field="closes_at")
    biggest = max_request_gpu_hours
    if biggest is None:  # the mode's largest request, or the whole budget if that is less
        biggest = min(m.max_request_gpu_hours or budget_gpu_hours, budget_gpu_hours)
    _positive("max_request_gpu_hours", biggest)
    if mode == "fast-lane" and biggest > FAST_LANE_MAX_GPU_HOURS:
        raise ProgrammeError(f"max_request_gpu_hours={biggest:g}: the fast lane grants at most 50,000 GPU-hours",
                             field="max_request_gpu_hours")  # fmt: skip
    if biggest > budget_gpu_hours:
        raise ProgrammeError(f"max_request_gpu_hours={biggest:g} is above the budget ({budget_gpu_hours:g})",
                             field="max_request_gpu_hours")  # fmt: skip
    response = m.response_days if response_days is None else response_days
    validity = m.validity_days if validity_days is None else validity_days
    _positive("response_days", response, zero=True)
    _positive("validity_days", validity)
    known = {r.name for r in conn.execute(select(tokens.c.name).where(tokens.c.role == "reviewer",
                                                                       tokens.c.revoked.is_(False))).all()}  # fmt: skip
    unknown = sorted(set(reviewers or []) - known)
    if unknown:
        raise ProgrammeError(f"no reviewer token named {unknown[0]!r} (create one: admin token --reviewer --name)",
                             field="reviewers")  # fmt: skip
    row = conn.execute(
        calls.insert().values(name=name, site=site, mode=mode, budget_gpu_hours=budget_gpu_hours,
                              awarded_gpu_hours=0.0, max_request_gpu_hours=biggest, opens_at=opens_at,
                              closes_at=closes_at, response_days=response, validity_days=validity,
                              reviewers=sorted(set(reviewers or [])), created_at=time.time())
    )  # fmt: skip
    return int(row.inserted_primary_key[0])  # type: ignore[index]


def get_call(conn: Connection, call_id: int) -> Any:
    row = conn.execute(select(calls).where(calls.c.id == call_id)).first()
    if row is None:
        raise ProgrammeError(f"no call {call_id}", 404, "call_id")
    return row


def reviews(row: Any, who: accounts.Principal) -> bool:
    """May ``who`` review the call ``row``: an admin, or a reviewer it names."""
    return who.admin or (who.role == "reviewer" and who.name in (row.reviewers or []))


# ---- applications ---------------------------------------------------------------------------------------------
def apply(
    conn: Connection,
    call_id: int,
    tenant: str,
    *,
    title: str,
    gpu_hours: float,
    model_size: str = "",
    purpose: str = "",
    organisation: str = "",
    country: str | None = None,
    now: float | None = None,
) -> int:
    now = time.time() if now is None else now
    call = get_call(conn, call_id)
    if now < call.opens_at:
        raise ProgrammeError(f"call {call_id} opens at {utc_minute(call.opens_at)}; it is not open yet", 409, "call_id")
    if now >= call.closes_at:
        raise ProgrammeError(f"call {call_id} closed at {utc_minute(call.closes_at)}", 409, "call_id")
    _positive("gpu_hours", gpu_hours)
    if gpu_hours > call.max_request_gpu_hours:
        raise ProgrammeError(f"gpu_hours={gpu_hours:g}: call {call_id} grants at most "
                             f"{call.max_request_gpu_hours:g} GPU-hours to one application",
                             field="gpu_hours")  # fmt: skip
    if country is not None and country not in EU_MEMBER_STATES:
        raise ProgrammeError(f"country {country!r} is not the ISO code of an EU member state", field="country")
    row = conn.execute(
        applications.insert().values(call_id=call_id, tenant=tenant, title=title, gpu_hours=gpu_hours,
                                     model_size=model_size, purpose=purpose, organisation=organisation or tenant,
                                     country=country, state="submitted", submitted_at=now, note="")
    )  # fmt: skip
    return int(row.inserted_primary_key[0])  # type: ignore[index]


_MOVES = {"under-review": ("submitted",), "rejected": ("submitted", "under-review")}


def review(conn: Connection, application_id: int, who: accounts.Principal, state: str, note: str = "") -> None:
    """Move an application to ``under-review`` or ``rejected`` (an award is :func:`grant`)."""
    if state not in _MOVES:
        raise ProgrammeError(f"state {state!r}; a review moves to: {', '.join(_MOVES)} (or grant an award)",
                             field="state")  # fmt: skip
    app_row = _application_for(conn, application_id, who)
    done = conn.execute(
        applications.update()
        .where(applications.c.id == application_id, applications.c.state.in_(_MOVES[state]))
        .values(state=state, reviewer=_reviewer(who), note=note,
                decided_at=time.time() if state == "rejected" else None)
    ).rowcount  # fmt: skip
    if not done:
        raise ProgrammeError(f"application {application_id} is {app_row.state}; it cannot move to {state}", 409,
                             "state")  # fmt: skip


def grant(
    conn: Connection,
    application_id: int,
    who: accounts.Principal,
    gpu_hours: float | None = None,
    *,
    start_at: float | None = None,
    note: str = "",
) -> int:
    """Award the application ``gpu_hours`` (default: what it asked), valid from ``start_at`` (default now) for the
    call's validity. Refused, changing nothing, when it is more than the call allows one application or than its
    budget has left, or when the application was decided already."""
    now = time.time()
    app_row = _application_for(conn, application_id, who)
    call = get_call(conn, app_row.call_id)
    hours = app_row.gpu_hours if gpu_hours is None else gpu_hours
    _positive("gpu_hours", hours)
    if hours > call.max_request_gpu_hours:
        raise ProgrammeError(f"gpu_hours={hours:g}: call {call.id} grants at most {call.max_request_gpu_hours:g} "
                             "GPU-hours to one application", field="gpu_hours")  # fmt: skip
    start = now if start_at is None else start_at
    if not now - 3600 <= start <= now + 366 * DAY_S:
        raise ProgrammeError(f"start_at={start:.0f} ({utc_minute(start)}): an award starts between an hour ago and "
                             "a year from now", field="start_at")  # fmt: skip
    end = start + call.validity_days * DAY_S
    taken = conn.execute(
        calls.update()
        .where(calls.c.id == call.id, calls.c.awarded_gpu_hours + hours <= calls.c.budget_gpu_hours + 1e-9)
        .values(awarded_gpu_hours=calls.c.awarded_gpu_hours + hours)
    ).rowcount
    if not taken:
        left = get_call(conn, call.id)
        raise ProgrammeError(f"call {call.id} has {left.budget_gpu_hours - left.awarded_gpu_hours:g} of its "
                             f"{left.budget_gpu_hours:g} GPU-hours left; this award asks {hours:g}", 409,
                             "gpu_hours")  # fmt: skip
    moved = conn.execute(
        applications.update()
        .where(applications.c.id == application_id, applications.c.state.in_(("submitted", "under-review")))
        .values(state="awarded", reviewer=_reviewer(who), decided_at=now, note=note)
    ).rowcount
    if not moved:
        raise ProgrammeError(f"application {application_id} was decided already ({app_row.state})", 409, "state")
    row = conn.execute(
        awards.insert().values(application_id=application_id, call_id=call.id, tenant=app_row.tenant,
                               site=call.site, gpu_hours=hours, start_at=start, end_at=end, created_at=now,
                               changed_at=now)
    )  # fmt: skip
    return int(row.inserted_primary_key[0])  # type: ignore[index]


def _application_for(conn: Connection, application_id: int, who: accounts.Principal) -> Any:
    row = conn.execute(select(applications).where(applications.c.id == application_id)).first()
    if row is None:
        raise ProgrammeError(f"no application {application_id}", 404, "application_id")
    call = get_call(conn, row.call_id)
    if not reviews(call, who):
        # (A tenant or a reviewer of other calls learns nothing: the same answer as for no such application.)
        raise ProgrammeError(f"no application {application_id}", 404, "application_id")
    return row


def _reviewer(who: accounts.Principal) -> str:
    return who.name or ("admin" if who.admin else "reviewer")


# ---- reading ------------------------------------------------------------------------------------------------
def visible_calls(conn: Connection, who: accounts.Principal) -> list[Any]:
    """Admins and tenants see every call (tenants must find calls to apply to); reviewers see theirs."""
    rows = conn.execute(select(calls).order_by(calls.c.id)).all()
    if who.role == "reviewer":
        return [r for r in rows if reviews(r, who)]
    return list(rows)


def visible_applications(conn: Connection, who: accounts.Principal, call_id: int | None = None) -> list[Any]:
    q = select(applications).order_by(applications.c.id)
    if call_id is not None:
        q = q.where(applications.c.call_id == call_id)
    if who.admin:
        return list(conn.execute(q).all())
    if who.role == "reviewer":
        mine = [c.id for c in visible_calls(conn, who)]
        return list(conn.execute(q.where(applications.c.call_id.in_(mine))).all())
    return list(conn.execute(q.where(applications.c.tenant == who.tenant)).all())


def visible_awards(conn: Connection, who: accounts.Principal) -> list[Any]:
    q = select(awards, calls.c.name.label("call_name")).join(calls, calls.c.id == awards.c.call_id)
    q = q.order_by(awards.c.id)
    if who.admin:
        return list(conn.execute(q).all())
    if who.role == "reviewer":
        mine = [c.id for c in visible_calls(conn, who)]
        return list(conn.execute(q.where(awards.c.call_id.in_(mine))).all())
    return list(conn.execute(q.where(awards.c.tenant == who.tenant)).all())


def load_awards(conn: Connection) -> list[tuple[Award, str, float]]:
    """Every award as the engine takes it, with its site and its use by billed attempts (GPU-seconds)."""
    from gigafactory.control.store.schema import usage

    used = dict(conn.execute(select(usage.c.award, func.sum(usage.c.gpu_seconds))
                             .where(usage.c.award.is_not(None)).group_by(usage.c.award)).all())  # fmt: skip
    rows = conn.execute(
        select(awards, calls.c.name.label("call_name")).join(calls, calls.c.id == awards.c.call_id)
    ).all()
    return [
        (Award(int(r.id), r.tenant, float(r.gpu_hours), float(r.start_at), float(r.end_at), r.call_name), r.site,
         float(used.get(r.id) or 0.0))
        for r in rows
    ]  # fmt: skip


def award_sites(conn: Connection) -> dict[int, str]:
    return {int(r.id): r.site for r in conn.execute(select(awards.c.id, awards.c.site)).all()}


def tenant_award_sites(conn: Connection, now: float) -> dict[str, set[str]]:
    """The sites each tenant holds awards on that have not ended."""
    out: dict[str, set[str]] = {}
    for r in conn.execute(select(awards.c.tenant, awards.c.site).where(and_(awards.c.end_at > now))).all():
        out.setdefault(r.tenant, set()).add(r.site)
    return out


def _positive(name: str, value: float, *, zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if zero else value > 0)
    if not ok:
        raise ProgrammeError(f"{name}={value!r} must be a number {'>= 0' if zero else '> 0'}", field=name)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._").lower()[:100] or "investor"
