"""The REST API against a real store: who may do what, and what bad input gets."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gigafactory.control.api.app import create_app
from gigafactory.control.store import inbox
from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.db import set_meta

from .conftest import Plane, make_plane, run_until

PY = sys.executable
OWN, OTHER = "lab-a", "startup-b"


@pytest.fixture
def api(plane: Plane) -> Iterator[TestClient]:
    with TestClient(create_app(plane.cfg, plane.store)) as client:
        yield client


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def as_(plane: Plane, who: str) -> dict[str, str]:
    return auth({"none": None, "bad": "gf_not-a-real-token", "other": plane.tokens[OTHER],
                 "own": plane.tokens[OWN], "admin": plane.admin_token}[who])  # fmt: skip


# ---- the authorisation matrix -------------------------------------------------------------------------------
WHO = ("none", "bad", "other", "own", "admin")
JOB = {"command": ["true"], "gpus": 1, "tenant": OWN}


def _endpoints(job: int, running: int) -> list[tuple[str, str, dict[str, Any], dict[str, int]]]:
    """(method, path, request kwargs, expected status per principal)."""
    anyone = {"none": 200, "bad": 200, "other": 200, "own": 200, "admin": 200}
    signed = {"none": 401, "bad": 401, "other": 200, "own": 200, "admin": 200}
    owner = {"none": 401, "bad": 401, "other": 404, "own": 200, "admin": 200}
    scoped = {"none": 401, "bad": 401, "other": 403, "own": 200, "admin": 200}
    admin_only = {"none": 401, "bad": 401, "other": 403, "own": 403, "admin": 200}
    return [
        ("GET", "/api/v1/health", {}, anyone),
        ("GET", "/openapi.json", {}, anyone),
        ("GET", "/api/v1/whoami", {}, signed),
        ("POST", "/api/v1/jobs", {"json": JOB}, {**scoped, "own": 201, "admin": 201}),
        ("POST", "/api/v1/jobs/batch", {"json": {"jobs": [JOB, JOB]}}, {**scoped, "own": 201, "admin": 201}),
        ("GET", "/api/v1/jobs", {"params": {"tenant": OWN}}, scoped),
        ("GET", "/api/v1/jobs", {}, signed),
        ("GET", f"/api/v1/jobs/{job}", {}, owner),
        ("GET", f"/api/v1/jobs/{job}/logs", {}, owner),
        ("GET", f"/api/v1/jobs/{job}/story", {}, owner),
        ("POST", f"/api/v1/jobs/{running}/cancel", {}, {**owner, "own": 202, "admin": 202}),
        ("GET", "/api/v1/queue", {"params": {"tenant": OWN}}, scoped),
        ("GET", "/api/v1/queue", {}, signed),
        ("GET", "/api/v1/tenants", {}, signed),
        ("GET", "/api/v1/usage", {}, signed),
        ("GET", "/api/v1/nodes", {}, signed),
        ("PUT", "/api/v1/admin/tenants/new-lab", {"json": {"share": 1.0}}, admin_only),
        ("GET", "/api/v1/admin/tokens", {}, admin_only),
        (
            "POST",
            "/api/v1/admin/tokens",
            {"json": {"role": "tenant", "tenant": OWN}},
            {**admin_only, "admin": 201},
        ),
        ("POST", "/api/v1/admin/nodes/u00003/drain", {}, {**admin_only, "admin": 202}),
        ("POST", "/api/v1/admin/nodes/u00003/resume", {}, {**admin_only, "admin": 202}),
    ]


@pytest.fixture
def jobs_of_lab_a(plane: Plane) -> tuple[int, int]:
    """One ended job of lab-a (it has logs and a story) and one that runs (it can be cancelled)."""
    d = plane.daemon()
    with plane.store.begin() as conn:
        done, running = jobstore.insert_jobs(
            conn,
            [{"tenant": OWN, "name": "x", "command": ["sh", "-c", "echo hello"], "gpus": 1},
             {"tenant": OWN, "name": "y", "command": ["sleep", "30"], "gpus": 1}],
        )  # fmt: skip

    def state(j: int) -> str:
        with plane.store.connect() as conn:
            row = jobstore.get_job(conn, j)
        assert row is not None
        return str(row.state)

    run_until(d, lambda: state(done) == "completed" and state(running) == "running")
    return done, running


def browser_as(api: TestClient, token: str) -> None:
    """Sign the test client in as a browser does: the form posts the token, and a session cookie comes back."""
    api.cookies.clear()
    r = api.post("/login", data={"token": token, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303 and token not in r.headers.get("set-cookie", "")


def test_authorisation_matrix(plane: Plane, api: TestClient, jobs_of_lab_a: tuple[int, int]) -> None:
    done, running = jobs_of_lab_a
    failures = []
    for method, path, kw, expected in _endpoints(done, running):
        for who in WHO:
            r = api.request(method, path, headers=as_(plane, who), **kw)
            if r.status_code != expected[who]:
                failures.append(f"{method} {path} as {who}: {r.status_code}, expected {expected[who]}: {r.text[:200]}")
            if r.status_code >= 400:
                assert r.json()["error"]["message"], f"{method} {path}: an error without a message"
    assert failures == []
    # A revoked token stops working.
    tok = api.post("/api/v1/admin/tokens", json={"role": "tenant", "tenant": OWN}, headers=as_(plane, "admin")).json()
    assert api.get("/api/v1/whoami", headers=auth(tok["token"])).json() == {"role": "tenant", "tenant": OWN}
    assert api.delete(f"/api/v1/admin/tokens/{tok['id']}", headers=as_(plane, "admin")).status_code == 204
    assert api.get("/api/v1/whoami", headers=auth(tok["token"])).status_code == 401


def test_nothing_crosses_tenants(plane: Plane, api: TestClient, jobs_of_lab_a: tuple[int, int]) -> None:
    other = as_(plane, "other")
    api.post("/api/v1/jobs", json={"command": ["true"], "gpus": 1}, headers=other)
    seen = {j["tenant"] for j in api.get("/api/v1/jobs", headers=other).json()}
    assert seen == {OTHER}
    admin = as_(plane, "admin")
    # The queue and the usage hold lab-a's jobs (one runs, one ran), which the other tenant must not see.
    assert {e["job"]["tenant"] for e in api.get("/api/v1/queue", headers=admin).json()} == {OWN, OTHER}
    assert {e["job"]["tenant"] for e in api.get("/api/v1/queue", headers=other).json()} == {OTHER}
    assert [t["name"] for t in api.get("/api/v1/tenants", headers=other).json()] == [OTHER]
    assert set(api.get("/api/v1/usage", headers=admin).json()["gpu_hours"]) == {OWN}
    assert api.get("/api/v1/usage", headers=other).json()["gpu_hours"] == {}  # it has run nothing yet
    everyone = {j["tenant"] for j in api.get("/api/v1/jobs", headers=admin).json()}
    assert everyone == {OWN, OTHER}
    # Pages too: another tenant's job page is a 404, the queue page lists none of lab-a's jobs.
    browser_as(api, plane.tokens[OTHER])
    assert api.get(f"/jobs/{jobs_of_lab_a[0]}").status_code == 404
    assert "echo hello" not in api.get("/queue").text
    browser_as(api, plane.tokens[OWN])
    assert api.get(f"/jobs/{jobs_of_lab_a[0]}").status_code == 200
    api.cookies.clear()
    assert api.get("/queue", follow_redirects=False).status_code == 303  # to the login page


def test_the_owner_reads_logs_story_and_cancels(plane: Plane, api: TestClient, jobs_of_lab_a: tuple[int, int]) -> None:
    done, running = jobs_of_lab_a
    own = as_(plane, "own")
    assert api.get(f"/api/v1/jobs/{done}/logs", headers=own).text == "hello\n"
    story = api.get(f"/api/v1/jobs/{done}/story", headers=own).json()
    assert [s["new"] for s in story] == ["pending", "running", "completed"]
    assert api.post(f"/api/v1/jobs/{running}/cancel", headers=own).status_code == 202
    d = plane.daemon()
    run_until(d, lambda: api.get(f"/api/v1/jobs/{running}", headers=own).json()["state"] == "cancelled")
    r = api.post(f"/api/v1/jobs/{running}/cancel", headers=own)
    assert r.status_code == 409 and "already ended" in r.json()["error"]["message"]


# ---- bad input ----------------------------------------------------------------------------------------------
BAD: list[tuple[str, Any, str, str]] = [
    # (what, body, field named, words in the message)
    ("zero GPUs", {"command": ["true"], "gpus": 0}, "body.gpus", "greater than or equal to 1"),
    ("negative GPUs", {"command": ["true"], "gpus": -4}, "body.gpus", "greater than or equal to 1"),
    (
        "more GPUs than the site",
        {"command": ["true"], "gpus": 33},
        "body.gpus",
        "this site could never run it: it asks for 33 GPUs; the site has 32",
    ),
    ("unknown tenant", {"command": ["true"], "tenant": "nobody"}, "body.tenant", "unknown tenant 'nobody'"),
    ("an oversized argument", {"command": ["echo", "x" * 70_000]}, "body.command.1", "at most 65536"),
    ("an oversized command", {"command": ["echo"] + ["x" * 4000] * 20}, "body.command", "at most 65536"),
    ("empty command", {"command": []}, "body.command", "at least 1"),
    ("no command", {"gpus": 1}, "body.command", "Field required"),
    ("a fraction of several GPUs", {"command": ["true"], "gpus": 2, "gpu_milli": 500}, "body", "gpus must be 1"),
    ("an unknown GPU model", {"command": ["true"], "models": ["TPU"]}, "body.models", "not a GPU model"),
    ("an unknown field", {"command": ["true"], "gpu": 1}, "body.gpu", "Extra inputs"),
    ("a wrong type", {"command": ["true"], "gpus": "many"}, "body.gpus", "valid integer"),
    ("a bad locality", {"command": ["true"], "locality": "rack"}, "body.locality", "'any', 'pod' or 'domain'"),
]


@pytest.mark.parametrize(("what", "body", "field", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_submissions_get_a_4xx_naming_the_field(
    plane: Plane, api: TestClient, what: str, body: Any, field: str, words: str
) -> None:
    r = api.post("/api/v1/jobs", json={"tenant": OWN, **body}, headers=as_(plane, "admin"))
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text)
    err = r.json()["error"]
    assert err["field"] == field, (what, err)
    assert words in err["message"], (what, err)
    assert field in err["message"]


def test_bad_json_and_batches(plane: Plane, api: TestClient) -> None:
    admin = as_(plane, "admin")
    r = api.post("/api/v1/jobs", content=b'{"command": ["true"', headers={**admin, "content-type": "application/json"})
    err = r.json()["error"]
    assert r.status_code == 422 and err["field"] == "body"  # not the character offset pydantic gives as a place
    assert err["message"].startswith("body: the body is not valid JSON at character 19 (")
    # A JSON object sent without saying so (curl -d's default content type): the message says what to send.
    r = api.post("/api/v1/jobs", content=b'{"command": ["true"], "gpus": 1}', headers=admin)
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "body: the body must be a JSON object, sent with the header Content-Type: application/json"
    )
    r = api.post("/api/v1/jobs/batch", json={"jobs": [{**JOB}, {**JOB, "gpus": 0}]}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.jobs.1.gpus"
    r = api.post("/api/v1/jobs/batch", json={"jobs": [{**JOB}, {**JOB, "gpus": 100}]}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.jobs.1.gpus"
    # All or none: the good half of a bad batch was not stored.
    assert api.get("/api/v1/jobs", headers=admin).json() == []
    r = api.get("/api/v1/jobs", params={"state": "sleeping"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.state.0"
    assert api.get("/api/v1/jobs/0", headers=admin).status_code == 422
    r = api.get("/api/v1/nodes", params={"state": "broken"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.state.0"
    assert [n["name"] for n in api.get("/api/v1/nodes", params={"limit": 2, "offset": 1}, headers=admin).json()] == [
        "u00001", "u00002"
    ]  # fmt: skip
    assert api.get("/api/v1/jobs/999", headers=admin).status_code == 404
    r = api.post("/api/v1/admin/nodes/nowhere/drain", headers=admin)
    assert r.status_code == 404 and "nowhere" in r.json()["error"]["message"]
    r = api.put("/api/v1/admin/tenants/x", json={"share": 1.0, "parent": "ghost"}, headers=admin)
    assert 400 <= r.status_code < 500 and "ghost" in r.json()["error"]["message"]
    r = api.put("/api/v1/admin/tenants/x", json={"share": 1.0, "guarantee": 10_000}, headers=admin)
    assert 400 <= r.status_code < 500 and "guarantee" in r.json()["error"]["message"]
    r = api.get("/api/v1/jobs", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]["message"]


def test_submissions_are_durable_and_seen_by_the_daemon(tmp_path, db_url) -> None:
    plane = make_plane(tmp_path / "gf", db_url)
    try:
        with TestClient(create_app(plane.cfg, plane.store)) as api:
            own = as_(plane, "own")
            ids = api.post("/api/v1/jobs/batch", json={"jobs": [{"command": ["true"]}] * 5}, headers=own).json()["ids"]
            (one,) = api.post("/api/v1/jobs", json={"command": ["sh", "-c", "echo $((6*7))"]}, headers=own).json()[
                "ids"
            ]
            assert len(set(ids)) == 5 and one > max(ids)
            d = plane.daemon()
            run_until(d, lambda: api.get(f"/api/v1/jobs/{one}", headers=own).json()["state"] == "completed")
            assert api.get(f"/api/v1/jobs/{one}/logs", headers=own).text == "42\n"
            listed = api.get("/api/v1/jobs", params={"state": "completed"}, headers=own).json()
            assert one in {j["id"] for j in listed}
            assert api.get("/api/v1/health").json() == {"status": "up"}  # to anyone: nothing more
            health = api.get("/api/v1/health", headers=own).json()
            assert health["status"] == "ok" and health["store"] == ("sqlite" if db_url is None else "postgresql")
            assert health["jobs"]["completed"] >= 1 and health["isolation"].startswith(("on", "off"))
            # A daemon that has missed seven 2-second beats is down or stuck: health says so.
            with plane.store.begin() as conn:
                set_meta(conn, "daemon_heartbeat", f"{time.time() - 16:.3f}")
            assert api.get("/api/v1/health", headers=own).json()["status"] == "degraded"
    finally:
        plane.store.dispose()


def test_queue_positions_are_site_wide(plane: Plane, api: TestClient) -> None:
    """A tenant sees its waiting jobs' places among all waiting jobs, not only its own."""
    with plane.store.begin() as conn:
        jobstore.insert_jobs(
            conn,
            [{"tenant": OTHER, "name": "big", "command": ["sleep", "30"], "gpus": 32, "estimate_s": 100.0},
             {"tenant": OTHER, "name": "w1", "command": ["true"], "gpus": 32, "estimate_s": 10.0},
             {"tenant": OWN, "name": "w2", "command": ["true"], "gpus": 32, "estimate_s": 10.0},
             {"tenant": OTHER, "name": "w3", "command": ["true"], "gpus": 32, "estimate_s": 10.0}],
        )  # fmt: skip
    d = plane.daemon()
    d.step()
    d.forecast(d.clock())
    mine = api.get("/api/v1/queue", headers=as_(plane, "own")).json()
    assert [(e["position"], e["job"]["name"]) for e in mine] == [(2, "w2")]
    everyone = api.get("/api/v1/queue", headers=as_(plane, "admin")).json()
    assert [(e["position"], e["job"]["name"]) for e in everyone] == [(None, "big"), (1, "w1"), (2, "w2"), (3, "w3")]
    starts = [e["job"]["est_start"] for e in everyone[1:]]
    assert starts == sorted(starts) and starts[0] >= everyone[0]["job"]["started_at"] + 100.0 - 1e-6
    with plane.store.begin() as conn:
        inbox.append(conn, "cancel", job_id=everyone[0]["job"]["id"])
    d.step()


def test_a_large_site_map_shows_racks(tmp_path: Path) -> None:
    """Above a thousand nodes the map has one cell per rack, so that a 100k-GPU site is a page, not megabytes."""
    from gigafactory.control.store.site import set_node_state

    plane = make_plane(tmp_path / "gf", site="gb200-nvl72:racks=60")  # 1,080 nodes
    with plane.store.begin() as conn:
        set_node_state(conn, 1, 18 * 7 + 3, "down", "GPU XID 79")  # a node of rack 7 (of site 1)
    with TestClient(create_app(plane.cfg, plane.store)) as api:
        browser_as(api, plane.admin_token)
        page = api.get("/").text
    plane.store.dispose()
    assert page.count('class="rackcell') == 60 and 'class="node ' not in page
    assert '<a class="rackcell down" data-rack="7" data-down="1"' in page
    assert page.count("rackcell down") == 1 and len(page) < 100_000


def test_a_lost_database_is_a_503_not_a_500(tmp_path: Path, pg_admin) -> None:
    """PostgreSQL goes away under a running API: requests get 503 with a message, and nothing pretends to succeed."""
    import uuid

    from sqlalchemy import text

    from .conftest import PG_URL

    name = f"gf_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    plane = make_plane(tmp_path / "gf", PG_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        with TestClient(create_app(plane.cfg, plane.store), raise_server_exceptions=False) as api:
            own = as_(plane, "own")
            assert api.post("/api/v1/jobs", json={"command": ["true"]}, headers=own).status_code == 201
            with pg_admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            for r in (api.post("/api/v1/jobs", json={"command": ["true"]}, headers=own),
                      api.get("/api/v1/jobs", headers=own), api.get("/api/v1/health", headers=own)):  # fmt: skip
                assert r.status_code == 503, r.text
                assert "store is unavailable" in r.json()["error"]["message"]
                assert r.headers["retry-after"] == "5"
    finally:
        plane.store.dispose()
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_retried_submission_is_one_job(plane: Plane, api: TestClient) -> None:
    own = as_(plane, "own")
    body = {"command": ["true"], "key": "run-42"}
    a = api.post("/api/v1/jobs", json=body, headers=own).json()["ids"]
    b = api.post("/api/v1/jobs", json=body, headers=own).json()["ids"]
    c = api.post("/api/v1/jobs/batch", json={"jobs": [body, {**body, "key": "run-43"}]}, headers=own).json()["ids"]
    assert a == b == c[:1] and c[1] != a[0]
    assert api.get(f"/api/v1/jobs/{a[0]}", headers=own).json()["key"] == "run-42"
    other = api.post("/api/v1/jobs", json=body, headers=as_(plane, "other")).json()["ids"]
    assert other != a
    r = api.post("/api/v1/jobs", json={**body, "key": "no spaces allowed"}, headers=own)
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.key"


def test_authorisation_matrix_of_the_pages(plane: Plane, api: TestClient, jobs_of_lab_a: tuple[int, int]) -> None:
    """The dashboard signs in by cookie: no or a bad cookie goes to the sign-in page; a tenant sees its own job."""
    done, _ = jobs_of_lab_a
    cookie = {"none": None, "bad": "gf_not-a-real-token", "other": plane.tokens[OTHER], "own": plane.tokens[OWN],
              "admin": plane.admin_token}  # fmt: skip
    signed = {"none": 303, "bad": 303, "other": 200, "own": 200, "admin": 200}
    pages = [("/", signed), ("/queue", signed), ("/tenants", signed), ("/utilisation", signed),
             (f"/jobs/{done}", {**signed, "other": 404}), ("/login", dict.fromkeys(WHO, 200)),
             ("/static/plotly.min.js", dict.fromkeys(WHO, 200))]  # fmt: skip
    failures = []
    for path, expected in pages:
        for who in WHO:
            api.cookies.clear()
            if who == "bad":
                api.cookies.set("gf_session", "gfs_not-a-real-session")
            elif token := cookie[who]:
                browser_as(api, token)
            r = api.get(path, follow_redirects=False)
            if r.status_code != expected[who]:
                failures.append(f"{path} as {who}: {r.status_code}, expected {expected[who]}")
            if r.status_code == 303:
                assert r.headers["location"].startswith("/login?next=")
    assert failures == []


def test_a_body_is_read_only_from_a_known_caller_and_only_up_to_its_cap(live_api) -> None:
    """Over a real socket: an unknown caller's 100 MB body gets its 401 before the server reads it, and a known
    caller's oversized body a 413, by its Content-Length or as it streams in."""
    import socket

    host, port = live_api.url.removeprefix("http://").split(":")
    own = live_api.plane.tokens[OWN]

    def post(token: str | None, size: int, *, declared: bool = True) -> tuple[int, float]:
        head = "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += f"Authorization: Bearer {token}\r\n" if token else ""
        head += f"Content-Length: {size}\r\n\r\n" if declared else "Transfer-Encoding: chunked\r\n\r\n"
        with socket.create_connection((host, int(port)), timeout=20) as s:
            s.sendall(head.encode())
            sent = 0
            chunk = b"x" * 65536
            try:
                while sent < size:
                    s.sendall(chunk if declared else b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
                    s.settimeout(0.001)
                    try:
                        if s.recv(1, socket.MSG_PEEK):
                            break  # the server answered before it had it all
                    except (TimeoutError, BlockingIOError):
                        pass
                    s.settimeout(20)
            except (BrokenPipeError, ConnectionResetError):
                pass
            s.settimeout(20)
            status = int(s.recv(200).split()[1])
        return status, sent

    status, sent = post(None, 100 << 20)
    assert status == 401 and sent < (100 << 20)
    status, sent = post("gf_not-a-token", 100 << 20)
    assert status == 401 and sent < (100 << 20)
    status, sent = post(own, 5 << 20)
    assert status == 413 and sent < (5 << 20)
    status, sent = post(own, 5 << 20, declared=False)
    assert status == 413 and sent < (5 << 20)


def test_tenants_are_limited_in_jobs_waiting_and_in_submission_rate(plane: Plane, api: TestClient) -> None:
    admin, own = as_(plane, "admin"), as_(plane, "own")
    assert api.put(f"/api/v1/admin/tenants/{OWN}", json={"max_jobs": 3}, headers=admin).json()["max_jobs"] == 3
    assert api.post("/api/v1/jobs/batch", json={"jobs": [{"command": ["true"]}] * 3}, headers=own).status_code == 201
    r = api.post("/api/v1/jobs", json={"command": ["true"]}, headers=own)
    assert r.status_code == 429 and "may have 3" in r.json()["error"]["message"] and r.headers["retry-after"]
    # The limit is the tenant's: another tenant still submits; an admin submitting for the tenant does not pass it.
    assert api.post("/api/v1/jobs", json={"command": ["true"]}, headers=as_(plane, "other")).status_code == 201
    assert api.post("/api/v1/jobs", json={"command": ["true"], "tenant": OWN}, headers=admin).status_code == 429
    # The rate: a bucket of ten seconds' worth, then 429 with the wait.
    api.put(f"/api/v1/admin/tenants/{OTHER}", json={"max_rate": 1}, headers=admin)
    other = as_(plane, "other")
    answers = [api.post("/api/v1/jobs", json={"command": ["true"]}, headers=other) for _ in range(12)]
    codes = [a.status_code for a in answers]
    assert codes.count(201) in (10, 11) and codes[-1] == 429, codes  # (one token refilled while it ran)
    assert (
        int(answers[-1].headers["retry-after"]) >= 1 and "1 jobs per second" in answers[-1].json()["error"]["message"]
    )
    # An invalid submission costs as much as a valid one, and a tenant in debt is refused before its body is read.
    third = auth(plane.tokens["uni-c"])
    api.put("/api/v1/admin/tenants/uni-c", json={"max_rate": 1}, headers=admin)
    bad = api.post("/api/v1/jobs/batch", json={"jobs": [{"command": ["true"]}] * 49 + [{"gpus": 1}]}, headers=third)
    assert bad.status_code == 422
    later = api.post("/api/v1/jobs", json={"command": ["true"]}, headers=third)
    assert later.status_code == 429 and int(later.headers["retry-after"]) > 30
    # A change of one field keeps the others.
    after = api.put(f"/api/v1/admin/tenants/{OWN}", json={"share": 5}, headers=admin).json()
    assert (after["share"], after["max_jobs"], after["parent"]) == (5.0, 3, "root")


def test_a_key_sent_again_with_another_job_is_a_conflict(plane: Plane, api: TestClient) -> None:
    own = as_(plane, "own")
    first = api.post("/api/v1/jobs", json={"command": ["true"], "key": "k1"}, headers=own)
    again = api.post("/api/v1/jobs", json={"command": ["true"], "key": "k1"}, headers=own)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    other = api.post("/api/v1/jobs", json={"command": ["false"], "key": "k1"}, headers=own)
    assert other.status_code == 409 and other.json()["error"]["field"] == "body.key"
    assert f"job {first.json()['ids'][0]}" in other.json()["error"]["message"]
    batch = api.post("/api/v1/jobs/batch", json={"jobs": [{"command": ["true"], "key": "k2"},
                                                          {"command": ["id"], "key": "k2"}]}, headers=own)  # fmt: skip
    assert batch.status_code == 409 and batch.json()["error"]["field"] == "body.jobs.1.key"
    with plane.store.connect() as conn:
        assert [r.client_key for r in jobstore.list_jobs(conn, tenant=OWN)].count("k2") == 0  # all or none


def test_health_tells_strangers_only_that_it_is_up(plane: Plane, api: TestClient) -> None:
    assert api.get("/api/v1/health").json() == {"status": "up"}
    assert api.get("/api/v1/health", headers=as_(plane, "bad")).json() == {"status": "up"}
    mine = api.get("/api/v1/health", headers=as_(plane, "own")).json()
    assert {"status", "store", "isolation", "jobs"} <= set(mine)  # (no daemon here: no heartbeat)


def test_the_dashboard_says_when_isolation_is_off(plane: Plane, api: TestClient, monkeypatch) -> None:
    from gigafactory.control.web import pages

    browser_as(api, plane.admin_token)
    monkeypatch.setattr(pages, "isolating", lambda: False)
    monkeypatch.setattr(pages, "isolation_note", lambda: "off: not running as root")
    assert 'id="isolation"' in api.get("/").text and "Isolation is off" in api.get("/queue").text
    monkeypatch.setattr(pages, "isolating", lambda: True)
    assert 'id="isolation"' not in api.get("/").text


def test_listings_cut_long_commands_and_every_job_holds_a_cpu(plane: Plane, api: TestClient) -> None:
    own = as_(plane, "own")
    long = ["sh", "-c", "echo " + "x" * 5000]
    (jid,) = api.post("/api/v1/jobs", json={"command": long, "cpu_milli": 1}, headers=own).json()["ids"]
    listed = next(j for j in api.get("/api/v1/jobs", headers=own).json() if j["id"] == jid)
    assert listed["command_truncated"] and sum(map(len, listed["command"])) <= 1024 + 1
    whole = api.get(f"/api/v1/jobs/{jid}", headers=own).json()
    assert whole["command"] == long and not whole["command_truncated"]
    with plane.store.connect() as conn:
        row = jobstore.get_job(conn, jid)
    assert row is not None
    assert row.cpu_milli == 1000  # at least one CPU, as in Slurm


def test_big_submissions_cost_by_their_size(plane: Plane, api: TestClient) -> None:
    """One unit of the rate per 8 KiB of command and environment: bytes are what the store must keep."""
    admin, own = as_(plane, "admin"), as_(plane, "own")
    api.put(f"/api/v1/admin/tenants/{OWN}", json={"max_rate": 1}, headers=admin)  # a bucket of 10
    big = {"command": ["true"], "env": {f"V{i}": "x" * 8000 for i in range(11)}}  # about 88 KiB: 11 units
    assert api.post("/api/v1/jobs", json=big, headers=own).status_code == 201
    refused = api.post("/api/v1/jobs/", json={"command": ["true"]}, headers=own)  # (a trailing slash, too)
    assert refused.status_code == 429 and "1 jobs per second" in refused.json()["error"]["message"]
