"""``gigafactory programme``: the access programme from the command line, over the API (see docs/programme.md).

Admins add funders and their contributions and open calls; tenants apply; reviewers review and award; everyone
lists what it may see, and reports usage by funder, member state, organisation, call, award or tenant.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Annotated, Any

import typer

from gigafactory.cli.control import DEFAULT_URL, Token, Url, _client, _table, _when
from gigafactory.cli.output import console, user_errors
from gigafactory.core.errors import ConfigError

__all__ = ["programme_app"]

programme_app = typer.Typer(
    help="The access programme: funders, calls, applications, reviews, awards and reports.", no_args_is_help=True
)


def parse_time(text: str, what: str) -> float:
    """``2027-03-31``, ``2027-03-31T12:00`` (UTC), or from now: ``+30d``, ``+12h``, ``-1h``."""
    m = re.fullmatch(r"([+-])(\d+(?:\.\d+)?)([dhm])", text.strip())
    if m:
        n = float(m.group(2)) * {"d": 86_400, "h": 3600, "m": 60}[m.group(3)]
        return time.time() + (n if m.group(1) == "+" else -n)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{what} {text!r}: give a date (2027-03-31, 2027-03-31T12:00 UTC) or +30d / +12h") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _cmd(func: Any) -> Any:
    return programme_app.command()(user_errors(func))


@_cmd
def calls(url: Url = DEFAULT_URL, token: Token = None) -> None:
    """The calls you may see (a reviewer: those it reviews)."""
    with _client(url, token) as c:
        rows = c.request("GET", "/calls")
    t = _table("ID", "CALL", "MODE", "SITE", "BUDGET", "AWARDED", "MAX", "OPEN", "CLOSES")
    for r in rows:
        t.add_row(str(r["id"]), r["name"], r["mode"], r["site"], f"{r['budget_gpu_hours']:,.0f}",
                  f"{r['awarded_gpu_hours']:,.1f}", f"{r['max_request_gpu_hours']:,.0f}", "yes" if r["open"] else "no",
                  _when(r["closes_at"]))  # fmt: skip
    console.print(t)


@_cmd
def open_call(
    name: Annotated[str, typer.Argument(help="the call's name")],
    mode: Annotated[str, typer.Option(help="playground | fast-lane | large-scale")],
    budget: Annotated[float, typer.Option(help="GPU-hours the call may award in all")],
    closes: Annotated[str, typer.Option(help="when it closes: 2027-03-31 or +30d")],
    opens: Annotated[str | None, typer.Option(help="when it opens [default: now]")] = None,
    max_request: Annotated[float | None, typer.Option(help="GPU-hours one application may get")] = None,
    response_days: Annotated[float | None, typer.Option(help="days to answer an application")] = None,
    validity_days: Annotated[float | None, typer.Option(help="days an award lasts")] = None,
    reviewer: Annotated[list[str] | None, typer.Option(help="a reviewer token's name; repeat")] = None,
    site: Annotated[str | None, typer.Option(help="the site (in a network)")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Open a call (admin). Prints its id."""
    body: dict[str, Any] = {"name": name, "mode": mode, "budget_gpu_hours": budget,
                            "closes_at": parse_time(closes, "--closes"), "reviewers": reviewer or []}  # fmt: skip
    for key, value in (("opens_at", parse_time(opens, "--opens") if opens else None), ("site", site),
                       ("max_request_gpu_hours", max_request), ("response_days", response_days),
                       ("validity_days", validity_days)):  # fmt: skip
        if value is not None:
            body[key] = value
    with _client(url, token) as c:
        console.print(c.request("POST", "/admin/calls", json=body)["id"])


@_cmd
def apply(
    call: Annotated[int, typer.Argument(help="the call's id")],
    title: Annotated[str, typer.Option(help="what the compute is for")],
    gpu_hours: Annotated[float, typer.Option(help="GPU-hours asked")],
    model_size: Annotated[str, typer.Option(help="e.g. 7B parameters")] = "",
    purpose: Annotated[str, typer.Option(help="free text")] = "",
    organisation: Annotated[str, typer.Option(help="[default: the tenant]")] = "",
    country: Annotated[str | None, typer.Option(help="the organisation's member state, e.g. FR")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Apply to a call (a tenant token, for its tenant). Prints the application's id."""
    body: dict[str, Any] = {"title": title, "gpu_hours": gpu_hours, "model_size": model_size, "purpose": purpose,
                            "organisation": organisation}  # fmt: skip
    if country:
        body["country"] = country.upper()
    with _client(url, token) as c:
        console.print(c.request("POST", f"/calls/{call}/applications", json=body)["id"])


@_cmd
def applications(
    call: Annotated[int | None, typer.Option(help="only this call's")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Applications you may see: a tenant its own, a reviewer its calls', an admin all."""
    with _client(url, token) as c:
        rows = c.request("GET", "/applications", params={"call": call} if call else None)
    t = _table("ID", "CALL", "TENANT", "TITLE", "GPU-H", "STATE", "DUE")
    for r in rows:
        due = _when(r.get("due_at")) + (" overdue" if r.get("overdue") else "")
        t.add_row(str(r["id"]), str(r["call_id"]), r["tenant"], r["title"], f"{r['gpu_hours']:,.1f}", r["state"],
                  due if r["state"] in ("submitted", "under-review") else "")  # fmt: skip
    console.print(t)


@_cmd
def review(
    application: Annotated[int, typer.Argument(help="the application's id")],
    state: Annotated[str, typer.Option(help="under-review | rejected")],
    note: Annotated[str, typer.Option(help="a note for the applicant")] = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Move an application (a reviewer of its call, or an admin)."""
    with _client(url, token) as c:
        r = c.request("POST", f"/applications/{application}/review", json={"state": state, "note": note})
    console.print(f"application {application}: {r['state']}")


@_cmd
def award(
    application: Annotated[int, typer.Argument(help="the application's id")],
    gpu_hours: Annotated[float | None, typer.Option(help="[default: what it asked]")] = None,
    starts: Annotated[str | None, typer.Option(help="valid from [default: now]")] = None,
    note: Annotated[str, typer.Option(help="a note for the applicant")] = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Award an application, against its call's budget (a reviewer of the call, or an admin)."""
    body: dict[str, Any] = {"note": note}
    if gpu_hours is not None:
        body["gpu_hours"] = gpu_hours
    if starts is not None:
        body["start_at"] = parse_time(starts, "--starts")
    with _client(url, token) as c:
        a = c.request("POST", f"/applications/{application}/award", json=body)
    console.print(f"award {a['id']}: {a['gpu_hours']:g} GPU-hours for {a['tenant']}, valid "
                  f"{_when(a['start_at'])} to {_when(a['end_at'])}")  # fmt: skip


@_cmd
def awards(url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Awards you may see, with what is used and left."""
    with _client(url, token) as c:
        rows = c.request("GET", "/awards")
    t = _table("ID", "CALL", "TENANT", "GPU-H", "USED", "LEFT", "VALID UNTIL", "STATE")
    for r in rows:
        t.add_row(str(r["id"]), r["call_name"], r["tenant"], f"{r['gpu_hours']:,.3f}", f"{r['used_gpu_hours']:,.3f}",
                  f"{r['left_gpu_hours']:,.3f}", _when(r["end_at"]), r["state"])  # fmt: skip
    console.print(t)


@_cmd
def add_funder(
    name: Annotated[str, typer.Argument(help="e.g. 'EuroHPC JU', France, 'Acme Capital'")],
    kind: Annotated[str, typer.Option(help="eu | member-state | private")],
    country: Annotated[str | None, typer.Option(help="a member state's ISO code")] = None,
    tenant: Annotated[str | None, typer.Option(help="a private investor's account [default: from its name]")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Add a funder (admin). Prints its id."""
    body: dict[str, Any] = {"name": name, "kind": kind}
    if country:
        body["country"] = country.upper()
    if tenant:
        body["tenant"] = tenant
    with _client(url, token) as c:
        console.print(c.request("POST", "/admin/funders", json=body)["id"])


@_cmd
def contribute(
    funder: Annotated[int, typer.Argument(help="the funder's id")],
    eur: Annotated[float, typer.Option(help="its whole contribution to the site, in euros")],
    site: Annotated[str | None, typer.Option(help="the site (in a network)")] = None,
    effective: Annotated[str | None, typer.Option(help="when it took effect [default: now]")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Record a funder's contribution (admin); prints the shares that follow."""
    body: dict[str, Any] = {"amount_eur": eur}
    if site:
        body["site"] = site
    if effective:
        body["effective_at"] = parse_time(effective, "--effective")
    with _client(url, token) as c:
        r = c.request("POST", f"/admin/funders/{funder}/contributions", json=body)
    console.print("shares (M€): " + ", ".join(f"{k} {v:g}" for k, v in sorted(r["shares"].items())))


@_cmd
def report(
    by: Annotated[str, typer.Option(help="funder | member-state | organisation | call | award | tenant")] = "award",
    csv: Annotated[bool, typer.Option("--csv", help="print CSV")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """GPU-hours, energy and cost of the usage you may see."""
    with _client(url, token) as c:
        if csv:
            typer.echo(c.request("GET", "/reports/programme", params={"by": by, "format": "csv"}), nl=False)
            return
        rows = c.request("GET", "/reports/programme", params={"by": by})
    t = _table(by.upper(), "GPU-HOURS", "ENERGY MWH", "COST EUR")
    for r in rows:
        t.add_row(r["label"], f"{r['gpu_hours']:,.3f}", f"{r['energy_mwh']:,.4f}", f"{r['cost_eur']:,.2f}")
    console.print(t)
