"""The REST API (FastAPI). Tenants submit and watch their jobs; admins run the site.

Authorisation is by bearer token, or by the dashboard's session cookie (which carries a session, never a token). A
tenant token sees and touches only its own tenant's jobs: another tenant's job is a 404, exactly as a job that
does not exist, so nothing about other tenants leaks. An admin token sees everything and may use ``/admin``. The
API writes submissions and the inbox (cancellations, drains, tenant changes); the daemon does the rest.

Tenants are treated as hostile (see :mod:`.gate` and :mod:`.submit`): a body is read only from a caller with a
valid token, and only up to its cap; every job is checked at submission against what the site could ever hold and
what an executor could launch; each tenant has a limit on waiting jobs and on its submission rate. A job's logs
are read by the control plane from files the job cannot replace, never from a path it controls.
"""

from __future__ import annotations

import os
import stat
import time
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse
from sqlalchemy import Engine as Store
from sqlalchemy import select

from gigafactory import __version__
from gigafactory.control.api import models as m
from gigafactory.control.api.desk import desk_router
from gigafactory.control.api.errors import ApiError, install
from gigafactory.control.api.gate import Gate
from gigafactory.control.api.programme import programme_router
from gigafactory.control.api.submit import RateLimiter, SubmissionWriter
from gigafactory.control.config import ControlConfig
from gigafactory.control.daemon import job_from_row
from gigafactory.control.identity import isolation_note
from gigafactory.control.queries import (
    JOB_SORTS,
    SiteInfo,
    node_use,
    queue,
    search_jobs,
    site_summaries,
    tenant_summaries,
)
from gigafactory.control.store import accounts, inbox
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.db import get_meta
from gigafactory.control.store.schema import ai_models as ai_models_t
from gigafactory.control.store.schema import awards as awards_t
from gigafactory.control.store.schema import tenants, tokens
from gigafactory.control.store.site import load_sites
from gigafactory.core.errors import ConfigError
from gigafactory.core.hostlist import expand
from gigafactory.core.tenants import Tenant
from gigafactory.engine.engine import Engine
from gigafactory.network.model import EU_MEMBER_STATES

__all__ = ["COOKIE", "Auth", "create_app", "read_log"]

COOKIE = "gf_session"
TOKEN_CACHE_S = 5.0  # a revoked token stops working within this long
COST_BYTES = 8192  # a submission costs one unit of its tenant's rate per this many bytes of command and env
API = "/api/v1"
# An idle daemon beats every 2 s (daemon.HEARTBEAT_S) and a busy one at every step: seven beats missed is a daemon
# that is down or stuck, not one that is slow.
STALE_HEARTBEAT_S = 15.0


class Auth:
    """Bearer tokens and session secrets to principals, with a short cache so that a busy API does not
    hash-and-query every call."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[str, str], tuple[accounts.Principal | None, float]] = {}

    def lookup(self, token: str) -> accounts.Principal | None:
        return self._cached("token", token)

    def session(self, secret: str) -> accounts.Principal | None:
        return self._cached("session", secret)

    def who(self, token: str | None, session: str | None) -> accounts.Principal | None:
        """The caller, by bearer token if there is one, else by session cookie."""
        if token:
            return self.lookup(token)
        return self.session(session) if session else None

    def known(self, token: str | None, session: str | None) -> tuple[bool, accounts.Principal | None]:
        """(True, the caller) if the cache can tell without asking the store; else (False, None)."""
        key = ("token", token) if token else ("session", session or "")
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return True, hit[0]
        return False, None

    def _cached(self, kind: str, secret: str) -> accounts.Principal | None:
        now = time.monotonic()
        hit = self._cache.get((kind, secret))
        if hit is not None and hit[1] > now:
            return hit[0]
        with self.store.connect() as conn:
            p = accounts.lookup_token(conn, secret) if kind == "token" else accounts.lookup_session(conn, secret)
        if p is None:
            return None  # not cached: a flood of made-up tokens must not push the real ones out
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[(kind, secret)] = (p, now + TOKEN_CACHE_S)
        return p

    def forget(self) -> None:
        self._cache.clear()


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "the Authorization header must be 'Bearer <token>'")
        return value.strip()
    return None


def _bearer_or_none(request: Request) -> str | None:
    try:
        return _bearer(request)
    except ApiError:
        return None


async def principal(request: Request) -> accounts.Principal:
    token = _bearer(request)
    cookie = request.cookies.get(COOKIE)
    if not token and not cookie:
        raise ApiError(401, "no token: send 'Authorization: Bearer <token>'")
    p: accounts.Principal | None = request.app.state.auth.who(token, cookie)
    if p is None:
        raise ApiError(401, "the token is not valid (unknown or revoked)" if token else "the session has ended")
    return p


async def admin(p: Annotated[accounts.Principal, Depends(principal)]) -> accounts.Principal:
    if not p.admin:
        raise ApiError(403, "this needs an admin token")
    return p


TenantName = Annotated[str, PathParam(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
JobIdParam = Annotated[int, PathParam(ge=1, le=2**62)]
Who = Annotated[accounts.Principal, Depends(principal)]
Admin = Annotated[accounts.Principal, Depends(admin)]


def load_site_infos(store: Store) -> list[SiteInfo]:
    with store.connect() as conn:
        stored = load_sites(conn)
    if not stored:
        raise ConfigError("the store holds no site: run `gigafactory serve` (which sets one up) first")
    return [_site_info(x.spec, x.topology, x.id, x.country) for x in stored]


def _site_info(spec: str, topo: Any, site_id: int, country: str | None) -> SiteInfo:
    dom = [int(topo.node_gpus[a:b].sum()) for a, b in zip(topo.domain_start[:-1], topo.domain_start[1:], strict=True)]
    pod = [int(topo.node_gpus[a:b].sum()) for a, b in zip(topo.pod_start[:-1], topo.pod_start[1:], strict=True)]
    return SiteInfo(
        name=topo.name,
        spec=spec,
        id=site_id,
        country=country,
        node_names=list(topo.node_names),
        num_gpus=topo.num_gpus,
        max_gpus_per_node=topo.max_gpus_per_node,
        gpus_by_model=topo.gpus_by_model(),
        domain_gpus=max(dom),
        pod_gpus=max(pod),
    )


def create_app(cfg: ControlConfig, store: Store | None = None) -> FastAPI:
    """The API for the control plane in ``cfg``. The store must hold a site (see :func:`init_control`)."""
    store = store if store is not None else cfg.open()
    site_list = load_site_infos(store)
    site = site_list[0]
    by_name = {x.name: x for x in site_list}
    total_gpus = sum(x.num_gpus for x in site_list)
    with store.connect() as conn:
        stored_sites = load_sites(conn)
    # Whether a request could ever run on a site is the engine's own question, asked of that site empty.
    oracles = {x.name: Engine(x.topology, "fifo+none+first-fit", keep_log=False) for x in stored_sites}
    never: dict[tuple[Any, ...], tuple[str, str] | None] = {}  # their answers, by site and request shape
    limits_cache: dict[str, accounts.Limits] = {}
    limits_at = [0.0]

    def limits(tenant: str) -> accounts.Limits:
        if time.monotonic() - limits_at[0] > TOKEN_CACHE_S or tenant not in limits_cache:
            with store.connect() as conn:
                limits_cache.clear()
                limits_cache.update(accounts.limits(conn))
            limits_at[0] = time.monotonic()
        return limits_cache.get(tenant, accounts.Limits(accounts.DEFAULT_MAX_JOBS, accounts.DEFAULT_MAX_RATE))

    writer = SubmissionWriter(store, limits)
    rates = RateLimiter()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await writer.start()
        yield
        await writer.stop()

    app = FastAPI(
        title="gigafactory",
        version=__version__,
        description="The live control plane of an AI gigafactory: submit jobs, watch them, run the site.",
        lifespan=lifespan,
        docs_url=None,  # the dashboard serves /docs from the installed Swagger UI, not from a CDN
        redoc_url=None,
    )
    app.state.store = store
    app.state.cfg = cfg
    app.state.site = site
    app.state.sites = site_list
    app.state.auth = Auth(store)
    from gigafactory.control.serve import containment

    app.state.containment = containment(cfg, store)
    app.state.writer = writer

    def hold(caller: object, path: str) -> tuple[int, str]:
        """A tenant in debt to its rate limit is refused before its submission is read."""
        tenant = getattr(caller, "tenant", None)
        if tenant is None or path not in (f"{API}/jobs", f"{API}/jobs/batch"):
            return 0, ""  # (the gate strips a trailing slash)
        rate = limits(tenant).max_rate
        wait = rates.wait_s(tenant, rate)
        why = f"tenant {tenant!r} submits faster than its limit of {rate:g} jobs per second; try again in {wait} s"
        return wait, why

    def on_invalid(request: Request, body: Any) -> None:
        """An invalid submission costs its sender as much as a valid one would: a job each, and one per 8 KiB."""
        if request.url.path.rstrip("/") not in (f"{API}/jobs", f"{API}/jobs/batch"):
            return
        known, p = app.state.auth.known(_bearer_or_none(request), request.cookies.get(COOKIE))
        if known and p is not None and p.tenant is not None:
            jobs = body.get("jobs") if isinstance(body, dict) else None
            size = getattr(request.state, "body_bytes", 0)
            cost = max(len(jobs) if isinstance(jobs, list) else 1, -(-size // COST_BYTES))
            rates.charge(p.tenant, cost, limits(p.tenant).max_rate)

    app.state.on_invalid = on_invalid
    app.add_middleware(Gate, who=app.state.auth.who, known=app.state.auth.known, hold=hold)
    install(app)

    # ---- helpers -------------------------------------------------------------------------------------------
    def tenant_names() -> set[str]:
        with store.connect() as conn:
            return {r[0] for r in conn.execute(select(tenants.c.name))}

    known_tenants: set[str] = tenant_names()

    def tenant_exists(name: str) -> bool:
        nonlocal known_tenants
        if name not in known_tenants:
            known_tenants = tenant_names()
        return name in known_tenants

    def check_spec(spec: m.JobSpec, p: accounts.Principal, where: str) -> dict[str, Any]:
        tenant = spec.tenant or p.tenant
        if p.role == "reviewer":
            raise ApiError(403, "a reviewer token cannot submit jobs")
        if tenant is None:
            raise ApiError(
                422, f"{where}.tenant: an admin token must name the tenant the job is for", f"{where}.tenant"
            )
        if not p.admin and tenant != p.tenant:
            raise ApiError(
                403, f"{where}.tenant: this token may submit only for tenant {p.tenant!r}", f"{where}.tenant"
            )
        if not tenant_exists(tenant):
            raise ApiError(422, f"{where}.tenant: unknown tenant {tenant!r}", f"{where}.tenant")
        pinned_site = spec.site
        if spec.award is not None:
            with store.connect() as conn:
                q = select(awards_t.c.tenant, awards_t.c.site).where(awards_t.c.id == spec.award)
                held = conn.execute(q).first()
            if held is None or held.tenant != tenant:
                raise ApiError(422, f"{where}.award: {tenant} holds no award {spec.award}", f"{where}.award")
            if spec.site is not None and spec.site != held.site:
                raise ApiError(422, f"{where}.award: award {spec.award} is for site {held.site}, not {spec.site}",
                               f"{where}.award")  # fmt: skip
            pinned_site = held.site if len(site_list) > 1 else None
        if spec.model is not None:
            with store.connect() as conn:
                owner = conn.execute(select(ai_models_t.c.tenant).where(ai_models_t.c.id == spec.model)).scalar()
            if owner != tenant:
                raise ApiError(422, f"{where}.model: {tenant} keeps no model {spec.model} (desk model-add)",
                               f"{where}.model")  # fmt: skip
        if spec.site is not None and spec.site not in by_name:
            raise ApiError(422, f"{where}.site: unknown site {spec.site!r}; the sites are {', '.join(by_name)}",
                           f"{where}.site")  # fmt: skip
        if spec.countries is not None:
            unknown = [c for c in spec.countries if c not in EU_MEMBER_STATES]
            if unknown:
                raise ApiError(422, f"{where}.countries: {unknown[0]!r} is not the ISO code of an EU member state",
                               f"{where}.countries")  # fmt: skip
        allowed = [
            x for x in site_list
            if (spec.site is None or x.name == spec.site) and (spec.countries is None or x.country in spec.countries)
        ]  # fmt: skip
        if not allowed and spec.site is not None:
            pinned = by_name[spec.site]
            raise ApiError(422, f"{where}.countries: site {spec.site} is in {pinned.country or 'no country'}, not in "
                           f"{', '.join(spec.countries or ())}", f"{where}.countries")  # fmt: skip
        if not allowed:
            have = ", ".join(f"{x.name} ({x.country or 'no country'})" for x in site_list)
            raise ApiError(422, f"{where}.countries: no site is in {', '.join(spec.countries or ())}; the sites: "
                           f"{have}", f"{where}.countries")  # fmt: skip
        row = {
            "tenant": tenant,
            "name": spec.name,
            "command": spec.command,
            "env": spec.env,
            "gpus": spec.gpus,
            "gpu_milli": spec.gpu_milli,
            "cpu_milli": max(spec.cpu_milli, m.MIN_CPU_MILLI),
            "mem_mib": spec.mem_mib,
            "models": spec.models,
            "locality": spec.locality,
            "estimate_s": spec.estimate_s,
            "priority": spec.priority,
            "ckpt_s": spec.checkpoint_s,
            "client_key": spec.key,
            "client_hash": spec.fingerprint() if spec.key else None,
            "sites": [pinned_site] if pinned_site is not None else None,
            "countries": spec.countries,
            "reroute": spec.reroute,
            "award": spec.award,
            "ai_model": spec.model,
            "ai_purpose": spec.purpose if spec.model is not None else None,
        }
        problems = [(x, site_refuses(x, spec, row, where)) for x in allowed]
        fits = [x for x, why in problems if why is None]
        if not fits:
            if len(problems) == 1:
                raise problems[0][1]  # type: ignore[misc]
            detail = "; ".join(f"{x.name}: {why.message.rsplit(': ', 1)[-1]}" for x, why in problems if why)
            raise ApiError(422, f"{where}: no allowed site could ever run it: {detail}", f"{where}.gpus")
        return row

    def site_refuses(x: SiteInfo, spec: m.JobSpec, row: dict[str, Any], where: str) -> ApiError | None:
        """Why site ``x`` could never run the job (as the error to answer with), or None. A GPU model name the site
        does not have is a typo to point at; whether the request could ever fit is the engine's rule
        (``Engine.never_fits_field``), asked of an empty engine of the site and cached per request shape."""
        label = "this site" if len(site_list) == 1 else f"site {x.name}"
        if spec.models is not None:
            unknown = [y for y in spec.models if y not in x.gpus_by_model]
            if unknown:
                return ApiError(
                    422,
                    f"{where}.models: {unknown[0]!r} is not a GPU model of {label}; it has "
                    f"{', '.join(x.gpus_by_model)}",
                    f"{where}.models",
                )
        shape = (x.name, spec.gpus, spec.gpu_milli, row["cpu_milli"], spec.mem_mib, tuple(spec.models or ()),
                 spec.locality)  # fmt: skip
        if shape not in never:
            if len(never) > 10_000:
                never.clear()
            probe = types.SimpleNamespace(**row, id=1, submitted_at=0.0, ckpt_write_s=0.0)
            never[shape] = oracles[x.name].never_fits_field(job_from_row(probe))
        found = never[shape]
        if found is not None:
            field, why = found
            return ApiError(422, f"{where}.{field}: {label} could never run it: it {why}", f"{where}.{field}")
        return None

    def take_rate(rows: list[dict[str, Any]]) -> None:
        """A job costs one submission per 8 KiB of command and environment (most cost one): the rate bounds the
        bytes a tenant can make the store keep, as well as the jobs."""
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["tenant"]] = counts.get(r["tenant"], 0) + max(
                1, -(-m.launch_bytes(r["command"], r["env"]) // COST_BYTES)
            )
        for tenant, n in counts.items():
            rates.take(tenant, n, limits(tenant).max_rate)

    def visible_job(job_id: int, p: accounts.Principal) -> Any:
        with store.connect() as conn:
            row = jobstore.get_job(conn, job_id)
        if row is None or (not p.admin and row.tenant != p.tenant):
            raise ApiError(404, f"no job {job_id}", "job_id")
        return row

    def scope(p: accounts.Principal, tenant: str | None) -> str | None:
        """The tenant a listing is limited to: a tenant token sees only its own."""
        if p.admin:
            return tenant
        if tenant is not None and tenant != p.tenant:
            raise ApiError(403, f"this token sees only tenant {p.tenant!r}", "tenant")
        return p.tenant

    def out(row: Any, *, whole: bool = True) -> m.JobOut:
        return m.JobOut.from_row(row, by_name.get(row.site or "", site).node_names, whole=whole)

    max_nodes = sum(len(x.node_names) for x in site_list)
    node_index = {x.name: {n: i for i, n in enumerate(x.node_names)} for x in site_list}

    def parse_nodelist(text: str, field: str) -> list[str]:
        """Node names from a hostlist, at most as many as the sites have nodes; a bad one is a 422 saying where."""
        try:
            return expand(text, limit=max_nodes)
        except ValueError as exc:
            raise ApiError(422, f"{field}: {text[:80]!r} is not a hostlist: {exc}", field) from None

    def site_param(name: str | None) -> str | None:
        if name is not None and name not in by_name:
            raise ApiError(404, f"no site {name!r}; the sites are {', '.join(by_name)}", "site")
        return name

    # ---- public ---------------------------------------------------------------------------------------------
    @app.get(f"{API}/health", response_model=m.Health, response_model_exclude_none=True, tags=["site"])
    def health(request: Request) -> m.Health:
        """Up, to anyone. With a token: the daemon's heartbeat, the store, isolation, and job counts."""
        token, cookie = _bearer(request), request.cookies.get(COOKIE)
        p = app.state.auth.who(token, cookie) if token or cookie else None
        if p is None:
            return m.Health(status="up")
        with store.connect() as conn:
            beat = get_meta(conn, "daemon_heartbeat")
            counts = jobstore.count_by_state(conn, None if p.admin else p.tenant)
        age = time.time() - float(beat) if beat else None
        return m.Health(
            status="ok" if age is not None and age < STALE_HEARTBEAT_S else "degraded",
            store=store.dialect.name,
            daemon_heartbeat_age_s=age,
            isolation=isolation_note(),
            containment=app.state.containment,
            jobs=counts,
        )

    @app.get(f"{API}/whoami", response_model=m.WhoAmI, tags=["site"])
    async def whoami(p: Who) -> m.WhoAmI:
        return m.WhoAmI(role=p.role, tenant=p.tenant)

    @app.post(f"{API}/sign-in-links", status_code=201, response_model=m.SignInLink, tags=["site"])
    def sign_in_link(p: Who) -> m.SignInLink:
        """A link that signs a browser in as this token, once, within ten minutes. The token itself never goes
        into a URL or a cookie."""
        with store.begin() as conn:
            code = accounts.create_session(conn, p.token_id, kind="code")
        return m.SignInLink(path=f"/login?code={code}", expires_at=time.time() + accounts.SIGN_IN_CODE_S)

    # ---- jobs -----------------------------------------------------------------------------------------------
    @app.post(f"{API}/jobs", status_code=201, response_model=m.BatchOut, tags=["jobs"])
    async def submit(spec: m.JobSpec, p: Who) -> m.BatchOut:
        """Submit one job. It is durable when this answers."""
        row = check_spec(spec, p, "body")
        take_rate([row])
        return m.BatchOut(ids=await writer.submit([row]))

    @app.post(f"{API}/jobs/batch", status_code=201, response_model=m.BatchOut, tags=["jobs"])
    async def submit_batch(batch: m.Batch, p: Who) -> m.BatchOut:
        """Submit many jobs at once (all or none)."""
        rows = [check_spec(spec, p, f"body.jobs.{i}") for i, spec in enumerate(batch.jobs)]
        take_rate(rows)
        return m.BatchOut(ids=await writer.submit(rows))

    @app.get(f"{API}/jobs", response_model=list[m.JobOut], tags=["jobs"])
    def list_jobs(
        p: Who,
        tenant: Annotated[str | None, Query(max_length=100)] = None,
        state: Annotated[list[m.JobState] | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        site: Annotated[str | None, Query(max_length=64)] = None,
        q: Annotated[
            str | None,
            Query(max_length=100, pattern=r"^[^\x00-\x1f]*$", description="a job id, or a part of the name (any case)"),
        ] = None,
        since: Annotated[float | None, Query(ge=0, le=1e11, description="submitted at or after (Unix time)")] = None,
        until: Annotated[float | None, Query(ge=0, le=1e11, description="submitted before (Unix time)")] = None,
        sort: Annotated[Literal[JOB_SORTS], Query()] = "id",  # type: ignore[valid-type]
        order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    ) -> list[m.JobOut]:
        """Jobs in every state, oldest first by default; filter, search and sort as the dashboard's Jobs page does."""
        where = site_param(site)
        with store.connect() as conn:
            rows, _ = search_jobs(
                conn, tenant=scope(p, tenant), states=list(state) if state else None, site=where, since=since,
                until=until, text=(q or "").strip(), sort=sort, descending=order == "desc", limit=limit, offset=offset,
            )  # fmt: skip
        return [out(r, whole=False) for r in rows]

    @app.post(f"{API}/jobs/{{job_id}}/resubmit", status_code=201, response_model=m.BatchOut, tags=["jobs"])
    async def resubmit(job_id: JobIdParam, p: Who) -> m.BatchOut:
        """Submit a copy of a job (its request, command and environment) as a new job, checked and limited exactly
        as a new submission is."""
        row = visible_job(job_id, p)
        try:
            spec = m.JobSpec.model_validate(
                {"command": list(row.command), "gpus": row.gpus, "gpu_milli": row.gpu_milli, "tenant": row.tenant,
                 "name": row.name, "env": dict(row.env or {}), "cpu_milli": row.cpu_milli, "mem_mib": row.mem_mib,
                 "models": row.models, "locality": row.locality, "estimate_s": row.estimate_s,
                 "priority": row.priority, "checkpoint_s": row.ckpt_s,
                 "site": row.sites[0] if row.sites and len(row.sites) == 1 else None, "countries": row.countries,
                 "reroute": bool(row.reroute), "award": row.award, "model": row.ai_model,
                 **({"purpose": row.ai_purpose} if row.ai_model is not None else {})}
            )  # fmt: skip
        except ValueError as exc:
            raise ApiError(422, f"job {job_id} cannot be submitted again as it was: {exc}", "job_id") from None
        new = check_spec(spec, p, "job")
        take_rate([new])
        return m.BatchOut(ids=await writer.submit([new]))

    @app.get(f"{API}/jobs/{{job_id}}", response_model=m.JobOut, tags=["jobs"])
    def get_job(job_id: JobIdParam, p: Who) -> m.JobOut:
        return out(visible_job(job_id, p))

    @app.post(f"{API}/jobs/{{job_id}}/cancel", status_code=202, response_model=m.JobOut, tags=["jobs"])
    def cancel(job_id: JobIdParam, p: Who) -> m.JobOut:
        """Ask for a job to be cancelled; the daemon stops it if it runs."""
        row = visible_job(job_id, p)
        if row.state not in jobstore.ACTIVE:
            raise ApiError(409, f"job {job_id} has already ended ({row.state})", "job_id")
        with store.begin() as conn:
            inbox.append(conn, "cancel", job_id=job_id, reason=f"cancelled by {p.tenant or 'an admin'}")
        return out(row)

    @app.get(f"{API}/jobs/{{job_id}}/logs", response_class=PlainTextResponse, tags=["jobs"])
    def logs(
        job_id: JobIdParam,
        p: Who,
        stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
        attempt: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
        tail: Annotated[int, Query(ge=1, le=16 * 1024 * 1024)] = 1024 * 1024,
    ) -> PlainTextResponse:
        """The last ``tail`` bytes of an attempt's output (the latest attempt by default)."""
        row = visible_job(job_id, p)
        n = attempt or row.attempt
        if n < 1 or n > row.attempt:
            raise ApiError(404, f"job {job_id} has no attempt {n} yet (attempts so far: {row.attempt})", "attempt")
        return PlainTextResponse(read_log(row, n, stream, tail))

    @app.get(f"{API}/jobs/{{job_id}}/story", response_model=list[m.Transition], tags=["jobs"])
    def story(job_id: JobIdParam, p: Who) -> list[m.Transition]:
        """Every state change of the job, with what caused it."""
        visible_job(job_id, p)
        with store.connect() as conn:
            rows = jobstore.story(conn, job_id)
        return [
            m.Transition(time=r.time, attempt=r.attempt, old=r.old, new=r.new, stimulus=r.stimulus, reason=r.reason)
            for r in rows
        ]

    @app.get(f"{API}/queue", response_model=list[m.QueueEntry], tags=["jobs"])
    def get_queue(
        p: Who,
        tenant: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
        site: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[m.QueueEntry]:
        """Running jobs, then waiting ones in expected order, with their estimated start (like ``squeue --start``)."""
        where = site_param(site)
        with store.connect() as conn:
            rows = queue(conn, scope(p, tenant), limit, where)
        return [m.QueueEntry(position=pos, job=out(r, whole=False)) for pos, r in rows]

    # ---- tenants, usage, nodes ------------------------------------------------------------------------------
    @app.get(f"{API}/tenants", response_model=list[m.TenantOut], tags=["site"])
    def list_tenants(p: Who) -> list[m.TenantOut]:
        with store.connect() as conn:
            rows = tenant_summaries(conn, None if p.admin else p.tenant)
        return [m.TenantOut(**{k: v for k, v in r.items() if k in m.TenantOut.model_fields}) for r in rows]

    @app.get(f"{API}/usage", response_model=m.UsageOut, tags=["site"])
    def get_usage(
        p: Who,
        since: Annotated[float, Query(ge=0, le=1e11, description="Unix time; default: all time")] = 0.0,
        site: Annotated[str | None, Query(max_length=64)] = None,
    ) -> m.UsageOut:
        """GPU-hours of ended attempts per tenant (accounting), on every site or on one."""
        where = site_param(site)
        with store.connect() as conn:
            spent = jobstore.usage_by_tenant(conn, since, where)
        if not p.admin:
            spent = {t: v for t, v in spent.items() if t == p.tenant}
        return m.UsageOut(since=since, site=where, gpu_hours={t: v / 3600.0 for t, v in spent.items()})

    @app.get(f"{API}/sites", response_model=list[m.SiteOut], tags=["site"])
    def list_sites(_: Who) -> list[m.SiteOut]:
        """The sites served, with their load (a tenant sees every site's load, not whose jobs make it)."""
        with store.connect() as conn:
            rows = site_summaries(conn, load_sites(conn))
        return [m.SiteOut(**r) for r in rows]

    @app.get(f"{API}/nodes", response_model=list[m.NodeOut], tags=["site"])
    def nodes(
        p: Who,
        state: Annotated[list[Literal["up", "down", "drained"]] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1_000_000)] = 1_000_000,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        site: Annotated[str | None, Query(max_length=64)] = None,
        nodelist: Annotated[str | None, Query(max_length=4000, description="only these nodes (a hostlist)")] = None,
    ) -> list[m.NodeOut]:
        """Nodes in site order, with their state and GPUs in use; ``state=down`` lists what needs a technician."""
        where = site_param(site)
        wanted = set(parse_nodelist(nodelist, "nodelist")) if nodelist is not None else None
        with store.connect() as conn:
            rows, used = node_use(conn, site_list[0].name)
        if where is not None:
            rows = [r for r in rows if r["site"] == where]
        if state is not None:
            rows = [r for r in rows if r["state"] in state]
        if wanted is not None:
            rows = [r for r in rows if r["name"] in wanted]
        rows = rows[offset : offset + limit]
        return [
            m.NodeOut(
                site=r["site"],
                index=r["idx"],
                name=r["name"],
                model=r["model"],
                gpus=r["gpus"],
                gpus_used=used.get((r["site"], r["idx"]), 0.0),
                domain=r["domain"],
                pod=r["pod"],
                state=r["state"],
                reason=r["reason"],
            )
            for r in rows
        ]

    # ---- admin ----------------------------------------------------------------------------------------------
    @app.put(f"{API}/admin/tenants/{{name}}", response_model=m.TenantOut, tags=["admin"])
    def put_tenant(name: TenantName, body: m.TenantIn, _: Admin) -> m.TenantOut:
        """Create or change a tenant; on a change, fields not sent keep their values. The tree must stay
        consistent (known parent, guarantees within capacity), and a Unix account runs one tenant at most."""
        with store.begin() as conn:
            old = conn.execute(select(tenants).where(tenants.c.name == name)).first()
            given = body.model_fields_set
            if old is not None:
                keep = {"share": old.share, "parent": old.parent, "guarantee": old.guarantee, "limit": old.limit_gpus,
                        "unix_user": old.unix_user, "max_jobs": old.max_jobs, "max_rate": old.max_rate}  # fmt: skip
                body = m.TenantIn(**{**keep, **body.model_dump(include=given)})
            settings = {k: getattr(body, k) for k in ("unix_user", "max_jobs", "max_rate")}
            try:
                accounts.put_tenant(conn, Tenant(name, body.share, body.parent, body.guarantee, body.limit),
                                    capacity_gpus=total_gpus, uids=accounts.registry(conn, cfg.data_dir),
                                    **settings)  # fmt: skip
            except ConfigError as exc:
                field = "body.unix_user" if "unix_user" in str(exc) else None
                raise ApiError(422, str(exc), field) from exc
            inbox.append(conn, "tenants")
        limits_at[0] = 0.0
        with store.connect() as conn:
            row = next(r for r in tenant_summaries(conn, name))
        return m.TenantOut(**{k: v for k, v in row.items() if k in m.TenantOut.model_fields})

    @app.get(f"{API}/admin/tokens", response_model=list[m.TokenOut], tags=["admin"])
    def list_tokens(_: Admin) -> list[m.TokenOut]:
        with store.connect() as conn:
            rows = conn.execute(select(tokens).order_by(tokens.c.id)).all()
        return [
            m.TokenOut(
                id=r.id,
                role=r.role,
                tenant=r.tenant,
                name=r.name,
                created_at=r.created_at,
                revoked=r.revoked,
                token=None,
            )
            for r in rows
        ]

    @app.post(f"{API}/admin/tokens", status_code=201, response_model=m.TokenOut, tags=["admin"])
    def create_token(body: m.TokenIn, _: Admin) -> m.TokenOut:
        """A new token; its secret is in this answer and nowhere else."""
        if body.role == "tenant" and body.tenant is None:
            raise ApiError(422, "body.tenant: a tenant token needs a tenant", "body.tenant")
        if body.role == "tenant" and body.tenant is not None and not tenant_exists(body.tenant):
            raise ApiError(422, f"body.tenant: unknown tenant {body.tenant!r}", "body.tenant")
        if body.role == "reviewer" and not body.name:
            raise ApiError(422, "body.name: a reviewer token needs a name (calls name their reviewers by it)",
                           "body.name")  # fmt: skip
        with store.begin() as conn:
            tid, secret = accounts.create_token(conn, role=body.role, tenant=body.tenant, name=body.name)
        return m.TokenOut(
            id=tid, role=body.role, tenant=body.tenant if body.role == "tenant" else None, name=body.name,
            created_at=time.time(), revoked=False, token=secret,
        )  # fmt: skip

    @app.delete(f"{API}/admin/tokens/{{token_id}}", status_code=204, tags=["admin"])
    def revoke_token(token_id: Annotated[int, PathParam(ge=1, le=2**62)], _: Admin) -> Response:
        with store.begin() as conn:
            if not accounts.revoke_token(conn, token_id):
                raise ApiError(404, f"no token {token_id}", "token_id")
        app.state.auth.forget()
        return Response(status_code=204)

    def node_at(name: str, site_name: str | None) -> tuple[SiteInfo, int]:
        """A node by name: on ``site_name``, or on the one site that has a node of that name."""
        where = [by_name[site_param(site_name) or ""]] if site_name is not None else site_list
        found = [(x, node_index[x.name][name]) for x in where if name in node_index[x.name]]
        if not found:
            raise ApiError(404, f"no node {name!r}" + (f" on site {site_name!r}" if site_name else ""), "name")
        if len(found) > 1:
            raise ApiError(422, f"node {name!r} is on sites {', '.join(x.name for x, _ in found)}: name its site "
                           "(--site, or ?site= in the API)", "site")  # fmt: skip
        return found[0]

    def nodes_at(names: str, site_name: str | None) -> list[tuple[SiteInfo, int]]:
        """Nodes by name or by hostlist (``r[0000-0003]-n[00-17]``); every one must exist."""
        listed = parse_nodelist(names, "name")
        return [node_at(n, site_name) for n in listed]

    @app.post(f"{API}/admin/nodes/{{name}}/drain", status_code=202, tags=["admin"])
    def drain(name: Annotated[str, PathParam(max_length=4000)], _: Admin,
              reason: Annotated[str, Query(max_length=500)] = "drained by an admin",
              site: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:  # fmt: skip
        """Stop placing jobs on a node, or on each node of a hostlist; jobs on them run to their end."""
        try:
            m.clean_text(reason)
        except ValueError as exc:
            raise ApiError(422, f"reason: {exc}", "reason") from None
        found = nodes_at(name, site)
        with store.begin() as conn:
            for where, idx in found:
                inbox.append(conn, "drain", node=idx, reason=reason, site=where.name)
        return {"node": name, "site": found[0][0].name, "nodes": len(found), "requested": "drain"}

    @app.post(f"{API}/admin/nodes/{{name}}/resume", status_code=202, tags=["admin"])
    def resume(name: Annotated[str, PathParam(max_length=4000)], _: Admin,
               site: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:  # fmt: skip
        """Put a node, or each node of a hostlist, back in service."""
        found = nodes_at(name, site)
        with store.begin() as conn:
            for where, idx in found:
                inbox.append(conn, "resume", node=idx, site=where.name)
        return {"node": name, "site": found[0][0].name, "nodes": len(found), "requested": "resume"}

    from gigafactory.control.web.pages import install_pages

    install_pages(app)

    def tenants_changed() -> None:
        limits_at[0] = 0.0

    app.include_router(
        programme_router(store, [x.name for x in site_list], total_gpus, principal, admin, tenants_changed),
        prefix=API,
    )
    app.include_router(desk_router(store, principal, tenant_exists), prefix=API)
    return app


def read_log(row: Any, attempt: int, stream: str, size: int) -> str:
    """The last ``size`` bytes of an attempt's ``stream`` log, read safely: never through a link, never a FIFO or
    device, and only a file that belongs to the job's tenant or to the control plane. Whatever a job does to its
    own files, this reads nothing the tenant could not read itself."""
    if not row.log_dir:
        return ""
    path = Path(row.log_dir).parent / str(attempt) / f"{stream}.log"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or (st.st_uid == 0 and os.geteuid() != 0):
            return ""
        f.seek(max(0, st.st_size - size))
        data = f.read(size)
    return data.decode("utf-8", errors="replace")
