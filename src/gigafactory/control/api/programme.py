"""The access programme's API: funders and contributions (admin), calls (admin opens; everyone finds them),
applications (tenants apply; reviewers review), awards (reviewers grant) and reports.

Who may do what (the tests hold an authorisation matrix of it):

=============================================  =======  ==================  ==================
endpoint                                        admin    reviewer            tenant
=============================================  =======  ==================  ==================
``POST /admin/funders``, contributions          yes      no (403)            no (403)
``GET /admin/funders``, ``/admin/contributions`` yes      no (403)            no (403)
``POST /admin/calls``                           yes      no (403)            no (403)
``GET /calls``                                  all      its calls           all (to apply)
``POST /calls/{id}/applications``               no       no (403)            yes, for itself
``GET /applications``, ``/applications/{id}``   all      its calls'          its own
``POST /applications/{id}/review``, ``/award``  yes      its calls' (else    no (404, as if
                                                         404)                absent)
``GET /awards``                                 all      its calls'          its own
``GET /reports/programme``                      all      its calls' awards   its own usage
=============================================  =======  ==================  ==================
"""

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import Engine as Store
from sqlalchemy import select

from gigafactory.control.api.errors import ApiError
from gigafactory.control.api.models import Name, Text, _Strict
from gigafactory.control.reports import BY, award_use, programme_report, to_csv
from gigafactory.control.store import accounts, inbox, programme
from gigafactory.control.store.schema import contributions, funders

__all__ = ["programme_router"]

# One-line fields: no control character (a newline would break tables and CSV rows downstream).
Line = r"^[^\x00-\x1f\x7f]*$"
Title = Annotated[Text, StringConstraints(min_length=1, max_length=300, pattern=Line)]
Free = Annotated[Text, StringConstraints(max_length=5000)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Hours = Annotated[float, Field(gt=0, le=1e12)]
Time = Annotated[float, Field(ge=0, le=1e11)]
IdParam = Annotated[int, Field(ge=1, le=2**62)]


class FunderIn(_Strict):
    name: Annotated[Text, StringConstraints(min_length=1, max_length=100, pattern=Line)]
    kind: Literal["eu", "member-state", "private"]
    country: Country | None = None
    tenant: Name | None = Field(None, description="A private investor's account (default: from its name).")


class ContributionIn(_Strict):
    site: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="The site it funds (default: the store's only site)."
    )
    amount_eur: Annotated[float, Field(ge=0, le=1e13)] = Field(description="The whole contribution to the site.")
    effective_at: Time | None = Field(None, description="When it took effect (Unix time; default now; not later).")


class CallIn(_Strict):
    name: Title
    site: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    mode: Literal["playground", "fast-lane", "large-scale"]
    budget_gpu_hours: Hours
    opens_at: Time | None = Field(None, description="Default: now.")
    closes_at: Time
    max_request_gpu_hours: Hours | None = Field(None, description="Default: the mode's (fast lane: 50,000).")
    response_days: Annotated[float, Field(ge=0, le=3650)] | None = None
    validity_days: Annotated[float, Field(gt=0, le=3650)] | None = None
    reviewers: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=100, description="Names of the reviewer tokens that review it."
    )


class ApplicationIn(_Strict):
    title: Title
    gpu_hours: Hours
    model_size: Annotated[Text, StringConstraints(max_length=200, pattern=Line)] = ""
    purpose: Free = ""
    organisation: Annotated[Text, StringConstraints(max_length=200, pattern=Line)] = ""
    country: Country | None = None


class ReviewIn(_Strict):
    state: Literal["under-review", "rejected"]
    note: Free = ""


class AwardIn(_Strict):
    gpu_hours: Hours | None = Field(None, description="Default: what the application asked.")
    start_at: Time | None = Field(None, description="Default: now.")
    note: Free = ""


class Created(BaseModel):
    id: int


def programme_router(
    store: Store, site_names: list[str], total_gpus: int, who: Any, admin: Any, on_tenants: Callable[[], None]
) -> APIRouter:
    r = APIRouter()
    Who = Annotated[accounts.Principal, Depends(who)]  # noqa: N806  (a type, as in app.py)
    Admin = Annotated[accounts.Principal, Depends(admin)]  # noqa: N806

    def fail(exc: programme.ProgrammeError, where: str = "body") -> ApiError:
        return ApiError(exc.status, str(exc), f"{where}.{exc.field}" if exc.field else None)

    def site_or_only(site: str | None) -> str:
        if site is not None:
            return site
        if len(site_names) > 1:
            raise ApiError(422, f"body.site: name the site; the sites are {', '.join(site_names)}", "body.site")
        return site_names[0]

    # ---- funders ------------------------------------------------------------------------------------------
    @r.post("/admin/funders", status_code=201, response_model=Created, tags=["programme"])
    def add_funder(body: FunderIn, _: Admin) -> Created:
        try:
            with store.begin() as conn:
                return Created(id=programme.add_funder(conn, body.name, body.kind, body.country, body.tenant))
        except programme.ProgrammeError as exc:
            raise fail(exc) from exc

    @r.get("/admin/funders", tags=["programme"])
    def list_funders(_: Admin) -> list[dict[str, Any]]:
        with store.connect() as conn:
            now = programme.contributions_at(conn, time.time())
            rows = conn.execute(select(funders).order_by(funders.c.id)).all()
        amount: dict[int, dict[str, float]] = {}
        for c in now:
            amount.setdefault(c["funder_id"], {})[c["site"]] = c["amount_eur"]
        return [{**dict(f._mapping), "contributions_eur": amount.get(f.id, {})} for f in rows]

    @r.post("/admin/funders/{funder_id}/contributions", status_code=201, tags=["programme"])
    def contribute(funder_id: IdParam, body: ContributionIn, _: Admin) -> dict[str, Any]:
        """Record a funder's whole contribution to a site from when it took effect; the shares follow (see
        ``docs/programme.md``), in the same transaction."""
        try:
            with store.begin() as conn:
                cid = programme.contribute(conn, funder_id, site_or_only(body.site), body.amount_eur,
                                           effective_at=body.effective_at, sites=site_names,
                                           capacity_gpus=total_gpus)  # fmt: skip
                shares = programme.apply_shares(conn, capacity_gpus=total_gpus, at=time.time())
                inbox.append(conn, "tenants")
        except programme.ProgrammeError as exc:
            raise fail(exc) from exc
        on_tenants()
        return {"id": cid, "shares": shares}

    @r.get("/admin/contributions", tags=["programme"])
    def contribution_history(_: Admin) -> list[dict[str, Any]]:
        with store.connect() as conn:
            rows = conn.execute(
                select(contributions, funders.c.name.label("funder"))
                .join(funders, funders.c.id == contributions.c.funder_id)
                .order_by(contributions.c.effective_at, contributions.c.id)
            ).all()
        return [dict(x._mapping) for x in rows]

    # ---- calls ----------------------------------------------------------------------------------------------
    @r.post("/admin/calls", status_code=201, response_model=Created, tags=["programme"])
    def open_call(body: CallIn, _: Admin) -> Created:
        try:
            with store.begin() as conn:
                cid = programme.open_call(
                    conn, name=body.name, site=site_or_only(body.site), sites=site_names, mode=body.mode,
                    budget_gpu_hours=body.budget_gpu_hours, opens_at=body.opens_at or time.time(),
                    closes_at=body.closes_at, max_request_gpu_hours=body.max_request_gpu_hours,
                    response_days=body.response_days, validity_days=body.validity_days, reviewers=body.reviewers,
                )  # fmt: skip
        except programme.ProgrammeError as exc:
            raise fail(exc) from exc
        return Created(id=cid)

    @r.get("/calls", tags=["programme"])
    def list_calls(p: Who) -> list[dict[str, Any]]:
        now = time.time()
        with store.connect() as conn:
            rows = programme.visible_calls(conn, p)
        out = []
        for c in rows:
            d = dict(c._mapping)
            d["open"] = c.opens_at <= now < c.closes_at
            d["left_gpu_hours"] = c.budget_gpu_hours - c.awarded_gpu_hours
            if not p.admin and not programme.reviews(c, p):
                d.pop("reviewers")
            out.append(d)
        return out

    # ---- applications ---------------------------------------------------------------------------------------
    @r.post("/calls/{call_id}/applications", status_code=201, response_model=Created, tags=["programme"])
    def apply(call_id: IdParam, body: ApplicationIn, p: Who) -> Created:
        if p.role != "tenant" or not p.tenant:
            raise ApiError(403, "only a tenant token applies, for its own tenant")
        try:
            with store.begin() as conn:
                aid = programme.apply(conn, call_id, p.tenant, title=body.title, gpu_hours=body.gpu_hours,
                                      model_size=body.model_size, purpose=body.purpose,
                                      organisation=body.organisation, country=body.country)  # fmt: skip
        except programme.ProgrammeError as exc:
            raise fail(exc, "path" if exc.field == "call_id" else "body") from exc
        return Created(id=aid)

    def application_out(row: Any, calls_by_id: dict[int, Any]) -> dict[str, Any]:
        d = dict(row._mapping)
        call = calls_by_id.get(row.call_id)
        if call is not None:
            d["due_at"] = row.submitted_at + call.response_days * programme.DAY_S
            d["overdue"] = row.state in ("submitted", "under-review") and time.time() > d["due_at"]
        return d

    @r.get("/applications", tags=["programme"])
    def list_applications(p: Who, call: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> list[dict[str, Any]]:
        with store.connect() as conn:
            rows = programme.visible_applications(conn, p, call)
            calls_by_id = {c.id: c for c in programme.visible_calls(conn, accounts.Principal("admin", None, 0))}
        return [application_out(x, calls_by_id) for x in rows]

    @r.get("/applications/{application_id}", tags=["programme"])
    def get_application(application_id: IdParam, p: Who) -> dict[str, Any]:
        with store.connect() as conn:
            rows = [x for x in programme.visible_applications(conn, p) if x.id == application_id]
            calls_by_id = {c.id: c for c in programme.visible_calls(conn, accounts.Principal("admin", None, 0))}
        if not rows:
            raise ApiError(404, f"no application {application_id}", "application_id")
        return application_out(rows[0], calls_by_id)

    @r.post("/applications/{application_id}/review", tags=["programme"])
    def review(application_id: IdParam, body: ReviewIn, p: Who) -> dict[str, Any]:
        try:
            with store.begin() as conn:
                programme.review(conn, application_id, p, body.state, body.note)
        except programme.ProgrammeError as exc:
            raise fail(exc, "path" if exc.field == "application_id" else "body") from exc
        return get_application(application_id, p)

    @r.post("/applications/{application_id}/award", status_code=201, tags=["programme"])
    def award(application_id: IdParam, body: AwardIn, p: Who) -> dict[str, Any]:
        """Grant an award against the call's budget: all or nothing, and never more than the budget has left,
        however many reviewers grant at once."""
        try:
            with store.begin() as conn:
                aid = programme.grant(conn, application_id, p, body.gpu_hours, start_at=body.start_at, note=body.note)
                inbox.append(conn, "awards")
        except programme.ProgrammeError as exc:
            raise fail(exc, "path" if exc.field == "application_id" else "body") from exc
        return next(a for a in list_awards(p) if a["id"] == aid)

    # ---- awards and reports ---------------------------------------------------------------------------------
    @r.get("/awards", tags=["programme"])
    def list_awards(p: Who) -> list[dict[str, Any]]:
        now = time.time()
        with store.connect() as conn:
            rows = programme.visible_awards(conn, p)
            used = award_use(conn, [x.id for x in rows], now)
        out = []
        for a in rows:
            d = dict(a._mapping)
            spent = used.get(a.id, 0.0)
            d["used_gpu_hours"] = round(spent, 4)
            d["left_gpu_hours"] = round(max(a.gpu_hours - spent, 0.0), 4)
            d["state"] = ("not yet valid" if now < a.start_at else "expired" if now >= a.end_at
                          else "used up" if spent >= a.gpu_hours else "active")  # fmt: skip
            out.append(d)
        return out

    @r.get("/reports/programme", tags=["programme"])
    def report(
        p: Who,
        by: Annotated[str, Query(description=f"one of: {', '.join(BY)}")] = "award",
        format: Annotated[Literal["json", "csv"], Query()] = "json",
    ) -> Any:
        """GPU-hours, energy and cost of the usage the caller may see, grouped ``by`` (see control/reports.py)."""
        if by not in BY:
            raise ApiError(422, f"query.by: {by!r}; allowed: {', '.join(BY)}", "query.by")
        with store.connect() as conn:
            rows = programme_report(conn, by, p)
        if format == "csv":
            name = f'attachment; filename="programme-{by}.csv"'
            return PlainTextResponse(to_csv(rows), media_type="text/csv", headers={"content-disposition": name})
        return rows

    return r
