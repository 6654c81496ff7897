"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against a running server
with a daemon running real jobs (the demo's 4 nodes), and against a 100k-GPU GB200 site with thousands of jobs,
at 1440×900 and at 390×844 (a phone). Screenshots of each page at both sizes land in out/screenshots/ (or in
$GIGAFACTORY_SCREENSHOTS)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gigafactory.control.client import Client

from .bigsite import BIG_SITE, populate
from .conftest import LiveServer, _serve

CHROMIUM = os.environ.get("GIGAFACTORY_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        if os.environ.get("GIGAFACTORY_REQUIRE_BROWSER") == "1":
            pytest.fail(f"Chromium is required here but {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip("no Chromium (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


SIZES = {"wide": (1440, 900), "phone": (390, 844)}
SHOTS = Path(os.environ.get("GIGAFACTORY_SCREENSHOTS", Path(__file__).resolve().parents[2] / "out" / "screenshots"))


def _shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _watch(page) -> list[str]:
    """The page's JavaScript errors and console errors, as they come."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    return errors


def _wait(pred, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _row_head_within(page, row_selector: str, limit: float = 200.0) -> None:
    """A job row's id and state sit within the first ``limit`` px of the row, across and down."""
    row = page.locator(row_selector).first
    rb = row.bounding_box()
    for cell in (".job-id", ".job-state"):
        cb = row.locator(cell).bounding_box()
        assert rb is not None and cb is not None
        assert cb["x"] - rb["x"] < limit and cb["y"] - rb["y"] < limit, (row_selector, cell, rb, cb)


def test_dashboard_pages(browser, live: LiveServer, tmp_path: Path) -> None:
    with Client(live.url, live.plane.admin_token) as c:
        done = c.submit(tenant="lab-a", name="hello", command=["sh", "-c", "echo hello from the job\necho line two"],
                        gpus=2)  # fmt: skip
        running = c.submit(tenant="lab-a", name="long", gpus=24, estimate_s=60,
                           command=["sh", "-c", "for i in $(seq 1 300); do echo line $i; done; sleep 2; echo late; "
                                    "sleep 60"])  # fmt: skip
        waiting = c.submit(tenant="startup-b", name="waits", command=["true"], gpus=16, estimate_s=60)
        _wait(lambda: c.job(done)["state"] == "completed" and c.job(running)["state"] == "running")
        _wait(lambda: c.job(waiting)["est_start"] is not None)
        c.drain("u00003", reason="fan replacement")
        _wait(lambda: any(n["state"] == "drained" for n in c.nodes()))

    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors = _watch(page)
    # Signing in: a bad token is refused, a good one lands on the site map.
    page.goto(f"{live.url}/queue")
    assert "/login" in page.url
    page.fill("#token", "gf_wrong")
    page.click("#sign-in")
    assert "not valid" in page.inner_text("#error")
    page.fill("#token", live.plane.admin_token)
    page.click("#sign-in")
    page.wait_for_url(f"{live.url}/queue")
    assert "gf_" not in page.url  # the token never travels in the URL
    errors.clear()  # (the refused token's 401 is a console error, and meant)

    # The queue: running first, then the waiting job with its estimated start.
    rows = page.locator("#queue tbody tr")
    assert rows.count() == 2
    assert page.locator(f'tr[data-job="{running}"] .job-state').inner_text() == "running"
    waiting_row = page.locator(f'tr[data-job="{waiting}"]')
    assert waiting_row.locator(".job-state").inner_text() == "pending"
    assert waiting_row.locator(".est-start").inner_text() not in ("", "—", "N/A")
    _row_head_within(page, f'tr[data-job="{running}"]')

    # The site map: every node, coloured by use and state.
    page.goto(f"{live.url}/")
    cells = page.locator("#site-map .node")
    assert cells.count() == 4
    assert page.locator('#site-map .node[data-state="drained"]').count() == 1
    assert "fan replacement" in (page.locator('.node[data-node="u00003"]').get_attribute("title") or "")
    assert page.inner_text("#gpus-in-use") == "24" and page.inner_text("#gpus-in-use-pct") == "75%"
    page.click('.node[data-node="u00003"]')  # drill down to the node
    page.wait_for_url("**/site/nodes/u00003")
    assert page.inner_text("#node-state") == "drained" and "fan replacement" in page.inner_text("#node-asked")

    # One job's story and its output; a multi-line command keeps its lines.
    page.goto(f"{live.url}/jobs/{done}")
    assert page.inner_text("#job-state") == "completed"
    story = page.locator("#story tbody tr")
    assert [story.nth(i).locator("td").nth(3).inner_text() for i in range(story.count())] == [
        "pending", "running", "completed"
    ]  # fmt: skip
    assert "hello from the job" in page.inner_text("#log-stdout")
    assert "hello from the job\necho line two" in page.inner_text("#job-command")

    # A running job's log is followed, newest lines shown.
    page.goto(f"{live.url}/jobs/{running}")
    log = page.locator("#log-stdout")
    _wait(lambda: "late" in log.inner_text(), timeout=20)
    assert log.evaluate("el => el.scrollTop + el.clientHeight >= el.scrollHeight - 8")
    assert log.evaluate("el => el.scrollHeight > el.clientHeight")  # (so "at the end" means something)

    # Jobs: every state; cancelling from the page goes through the API.
    page.goto(f"{live.url}/jobs")
    assert page.locator("#jobs tbody tr").count() == 3
    _row_head_within(page, f'#jobs tr[data-job="{running}"]')
    page.on("dialog", lambda d: d.accept())
    page.click(f'#jobs tr[data-job="{running}"] button.cancel')
    page.wait_for_selector("#action-result:not([hidden])")
    assert "will be cancelled" in page.inner_text("#action-result")
    with Client(live.url, live.plane.admin_token) as c:
        _wait(lambda: c.job(running)["state"] == "cancelled")
    page.evaluate("window.gfRefresh()")
    _wait(lambda: page.locator(f'#jobs tr[data-job="{running}"] .job-state').inner_text() == "cancelled")

    # Charts are drawn by plotly (served by us: the page works offline), each tenant in its own colour.
    from gigafactory.report.colours import tenant_colour

    page.goto(f"{live.url}/tenants?hours=1")
    page.wait_for_selector("#usage-chart .main-svg", timeout=15_000)
    assert page.locator("#tenants tbody tr").count() == 3
    assert tenant_colour("lab-a") in page.inner_html("#usage-figure")
    assert "last " in page.inner_text("#window-shown") or page.inner_text("#window-shown")
    page.goto(f"{live.url}/utilisation?hours=1")
    page.wait_for_selector("#util-chart .main-svg", timeout=15_000)
    assert page.inner_text("#mean-util").endswith("%")

    # Every page at both sizes, with no JavaScript or console error.
    pages = {"site": "/", "queue": "/queue", "jobs": "/jobs", "job": f"/jobs/{done}", "tenants": "/tenants?hours=1",
             "utilisation": "/utilisation?hours=1", "node": "/site/nodes/u00003", "rack": "/site/racks/3",
             "pod": "/site/pods/0", "programme": "/programme", "desk": "/desk"}  # fmt: skip
    for size, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        for name, path in pages.items():
            page.goto(f"{live.url}{path}")
            if name in ("tenants", "utilisation"):
                page.wait_for_selector(".chart .main-svg", timeout=15_000)
            assert page.evaluate("document.documentElement.scrollWidth") <= w, (name, size)  # no sideways scroll
            _shoot(page, f"demo-{name}-{size}")
    # Dark mode follows the browser's preference.
    page.emulate_media(color_scheme="dark")
    page.goto(f"{live.url}/tenants?hours=1")
    page.wait_for_selector(".chart .main-svg", timeout=15_000)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(18, 22, 28)"
    _shoot(page, "demo-tenants-phone-dark")
    page.emulate_media(color_scheme="light")
    assert errors == []
    assert (SHOTS / "demo-site-wide.png").stat().st_size > 10_000

    # The cookie holds a session, not the token, and lives for hours, not a month.
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["value"].startswith("gfs_") and live.plane.admin_token not in cookie["value"]
    assert cookie["expires"] - time.time() < 13 * 3600

    # A tenant signs in with a one-time link, and sees only its own jobs.
    page.context.clear_cookies()
    with Client(live.url, live.plane.tokens["startup-b"]) as tenant:
        link = tenant.sign_in_link()
    assert "gf_" not in link
    page.goto(link)
    page.goto(f"{live.url}/queue")  # (the waiting job may have run and ended since lab-a's was cancelled)
    assert {r.get_attribute("data-job") for r in page.locator("#queue tbody tr").all()} <= {str(waiting), None}
    assert "hello" not in page.inner_text("#queue")
    page.goto(f"{live.url}/jobs")
    assert [r.get_attribute("data-job") for r in page.locator("#jobs tbody tr").all()] == [str(waiting)]
    assert page.goto(f"{live.url}/jobs/{done}").status == 404
    assert "no job" in page.inner_text("#error")  # a page, not JSON
    page.context.clear_cookies()
    assert page.goto(link).status == 401  # the link works once
    page.close()


def test_the_network_in_the_dashboard(browser, live_network: LiveServer, tmp_path: Path) -> None:
    """The sites with their load; and a tenant sees its own jobs on every site, and no one else's."""
    live = live_network
    with Client(live.url, live.plane.admin_token) as c:
        mine_de = c.submit(tenant="lab-a", name="mine-de", command=["sleep", "30"], gpus=8, site="de-1")
        mine_fr = c.submit(tenant="lab-a", name="mine-fr", command=["sleep", "30"], gpus=8, countries=["FR"])
        theirs = c.submit(tenant="startup-b", name="theirs", command=["sleep", "30"], gpus=8, site="de-1")
        _wait(lambda: all(c.job(j)["state"] == "running" for j in (mine_de, mine_fr, theirs)))
    with Client(live.url, live.plane.tokens["lab-a"]) as c:
        link = c.sign_in_link()
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors = _watch(page)
    page.goto(link)  # a one-time sign-in link, as the tenant
    page.goto(f"{live.url}/")
    sites = page.locator("#sites tbody tr")
    assert sites.count() == 2
    de = page.locator('#sites tr[data-site="de-1"] td')
    assert de.nth(1).inner_text() == "DE" and de.nth(3).inner_text() == "16"  # both jobs there hold 16 GPUs
    assert page.inner_text("#site-name") == "de-1"
    page.click('#sites a:text("fr-1")')
    page.wait_for_url("**/?site=fr-1")
    assert page.inner_text("#site-name") == "fr-1"
    assert page.locator("#site-map .node").count() == 2
    _shoot(page, "network-site-wide")
    # The queue: the tenant's own jobs, on both sites, with the site; the other tenant's job is not there.
    page.goto(f"{live.url}/queue")
    shown = {page.locator("#queue tbody tr").nth(k).get_attribute("data-job") for k in range(2)}
    assert page.locator("#queue tbody tr").count() == 2 and shown == {str(mine_de), str(mine_fr)}
    assert page.locator(f'tr[data-job="{mine_fr}"] .job-site').inner_text() == "fr-1"
    assert "theirs" not in page.content()
    page.goto(f"{live.url}/jobs/{mine_fr}")
    assert "fr-1" in page.inner_text("#job-site") and "may run in FR" in page.inner_text("#job-site")
    assert "routed to fr-1" in page.inner_text("#story")
    assert errors == []
    resp = page.goto(f"{live.url}/jobs/{theirs}")
    assert resp is not None and resp.status == 404
    page.close()
    with Client(live.url, live.plane.admin_token) as c:
        for j in (mine_de, mine_fr, theirs):
            c.cancel(j)


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Iterator[tuple[LiveServer, dict]]:
    """The API (no daemon) on a 100k-GPU GB200 site holding ~3,500 jobs in every state."""
    serving = _serve(tmp_path_factory.mktemp("big"), daemon=False, site=BIG_SITE)
    live = next(serving)
    info = populate(live.plane.store)
    yield live, info
    next(serving, None)


def _signed_in(browser, live: LiveServer, token: str, size: str):
    w, h = SIZES[size]
    page = browser.new_page(viewport={"width": w, "height": h})
    with Client(live.url, token) as c:
        page.goto(c.sign_in_link())
    return page


def test_a_100k_gpu_site_in_the_browser(browser, big) -> None:
    """The site map fits in three screens; a job row's id and state lead it; a job of 7,488 nodes is one short
    hostlist; drill-down from pod to rack to node; every page at both sizes, with no console error."""
    live, info = big
    huge = info["huge"]
    for size, (w, h) in SIZES.items():
        page = _signed_in(browser, live, live.plane.admin_token, size)
        errors = _watch(page)
        page.goto(f"{live.url}/")
        assert page.locator("#site-map .rackcell").count() == 1389
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height <= 3 * h, f"the site map is {height} px tall at {w}×{h}"
        assert page.evaluate("document.documentElement.scrollWidth") <= w  # nothing sticks out sideways
        _shoot(page, f"big-site-{size}")
        page.goto(f"{live.url}/?colour=tenant")
        _shoot(page, f"big-site-tenant-{size}")

        page.goto(f"{live.url}/queue")
        _row_head_within(page, f'#queue tr[data-job="{huge}"]')
        assert page.locator(f'#queue tr[data-job="{huge}"] .nodes').inner_text() == "r[0000-0415]-n[00-17]"
        assert page.locator(f'#queue tr[data-job="{huge}"]').bounding_box()["height"] < 120
        _shoot(page, f"big-queue-{size}")
        page.goto(f"{live.url}/jobs?state=failed")
        assert page.locator("#jobs tbody tr").count() == 50
        assert {r.get_attribute("data-state") for r in page.locator("#jobs tbody tr").all()} == {"failed"}
        _row_head_within(page, "#jobs tbody tr")
        _shoot(page, f"big-jobs-{size}")
        page.goto(f"{live.url}/jobs/{huge}")
        assert page.inner_text("#job-nodes") == "r[0000-0415]-n[00-17]"
        _shoot(page, f"big-job-{size}")

        # Drill down: a pod, a rack of it, a node of that rack.
        page.goto(f"{live.url}/")
        page.click('.podlabel[href^="/site/pods/60"]')
        page.wait_for_url("**/site/pods/60")
        _shoot(page, f"big-pod-{size}")
        page.click("#pod-racks h3 a >> nth=0")
        page.wait_for_url("**/site/racks/480")
        assert page.locator("#rack-nodes .nodecard").count() == 18
        _shoot(page, f"big-rack-{size}")
        page.click("#rack-nodes .nodecard >> nth=2")
        page.wait_for_url("**/site/nodes/r0480-n02")
        assert "rack 480" in page.inner_text(".crumbs")
        assert page.evaluate("document.documentElement.scrollWidth") <= w
        _shoot(page, f"big-node-{size}")

        # The page refreshes in place: the reader's scroll position stays.
        page.goto(f"{live.url}/jobs")
        page.evaluate("window.scrollTo(0, 600)")
        assert page.evaluate("window.gfRefresh()") is True
        assert page.evaluate("window.scrollY") == 600
        assert errors == [], errors
        page.close()


def test_docs_render_with_the_network_off(browser, big) -> None:
    live, _ = big
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors = _watch(page)
    outside: list[str] = []

    def only_ours(route) -> None:
        if route.request.url.startswith(live.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.goto(f"{live.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "gigafactory" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() > 20
    assert outside == [] and errors == []
    _shoot(page, "docs-wide")
    page.set_viewport_size({"width": 390, "height": 844})
    _shoot(page, "docs-phone")
    page.close()


def test_a_tenant_sees_only_its_own_jobs_in_history_and_search(browser, big) -> None:
    live, info = big
    theirs = info["huge"]  # lab-a's
    page = _signed_in(browser, live, live.plane.tokens["startup-b"], "phone")
    errors = _watch(page)
    for path in ("/jobs", "/jobs?page=2", "/jobs?state=completed&sort=gpus", "/jobs?q=done"):
        page.goto(f"{live.url}{path}")
        tenants = {r.get_attribute("data-tenant") for r in page.locator("#jobs tbody tr").all()}
        assert tenants == {"startup-b"}, (path, tenants)
    page.goto(f"{live.url}/jobs?q={theirs}")  # its id (and names holding those digits: startup-b's own)
    assert page.locator(f'#jobs tr[data-job="{theirs}"]').count() == 0
    assert {r.get_attribute("data-tenant") for r in page.locator("#jobs tbody tr").all()} <= {"startup-b"}
    for q in ("frontier", "lab-a"):
        page.goto(f"{live.url}/jobs?q={q}")
        assert page.inner_text("#jobs tbody") == "No job matches.", q
    page.goto(f"{live.url}/site/racks/0")  # lab-a's huge job fills it: "another tenant" to startup-b
    assert "frontier" not in page.content() and "lab-a" not in page.content()
    assert "another tenant" in page.inner_text("#rack-nodes")
    assert errors == []
    resp = page.goto(f"{live.url}/jobs?tenant=lab-a")
    assert resp is not None and resp.status == 422 and "only your own jobs" in page.inner_text(".filter-error")
    _shoot(page, "big-jobs-tenant-phone")
    page.close()
