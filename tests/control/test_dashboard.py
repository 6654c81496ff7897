"""The dashboard and the API it leans on, without a browser: hostlists, the jobs page, the site views, the error
pages, and what a tenant may see. (Chromium drives the same pages in test_browser.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gigafactory.control.api.app import create_app

from .conftest import Plane
from .test_api import as_, browser_as, jobs_of_lab_a  # noqa: F401  (a fixture)


@pytest.fixture
def api(plane: Plane) -> Iterator[TestClient]:
    with TestClient(create_app(plane.cfg, plane.store)) as client:
        yield client


def test_jobs_carry_their_nodes_as_a_hostlist(plane: Plane, api: TestClient, jobs_of_lab_a) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _, running = jobs_of_lab_a
    j = api.get(f"/api/v1/jobs/{running}", headers=as_(plane, "own")).json()
    assert j["nodes"] and j["nodelist"] == j["nodes"][0]
    listed = api.get("/api/v1/jobs", headers=as_(plane, "own")).json()
    assert {x["id"]: x["nodelist"] for x in listed}[running] == j["nodelist"]


def test_nodes_are_named_by_hostlist_in_filters_and_drains(plane: Plane, api: TestClient) -> None:
    admin = as_(plane, "admin")
    r = api.get("/api/v1/nodes", params={"nodelist": "u[00001-00002]"}, headers=admin)
    assert [n["name"] for n in r.json()] == ["u00001", "u00002"]
    r = api.post("/api/v1/admin/nodes/u[00002-00003]/drain", params={"reason": "cabling"}, headers=admin)
    assert r.status_code == 202 and r.json()["nodes"] == 2
    for bad, says in [("u[00002-00001]", "runs backwards"), ("u[1-", "never closed"), ("u[0-99999999]", "more than")]:
        r = api.get("/api/v1/nodes", params={"nodelist": bad}, headers=admin)
        assert r.status_code == 422, r.text
        assert says in r.json()["error"]["message"] and r.json()["error"]["field"] == "nodelist"
    r = api.post("/api/v1/admin/nodes/u[00003-00005]/drain", headers=admin)  # u00004 and on do not exist
    assert r.status_code == 404 and "u00004" in r.json()["error"]["message"]
