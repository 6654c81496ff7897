"""Poison pills: Hypothesis writes job specs, a tenant submits each through the real API, and the real daemon runs
it with the local executor beside an innocent job of another tenant. Whatever is generated, the API answers with a
201 or a clear 4xx (never a 500), the daemon never stops, and the innocent job completes. A pill that merely
holds its GPUs is cancelled by an admin, and the cancel always takes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gigafactory.control.api.app import create_app
from gigafactory.control.daemon import Daemon
from gigafactory.control.store import jobs as jobstore

from .conftest import Plane, make_plane, run_until

# Lone surrogates (\ud800) are valid JSON escapes, but no store can encode them.
WORDS = ["true", "false", "sh", "echo", "sleep", "env", "/nonexistent/x", "-c", "exit 3", "0.2", "--", "\ud800"]
ARG = st.one_of(st.sampled_from(WORDS), st.text(max_size=40), st.integers(0, 70_000).map(lambda n: "x" * n))
ENV_NAME = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,30}\Z")
ENV_VALUE = st.one_of(st.text(max_size=50), st.integers(0, 9000).map(lambda n: "v" * n))


@st.composite
def job_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"command": draw(st.lists(ARG, min_size=1, max_size=5))}
    optional = {
        "gpus": st.integers(1, 40),
        "gpu_milli": st.one_of(st.just(1000), st.integers(1, 999)),
        "cpu_milli": st.integers(0, 20_000_000),
        "mem_mib": st.integers(0, 1 << 41),
        "env": st.dictionaries(ENV_NAME, ENV_VALUE, max_size=300),
        "name": st.one_of(st.text(max_size=210), st.just("\ud800")),
        "models": st.one_of(st.none(), st.lists(st.text(max_size=10), max_size=3)),
        "locality": st.sampled_from(["any", "pod", "domain"]),
        "estimate_s": st.one_of(st.none(), st.floats(0.1, 1e5)),
        "priority": st.integers(-10, 10),
        "key": st.one_of(st.none(), st.text(max_size=20)),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            spec[name] = draw(strategy)
    return spec


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Plane, TestClient, Daemon]]:
    plane = make_plane(tmp_path_factory.mktemp("poison") / "gf", kill_wait_s=1)
    with TestClient(create_app(plane.cfg, plane.store)) as api:
        for tenant in ("lab-a", "uni-c"):  # no limit on how fast the test submits
            api.put(f"/api/v1/admin/tenants/{tenant}", json={"max_rate": 1e6},
                    headers={"Authorization": f"Bearer {plane.admin_token}"})  # fmt: skip
        yield plane, api, plane.daemon()
    plane.store.dispose()


def post_json(api: TestClient, path: str, body: object, headers: dict[str, str]) -> Any:
    """POST ``body`` as ASCII JSON (\\u escapes), as a hostile client may: lone surrogates and all."""
    return api.post(path, content=json.dumps(body), headers={**headers, "Content-Type": "application/json"})


def _state(plane: Plane, jid: int) -> str:
    with plane.store.connect() as conn:
        row = jobstore.get_job(conn, jid)
    assert row is not None
    return str(row.state)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(spec=job_specs())
def test_no_submission_stops_another_tenants_job(site: tuple[Plane, TestClient, Daemon], spec: dict[str, Any]) -> None:
    plane, api, d = site
    attacker = {"Authorization": f"Bearer {plane.tokens['lab-a']}"}
    victim = {"Authorization": f"Bearer {plane.tokens['uni-c']}"}
    admin = {"Authorization": f"Bearer {plane.admin_token}"}
    r = post_json(api, "/api/v1/jobs", spec, attacker)
    assert r.status_code in (201, 409, 422, 429), r.text
    if r.status_code != 201:
        assert r.json()["error"]["message"]
    pill = r.json()["ids"][0] if r.status_code == 201 else None
    innocent = api.post("/api/v1/jobs", json={"command": ["sh", "-c", "echo innocent"]}, headers=victim)
    (job,) = innocent.json()["ids"]
    try:
        run_until(d, lambda: _state(plane, job) == "completed", timeout=4)
    except AssertionError:  # the pill holds the GPUs the innocent job needs (or runs ahead of it): cancel it
        assert pill is not None, f"the innocent job {job} is {_state(plane, job)} with no pill before it"
        assert api.post(f"/api/v1/jobs/{pill}/cancel", headers=admin).status_code in (202, 409)
        run_until(d, lambda: _state(plane, job) == "completed", timeout=30)
    if pill is not None and _state(plane, pill) in ("submitted", "pending", "running"):
        api.post(f"/api/v1/jobs/{pill}/cancel", headers=admin)
    if pill is not None:
        run_until(d, lambda: _state(plane, pill) not in ("submitted", "pending", "running"), timeout=30)
        run_until(d, lambda: d.engine.held() == {}, timeout=30)
    assert (plane.jobs / f"{job}/1/stdout.log").read_text() == "innocent\n"


def test_what_no_program_could_be_given_is_refused_at_the_door(site: tuple[Plane, TestClient, Daemon]) -> None:
    plane, api, _ = site
    own = {"Authorization": f"Bearer {plane.tokens['lab-a']}"}
    cases = [
        ({"command": ["echo", "a\x00b"]}, 422, "body.command.1", "NUL"),
        ({"command": ["true"], "env": {"K": "a\x00b"}}, 422, "body.env.K", "NUL"),
        ({"command": ["true"], "name": "a\x00"}, 422, "body.name", "NUL"),
        ({"command": ["true"], "name": "\ud800"}, 422, "body.name", "lone surrogate"),
        ({"command": ["true"], "checkpoint_s": 5e-324}, 422, "body.checkpoint_s", "greater than or equal to 1"),
        ({"command": ["true"], "env": {f"V{i}": "x" * 1024 for i in range(120)}}, 422, "body", "execve"),
        ({"command": ["true"], "env": {f"V{i}": "x" * 8192 for i in range(256)}}, 413, None, "over 1,048,576 bytes"),
        ({"command": ["true"], "cpu_milli": 9_000_000}, 422, "body.cpu_milli", "CPU cores"),
        ({"command": ["true"], "mem_mib": 1 << 40}, 422, "body.mem_mib", "memory"),
    ]
    for body, status, field, words in cases:
        r = post_json(api, "/api/v1/jobs", body, own)
        assert r.status_code == status, (body, r.text[:300])
        error = r.json()["error"]
        assert error["field"] == field and words.lower() in error["message"].lower(), error
    with plane.store.connect() as conn:
        names = {r.name for r in jobstore.list_jobs(conn, tenant="lab-a", limit=10_000)}
    assert not any("\x00" in n for n in names)  # nothing half-written
