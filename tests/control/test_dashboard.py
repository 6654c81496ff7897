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


def test_jobs_carry_their_nodes_as_a_hostlist(plane: Plane, api: TestClient, jobs_of_lab_a) -> None:  # noqa: F811
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


def page(api: TestClient, path: str, **kw):
    return api.get(path, headers={"Accept": "text/html"}, **kw)


def test_browsers_get_html_errors_and_api_clients_json(plane: Plane, api: TestClient) -> None:
    browser_as(api, plane.admin_token)
    r = page(api, "/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "There is no page at /no/such/page" in r.text and "dash.css" in r.text
    r = page(api, "/jobs/999")
    assert r.status_code == 404 and "no job 999" in r.text and "<html" in r.text
    r = page(api, "/jobs/0")  # a path parameter out of range: the validation message, on a page
    assert r.status_code == 422 and "job_id" in r.text and "<html" in r.text
    # The same requests from an API client (or under /api/) get the API's JSON.
    assert api.get("/no/such/page").json()["error"]["status"] == 404
    r = api.get("/api/v1/jobs/999", headers={"Accept": "text/html", **as_(plane, "admin")})
    assert r.status_code == 404 and r.json()["error"]["message"] == "no job 999"


def test_docs_favicon_and_scripts_need_no_internet(plane: Plane, api: TestClient) -> None:
    docs = api.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "/static/swagger/swagger-ui.css" in docs
    assert "http://" not in docs.replace("http://www.w3.org", "") and "https://" not in docs
    for asset in ("/static/swagger/swagger-ui-bundle.js", "/static/swagger/swagger-ui.css", "/favicon.svg",
                  "/favicon.ico", "/static/dash.css", "/static/dash.js"):  # fmt: skip
        assert api.get(asset).status_code == 200, asset
    assert api.get("/static/swagger/../../etc/passwd").status_code == 404
    assert api.get("/redoc").status_code == 404  # FastAPI's ReDoc page loads from a CDN: not served
    login = api.get("/login").text
    assert "dash.css" in login and 'rel="icon"' in login and "plotly" not in login
    browser_as(api, plane.admin_token)
    for path, charts in (("/", False), ("/queue", False), ("/jobs", False), ("/tenants", True), ("/utilisation", True)):
        html = page(api, path).text
        head = html.split("</head>")[0]
        assert 'http-equiv="refresh"' not in html, path  # pages refresh in place, keeping the scroll position
        assert ('<script src="/static/plotly.min.js" defer></script>' in head) == charts, path
        assert all(" defer" in tag for tag in head.split("<script")[1:]), path  # nothing in <head> blocks


def test_the_title_names_the_site_once(plane: Plane, api: TestClient) -> None:
    browser_as(api, plane.admin_token)
    html = page(api, "/").text
    title = html.split("<title>")[1].split("</title>")[0]
    assert title.count("uniform:nodes=4,gpus=8") == 1
    sub = html.split('id="site-name">')[1].split("</p>")[0]
    assert sub.count("uniform:nodes=4,gpus=8") == 1 and "4 nodes" in sub


def test_the_jobs_page_filters_searches_sorts_and_pages(plane: Plane, api: TestClient) -> None:
    own, other = as_(plane, "own"), as_(plane, "other")
    mine = [api.post("/api/v1/jobs", json={"command": ["true"], "name": f"sweep-{k}"}, headers=own).json()["ids"][0]
            for k in range(60)]  # fmt: skip
    theirs = api.post("/api/v1/jobs", json={"command": ["true"], "name": "secret-sweep"}, headers=other).json()["ids"]
    browser_as(api, plane.tokens["lab-a"])
    html = page(api, "/jobs").text
    assert html.count('<tr data-job="') == 50 and "60 jobs, 1–50 shown" in html and 'rel="next"' in html
    assert "secret-sweep" not in html and f'data-job="{theirs[0]}"' not in html
    assert f'data-job="{mine[-1]}"' in html  # newest first
    html = page(api, "/jobs", params={"page": 2}).text
    assert html.count('<tr data-job="') == 10 and f'data-job="{mine[0]}"' in html
    html = page(api, "/jobs", params={"sort": "id", "order": "asc"}).text
    assert html.index(f'data-job="{mine[0]}"') < html.index(f'data-job="{mine[1]}"')
    html = page(api, "/jobs", params={"q": "sweep-4"}).text  # sweep-4, sweep-40 … sweep-49
    assert html.count('<tr data-job="') == 11
    assert f'data-job="{mine[7]}"' in page(api, "/jobs", params={"q": str(mine[7])}).text  # by id (or in a name)
    assert page(api, "/jobs", params={"q": str(theirs[0])}).text.count('<tr data-job="') == 0  # not even by id
    assert page(api, "/jobs", params={"q": "secret"}).text.count('<tr data-job="') == 0
    assert page(api, "/jobs", params={"q": "50%_"}).status_code == 200  # LIKE's wildcards are plain characters
    assert page(api, "/jobs", params={"q": "²"}).status_code == 200  # a digit to isdigit(), not to int()
    assert api.get("/api/v1/jobs", params={"q": "²"}, headers=own).status_code == 200
    assert page(api, "/jobs", params={"page": "²"}).status_code == 422
    # Bad filters: a 422 with the message on the page and the form kept, never a 500 and never JSON.
    for params, says in [({"state": "sleeping"}, "not a job state"), ({"sort": "drop table"}, "sort:"),
                         ({"page": "-1"}, "not a page number"), ({"window": "1y"}, "window:"),
                         ({"tenant": "startup-b"}, "only your own jobs"), ({"site": "mars"}, "no site"),
                         ({"q": "x\x01"}, "control characters"), ({"order": "sideways"}, "order:")]:  # fmt: skip
        r = page(api, "/jobs", params=params)
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), params
        assert says in r.text and 'id="job-filters"' in r.text, params
    # An admin filters by tenant.
    browser_as(api, plane.admin_token)
    html = page(api, "/jobs", params={"tenant": "startup-b"}).text
    assert html.count('<tr data-job="') == 1 and "secret-sweep" in html
    assert page(api, "/jobs", params={"tenant": "ghost"}).status_code == 422


def test_resubmit_follows_the_apis_rules(plane: Plane, api: TestClient, jobs_of_lab_a) -> None:  # noqa: F811
    done, running = jobs_of_lab_a
    assert api.post(f"/api/v1/jobs/{done}/resubmit", headers=as_(plane, "other")).status_code == 404
    assert api.post(f"/api/v1/jobs/{done}/resubmit").status_code == 401
    r = api.post(f"/api/v1/jobs/{done}/resubmit", headers=as_(plane, "own"))
    assert r.status_code == 201
    copy = api.get(f"/api/v1/jobs/{r.json()['ids'][0]}", headers=as_(plane, "own")).json()
    original = api.get(f"/api/v1/jobs/{done}", headers=as_(plane, "own")).json()
    assert copy["command"] == original["command"] and copy["tenant"] == "lab-a" and copy["state"] == "submitted"
    # The page's buttons call the API with the session cookie.
    browser_as(api, plane.tokens["lab-a"])
    html = page(api, f"/jobs/{done}").text
    assert f'data-post="/api/v1/jobs/{done}/resubmit"' in html
    html = page(api, f"/jobs/{running}").text
    assert f'data-post="/api/v1/jobs/{running}/cancel"' in html and "data-follow=" in html
    assert api.post(f"/api/v1/jobs/{running}/cancel").status_code == 202


def test_multi_line_commands_keep_their_lines(plane: Plane, api: TestClient) -> None:
    own = as_(plane, "own")
    jid = api.post("/api/v1/jobs", json={"command": ["sh", "-c", "echo one\necho two"]}, headers=own).json()["ids"][0]
    browser_as(api, plane.tokens["lab-a"])
    html = page(api, f"/jobs/{jid}").text
    assert "echo one\necho two" in html.split('id="job-command">')[1].split("</pre>")[0]


def test_site_views_hide_other_tenants_jobs(plane: Plane, api: TestClient) -> None:
    """Drill-down from pod to rack to node: a tenant sees its own jobs there, and of the others only that GPUs are
    taken by "another tenant": no id, no name, no tenant name."""
    from gigafactory.control.store import jobs as jobstore

    base = {"command": ["true"], "env": {}, "gpu_milli": 1000, "cpu_milli": 1000, "mem_mib": 0, "locality": "any",
            "attempt": 1, "state": "running", "site": "uniform:nodes=4,gpus=8", "started_at": 1.0}  # fmt: skip
    with plane.store.begin() as conn:
        secret, own = jobstore.insert_jobs(conn, [
            {**base, "tenant": "lab-a", "name": "topsecret-run", "gpus": 8,
             "placement": {"nodes": [0], "gpus": [list(range(8))], "gpu_milli": 1000}},
            {**base, "tenant": "startup-b", "name": "my-own-run", "gpus": 4,
             "placement": {"nodes": [1], "gpus": [[0, 1, 2, 3]], "gpu_milli": 1000}},
        ])  # fmt: skip
    browser_as(api, plane.tokens["startup-b"])
    for path in ("/", "/?colour=tenant", "/site/pods/0", "/site/racks/0", "/site/nodes/u00000", "/site/racks/1",
                 "/site/nodes/u00001", "/jobs", "/queue"):  # fmt: skip
        html = page(api, path).text
        assert "topsecret" not in html and "lab-a" not in html and f"/jobs/{secret}" not in html, path
    assert "another tenant" in page(api, "/site/nodes/u00000").text
    node = page(api, "/site/nodes/u00001").text
    assert "my-own-run" in node and f"/jobs/{own}" in node
    assert page(api, "/site/nodes/nowhere").status_code == 404
    assert page(api, "/site/racks/99").status_code == 404
    assert page(api, "/?colour=rainbow").status_code == 422
    browser_as(api, plane.admin_token)
    assert "topsecret-run" in page(api, "/site/nodes/u00000").text
    assert "lab-a" in page(api, "/?colour=tenant").text  # the legend names tenants to an admin


def test_charts_keep_tenants_apart_and_say_their_window(plane: Plane, api: TestClient) -> None:
    """Each tenant's use is drawn against its entitlement: its share capped by what it asks for (a tenant with no
    jobs is owed nothing). Equal entitlements draw two lines, not one over the other; a tenant has one colour on every
    page; a chart's title says the window it shows (a control plane minutes old shows minutes, not "24 h")."""
    import base64
    import json
    import time

    import numpy as np
    from sqlalchemy import update

    from gigafactory.control.store.schema import jobs
    from gigafactory.report.colours import tenant_colour

    api.post("/api/v1/jobs", json={"command": ["true"], "tenant": "uni-c"}, headers=as_(plane, "admin"))
    with plane.store.begin() as conn:  # it has waited ten minutes, so the chart's window has room for it
        conn.execute(update(jobs).values(submitted_at=time.time() - 600))
    browser_as(api, plane.admin_token)
    html = page(api, "/tenants", params={"hours": 24}).text
    fig = json.loads(html.split('id="usage-figure">')[1].split("</script>")[0].replace("<\\/", "</"))

    def first(y):
        """Plotly writes numpy arrays as base64 ("bdata") with their dtype."""
        if isinstance(y, dict):
            return float(np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])[0])
        return float(y[0])

    def peak(y):
        if isinstance(y, dict):
            return float(np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).max())
        return float(max(y))

    owed = {t["name"]: peak(t["y"]) for t in fig["data"] if t["name"].endswith(" entitled")}
    # uni-c asks for one GPU of the 32 and is owed exactly that; the others ask for nothing and are owed nothing,
    # their two lines lifted a hair apart.
    assert owed["uni-c entitled"] == pytest.approx(1.0, abs=0.2)
    assert owed["startup-b entitled"] != owed["lab-a entitled"]
    assert max(owed["startup-b entitled"], owed["lab-a entitled"]) < 0.02 * 32
    colours = {t["name"]: t["line"]["color"] for t in fig["data"]}
    assert colours["uni-c used"] == colours["uni-c entitled"] == tenant_colour("uni-c")
    title = fig["layout"]["title"]["text"]
    assert "last 24 h" not in title and "since the first job; 24 h asked" in title
    for path in ("/jobs", "/queue", "/tenants"):
        assert f"background:{tenant_colour('uni-c')}" in page(api, path).text, path
    r = page(api, "/utilisation", params={"hours": 0})
    assert r.status_code == 422 and "hours" in r.text and "<html" in r.text


def test_a_nodes_page_shows_its_state_changes(plane: Plane, api: TestClient) -> None:
    """The daemon logs every change of a node's state with its reason (node_log); the node's page lists them, newest
    first, and a node never touched says so."""
    from gigafactory.control.store import inbox

    d = plane.daemon()
    with plane.store.begin() as conn:
        inbox.append(conn, "drain", node=1, reason="fan replaced")
    d.step()
    with plane.store.begin() as conn:
        inbox.append(conn, "resume", node=1)
    d.step()
    browser_as(api, plane.tokens["lab-a"])
    html = page(api, "/site/nodes/u00001").text
    table = html.split('id="node-states">')[1].split("</table>")[0]
    rows = table.split("<tr>")[2:]  # after the header row
    assert len(rows) == 2 and "up" in rows[0] and "drained" in rows[1] and "fan replaced" in rows[1]
    quiet = page(api, "/site/nodes/u00002").text.split('id="node-states">')[1].split("</table>")[0]
    assert "Up since the site was set up" in quiet


def test_a_page_of_another_origin_cannot_act_with_the_dashboards_cookie(plane: Plane, api: TestClient) -> None:
    """A hostile tenant's job serves a page on another port of the control plane's host: to a browser that is the
    same *site*, so SameSite=Strict sends the session cookie with its form posts. Changes made by cookie must come
    from the dashboard's own origin; a bearer token is not sent by a browser on its own, so it is not checked."""
    victim = as_(plane, "own")
    jid = api.post("/api/v1/jobs", json={"command": ["sleep", "60"]}, headers=victim).json()["ids"][0]
    browser_as(api, plane.tokens["lab-a"])
    host = "testserver"
    attacker = "http://127.0.0.1:8799"
    for forged in ({"Sec-Fetch-Site": "same-site", "Origin": attacker}, {"Origin": attacker}, {"Origin": "null"},
                   {"Sec-Fetch-Site": "cross-site"}):  # fmt: skip
        for path in (f"/api/v1/jobs/{jid}/cancel", f"/api/v1/jobs/{jid}/resubmit"):
            r = api.post(path, headers=forged)
            assert r.status_code == 403 and "another origin" in r.json()["error"]["message"], (forged, path)
        r = api.post("/login", data={"token": plane.tokens["startup-b"], "next": "/"}, headers=forged,
                     follow_redirects=False)  # fmt: skip
        assert r.status_code == 403, forged  # nor sign a victim in as the attacker
    assert api.get(f"/api/v1/jobs/{jid}", headers=victim).json()["state"] != "cancelled"
    # From the dashboard itself (what dash.js sends) it works, and so does a bearer token with any Origin.
    ok = api.post(f"/api/v1/jobs/{jid}/resubmit", headers={"Sec-Fetch-Site": "same-origin", "Origin": f"http://{host}"})
    assert ok.status_code == 201
    api.cookies.clear()
    assert (
        api.post(f"/api/v1/jobs/{jid}/cancel", headers={**victim, "Origin": "http://evil.example"}).status_code == 202
    )


def test_pages_refuse_to_be_framed_and_double_credentials_are_refused(plane: Plane, api: TestClient) -> None:
    browser_as(api, plane.admin_token)
    r = page(api, "/jobs")
    assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in r.headers["content-security-policy"]
    api.cookies.clear()
    two = [("Authorization", f"Bearer {plane.tokens['lab-a']}"), ("Authorization", f"Bearer {plane.tokens['uni-c']}")]
    r = api.get("/api/v1/jobs", headers=two)
    assert r.status_code == 400 and "one Authorization header" in r.json()["error"]["message"]
    r = api.get("/api/v1/jobs", headers={"Cookie": "gf_session=a; gf_session=b"})
    assert r.status_code == 400 and "one gf_session cookie" in r.json()["error"]["message"]
    r = api.get("/api/v1/jobs", params=[("state", "running")] * 40, headers=as_(plane, "admin"))
    assert r.status_code == 422
    browser_as(api, plane.admin_token)
    r = page(api, "/jobs", params=[("state", "running")] * 2000)
    assert r.status_code == 422 and "give each state at most once" in r.text
