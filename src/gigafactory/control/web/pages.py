"""The dashboard: server-rendered pages (Jinja2), one stylesheet and one small script, served by the API. No
front-end build step, and nothing from the internet: plotly.js and Swagger UI are served from installed Python
packages, so the dashboard and ``/docs`` work on a site with no internet.

Pages: the site (``/``: a heat map of racks or nodes, coloured by use, state or tenant; drill-down
``/site/pods/{pod}`` → ``/site/racks/{rack}`` → ``/site/nodes/{name}``, the node's jobs and history), the queue
(``/queue``), every job in every state (``/jobs``: filters, search, sorting, paging, cancel and resubmit), one
job's story and its log, followed while it runs (``/jobs/{id}``), tenants' usage against their share
(``/tenants``), utilisation (``/utilisation``), the access programme (``/programme``) and the AI Act desk
(``/desk``).

Authorisation is the API's: a page shows what the session's token may see. A tenant sees its own jobs only; on the
site views another tenant's jobs are "another tenant", with no id, name or tenant name. Buttons call the API
itself (``/api/v1/jobs/{id}/cancel``, ``/resubmit``) with the session cookie, so they obey the same rules.

Pages refresh in place: ``dash.js`` fetches the page again and swaps the parts marked ``data-live``, so the
scroll position stays. Plotly is loaded, deferred, only by the pages that chart.

A browser signs in with a token typed into the form (posted, so it stays out of URLs and logs), or with a one-time
sign-in link (``/login?code=...``, from ``POST /api/v1/sign-in-links``; the demo prints them). Either way it gets
a session: the HTTP-only cookie holds the session's secret, never the token, and the session ends after
twelve hours, or when its token is revoked. Browsers get HTML error pages; API clients get the API's JSON errors.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shlex
import time
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import numpy as np
import plotly
import plotly.graph_objects as go
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from swagger_ui_bundle import swagger_ui_path

from gigafactory import __version__
from gigafactory.control.api.app import COOKIE, read_log
from gigafactory.control.api.errors import ApiError
from gigafactory.control.identity import isolating, isolation_note
from gigafactory.control.queries import (
    JOB_SORTS,
    entitlement_series,
    node_history,
    node_jobs,
    node_states,
    queue,
    search_jobs,
    site_summaries,
    tenant_summaries,
    utilisation_series,
)
from gigafactory.control.reports import BY, award_use, programme_report
from gigafactory.control.store import accounts, programme
from gigafactory.control.store import desk as deskstore
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.db import get_meta
from gigafactory.control.store.programme import ProgrammeError
from gigafactory.control.store.site import load_sites
from gigafactory.control.web.cells import node_css, rack, rack_cell, state_css
from gigafactory.control.web.fmt import cut, gpus_text, pct, span, when, when_short
from gigafactory.core.compute import sig2
from gigafactory.core.errors import RequestError
from gigafactory.core.hostlist import compress
from gigafactory.desk.classify import classify, questionnaire
from gigafactory.report.colours import OTHER, tenant_colour

__all__ = ["install_pages"]

PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
STATIC = Path(__file__).resolve().parent / "static"
SWAGGER = Path(str(swagger_ui_path))
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2f6fd6"/>'
    '<rect x="3" y="3" width="4" height="4" fill="#fff"/><rect x="9" y="3" width="4" height="4" fill="#9fd8a4"/>'
    '<rect x="3" y="9" width="4" height="4" fill="#9fd8a4"/><rect x="9" y="9" width="4" height="4" fill="#fff"/></svg>'
)

_env = Environment(loader=PackageLoader("gigafactory.control.web", "templates"), autoescape=select_autoescape())

ALL_STATES = ("submitted", "pending", "running", "completed", "failed", "cancelled", "rejected")
WINDOWS = {"1h": ("last hour", 3600.0), "24h": ("last 24 h", 86400.0), "7d": ("last 7 days", 7 * 86400.0),
           "30d": ("last 30 days", 30 * 86400.0), "all": ("any time", math.inf)}  # fmt: skip
WINDOW_CHOICES = ((1.0, "1 h"), (6.0, "6 h"), (24.0, "24 h"), (168.0, "7 d"), (720.0, "30 d"))
PER_PAGE = 50
NODELIST_CHARS = 160  # a job's hostlist in a listing; the job's page has all of it
COLOUR_MODES = ("use", "state", "tenant")
REFRESH_S = 10


_env.globals.update(when=when, when_short=when_short, span=span, sig2=sig2, colour=tenant_colour, version=__version__)


# GPUs in use per node; the jobs on each node; GPUs per owner on each node.
_JobsOn = tuple[np.ndarray, dict[int, list[dict[str, Any]]], dict[int, dict[str, float]]]

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
    place = network_name if len(sites) > 1 else site.name
    node_index = {x.name: {n: i for i, n in enumerate(x.node_names)} for x in sites}

    def who(request: Request) -> accounts.Principal | None:
        secret = request.cookies.get(COOKIE)
        return app.state.auth.session(secret) if secret else None

    def render(name: str, request: Request, p: accounts.Principal, *, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("charts", False)
        ctx.setdefault("refresh", 0)
        html = _env.get_template(name).render(
            site=site, who=p, now=time.time(), path=request.url.path, isolated=isolating(),
            isolation=isolation_note(), network_size=len(sites), network_name=network_name, place=place, **ctx,
        )  # fmt: skip
        return HTMLResponse(html, status_code=status)

    def signed_in(request: Request) -> accounts.Principal:
        p = who(request)
        if p is None:
            raise _LoginError()
        return p

    def error_page(request: Request, status: int, message: str, headers: dict[str, str]) -> HTMLResponse:
        """A browser's error: the API's message on a page (API clients get the same message as JSON)."""
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        html = _env.get_template("error.html").render(status=status, phrase=phrase, message=message)
        return HTMLResponse(html, status_code=status, headers=headers)

    app.state.error_page = error_page

    @app.exception_handler(_LoginError)
    async def _to_login(request: Request, _: _LoginError) -> Response:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': nxt[:200]})}", status_code=303)

    # ---- static files, favicon, API docs -------------------------------------------------------------------
    cache = {"Cache-Control": "max-age=86400"}

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="application/javascript", headers=cache)

    @app.get("/static/dash.css", include_in_schema=False)
    def dash_css() -> FileResponse:
        return FileResponse(STATIC / "dash.css", media_type="text/css", headers=cache)

    @app.get("/static/dash.js", include_in_schema=False)
    def dash_js() -> FileResponse:
        return FileResponse(STATIC / "dash.js", media_type="application/javascript", headers=cache)

    @app.get("/static/swagger/{name}", include_in_schema=False)
    def swagger_file(name: str) -> FileResponse:
        if name not in SWAGGER_FILES:
            raise ApiError(404, f"no file {name!r}", "name")
        kind = "text/css" if name.endswith(".css") else "application/javascript"
        return FileResponse(SWAGGER / name, media_type=kind, headers=cache)

    @app.get("/favicon.svg", include_in_schema=False)
    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers=cache)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI from the installed swagger-ui-bundle package: it works with no internet."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="gigafactory API", swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css", swagger_favicon_url="/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},
        )  # fmt: skip

    # ---- signing in ----------------------------------------------------------------------------------------
    def login_page(error: str | None, nxt: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(_env.get_template("login.html").render(error=error, next=nxt), status_code=status)

    @app.get("/login", include_in_schema=False)
    def login(
        code: Annotated[str | None, Query(max_length=200)] = None,
        next: Annotated[str, Query(max_length=200, pattern=r"^/[^/].*$|^/$")] = "/",
    ) -> Response:
        if code is None:
            return login_page(None, next)
        with store.begin() as conn:
            p = accounts.lookup_session(conn, code, kind="code")
        if p is None:
            return login_page("That sign-in link has expired or was used already.", next, 401)
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
            return login_page("That token is not valid.", nxt, 401)
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

    # ---- the site: heat map, pods, racks, nodes ------------------------------------------------------------
    def site_of(site_name: str | None) -> Any:
        if site_name is not None and site_name not in by_name:
            raise ApiError(404, f"no site {site_name!r}; the sites are {', '.join(by_name)}", "site")
        return by_name.get(site_name or "", sites[0])

    with store.connect() as conn:
        stored = {x.name: x for x in load_sites(conn)}

    def jobs_on(p: accounts.Principal, shown: Any) -> _JobsOn:
        """GPUs in use per node, the running jobs on each node as ``p`` may see them, and GPUs per owner on each
        node, the owner named as ``p`` may see it (a tenant sees "yours" and "another tenant")."""
        topo = stored[shown.name].topology
        used = np.zeros(len(topo.node_names))
        jobs_at: dict[int, list[dict[str, Any]]] = {}
        owners: dict[int, dict[str, float]] = {}
        with store.connect() as conn:
            on = node_jobs(conn, sites[0].name)
        for (where, idx), entries in on.items():
            if where != shown.name:
                continue
            for jid, tenant, name, gpus in entries:
                used[idx] += gpus
                mine = p.admin or tenant == p.tenant
                label = tenant if p.admin else "yours" if mine else "another tenant"
                mix = owners.setdefault(idx, {})
                mix[label] = mix.get(label, 0.0) + gpus
                jobs_at.setdefault(idx, []).append(
                    {"id": jid, "name": name, "tenant": tenant, "gpus": gpus, "mine": True,
                     "label": f"job {jid} · {name or tenant} · {gpus:g} GPUs"} if mine
                    else {"id": None, "name": "", "tenant": "another tenant", "gpus": gpus, "mine": False,
                          "label": f"another tenant · {gpus:g} GPUs"}
                )  # fmt: skip
        return used, jobs_at, owners

    def owner_colour(p: accounts.Principal, label: str) -> str:
        if label == "another tenant":
            return OTHER
        return tenant_colour((p.tenant or label) if label == "yours" else label)

    def top_owner(mix: dict[str, float]) -> str:
        return max(sorted(mix), key=lambda k: mix[k])

    def node_cells(
        p: accounts.Principal, shown: Any, colour: str, idxs: list[int]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Nodes ``idxs`` of a site as cells: use, state, the jobs on each (as ``p`` may see them) and a colour."""
        topo = stored[shown.name].topology
        used, jobs_at, owners = jobs_on(p, shown)
        with store.connect() as conn:
            states = node_states(conn, stored[shown.name].id, idxs)
        legend: dict[str, str] = {}
        cells = []
        for i in idxs:
            state, reason, since = states.get(i, ("up", "", math.nan))
            gpus = int(topo.node_gpus[i])
            mix = owners.get(i, {})
            fill = None
            if colour == "tenant" and mix:
                top = top_owner(mix)
                fill = legend[top] = owner_colour(p, top)
            css = state_css(state) if colour == "state" else node_css(state, used[i] / gpus if gpus else 0.0)
            if colour == "tenant" and state == "up":
                css = "idle"
            cells.append({"idx": i, "site": shown.name, "name": topo.node_names[i],
                          "model": topo.models[topo.node_model[i]],
                          "gpus": gpus, "domain": int(topo.node_domain[i]), "pod": int(topo.node_pod[i]),
                          "state": state, "reason": reason, "updated_at": since, "used": float(used[i]), "css": css,
                          "colour": fill, "jobs": jobs_at.get(i, []),
                          "who": "".join(f"; {k} {v:g}" for k, v in sorted(mix.items()))})  # fmt: skip
        return cells, legend

    def rack_cells(p: accounts.Principal, shown: Any, colour: str) -> dict[str, Any]:
        """The whole site, one cell per rack (NVLink domain), by pod; summed with numpy, not node by node."""
        topo = stored[shown.name].topology
        used, _, owners = jobs_on(p, shown)
        with store.connect() as conn:
            states = node_states(conn, stored[shown.name].id)
        dom = topo.node_domain
        ndom = len(topo.domain_start) - 1
        rack_used = np.bincount(dom, weights=used, minlength=ndom)
        rack_gpus = np.bincount(dom, weights=topo.node_gpus, minlength=ndom)
        rack_nodes = np.diff(topo.domain_start)
        down = np.zeros(ndom, np.int64)
        drained = np.zeros(ndom, np.int64)
        for i, (state, _, _) in states.items():
            if state == "down":
                down[dom[i]] += 1
            elif state == "drained":
                drained[dom[i]] += 1
        mixes: dict[int, dict[str, float]] = {}
        for i, mix in owners.items():
            rack = mixes.setdefault(int(dom[i]), {})
            for k, v in mix.items():
                rack[k] = rack.get(k, 0.0) + v
        legend: dict[str, str] = {}
        by_pod: dict[int, list[dict[str, Any]]] = {}
        for d in range(ndom):
            fill = None
            if colour == "tenant" and d in mixes:
                top = top_owner(mixes[d])
                fill = legend[top] = owner_colour(p, top)
            cell = rack_cell(d, int(rack_gpus[d]), float(rack_used[d]), int(down[d]), int(drained[d]),
                              int(rack_nodes[d]), colour, fill)  # fmt: skip
            by_pod.setdefault(int(topo.domain_pod[d]), []).append(cell)
        return {"racks": sorted(by_pod.items()), "legend": legend, "in_use": float(used.sum()),
                "down": sum(1 for s in states.values() if s[0] == "down"),
                "drained": sum(1 for s in states.values() if s[0] == "drained"),
                "nodes": len(topo.node_names)}  # fmt: skip

    def colour_param(value: str | None) -> str:
        if value is None or value == "":
            return "use"
        if value not in COLOUR_MODES:
            raise ApiError(422, f"colour: {value[:40]!r}; allowed: {', '.join(COLOUR_MODES)}", "colour")
        return value

    def site_query(shown: Any, colour: str) -> tuple[str, str]:
        """The query string that keeps the site and the colouring when following a link."""
        params = {**({"site": shown.name} if len(sites) > 1 else {}), **({"colour": colour} if colour != "use" else {})}
        qs = urlencode(params)
        return (f"?{qs}" if qs else ""), (f"site={shown.name}&" if len(sites) > 1 else "")

    def describe(shown: Any) -> str:
        nodes = len(shown.node_names)
        models = ", ".join(f"{n:,} {m}" for m, n in shown.gpus_by_model.items())
        preset = f" · preset {shown.spec}" if shown.spec != shown.name else ""
        return f"{nodes:,} nodes · {models} GPUs{preset}{' · ' + shown.country if shown.country else ''}"

    @app.get("/", include_in_schema=False)
    def site_map(
        request: Request,
        site_name: Annotated[str | None, Query(alias="site", max_length=64)] = None,
        colour: Annotated[str | None, Query(max_length=40)] = None,
    ) -> HTMLResponse:
        p = signed_in(request)
        shown = site_of(site_name) if site_name else sites[0]
        mode = colour_param(colour)
        with store.connect() as conn:
            counts = jobstore.count_by_state(conn, None if p.admin else p.tenant)
            network = site_summaries(conn, load_sites(conn)) if len(sites) > 1 else []
        site_qs, site_q = site_query(shown, mode)
        common = {"counts": counts, "shown": shown, "network": network, "describe": describe(shown), "colour": mode,
                  "colour_modes": COLOUR_MODES, "site_qs": site_qs, "site_q": site_q}  # fmt: skip
        if len(shown.node_names) > SITE_MAP_NODES:
            r = rack_cells(p, shown, mode)
            return render(
                "site.html", request, p, pods=[], racks=r["racks"], down=r["down"], drained=r["drained"],
                nodes=r["nodes"], gpus_used_text=gpus_text(r["in_use"]),
                gpus_used_pct=pct(round(r["in_use"], 2), shown.num_gpus), tenant_legend=sorted(r["legend"].items()),
                refresh=REFRESH_S * 3, **common,
            )  # fmt: skip
        cells, legend = node_cells(p, shown, mode, list(range(len(shown.node_names))))
        pods: dict[int, dict[int, list[dict[str, Any]]]] = {}
        for c in cells:
            pods.setdefault(c["pod"], {}).setdefault(c["domain"], []).append(c)
        in_use = sum(c["used"] for c in cells)
        return render(
            "site.html", request, p, pods=[(k, sorted(v.items())) for k, v in sorted(pods.items())], racks=None,
            down=sum(1 for c in cells if c["state"] == "down"),
            drained=sum(1 for c in cells if c["state"] == "drained"),
            nodes=len(cells), gpus_used_text=gpus_text(in_use), gpus_used_pct=pct(round(in_use, 2), shown.num_gpus),
            tenant_legend=sorted(legend.items()), refresh=REFRESH_S, **common,
        )  # fmt: skip

    def node_range(shown: Any, kind: str, k: int) -> tuple[int, int]:
        """The nodes of pod or rack ``k`` of a site, as ``range`` bounds; a 404 naming it if there is none."""
        topo = stored[shown.name].topology
        starts = topo.pod_start if kind == "pod" else topo.domain_start
        if not 0 <= k < len(starts) - 1:
            raise ApiError(404, f"no {kind} {k} on site {shown.name}", kind)
        return int(starts[k]), int(starts[k + 1])

    @app.get("/site/pods/{pod}", include_in_schema=False)
    def pod_page(
        request: Request,
        pod: Annotated[int, PathParam(ge=0, le=10**7)],
        site_name: Annotated[str | None, Query(alias="site", max_length=64)] = None,
        colour: Annotated[str | None, Query(max_length=40)] = None,
    ) -> HTMLResponse:
        p = signed_in(request)
        shown, mode = site_of(site_name), colour_param(colour)
        first, stop = node_range(shown, "pod", pod)
        mine, legend = node_cells(p, shown, mode, list(range(first, stop)))
        doms: dict[int, list[dict[str, Any]]] = {}
        for c in mine:
            doms.setdefault(int(c["domain"]), []).append(c)
        racks = [{**rack(d, cs, mode), "cells": cs} for d, cs in sorted(doms.items())]
        used = sum(c["used"] for c in mine)
        site_qs, _ = site_query(shown, mode)
        return render("site_pod.html", request, p, pod=pod, racks=racks, nodes=len(mine), shown=shown,
                      gpus=sum(int(c["gpus"]) for c in mine), gpus_used_text=gpus_text(used), colour=mode,
                      tenant_legend=sorted(legend.items()), site_qs=site_qs, refresh=REFRESH_S)  # fmt: skip

    @app.get("/site/racks/{rack}", include_in_schema=False)
    def rack_page(
        request: Request,
        rack: Annotated[int, PathParam(ge=0, le=10**8)],
        site_name: Annotated[str | None, Query(alias="site", max_length=64)] = None,
        colour: Annotated[str | None, Query(max_length=40)] = None,
    ) -> HTMLResponse:
        p = signed_in(request)
        shown, mode = site_of(site_name), colour_param(colour)
        first, stop = node_range(shown, "rack", rack)
        mine, _ = node_cells(p, shown, "tenant", list(range(first, stop)))
        used = sum(c["used"] for c in mine)
        site_qs, _ = site_query(shown, mode)
        return render("site_rack.html", request, p, rack=rack, pod=mine[0]["pod"], cells=mine, shown=shown,
                      gpus=sum(int(c["gpus"]) for c in mine), gpus_used_text=gpus_text(used), site_qs=site_qs,
                      refresh=REFRESH_S)  # fmt: skip

    @app.get("/site/nodes/{name}", include_in_schema=False)
    def node_page(
        request: Request,
        name: Annotated[str, PathParam(max_length=200)],
        site_name: Annotated[str | None, Query(alias="site", max_length=64)] = None,
    ) -> HTMLResponse:
        p = signed_in(request)
        shown = site_of(site_name)
        idx = node_index[shown.name].get(name)
        if idx is None:
            raise ApiError(404, f"no node {name!r} on site {shown.name}", "name")
        (node,), _ = node_cells(p, shown, "tenant", [idx])
        with store.connect() as conn:
            history = node_history(conn, shown.name, int(node["idx"]), sites[0].name)
        ran = [j for j in history["jobs"] if p.admin or j.tenant == p.tenant]
        site_qs, _ = site_query(shown, "use")
        return render("node.html", request, p, node=node, shown=shown, used=node["used"], running=node["jobs"],
                      states=history["states"], asked=history["asked"], ran=ran[:200],
                      hidden_jobs=len(history["jobs"]) - len(ran),
                      site_qs=site_qs, refresh=REFRESH_S)  # fmt: skip

    # ---- jobs ----------------------------------------------------------------------------------------------
    def nodelist_of(row: Any) -> str:
        """Where a job runs, or where its last attempt ran (a waiting job holds no node)."""
        if row.state in ("pending", "submitted") or not row.placement:
            return ""
        names = by_name.get(row.site or "", sites[0]).node_names
        return compress(names[n] for n in row.placement.get("nodes", []))

    @app.get("/queue", include_in_schema=False)
    def queue_page(request: Request) -> HTMLResponse:
        p = signed_in(request)
        with store.connect() as conn:
            rows = queue(conn, None if p.admin else p.tenant, 501)
        more = len(rows) > 500
        rows = rows[:500]
        nodes = [cut(nodelist_of(r), NODELIST_CHARS) for _, r in rows]
        return render("queue.html", request, p, rows=rows, nodes=nodes, networked=len(sites) > 1, more=more,
                      refresh=REFRESH_S)  # fmt: skip

    def tenant_names() -> list[str]:
        with store.connect() as conn:
            return [t["name"] for t in tenant_summaries(conn)]

    @app.get("/jobs", include_in_schema=False)
    def jobs_page(request: Request) -> HTMLResponse:
        """Every job the caller may see, filtered, searched, sorted and paged. Bad filters are named on the page
        (a 422 with the form still there), never a 500 and never JSON."""
        p = signed_in(request)
        qp = request.query_params
        errors: list[str] = []

        def one(key: str, default: str = "") -> str:
            values = qp.getlist(key)
            if len(values) > 1 and key != "state":
                errors.append(f"{key}: give one value, not {len(values)}")
            value = values[0] if values else default
            if len(value) > 100 or any(ord(ch) < 32 for ch in value):
                errors.append(f"{key}: at most 100 characters, and no control characters")
                return default
            return value.strip()

        f: dict[str, Any] = {"q": one("q"), "tenant": one("tenant"), "site": one("site"),
                             "window": one("window", "all"),
                             "sort": one("sort", "id"), "order": one("order", "desc"), "page": 1}  # fmt: skip
        f["states"] = list(dict.fromkeys(s for s in qp.getlist("state") if s))  # each state once
        if len(qp.getlist("state")) > 2 * len(ALL_STATES):
            errors.append(f"state: given {len(qp.getlist('state')):,} times; give each state at most once")
            f["states"] = []
        names = tenant_names() if p.admin else []
        if f["tenant"]:
            if not p.admin and f["tenant"] != p.tenant:
                errors.append(f"tenant: you see only your own jobs (tenant {p.tenant}), not {f['tenant'][:40]!r}'s")
            elif p.admin and f["tenant"] not in names:
                errors.append(f"tenant: no tenant {f['tenant'][:40]!r}; the tenants are {', '.join(names)}")
        for s in f["states"]:
            if s not in ALL_STATES:
                errors.append(f"state: {s[:40]!r} is not a job state; the states are {', '.join(ALL_STATES)}")
        if f["site"] and f["site"] not in by_name:
            errors.append(f"site: no site {f['site'][:40]!r}; the sites are {', '.join(by_name)}")
        if f["window"] not in WINDOWS:
            errors.append(f"window: {f['window'][:40]!r}; allowed: {', '.join(WINDOWS)}")
        if f["sort"] not in JOB_SORTS:
            errors.append(f"sort: {f['sort'][:40]!r}; allowed: {', '.join(JOB_SORTS)}")
        if f["order"] not in ("asc", "desc"):
            errors.append(f"order: {f['order'][:40]!r}; allowed: asc, desc")
        page_text = one("page", "1")
        if not (page_text.isascii() and page_text.isdigit()) or not 1 <= int(page_text) <= 10**6:
            errors.append(f"page: {page_text[:40]!r} is not a page number (1, 2, …)")
        else:
            f["page"] = int(page_text)
        rows: list[Any] = []
        total = 0
        if not errors:
            now = time.time()
            window_s = WINDOWS[f["window"]][1]
            with store.connect() as conn:
                rows, total = search_jobs(
                    conn, tenant=(f["tenant"] or None) if p.admin else p.tenant, states=f["states"] or None,
                    site=f["site"] or None, since=now - window_s if math.isfinite(window_s) else None, text=f["q"],
                    sort=f["sort"], descending=f["order"] == "desc", limit=PER_PAGE, offset=(f["page"] - 1) * PER_PAGE,
                )  # fmt: skip
        pages = max(1, -(-total // PER_PAGE))

        def link(**change: Any) -> str:
            params = {"q": f["q"], "tenant": f["tenant"], "state": f["states"], "site": f["site"],
                      "window": f["window"], "sort": f["sort"], "order": f["order"], "page": f["page"],
                      **change}  # fmt: skip
            keep = {k: v for k, v in params.items() if v not in ("", [], None) and not (k == "page" and v == 1)}
            return "/jobs?" + urlencode(keep, doseq=True)

        def sort_link(key: str) -> str:
            flip = "asc" if f["sort"] == key and f["order"] == "desc" else "desc"
            return link(sort=key, order=flip, page=1)

        networked = len(sites) > 1
        columns = [("id", "job", "l"), ("state", "state", "l"), ("tenant", "tenant", "l"), ("name", "name", "l"),
                   *([(None, "site", "l")] if networked else []), ("gpus", "GPUs", ""),
                   ("submitted", "submitted", "l"), ("started", "started", "l hide-narrow"),
                   ("ended", "ended", "l hide-narrow"), (None, "nodes", "l hide-narrow"), (None, "", "l")]  # fmt: skip
        return render(
            "jobs.html", request, p, status=422 if errors else 200, f=f, errors=errors, rows=rows, total=total,
            first=(f["page"] - 1) * PER_PAGE + 1, last=(f["page"] - 1) * PER_PAGE + len(rows), pages=pages,
            nodelists=[cut(nodelist_of(r), NODELIST_CHARS) for r in rows], columns=columns, sort_link=sort_link,
            prev_link=link(page=f["page"] - 1) if f["page"] > 1 else None,
            next_link=link(page=f["page"] + 1) if f["page"] < pages else None,
            tenant_names=names, all_states=ALL_STATES, site_names=list(by_name),
            windows=[(k, v[0]) for k, v in WINDOWS.items()],
            can_act=p.role != "reviewer", active=jobstore.ACTIVE, refresh=REFRESH_S,
        )  # fmt: skip

    @app.get("/jobs/{job_id}", include_in_schema=False)
    def job_page(request: Request, job_id: Annotated[int, PathParam(ge=1, le=2**62)]) -> HTMLResponse:
        p = signed_in(request)
        with store.connect() as conn:
            row = jobstore.get_job(conn, job_id)
            story = jobstore.story(conn, job_id) if row is not None else []
        if row is None or (not p.admin and row.tenant != p.tenant):
            raise ApiError(404, f"no job {job_id}", "job_id")
        tail = 64 * 1024
        logs = {}
        if row.attempt:
            for stream in ("stdout", "stderr"):
                logs[stream] = read_log(row, row.attempt, stream, tail)
        names = by_name.get(row.site or "", sites[0]).node_names
        nodes = compress(names[n] for n in (row.placement or {}).get("nodes", [])) if row.state != "pending" else ""
        return render("job.html", request, p, job=row, story=story, logs=logs, nodes=nodes,
                      command=shlex.join(row.command), following=row.state == "running", log_tail=tail,
                      can_act=p.role != "reviewer", active=jobstore.ACTIVE,
                      refresh=5 if row.state in jobstore.ACTIVE else 0)  # fmt: skip

    # ---- charts --------------------------------------------------------------------------------------------
    def usage_window(p: accounts.Principal, hours: float) -> tuple[np.ndarray, list[dt.datetime], dict[str, Any], str]:
        """GPUs in use per tenant over the last ``hours`` (a tenant sees only itself): times, as dates, series, and
        the window the chart really shows (it starts no earlier than the first submission)."""
        now = time.time()
        with store.connect() as conn:
            x, series = utilisation_series(
                conn, since=now - hours * 3600, until=now, tenant=None if p.admin else p.tenant
            )
        width = (x[1] - x[0]) if len(x) > 1 else 0.0
        shown = span(now - float(x[0])) if len(x) else f"{hours:g} h"
        if len(x) and now - float(x[0]) < hours * 3600 - max(width, 1.0):
            shown += f" (since the first job; {hours:g} h asked)"
        return x, [dt.datetime.fromtimestamp(t) for t in x], series, shown

    def figure_json(fig: go.Figure, height: int = 360) -> str:
        fig.update_layout(margin={"l": 60, "r": 20, "t": 70, "b": 50}, height=height, template="plotly_white",
                          legend={"orientation": "h", "y": -0.2})  # fmt: skip
        # "</" must not close the <script> the JSON sits in.
        return str(fig.to_json()).replace("</", "<\\/")

    @app.get("/tenants", include_in_schema=False)
    def tenants_page(request: Request, hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24.0) -> HTMLResponse:
        p = signed_in(request)
        with store.connect() as conn:
            summaries = tenant_summaries(conn, None if p.admin else p.tenant)
        x, xs, series, shown = usage_window(p, hours)
        now = time.time()
        with store.connect() as conn:
            # Entitlements depend on every tenant's demand, so all are read; a tenant is shown only its own lines.
            _, _, entitled = entitlement_series(conn, since=float(x[0]) if len(x) else now - hours * 3600,
                                                until=now, total_gpus=total_gpus, buckets=len(x) or 120)  # fmt: skip
        fig = go.Figure()
        # Tenants entitled to the same GPUs would draw one line over the other: each repeat is lifted a hair, and
        # every tenant has its own dash pattern.
        seen: dict[float, int] = {}
        lift = 0.006 * max(total_gpus, 1)
        dashes = ("dash", "dot", "dashdot", "longdash", "longdashdot")
        for k, s in enumerate(summaries):
            c = tenant_colour(s["name"])
            fig.add_trace(go.Scatter(x=xs, y=series.get(s["name"], np.zeros(len(x))), mode="lines",
                                     name=f"{s['name']} used", line={"color": c, "width": 2}))  # fmt: skip
            owed = entitled.get(s["name"], np.zeros(len(x)))
            key = round(float(owed.mean()) if len(owed) else 0.0, 6)
            n = seen.get(key, 0)
            seen[key] = n + 1
            fig.add_trace(go.Scatter(x=xs, y=owed + n * lift, mode="lines",
                                     line={"dash": dashes[k % len(dashes)], "color": c, "width": 1.5},
                                     name=f"{s['name']} entitled", customdata=owed,
                                     hovertemplate=f"{s['name']} entitled: %{{customdata:.4g}} GPUs "
                                     f"(share {s['share_fraction']:.1%} of the site, capped by demand)"
                                     "<extra></extra>"))  # fmt: skip
        fig.update_layout(
            title=f"GPUs in use against entitlement (the share, capped by what the tenant asks for; the rest goes "
            f"to the others)<br><sub>last {shown}</sub>",
            yaxis_title="GPUs",
        )
        return render("tenants.html", request, p, tenants=summaries, figure=figure_json(fig), hours=hours,
                      window_choices=WINDOW_CHOICES, shown_window=shown, charts=True, refresh=30)  # fmt: skip

    @app.get("/utilisation", include_in_schema=False)
    def utilisation_page(request: Request, hours: Annotated[float, Query(gt=0, le=24 * 366)] = 6.0) -> HTMLResponse:
        p = signed_in(request)
        x, xs, series, shown = usage_window(p, hours)
        fig = go.Figure()
        for name in sorted(series):
            fig.add_trace(go.Scatter(x=xs, y=series[name] / total_gpus, stackgroup="one", name=name,
                                     line={"color": tenant_colour(name)}))  # fmt: skip
        fig.update_layout(title=f"GPU utilisation by tenant<br><sub>last {shown}</sub>",
                          yaxis_title="share of the site's GPUs")  # fmt: skip
        fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
        total = sum(series.values(), np.zeros(len(x)))
        mean = float(total.mean() / total_gpus) if len(x) else 0.0
        return render("utilisation.html", request, p, figure=figure_json(fig), hours=hours, mean=mean,
                      shown_window=shown, window_choices=WINDOW_CHOICES, total_gpus=total_gpus, charts=True,
                      refresh=30)  # fmt: skip

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
