"""The dashboard: server-rendered pages (Jinja2) with Plotly charts, served by the API. No front-end build step;
plotly.js is served from the installed Python package, so the dashboard works on a site with no internet.

Pages: the site map (``/``), the queue (``/queue``), tenants' usage against their share (``/tenants``), one
job's story (``/jobs/{id}``), utilisation (``/utilisation``) and the access programme (``/programme``: calls,
applications, awards and usage reports).

A browser signs in with a token typed into the form (posted, so it stays out of URLs and logs), or with a one-time
sign-in link (``/login?code=...``, from ``POST /api/v1/sign-in-links``; the demo prints them). Either way it gets
a session: the HTTP-only cookie holds the session's secret, never the token, and the session ends after
twelve hours, or when its token is revoked. The pages show what that token may see, exactly as the API does.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import numpy as np
import plotly
import plotly.graph_objects as go
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from gigafactory.control.api.app import COOKIE, read_log
from gigafactory.control.api.errors import ApiError
from gigafactory.control.identity import isolating, isolation_note
from gigafactory.control.queries import node_use, queue, site_summaries, tenant_summaries, utilisation_series
from gigafactory.control.reports import BY, award_use, programme_report
from gigafactory.control.store import accounts, programme
from gigafactory.control.store import desk as deskstore
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.db import get_meta
from gigafactory.control.store.programme import ProgrammeError
from gigafactory.control.store.site import load_sites
from gigafactory.core.compute import sig2
from gigafactory.core.errors import RequestError
from gigafactory.core.hostlist import compress
from gigafactory.desk.classify import classify, questionnaire
from gigafactory.report.html import STYLE, figure_div

__all__ = ["install_pages"]

PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"

_env = Environment(loader=PackageLoader("gigafactory.control.web", "templates"), autoescape=select_autoescape())


def _when(t: float | None, now: float) -> str:
    if t is None or not math.isfinite(t):
        return "—"
    delta = t - now
    stamp = dt.datetime.fromtimestamp(t).strftime("%H:%M:%S")
    if abs(delta) < 1:
        return f"{stamp} (now)"
    span = _span(abs(delta))
    return f"{stamp} (in {span})" if delta > 0 else f"{stamp} ({span} ago)"


def _span(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


_env.globals["when"] = _when
_env.globals["span"] = _span
_env.globals["sig2"] = sig2


# Above this many nodes the site map shows one cell per rack (NVLink domain): 25,000 node cells are a 3 MB page.
SITE_MAP_NODES = 1000


def install_pages(app: FastAPI) -> None:
    store = app.state.store
    site = app.state.site
    sites = app.state.sites
    by_name = {x.name: x for x in sites}
    total_gpus = sum(x.num_gpus for x in sites)
    with store.connect() as conn:
        network_name = get_meta(conn, "network") or "network"

    def who(request: Request) -> accounts.Principal | None:
        secret = request.cookies.get(COOKIE)
        return app.state.auth.session(secret) if secret else None

    def render(name: str, request: Request, p: accounts.Principal, **ctx: Any) -> HTMLResponse:
        html = _env.get_template(name).render(
            style=STYLE, site=site, who=p, now=time.time(), path=request.url.path, isolated=isolating(),
            isolation=isolation_note(), network_size=len(sites), network_name=network_name, **ctx,
        )  # fmt: skip
        return HTMLResponse(html)

    def signed_in(request: Request) -> accounts.Principal:
        p = who(request)
        if p is None:
            raise _LoginError()
        return p

    @app.exception_handler(_LoginError)
    async def _to_login(request: Request, _: _LoginError) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="application/javascript", headers={"Cache-Control": "max-age=86400"})

    @app.get("/login", include_in_schema=False)
    def login(
        code: Annotated[str | None, Query(max_length=200)] = None,
        next: Annotated[str, Query(max_length=200, pattern=r"^/[^/].*$|^/$")] = "/",
    ) -> Response:
        if code is None:
            return HTMLResponse(_env.get_template("login.html").render(style=STYLE, error=None, next=next))
        with store.begin() as conn:
            p = accounts.lookup_session(conn, code, kind="code")
        if p is None:
            page = _env.get_template("login.html").render(
                style=STYLE, error="That sign-in link has expired or was used already.", next=next
            )
            return HTMLResponse(page, status_code=401)
        return session_for(p, next)

    @app.post("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        """The sign-in form posts the token, so that it stays out of URLs and logs."""
        form = parse_qs((await request.body())[:4096].decode(errors="replace"))
        nxt = (form.get("next") or ["/"])[0]
        return sign_in((form.get("token") or [""])[0].strip(), nxt if re.fullmatch(r"/([^/].*)?", nxt) else "/")

    def sign_in(token: str, nxt: str) -> Response:
        """A valid token starts a session, and the browser goes on to ``nxt``."""
        p = app.state.auth.lookup(token) if token else None
        if p is None:
            page = _env.get_template("login.html").render(style=STYLE, error="That token is not valid.", next=nxt)
            return HTMLResponse(page, status_code=401)
        return session_for(p, nxt)

    def session_for(p: accounts.Principal, nxt: str) -> Response:
        with store.begin() as conn:
            secret = accounts.create_session(conn, p.token_id)
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(COOKIE, secret, httponly=True, samesite="strict", max_age=int(accounts.SESSION_S))
        return resp

    @app.get("/logout", include_in_schema=False)
    def logout() -> Response:
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    @app.get("/", include_in_schema=False)
    def site_map(
        request: Request, site_name: Annotated[str | None, Query(alias="site", max_length=64)] = None
    ) -> HTMLResponse:
        p = signed_in(request)
        shown = by_name.get(site_name or "", sites[0])
        with store.connect() as conn:
            rows, use = node_use(conn, sites[0].name)
            counts = jobstore.count_by_state(conn, None if p.admin else p.tenant)
            network = site_summaries(conn, load_sites(conn)) if len(sites) > 1 else []
        rows = [r for r in rows if r["site"] == shown.name]
        used = {idx: v for (where, idx), v in use.items() if where == shown.name}
        pods: dict[int, dict[int, list[dict[str, Any]]]] = {}
        for r in rows:
            frac = used.get(r["idx"], 0.0) / r["gpus"] if r["gpus"] else 0.0
            cell = {**r, "used": used.get(r["idx"], 0.0), "css": _node_css(r["state"], frac)}
            pods.setdefault(r["pod"], {}).setdefault(r["domain"], []).append(cell)
        in_use = sum(used.values())
        down = sum(1 for r in rows if r["state"] == "down")
        drained = sum(1 for r in rows if r["state"] == "drained")
        racks = None
        if len(rows) > SITE_MAP_NODES:
            racks = {pod: [_rack(dom, cells) for dom, cells in sorted(doms.items())] for pod, doms in pods.items()}
        return render(
            "site.html", request, p, pods=pods, racks=racks, in_use=in_use, down=down, drained=drained,
            counts=counts, nodes=len(rows), shown=shown, network=network,
        )  # fmt: skip

    @app.get("/queue", include_in_schema=False)
    def queue_page(request: Request) -> HTMLResponse:
        p = signed_in(request)
        with store.connect() as conn:
            rows = queue(conn, None if p.admin else p.tenant, 500)
        names = {x.name: x.node_names for x in sites}
        nodes = [compress(names.get(r.site or sites[0].name, [])[n] for n in (r.placement or {}).get("nodes", []))
                 for _, r in rows]  # fmt: skip
        return render("queue.html", request, p, rows=rows, nodes=nodes, networked=len(sites) > 1)

    def usage_window(p: accounts.Principal, hours: float) -> tuple[np.ndarray, list[dt.datetime], dict[str, Any]]:
        """GPUs in use per tenant over the last ``hours`` (a tenant sees only itself): times, as dates, series."""
        now = time.time()
        with store.connect() as conn:
            x, series = utilisation_series(
                conn, since=now - hours * 3600, until=now, tenant=None if p.admin else p.tenant
            )
        return x, [dt.datetime.fromtimestamp(t) for t in x], series

    @app.get("/tenants", include_in_schema=False)
    def tenants_page(request: Request, hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24.0) -> HTMLResponse:
        p = signed_in(request)
        with store.connect() as conn:
            summaries = tenant_summaries(conn, None if p.admin else p.tenant)
        x, xs, series = usage_window(p, hours)
        fig = go.Figure()
        for s in summaries:
            fig.add_trace(go.Scatter(x=xs, y=series.get(s["name"], np.zeros(len(x))), mode="lines",
                                     name=f"{s['name']} used"))  # fmt: skip
            owed = np.full(len(x), s["share_fraction"] * total_gpus)
            fig.add_trace(go.Scatter(x=xs, y=owed, mode="lines", line={"dash": "dash"}, name=f"{s['name']} share"))
        fig.update_layout(title=f"GPUs in use against share, last {hours:g} h", yaxis_title="GPUs")
        return render("tenants.html", request, p, tenants=summaries, chart=figure_div(fig), hours=hours)

    @app.get("/utilisation", include_in_schema=False)
    def utilisation_page(request: Request, hours: Annotated[float, Query(gt=0, le=24 * 366)] = 6.0) -> HTMLResponse:
        p = signed_in(request)
        x, xs, series = usage_window(p, hours)
        fig = go.Figure()
        for name in sorted(series):
            fig.add_trace(go.Scatter(x=xs, y=series[name] / total_gpus, stackgroup="one", name=name))
        fig.update_layout(title="GPU utilisation by tenant", yaxis_title="share of the site's GPUs")
        fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
        total = sum(series.values(), np.zeros(len(x)))
        mean = float(total.mean() / total_gpus) if len(x) else 0.0
        span = _span(time.time() - float(x[0])) if len(x) else f"{hours:g} h"
        return render("utilisation.html", request, p, chart=figure_div(fig), hours=hours, mean=mean, span=span)

    @app.get("/jobs/{job_id}", include_in_schema=False)
    def job_page(request: Request, job_id: Annotated[int, PathParam(ge=1, le=2**62)]) -> HTMLResponse:
        p = signed_in(request)
        with store.connect() as conn:
            row = jobstore.get_job(conn, job_id)
            story = jobstore.story(conn, job_id) if row is not None else []
        if row is None or (not p.admin and row.tenant != p.tenant):
            raise ApiError(404, f"no job {job_id}", "job_id")
        logs = {}
        if row.attempt:
            for stream in ("stdout", "stderr"):
                logs[stream] = read_log(row, row.attempt, stream, 16 * 1024)
        names = by_name.get(row.site or "", sites[0]).node_names
        nodes = compress(names[n] for n in (row.placement or {}).get("nodes", []))
        return render("job.html", request, p, job=row, story=story, logs=logs, nodes=nodes)

    @app.get("/programme", include_in_schema=False)
    def programme_page(request: Request, by: Annotated[str, Query(max_length=20)] = "call") -> HTMLResponse:
        """The access programme as the caller may see it: calls, applications, awards, and usage by ``by``."""
        p = signed_in(request)
        if by not in BY:
            raise ApiError(422, f"query.by: {by!r}; allowed: {', '.join(BY)}", "query.by")
        now = time.time()
        everyone = accounts.Principal("admin", None, 0)
        with store.connect() as conn:
            calls = programme.visible_calls(conn, p)
            all_calls = {c.id: c for c in programme.visible_calls(conn, everyone)}
            apps = programme.visible_applications(conn, p)
            awards = programme.visible_awards(conn, p)
            report = programme_report(conn, by, p)
            used = award_use(conn, [a.id for a in awards], now)
        due = {a.id: a.submitted_at + all_calls[a.call_id].response_days * 86_400 for a in apps}
        return render("programme.html", request, p, calls=calls, apps=apps, awards=awards, used=used, due=due,
                      report=report, by=by, kinds=BY, now_s=now)  # fmt: skip

    @app.get("/desk", include_in_schema=False)
    def desk_page(request: Request) -> HTMLResponse:
        """The AI Act desk: the caller's models with where each stands, and their notification clocks."""
        p = signed_in(request)
        tenant = None if p.admin else p.tenant
        ledgers = []
        with store.begin() as conn:
            for m in deskstore.visible_models(conn, tenant):
                try:
                    ledgers.append(deskstore.model_ledger(conn, int(m.id), tenant))
                except ProgrammeError:  # (a run on a GPU model of unknown peak: its own page says so)
                    continue
        return render("desk.html", request, p, ledgers=ledgers, now_s=time.time())

    @app.get("/desk/models/{model_id}", include_in_schema=False)
    def desk_model_page(request: Request, model_id: Annotated[int, PathParam(ge=1, le=2**62)]) -> HTMLResponse:
        p = signed_in(request)
        try:
            with store.begin() as conn:
                led = deskstore.model_ledger(conn, model_id, None if p.admin else p.tenant)
        except ProgrammeError as exc:
            raise ApiError(exc.status, str(exc), "model_id") from exc
        return render("desk_model.html", request, p, led=led, now_s=time.time())

    @app.get("/desk/classify", include_in_schema=False)
    def classify_form(request: Request) -> HTMLResponse:
        p = signed_in(request)
        return render("desk_classify.html", request, p, q=questionnaire(), result=None, error=None, given={},
                      calendar="original")  # fmt: skip

    @app.post("/desk/classify", include_in_schema=False)
    async def classify_submit(request: Request) -> HTMLResponse:
        """The questionnaire as a web form: the same classifier as the API and the CLI."""
        p = signed_in(request)
        form = parse_qs((await request.body())[: 64 * 1024].decode(errors="replace"))
        q = questionnaire()
        answers: dict[str, Any] = {}
        for question in q["questions"]:
            qid, kind = question["id"], question["type"]
            values = form.get(qid, [])
            if kind == "multi":
                # An unticked conditional question is not answered; its "none" box answers it with nothing.
                if values or question.get("required"):
                    answers[qid] = [v for v in values if v != "none"]
            elif values and values[0] != "":
                answers[qid] = values[0] == "yes" if kind == "bool" else values[0]
        calendar = (form.get("calendar") or ["original"])[0]
        result, error = None, None
        try:
            result = classify({"answers": answers, "system": (form.get("system") or [""])[0][:200]},
                              calendar if calendar in ("original", "omnibus") else None)  # fmt: skip
        except RequestError as exc:
            error = str(exc)
        return render("desk_classify.html", request, p, q=q, result=result, error=error, given=answers,
                      calendar=calendar)  # fmt: skip


class _LoginError(Exception):
    """The page needs a signed-in browser."""


def _rack(domain: int, cells: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell for a whole rack (NVLink domain): its use, and how many of its nodes are down or drained."""
    gpus = sum(c["gpus"] for c in cells)
    used = sum(c["used"] for c in cells)
    down = sum(1 for c in cells if c["state"] == "down")
    drained = sum(1 for c in cells if c["state"] == "drained")
    state = "down" if down else "drained" if drained == len(cells) else "up"
    return {"domain": domain, "gpus": gpus, "used": used, "down": down, "drained": drained, "nodes": len(cells),
            "css": _node_css(state, used / gpus if gpus else 0.0)}  # fmt: skip


def _node_css(state: str, used_fraction: float) -> str:
    if state == "down":
        return "down"
    if state == "drained":
        return "drained"
    if used_fraction <= 0:
        return "idle"
    if used_fraction < 0.5:
        return "low"
    if used_fraction < 1:
        return "mid"
    return "full"
