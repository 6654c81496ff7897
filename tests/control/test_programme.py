"""The access programme on the live control plane: funders and shares, calls, applications, reviews, awards that
the engine enforces, and reports; with an authorisation matrix and bad input."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gigafactory.control.api.app import create_app
from gigafactory.control.executors.local import LocalExecutor
from gigafactory.control.store import accounts
from gigafactory.control.store.schema import applications, awards, calls, contributions, funders, tenants, usage

from .conftest import Plane, _serve, make_plane, run_until

APPLICANT, OTHER = "startup-b", "uni-c"
API = "/api/v1"


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def setup(plane: Plane) -> Iterator[tuple[Plane, TestClient, dict[str, str]]]:
    with plane.store.begin() as conn:
        plane.tokens["rev"] = accounts.create_token(conn, role="reviewer", tenant=None, name="rev-anna")[1]
        plane.tokens["rev2"] = accounts.create_token(conn, role="reviewer", tenant=None, name="rev-bob")[1]
    who = {
        "none": "",
        "bad": "gf_nope",
        "own": plane.tokens[APPLICANT],
        "other": plane.tokens[OTHER],
        "rev": plane.tokens["rev"],
        "rev2": plane.tokens["rev2"],
        "admin": plane.admin_token,
    }
    with TestClient(create_app(plane.cfg, plane.store)) as client:
        yield plane, client, who


def open_call(client: TestClient, admin: str, **kw: Any) -> int:
    body = {
        "name": "fast lane Q1",
        "mode": "fast-lane",
        "budget_gpu_hours": 100.0,
        "closes_at": time.time() + 86_400,
        "reviewers": ["rev-anna"],
        **kw,
    }
    r = client.post(f"{API}/admin/calls", json=body, headers=bearer(admin))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def apply(client: TestClient, token: str, call: int, hours: float = 10.0) -> int:
    body = {
        "title": "a 7B model",
        "gpu_hours": hours,
        "model_size": "7B",
        "purpose": "research",
        "organisation": "Startup B",
        "country": "FR",
    }
    r = client.post(f"{API}/calls/{call}/applications", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_authorisation_matrix(setup: tuple[Plane, TestClient, dict[str, str]]) -> None:
    _, client, who = setup
    call = open_call(client, who["admin"])
    app_id = apply(client, who["own"], call)
    app2 = apply(client, who["own"], call)
    r = client.post(f"{API}/admin/funders", json={"name": "EU", "kind": "eu"}, headers=bearer(who["admin"]))
    funder = r.json()["id"]
    unauth = {"none": 401, "bad": 401}
    admin_only = {**unauth, "own": 403, "other": 403, "rev": 403, "rev2": 403, "admin": 201}
    cases: list[tuple[str, str, dict[str, Any], dict[str, int]]] = [
        ("POST", "/admin/funders", {"json": {"name": "DE", "kind": "member-state", "country": "DE"}}, admin_only),
        ("POST", f"/admin/funders/{funder}/contributions", {"json": {"amount_eur": 1e9}}, admin_only),
        ("GET", "/admin/funders", {}, {**admin_only, "admin": 200}),
        ("GET", "/admin/contributions", {}, {**admin_only, "admin": 200}),
        (
            "POST",
            "/admin/calls",
            {"json": {"name": "x", "mode": "playground", "budget_gpu_hours": 10, "closes_at": time.time() + 60}},
            admin_only,
        ),
        ("GET", "/calls", {}, {**unauth, "own": 200, "other": 200, "rev": 200, "rev2": 200, "admin": 200}),
        (
            "POST",
            f"/calls/{call}/applications",
            {"json": {"title": "t", "gpu_hours": 1}},
            {**unauth, "own": 201, "other": 201, "rev": 403, "rev2": 403, "admin": 403},
        ),
        (
            "GET",
            f"/applications/{app_id}",
            {},
            {**unauth, "own": 200, "other": 404, "rev": 200, "rev2": 404, "admin": 200},
        ),
        (
            "POST",
            f"/applications/{app_id}/review",
            {"json": {"state": "under-review"}},
            {**unauth, "own": 404, "other": 404, "rev2": 404, "rev": 200, "admin": 409},
        ),
        (
            "POST",
            f"/applications/{app2}/award",
            {"json": {"gpu_hours": 1}},
            {**unauth, "own": 404, "other": 404, "rev2": 404, "rev": 201, "admin": 409},
        ),
        ("GET", "/awards", {}, {**unauth, "own": 200, "other": 200, "rev": 200, "rev2": 200, "admin": 200}),
        (
            "GET",
            "/reports/programme",
            {"params": {"by": "call"}},
            {**unauth, "own": 200, "other": 200, "rev": 200, "rev2": 200, "admin": 200},
        ),
        # A reviewer is no tenant: it submits nothing and sees no job.
        (
            "POST",
            "/jobs",
            {"json": {"command": ["true"], "gpus": 1, "tenant": APPLICANT}},
            {**unauth, "own": 201, "other": 403, "rev": 403, "rev2": 403, "admin": 201},
        ),
    ]
    for method, path, kw, expected in cases:
        for name in ("none", "bad", "own", "other", "rev", "rev2", "admin"):
            r = client.request(method, API + path, headers=bearer(who[name]), **kw)
            assert r.status_code == expected[name], (method, path, name, r.status_code, r.text)
    # What each sees.
    seen = {
        n: client.get(f"{API}/applications", headers=bearer(who[n])).json()
        for n in ("own", "other", "rev", "rev2", "admin")
    }
    assert {a["tenant"] for a in seen["own"]} == {APPLICANT}
    assert {a["tenant"] for a in seen["other"]} == {OTHER}
    assert seen["rev2"] == [] and len(seen["rev"]) == len(seen["admin"]) >= 3
    assert [a["tenant"] for a in client.get(f"{API}/awards", headers=bearer(who["own"])).json()] == [APPLICANT]
    assert client.get(f"{API}/awards", headers=bearer(who["other"])).json() == []
    assert client.get(f"{API}/awards", headers=bearer(who["rev2"])).json() == []
    assert client.get(f"{API}/calls", headers=bearer(who["rev2"])).json() == []
    assert "reviewers" not in client.get(f"{API}/calls", headers=bearer(who["own"])).json()[0]
    assert client.get(f"{API}/jobs", headers=bearer(who["rev"])).json() == []


def test_contributions_make_the_shares_and_keep_their_history(setup: tuple[Plane, TestClient, dict[str, str]]) -> None:
    plane, client, who = setup
    h = bearer(who["admin"])
    eu = client.post(f"{API}/admin/funders", json={"name": "EuroHPC JU", "kind": "eu"}, headers=h).json()["id"]
    fr = client.post(
        f"{API}/admin/funders", json={"name": "France", "kind": "member-state", "country": "FR"}, headers=h
    ).json()["id"]
    inv = client.post(
        f"{API}/admin/funders", json={"name": "Mistral Capital", "kind": "private", "country": "FR"}, headers=h
    ).json()["id"]
    for fid, eur in ((eu, 2e9), (fr, 1e9), (inv, 3e9)):
        r = client.post(
            f"{API}/admin/funders/{fid}/contributions",
            json={"amount_eur": eur, "effective_at": time.time() - 7200},
            headers=h,
        )
        assert r.status_code == 201, r.text
    with plane.store.connect() as conn:
        share = dict(conn.execute(select(tenants.c.name, tenants.c.share)).all())
    assert share["public"] == pytest.approx(3000.0) and share["mistral-capital"] == pytest.approx(3000.0)
    # The investor doubles its money, as of an hour ago: the shares follow, and the history keeps both.
    r = client.post(
        f"{API}/admin/funders/{inv}/contributions",
        json={"amount_eur": 6e9, "effective_at": time.time() - 3600},
        headers=h,
    )
    assert r.json()["shares"] == {"mistral-capital": 6000.0, "public": 3000.0}
    hist = client.get(f"{API}/admin/contributions", headers=h).json()
    assert [c["amount_eur"] for c in hist if c["funder"] == "Mistral Capital"] == [3e9, 6e9]  # by effective time
    # Bad input changes nothing.
    before = _counts(plane)
    for body, field in (
        ({"amount_eur": -5}, "amount_eur"),
        ({"amount_eur": 1, "effective_at": time.time() + 86_400}, "effective_at"),
    ):
        r = client.post(f"{API}/admin/funders/{inv}/contributions", json=body, headers=h)
        assert r.status_code == 422 and field in r.text, r.text
    assert client.post(f"{API}/admin/funders/999/contributions", json={"amount_eur": 1}, headers=h).status_code == 404
    r = client.post(f"{API}/admin/funders", json={"name": "XX", "kind": "member-state", "country": "US"}, headers=h)
    assert r.status_code == 422
    assert _counts(plane) == before


def _counts(plane: Plane) -> tuple[int, ...]:
    with plane.store.connect() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
            for t in (funders, contributions, calls, applications, awards)
        )


def test_bad_calls_applications_and_awards_are_refused_and_change_nothing(
    setup: tuple[Plane, TestClient, dict[str, str]],
) -> None:
    plane, client, who = setup
    h = bearer(who["admin"])
    call = open_call(client, who["admin"], budget_gpu_hours=30.0, max_request_gpu_hours=20.0)
    closed = open_call(client, who["admin"], opens_at=time.time() - 7200, closes_at=time.time() - 3600)
    first = apply(client, who["own"], call, 20.0)
    second = apply(client, who["other"], call, 20.0)
    before = _counts(plane)
    bad = [
        (
            "/admin/calls",
            {
                "name": "x",
                "mode": "fast-lane",
                "budget_gpu_hours": 10,
                "opens_at": time.time(),
                "closes_at": time.time() - 10,
            },
            422,
            "closes_at",
        ),  # the window ends before it starts
        (
            "/admin/calls",
            {
                "name": "x",
                "mode": "fast-lane",
                "budget_gpu_hours": 1e6,
                "closes_at": time.time() + 9,
                "max_request_gpu_hours": 60_000,
            },
            422,
            "50,000",
        ),
        (
            "/admin/calls",
            {"name": "x", "mode": "bogus", "budget_gpu_hours": 1, "closes_at": time.time() + 9},
            422,
            "mode",
        ),
        (
            "/admin/calls",
            {
                "name": "x",
                "mode": "playground",
                "budget_gpu_hours": 1,
                "closes_at": time.time() + 9,
                "reviewers": ["nobody"],
            },
            422,
            "no reviewer token named 'nobody'",
        ),
        (
            "/admin/calls",
            {"name": "x", "mode": "playground", "budget_gpu_hours": -1, "closes_at": time.time() + 9},
            422,
            "budget_gpu_hours",
        ),
    ]
    for path, body, status, text in bad:
        r = client.post(API + path, json=body, headers=h)
        assert r.status_code == status and text in r.text, (path, body, r.text)
    for path, status, text in (
        (f"/calls/{closed}/applications", 409, "closed at"),
        ("/calls/999/applications", 404, "no call 999"),
    ):
        r = client.post(API + path, json={"title": "t", "gpu_hours": 1}, headers=bearer(who["own"]))
        assert r.status_code == status and text in r.text, r.text
    r = client.post(
        f"{API}/calls/{call}/applications", json={"title": "t", "gpu_hours": 25}, headers=bearer(who["own"])
    )
    assert r.status_code == 422 and "at most 20 GPU-hours" in r.text
    r = client.post(f"{API}/applications/{first}/award", json={"gpu_hours": 21}, headers=h)
    assert r.status_code == 422 and "at most 20" in r.text
    for start in (0, time.time() + 400 * 86_400):  # an award that would be over, or not begin for a year
        r = client.post(f"{API}/applications/{first}/award", json={"start_at": start}, headers=h)
        assert r.status_code == 422 and "start_at" in r.text, r.text
    r = client.post(
        f"{API}/calls/{call}/applications", json={"title": "two\nlines", "gpu_hours": 1}, headers=bearer(who["own"])
    )
    assert r.status_code == 422 and "title" in r.text
    assert _counts(plane) == before
    assert client.post(f"{API}/applications/{first}/award", json={}, headers=h).status_code == 201
    r = client.post(f"{API}/applications/{second}/award", json={}, headers=h)  # 20 asked, 10 left
    assert r.status_code == 409 and "has 10 of its 30 GPU-hours left; this award asks 20" in r.text, r.text
    r = client.post(f"{API}/applications/{first}/award", json={"gpu_hours": 1}, headers=h)
    assert r.status_code == 409 and "decided already" in r.text
    with plane.store.connect() as conn:
        assert conn.execute(select(calls.c.awarded_gpu_hours).where(calls.c.id == call)).scalar() == 20.0
        assert conn.execute(select(applications.c.state).where(applications.c.id == second)).scalar() == "submitted"
    r = client.post(f"{API}/jobs", json={"command": ["true"], "gpus": 1, "award": 999}, headers=bearer(who["own"]))
    assert r.status_code == 422 and "holds no award 999" in r.text


@pytest.fixture
def served(db_url: str | None, tmp_path: Path) -> Iterator[Any]:
    """The real API on SQLite and on PostgreSQL (db_url), with no daemon."""
    yield from _serve(tmp_path, daemon=False, db=db_url)


def test_fifty_concurrent_awards_never_overspend_a_budget(served: Any) -> None:
    plane: Plane = served.plane
    h = bearer(plane.admin_token)
    with httpx.Client(base_url=served.url, timeout=60) as c:
        r = c.post(
            f"{API}/admin/calls",
            json={"name": "q", "mode": "large-scale", "budget_gpu_hours": 1000.0, "closes_at": time.time() + 3600},
            headers=h,
        )
        call = r.json()["id"]
        apps = []
        for i in range(50):
            tenant = (APPLICANT, OTHER, "lab-a")[i % 3]
            r = c.post(
                f"{API}/calls/{call}/applications",
                json={"title": f"p{i}", "gpu_hours": 70.0},
                headers=bearer(plane.tokens[tenant]),
            )
            apps.append(r.json()["id"])
    results: list[int] = []
    lock = threading.Lock()
    go = threading.Barrier(50)

    def grant(app_id: int) -> None:
        with httpx.Client(base_url=served.url, timeout=60) as c:
            go.wait()
            r = c.post(f"{API}/applications/{app_id}/award", json={}, headers=h)
        with lock:
            results.append(r.status_code)

    threads = [threading.Thread(target=grant, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(201) == 14  # 14 × 70 = 980 of 1,000; a 15th would be 1,050
    assert set(results) <= {201, 409, 503}, results
    with plane.store.connect() as conn:
        awarded = conn.execute(select(calls.c.awarded_gpu_hours).where(calls.c.id == call)).scalar()
        total = conn.execute(select(func.sum(awards.c.gpu_hours))).scalar()
    assert awarded == total == 980.0


USR1_JOB = [
    "python3",
    "-c",
    "import signal, time, pathlib\n"
    "signal.signal(signal.SIGUSR1, lambda *a: pathlib.Path('checkpointed').write_text('yes'))\n"
    "time.sleep(600)\n",
]


def test_call_to_award_to_exhaustion_to_a_new_award(tmp_path: Path) -> None:
    """call → application → review → award → a job runs → the award runs out (signal, then stop) → the next job
    waits with the reason → a new award → it starts."""
    plane = make_plane(tmp_path / "gf")
    with plane.store.begin() as conn:
        rev = accounts.create_token(conn, role="reviewer", tenant=None, name="rev-anna")[1]
    daemon = plane.daemon(profile="fifo+easy+best-fit+award:grace_s=1", forecast_every_s=1e9)
    own = bearer(plane.tokens[APPLICANT])
    with TestClient(create_app(plane.cfg, plane.store)) as client:
        call = open_call(client, plane.admin_token)
        first = apply(client, plane.tokens[APPLICANT], call, 0.002)  # 7.2 GPU-seconds
        assert (
            client.post(
                f"{API}/applications/{first}/review", json={"state": "under-review"}, headers=bearer(rev)
            ).status_code
            == 200
        )
        award = client.post(f"{API}/applications/{first}/award", json={}, headers=bearer(rev)).json()
        assert award["state"] == "active" and award["gpu_hours"] == 0.002
        job = client.post(f"{API}/jobs", json={"command": USR1_JOB, "gpus": 1}, headers=own).json()["ids"][0]
        # A program that does not catch SIGUSR1 is not sent it (its default action would end it).
        plain = client.post(f"{API}/jobs", json={"command": ["sleep", "600"], "gpus": 1}, headers=own).json()["ids"][0]

        def state(jid: int) -> dict[str, Any]:
            return dict(client.get(f"{API}/jobs/{jid}", headers=own).json())

        run_until(daemon, lambda: state(job)["state"] == "running" and state(plain)["state"] == "running")
        assert state(job)["charged_award"] == award["id"]
        time.sleep(0.5)  # nothing billed yet, but the award is being used, and says so
        assert client.get(f"{API}/awards", headers=own).json()[0]["used_gpu_hours"] > 0
        run_until(daemon, lambda: state(job)["state"] == "pending" and state(plain)["state"] == "pending", timeout=60)
        assert state(plain)["attempt"] == 1 and f"stopped: award {award['id']}" in state(plain)["reason"]
        client.post(f"{API}/jobs/{plain}/cancel", headers=own)
        story = client.get(f"{API}/jobs/{job}/story", headers=own).json()
        signal_entry = next(t for t in story if t["stimulus"] == "signal")
        assert f"award {award['id']}: 0 of 0.002 GPU-hours left: checkpoint now" in signal_entry["reason"]
        workdir = Path(state(job)["log_dir"]) / "work"
        assert (workdir / "checkpointed").read_text() == "yes"  # it got SIGUSR1 before the stop
        assert f"stopped: award {award['id']}" in state(job)["reason"]
        second = client.post(f"{API}/jobs", json={"command": ["true"], "gpus": 1}, headers=own).json()["ids"][0]
        run_until(daemon, lambda: state(second)["reason"].startswith(f"award {award['id']}: 0 of 0.002"))
        assert state(second)["state"] == "pending"
        mine = client.get(f"{API}/awards", headers=own).json()
        assert mine[0]["state"] == "used up" and mine[0]["used_gpu_hours"] >= 0.002
        # Billed use stays within the award plus the grace (1 GPU × 1 s, and the seconds the stop takes).
        assert mine[0]["used_gpu_hours"] <= 0.002 + 2 * 5 / 3600
        # A new award: both start again, and charge it.
        again = apply(client, plane.tokens[APPLICANT], call, 1.0)
        new = client.post(f"{API}/applications/{again}/award", json={}, headers=bearer(rev)).json()
        run_until(daemon, lambda: state(second)["state"] == "completed" and state(job)["state"] == "running")
        assert state(job)["charged_award"] == new["id"]
        client.post(f"{API}/jobs/{job}/cancel", headers=own)
        run_until(daemon, lambda: state(job)["state"] == "cancelled" and not daemon.engine.held())
        with plane.store.connect() as conn:
            q = select(usage.c.award, func.sum(usage.c.gpu_seconds)).group_by(usage.c.award)
            billed = {int(a): float(g) for a, g in conn.execute(q).all()}
        assert set(billed) == {award["id"], new["id"]}
        # The reports add up to the accounting, as JSON and as CSV.
        rows = client.get(f"{API}/reports/programme", params={"by": "award"}, headers=own).json()
        assert sum(r["gpu_hours"] for r in rows) == pytest.approx(sum(billed.values()) / 3600, abs=1e-3)
        assert all(r["energy_mwh"] > 0 and r["cost_eur"] > 0 for r in rows)
        text = client.get(f"{API}/reports/programme", params={"by": "organisation", "format": "csv"}, headers=own).text
        parsed = list(csv.DictReader(io.StringIO(text)))
        assert [r["key"] for r in parsed] == ["Startup B"]
        assert float(parsed[0]["gpu_hours"]) == pytest.approx(sum(billed.values()) / 3600, abs=1e-3)
        assert client.get(f"{API}/reports/programme", params={"by": "bogus"}, headers=own).status_code == 422
    assert isinstance(daemon.executor, LocalExecutor)
    daemon.executor.stop_all(0)
    plane.store.dispose()


def test_the_programme_page_shows_each_what_it_may_see(setup: tuple[Plane, TestClient, dict[str, str]]) -> None:
    from .test_api import browser_as

    _, client, who = setup
    call = open_call(client, who["admin"])
    mine = apply(client, who["own"], call)
    theirs = apply(client, who["other"], call)
    client.post(f"{API}/applications/{mine}/award", json={"gpu_hours": 3}, headers=bearer(who["rev"]))
    seen = {}
    for name in ("own", "other", "rev", "rev2", "admin"):
        client.cookies.clear()
        browser_as(client, who[name])
        r = client.get("/programme?by=organisation")
        assert r.status_code == 200, r.text
        seen[name] = r.text
    assert f'data-application="{mine}"' in seen["own"] and f'data-application="{theirs}"' not in seen["own"]
    assert f'data-application="{theirs}"' in seen["other"] and 'data-award="' not in seen["other"]
    assert f'data-call="{call}"' in seen["rev"] and f'data-call="{call}"' not in seen["rev2"]
    assert 'data-application="' not in seen["rev2"]
    assert all(f'data-application="{a}"' in seen["admin"] for a in (mine, theirs))
    assert 'data-award="1"' in seen["own"] and "reviewer rev-anna" in seen["rev"]
    assert client.get("/programme?by=nonsense").status_code == 422


def test_report_csv_cells_cannot_run_as_formulas() -> None:
    from gigafactory.control.reports import to_csv

    row = {
        "key": '=HYPERLINK("http://x")',
        "label": "@SUM(A1)",
        "gpu_hours": 1.0,
        "energy_mwh": 0.0,
        "cost_eur": -1.5,
        "attempts": 1,
    }
    parsed = next(csv.DictReader(io.StringIO(to_csv([row]))))
    assert parsed["key"].startswith("'=") and parsed["label"] == "'@SUM(A1)" and parsed["cost_eur"] == "-1.5"
