"""Control-plane commands: ``serve`` and ``daemon`` run it; the rest are a client over HTTP, with Slurm's habits
(``queue`` shows estimated starts like ``squeue --start``; ``cancel`` is ``scancel``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gigafactory.cli.output import console, user_errors
from gigafactory.core.errors import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

    from gigafactory.control.client import Client
    from gigafactory.control.config import ControlConfig

DEFAULT_URL = "http://127.0.0.1:8642"

__all__ = ["admin_app", "register"]

admin_app = typer.Typer(
    help="Site administration: tenants, tokens, nodes (needs an admin token).", no_args_is_help=True
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="the control plane's directory [default: $GIGAFACTORY_HOME or ~/.gigafactory]"),
]
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="GIGAFACTORY_DB",
        help="store URL, e.g. postgresql+psycopg://user@host/db; put a password in $GIGAFACTORY_DB rather than "
        "here, where every user of the machine can read it [default: SQLite in the data dir]",
    ),
]
JobsDir = Annotated[
    Path | None,
    typer.Option("--jobs-dir", help="where jobs' directories go (first start only) [default: DATA/jobs]"),
]
Url = Annotated[str, typer.Option("--url", envvar="GIGAFACTORY_URL", help="the API's address")]
Token = Annotated[
    str | None, typer.Option("--token", envvar="GIGAFACTORY_TOKEN", help="API token [default: the local admin token]")
]


def _cfg(data_dir: Path | None, db: str | None, jobs_dir: Path | None = None) -> ControlConfig:
    from gigafactory.control.config import ControlConfig, default_data_dir

    return ControlConfig(data_dir or default_data_dir(), db, jobs_dir)


def _client(url: str, token: str | None) -> Client:
    from gigafactory.control.client import Client, find_token

    tok = find_token(token)
    if tok is None:
        raise ConfigError("no token: pass --token, set GIGAFACTORY_TOKEN, or run where ~/.gigafactory/admin.token is")
    return Client(url, tok)


def _when(t: float | None) -> str:
    """A time as squeue prints it, shorter: the date only when it is not today."""
    if t is None or not math.isfinite(t):
        return "N/A"
    when = dt.datetime.fromtimestamp(t)
    today = dt.date.today()
    if when.date() == today:
        return when.strftime("%H:%M:%S")
    return when.strftime("%m-%dT%H:%M" if when.year == today.year else "%Y-%m-%dT%H:%M")


def _table(*columns: str) -> Table:
    """A plain table in the style of Slurm's commands: bold headers, no borders. Columns named in 'WRAP' fold
    their long values onto more lines, so a table fits the terminal (80 columns at least) without cutting."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in columns:
        wraps = col in WRAP
        table.add_column(col, overflow="fold" if wraps else "ellipsis", no_wrap=not wraps, ratio=1 if wraps else None)
    return table


WRAP = {"NAME", "NODELIST(REASON)", "REASON", "JOBS", "TENANT"}


def _gpus(j: dict[str, Any]) -> str:
    return str(j["gpus"]) if j["gpu_milli"] == 1000 else f"{j['gpu_milli'] / 1000:g}"


def serve(
    data_dir: DataDir = None,
    db: Db = None,
    jobs_dir: JobsDir = None,
    site: Annotated[
        str | None,
        typer.Option(help="site preset (first start only) [default: hgx-h100:nodes=4]"),
    ] = None,
    executor: Annotated[str | None, typer.Option(help="local | slurm (first start only) [default: local]")] = None,
    network: Annotated[
        str | None,
        typer.Option(help="serve a network of sites: FILE.toml or a preset (first start only; see docs/network.md)"),
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="policy profile (first start only) [default: fifo+easy+best-fit+award]")
    ] = None,
    kill_wait: Annotated[
        float | None, typer.Option("--kill-wait", help="seconds between SIGTERM and SIGKILL when a job is stopped")
    ] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="GIGAFACTORY_PORT", help="port to listen on")] = 8642,
    no_daemon: Annotated[
        bool, typer.Option("--no-daemon", help="serve the API only (run `gigafactory daemon` yourself)")
    ] = False,
) -> None:
    """Run the control plane: the API, the dashboard, and a supervised daemon."""
    from gigafactory.control.identity import isolation_note

    cfg = _cfg(data_dir, db, jobs_dir)
    from gigafactory.control.config import init_control, read_network
    from gigafactory.control.serve import containment, serve_api

    net = read_network(network) if network is not None else None
    store = init_control(cfg, site=site, executor=executor, profile=policy, kill_wait_s=kill_wait, network=net)

    def ready() -> None:
        console.print(f"[bold]gigafactory[/] control plane on http://{host}:{port} (dashboard /, API /docs)")
        from gigafactory.control.store.db import get_meta
        from gigafactory.control.store.site import load_sites

        with store.connect() as conn:
            served = load_sites(conn)
            route = get_meta(conn, "route")
        if len(served) > 1:
            console.print(f"sites: {', '.join(f'{x.name} ({x.country})' for x in served)}; route {route}")
        console.print(f"data in {cfg.data_dir}; admin token in {cfg.admin_token_file}")
        console.print(f"isolation {isolation_note()}")
        console.print(f"containment: {containment(cfg, store)}")
        if no_daemon:
            console.print(
                "[yellow]no daemon[/]: jobs are accepted and queued, but nothing starts or ends until "
                f"`gigafactory daemon --data-dir {cfg.data_dir}` runs"
            )

    with contextlib.suppress(KeyboardInterrupt):
        serve_api(cfg, host=host, port=port, daemon=not no_daemon, on_ready=ready)
    console.print("stopped: the API and the daemon are down; jobs run on, and a later serve takes them up")


def daemon(data_dir: DataDir = None, db: Db = None, jobs_dir: JobsDir = None) -> None:
    """Run the daemon alone ('serve' starts one for you). It refuses to start while another holds the store."""
    from gigafactory.control.serve import run_daemon

    run_daemon(_cfg(data_dir, db, jobs_dir))


def submit(
    command: Annotated[list[str], typer.Argument(help="the program and its arguments (after --)")],
    gpus: Annotated[float, typer.Option(help="GPUs; a fraction below 1 asks for part of one GPU")] = 1,
    tenant: Annotated[str | None, typer.Option(help="the tenant (an admin token must name one)")] = None,
    name: Annotated[str, typer.Option(help="a name for the job")] = "",
    time_limit: Annotated[str | None, typer.Option("--time", help="expected run time: 90s, 30m, 4h, 2d")] = None,
    locality: Annotated[str, typer.Option(help="any | pod | domain")] = "any",
    priority: Annotated[int, typer.Option(help="priority (with a priority order)")] = 0,
    site: Annotated[str | None, typer.Option(help="run it on this site of the network")] = None,
    countries: Annotated[
        str | None, typer.Option(help="run it only in these member states, e.g. DE,FR (its data goes nowhere else)")
    ] = None,
    reroute: Annotated[
        bool, typer.Option("--reroute", help="after a site failure, it may move to another site")
    ] = False,
    award: Annotated[int | None, typer.Option(help="the award it charges [default: your active award, if any]")] = None,
    model: Annotated[int | None, typer.Option(help="the AI Act desk's model it trains (desk models)")] = None,
    purpose: Annotated[str | None, typer.Option(help="what it does for that model [default: pre-training]")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Submit a job: 'gigafactory submit --gpus 8 -- python train.py'. Prints its id."""
    spec: dict[str, Any] = {
        "command": command,
        "tenant": tenant,
        "name": name,
        "locality": locality,
        "priority": priority,
    }
    if site is not None:
        spec["site"] = site
    if countries is not None:
        spec["countries"] = [c.strip().upper() for c in countries.split(",") if c.strip()]
        if not spec["countries"]:
            raise ConfigError(f"--countries {countries!r}: give ISO codes, e.g. DE,FR")
    if reroute:
        spec["reroute"] = True
    if award is not None:
        spec["award"] = award
    if model is not None:
        spec["model"] = model
    if purpose is not None:
        if model is None:
            raise ConfigError("--purpose says what the job does for its --model: give --model too")
        spec["purpose"] = purpose
    if not (math.isfinite(gpus) and gpus > 0):
        raise ConfigError(f"--gpus {gpus:g}: must be more than 0")
    if gpus < 1:
        milli = gpus * 1000
        if abs(milli - round(milli)) > 1e-6 or round(milli) < 1:
            raise ConfigError(f"--gpus {gpus:g}: a share of a GPU is counted in thousandths (0.001 to 0.999)")
        spec.update(gpus=1, gpu_milli=round(milli))
    elif gpus != int(gpus):
        raise ConfigError(f"--gpus {gpus:g}: whole GPUs, or a fraction below 1")
    else:
        spec["gpus"] = int(gpus)
    if time_limit is not None:
        spec["estimate_s"] = parse_duration(time_limit)
    with _client(url, token) as c:
        console.print(f"Submitted job {c.submit(**spec)}")


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        if t and t[-1] in units:
            value = float(t[:-1]) * units[t[-1]]
        else:
            value = float(t)
    except ValueError:
        raise ConfigError(f"--time {text!r}: a duration like 90s, 30m, 4h or 2d") from None
    if not value > 0:
        raise ConfigError(f"--time {text!r}: must be more than 0")
    return value


def queue(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's jobs")] = None,
    site: Annotated[str | None, typer.Option(help="only this site's jobs (and those not routed yet)")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Running and waiting jobs with their estimated start, like 'squeue --start'."""
    with _client(url, token) as c:
        entries = c.queue(tenant, site)
        networked = len(c.sites()) > 1
    cols = ["JOBID", "TENANT", "NAME", *(["SITE"] if networked else []), "GPUS", "STATE", "POS", "START_TIME",
            "NODELIST(REASON)"]  # fmt: skip
    table = _table(*cols)
    for e in entries:
        j = e["job"]
        start = j["started_at"] if j["state"] == "running" else j["est_start"]
        # As squeue says it: the first in line waits for resources, the others behind it for their turn.
        waits = "Resources" if e["position"] == 1 else "Priority"
        where = (j.get("nodelist") or ",".join(j["nodes"])) if j["nodes"] else f"({j['reason'] or waits})"
        table.add_row(
            str(j["id"]),
            j["tenant"],
            j["name"],
            *([j.get("site") or "-"] if networked else []),
            _gpus(j),
            j["state"].upper(),
            str(e["position"] or ""),
            _when(start),
            where,
        )
    console.print(table)


def jobs(
    state: Annotated[list[str] | None, typer.Option(help="only jobs in this state (repeat for several)")] = None,
    tenant: Annotated[str | None, typer.Option(help="only this tenant's jobs (an admin's choice)")] = None,
    search: Annotated[str | None, typer.Option(help="a job id, or a part of the name")] = None,
    since: Annotated[str | None, typer.Option(help="submitted within this long: 90s, 30m, 4h, 2d")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Jobs in every state, newest first, like 'sacct': ended ones too, with their nodes as a hostlist."""
    try:
        after = time.time() - parse_duration(since) if since else None
    except ConfigError:
        raise ConfigError(f"--since {since!r}: a duration like 90s, 30m, 4h or 2d") from None
    with _client(url, token) as c:
        rows = c.jobs(tenant=tenant, states=state, limit=limit, search=search, since=after, sort="id", descending=True)
    table = _table("JOBID", "TENANT", "NAME", "GPUS", "STATE", "SUBMIT", "END", "EXIT", "NODELIST")
    for j in rows:
        table.add_row(str(j["id"]), j["tenant"], j["name"], _gpus(j), j["state"].upper(), _when(j["submitted_at"]),
                      _when(j["ended_at"]), "" if j["exit_code"] is None else str(j["exit_code"]),
                      j.get("nodelist") or "")  # fmt: skip
    console.print(table)


def status(job_id: int, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """One job, and its story."""
    with _client(url, token) as c:
        j = c.job(job_id)
        story = c.story(job_id)
    console.print(f"[bold]job {j['id']}[/] {j['name']} · tenant {j['tenant']} · [bold]{j['state']}[/] {j['reason']}")
    console.print(f"  command   {shlex.join(j['command'])}", markup=False, highlight=False)
    console.print(f"  GPUs      {_gpus(j)} ({j['locality']}) on {j.get('nodelist') or ', '.join(j['nodes']) or '-'}")
    if j.get("site") or j.get("countries") or j.get("sites"):
        limits = "".join(
            [f"   may run in {','.join(j['countries'])}" if j.get("countries") else "",
             f"   pinned to {','.join(j['sites'])}" if j.get("sites") else "",
             "   may move if its site fails" if j.get("reroute") else ""]
        )  # fmt: skip
        console.print(f"  site      {j.get('site') or 'not routed yet'}{limits}")
    console.print(f"  attempts  {j['attempt']}   exit code {j['exit_code'] if j['exit_code'] is not None else '-'}")
    console.print(
        f"  submitted {_when(j['submitted_at'])}   started {_when(j['started_at'])}   ended {_when(j['ended_at'])}"
    )
    if j.get("award") is not None or j.get("charged_award") is not None:
        named = f"names award {j['award']}" if j.get("award") is not None else "its tenant's active award"
        charged = f", charging award {j['charged_award']}" if j.get("charged_award") is not None else ""
        console.print(f"  award     {named}{charged}")
    if j["state"] in ("pending", "submitted"):
        console.print(f"  estimated start {_when(j['est_start'])}")
    for t in story:
        console.print(
            f"  {_when(t['time'])}  #{t['attempt']}  {t['old'] or '-'} -> {t['new']}  by {t['stimulus']}  {t['reason']}"
        )


def cancel(
    job_ids: Annotated[list[int], typer.Argument(help="job ids")], url: Url = DEFAULT_URL, token: Token = None
) -> None:
    """Cancel jobs (like 'scancel')."""
    with _client(url, token) as c:
        for jid in job_ids:
            c.cancel(jid)
            console.print(f"cancelling job {jid}")


def logs(
    job_id: int,
    stream: Annotated[str, typer.Option(help="stdout | stderr")] = "stdout",
    attempt: Annotated[int | None, typer.Option(help="attempt (default: the latest)")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Print a job's output."""
    with _client(url, token) as c:
        text = c.logs(job_id, stream, attempt)
    typer.echo(text, nl=False)


def usage(
    hours: Annotated[float | None, typer.Option(help="only the last N hours")] = None,
    site: Annotated[str | None, typer.Option(help="only what ran on this site")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """GPU-hours per tenant, and each tenant's share."""
    since = time.time() - hours * 3600 if hours else 0.0
    with _client(url, token) as c:
        spent = c.usage(since, site)["gpu_hours"]
        tenants = c.tenants()
    if site is not None:
        # The GPUs running and the job counts are the whole network's: on one site, only the accounting shows.
        table = _table("TENANT", "SHARE", f"GPU-HOURS ON {site.upper()}")
        for t in tenants:
            table.add_row(t["name"], f"{t['share']:g}", f"{spent.get(t['name'], 0.0):.3f}")
        console.print(table)
        return
    table = _table("TENANT", "SHARE", "GPUS NOW", "GPU-HOURS", "JOBS")
    for t in tenants:
        jobs = ", ".join(f"{k} {v}" for k, v in sorted(t["jobs"].items()))
        table.add_row(t["name"], f"{t['share']:g}", f"{t['gpus_running']:g}", f"{spent.get(t['name'], 0.0):.3f}", jobs)
    console.print(table)


def nodes(
    state: Annotated[list[str] | None, typer.Option(help="only nodes in this state: up, down, drained")] = None,
    site: Annotated[str | None, typer.Option(help="only this site's nodes")] = None,
    nodelist: Annotated[str | None, typer.Option(help="only these nodes, as a hostlist: r[0000-0003]-n[00-17]")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Nodes with their state and GPUs in use (like 'sinfo -N'); '--state down --state drained' lists what
    'sinfo -R' lists: the nodes out of service, with why."""
    with _client(url, token) as c:
        rows = c.nodes(state, site, nodelist)
        several = len(c.sites()) > 1
    table = _table(*(["SITE"] if several else []), "NODE", "MODEL", "GPUS", "USED", "STATE", "REASON")
    for n in rows:
        table.add_row(*([n["site"]] if several else []), n["name"], n["model"], str(n["gpus"]), f"{n['gpus_used']:g}",
                      n["state"], n["reason"])  # fmt: skip
    console.print(table)


def sites(url: Url = DEFAULT_URL, token: Token = None) -> None:
    """The sites served, with their load ('gigafactory presets' lists the presets to build sites from)."""
    with _client(url, token) as c:
        rows = c.sites()
    table = _table(
        "SITE", "COUNTRY", "GPUS", "USED", "ASKED", "LOAD", "RUNNING", "WAITING", "DOWN", "EUR/MWH", "GCO2/KWH"
    )
    for x in rows:
        table.add_row(x["name"], x["country"] or "-", str(x["gpus"]), f"{x['gpus_used']:g}", f"{x['gpus_asked']:g}",
                      f"{x['load']:.0%}", str(x["jobs_running"]), str(x["jobs_waiting"]), str(x["nodes_down"]),
                      "-" if x["price_eur_mwh"] is None else f"{x['price_eur_mwh']:g}",
                      "-" if x["carbon_g_kwh"] is None else f"{x['carbon_g_kwh']:g}")  # fmt: skip
    console.print(table)


# ---- admin ----------------------------------------------------------------------------------------------------
@admin_app.command("tenant")
@user_errors
def admin_tenant(
    name: str,
    share: Annotated[float | None, typer.Option(help="fair-share weight [new tenant: 1]")] = None,
    parent: Annotated[str | None, typer.Option(help="parent account [new tenant: root]")] = None,
    guarantee: Annotated[int | None, typer.Option(help="GPUs guaranteed")] = None,
    limit: Annotated[int | None, typer.Option(help="GPUs at most")] = None,
    unix_user: Annotated[
        str | None, typer.Option("--unix-user", help="run its jobs as this account (as root; else a dynamic uid)")
    ] = None,
    max_jobs: Annotated[int | None, typer.Option("--max-jobs", help="jobs waiting at most [10,000]")] = None,
    max_rate: Annotated[float | None, typer.Option("--max-rate", help="submissions per second at most [100]")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Create or change a tenant: options not given keep their values."""
    given = {"share": share, "parent": parent, "guarantee": guarantee, "limit": limit, "unix_user": unix_user,
             "max_jobs": max_jobs, "max_rate": max_rate}  # fmt: skip
    with _client(url, token) as c:
        t = c.put_tenant(name, **{k: v for k, v in given.items() if v is not None})
    runs_as = t.get("unix_user") or (f"uid {t['uid']}" if t.get("uid") is not None else "-")
    console.print(f"tenant {t['name']}: share {t['share']:g} under {t['parent']}; its jobs run as {runs_as}")


@admin_app.command("token")
@user_errors
def admin_token(
    tenant: Annotated[str | None, typer.Option(help="a token for this tenant")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="an admin token")] = False,
    reviewer: Annotated[
        bool, typer.Option("--reviewer", help="a reviewer of access calls (give --name: calls name it)")
    ] = False,
    name: Annotated[str, typer.Option(help="a note on what it is for; a reviewer's name")] = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Create a token; prints the secret (shown once)."""
    if admin + reviewer + (tenant is not None) != 1:
        raise ConfigError("give one of --tenant NAME, --admin or --reviewer --name NAME")
    if reviewer and not name:
        raise ConfigError("a reviewer token needs --name: calls name their reviewers by it")
    with _client(url, token) as c:
        t = c.create_token("admin" if admin else "reviewer" if reviewer else "tenant", tenant, name)
    console.print(t["token"])


@admin_app.command("tokens")
@user_errors
def admin_tokens(url: Url = DEFAULT_URL, token: Token = None) -> None:
    """List tokens (not their secrets)."""
    with _client(url, token) as c:
        rows = c.tokens()
    table = _table("ID", "ROLE", "TENANT", "NAME", "CREATED", "REVOKED")
    for t in rows:
        table.add_row(
            str(t["id"]), t["role"], t["tenant"] or "", t["name"], _when(t["created_at"]), "yes" if t["revoked"] else ""
        )
    console.print(table)


@admin_app.command("revoke")
@user_errors
def admin_revoke(token_id: int, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Revoke a token by id."""
    with _client(url, token) as c:
        c.revoke_token(token_id)
    console.print(f"token {token_id} revoked")


@admin_app.command("drain")
@user_errors
def admin_drain(
    node: str,
    reason: Annotated[str, typer.Option(help="why")] = "drained by an admin",
    site: Annotated[str | None, typer.Option(help="the node's site, where two sites have a node of that name")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Stop placing jobs on a node, or on each node of a hostlist such as 'r[0000-0003]-n[00-17]' (jobs on them
    run on)."""
    with _client(url, token) as c:
        c.drain(node, reason, site)
    console.print(f"draining {node}")


@admin_app.command("resume")
@user_errors
def admin_resume(
    node: str,
    site: Annotated[str | None, typer.Option(help="the node's site, where two sites have a node of that name")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Put a drained node, or each node of a hostlist, back in service."""
    with _client(url, token) as c:
        c.resume(node, site)
    console.print(f"resuming {node}")


def sign_in(url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Print a one-time link that signs a browser in to the dashboard as this token (tenant, reviewer or admin)."""
    with _client(url, token) as c:
        console.print(c.sign_in_link(), soft_wrap=True, markup=False, highlight=False)


DEMO_TENANTS = (("lab-a", 2.0), ("startup-b", 1.0), ("uni-c", 1.0))  # name, share


def register(app: typer.Typer) -> None:
    for func in (serve, daemon, submit, queue, jobs, status, cancel, logs, usage, nodes, sites, sign_in):
        app.command(context_settings={"allow_interspersed_args": func is not submit})(user_errors(func))
    app.add_typer(admin_app, name="admin")
    from gigafactory.cli.programme import programme_app

    app.add_typer(programme_app, name="programme")


def _demo_jobs() -> list[dict[str, Any]]:
    """Nine small jobs for three tenants. They are POSIX shell, so that they run under any tenant's uid (the
    control plane's own Python may sit where tenants cannot reach it)."""

    def job(tenant: str, name: str, gpus: float, seconds: int, code: int = 0) -> dict[str, Any]:
        script = (
            f'echo "{name}: training on GPUs $CUDA_VISIBLE_DEVICES"; i=0; '
            f'while [ $i -lt {seconds} ]; do sleep 1; echo "step $i loss $(awk "BEGIN{{printf \\"%.3f\\", '
            f'3/($i+1)}}")"; i=$((i+1)); done; exit {code}'
        )
        spec: dict[str, Any] = {"tenant": tenant, "name": name, "command": ["sh", "-c", script], "estimate_s": seconds}
        if gpus < 1:
            spec.update(gpus=1, gpu_milli=round(gpus * 1000))
        else:
            spec["gpus"] = int(gpus)
        return spec

    return [
        job("lab-a", "llama-finetune", 16, 30),
        job("lab-a", "eval-harness", 8, 10),
        job("startup-b", "pretrain-7b", 32, 20),
        job("uni-c", "notebook", 0.5, 15),
        job("uni-c", "broken-config", 1, 3, code=3),
        *(job("startup-b", f"sweep-{i}", 4, 12) for i in range(4)),
    ]


def control_demo(out: Path, port: int, seconds: float | None) -> None:
    """Start a control plane on embedded defaults, submit real jobs, and serve the dashboard."""
    import threading

    from gigafactory.control.client import Client, ClientError
    from gigafactory.control.config import ControlConfig, init_control, remove_control
    from gigafactory.control.identity import isolation_note
    from gigafactory.control.serve import make_executor, serve_api
    from gigafactory.core.tenants import Tenant

    cfg = ControlConfig(out)
    remove_control(cfg)  # a fresh demo each time (only a directory an earlier demo made, with its jobs)
    store = init_control(cfg, site="hgx-h100:nodes=4", executor="local", profile="fifo+easy+best-fit+award",
                         tenants=[Tenant(n, share=w) for n, w in DEMO_TENANTS], kill_wait_s=3)  # fmt: skip
    admin = cfg.admin_token_file.read_text().strip()
    url = f"http://127.0.0.1:{port}"

    def drive() -> None:
        with contextlib.suppress(ClientError):  # the server stopped (Ctrl-C or --for): nothing left to watch
            _drive()

    def _drive() -> None:
        with Client(url, admin) as c:
            tokens = {name: c.create_token("tenant", name, "demo")["token"] for name, _ in DEMO_TENANTS}
            ids = c.submit_many(_demo_jobs())
            console.print(
                f"[bold]gigafactory demo[/]: a control plane with {len(c.nodes())} nodes, 32 GPUs (local executor), "
                f"data in {cfg.data_dir}"
            )
            console.print(f"isolation {isolation_note()}")
            console.print(f"submitted {len(ids)} real jobs for {', '.join(tokens)}")
            console.print("sign-in links (each works once, within 10 minutes):")
            console.print(f"  dashboard as the admin: [cyan]{c.sign_in_link()}[/]", soft_wrap=True)
            for name, tok in tokens.items():
                with Client(url, tok) as as_tenant:
                    console.print(f"  as tenant {name}: {as_tenant.sign_in_link()}", soft_wrap=True)
            console.print(
                f"CLI: GIGAFACTORY_TOKEN=$(cat {cfg.admin_token_file}) .venv/bin/gigafactory queue --url {url}",
                soft_wrap=True,
            )
            seen: dict[int, str] = {}
            while True:
                jobs = {j["id"]: j for j in c.jobs(limit=1000)}
                for jid in ids:
                    j = jobs[jid]
                    if seen.get(jid) != j["state"]:
                        seen[jid] = j["state"]
                        extra = f" on {j.get('nodelist') or ', '.join(j['nodes'])}" if j["state"] == "running" else ""
                        if j["state"] == "pending" and j["est_start"]:
                            extra = f" (estimated start in {max(0.0, j['est_start'] - time.time()):.0f} s)"
                        console.print(f"  job {jid:>2} {j['tenant']:<10} {j['name']:<15} {j['state']}{extra}")
                if all(s in ("completed", "failed", "cancelled", "rejected") for s in seen.values()) and len(
                    seen
                ) == len(ids):
                    break
                time.sleep(1.0)
            done = sum(1 for s in seen.values() if s == "completed")
            console.print(f"all {len(ids)} jobs ended ({done} completed, {len(ids) - done} failed as intended); "
                          f"the dashboard stays up at {url}/ (Ctrl-C to stop)", soft_wrap=True)  # fmt: skip

    try:
        serve_api(cfg, host="127.0.0.1", port=port, stop_after_s=seconds,
                  on_ready=lambda: threading.Thread(target=drive, daemon=True).start())  # fmt: skip
    except KeyboardInterrupt:
        console.print("stopped (Ctrl-C)")  # what the demo said to do: not an error
    finally:
        left = make_executor(cfg, store).stop_all()  # type: ignore[attr-defined]  # the demo leaves nothing behind
        if left:
            console.print(f"stopped {left} job(s) still running")
