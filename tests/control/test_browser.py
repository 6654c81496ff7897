"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against a running server
with a daemon running real jobs. Screenshots land in the test's temporary directory."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gigafactory.control.client import Client

from .conftest import LiveServer

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


def _wait(pred, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_dashboard_pages(browser, live: LiveServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with Client(live.url, live.plane.admin_token) as c:
        done = c.submit(tenant="lab-a", name="hello", command=["sh", "-c", "echo hello from the job"], gpus=2)
        running = c.submit(tenant="lab-a", name="long", command=["sleep", "30"], gpus=24, estimate_s=30)
        waiting = c.submit(tenant="startup-b", name="waits", command=["true"], gpus=16, estimate_s=60)
        _wait(lambda: c.job(done)["state"] == "completed" and c.job(running)["state"] == "running")
        _wait(lambda: c.job(waiting)["est_start"] is not None)
        c.drain("u00003", reason="fan replacement")
        _wait(lambda: any(n["state"] == "drained" for n in c.nodes()))

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
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

    # The queue: running first, then the waiting job with its estimated start.
    rows = page.locator("#queue tbody tr")
    assert rows.count() == 2
    assert page.locator(f'tr[data-job="{running}"] .job-state').inner_text() == "running"
    waiting_row = page.locator(f'tr[data-job="{waiting}"]')
    assert waiting_row.locator(".job-state").inner_text() == "pending"
    assert waiting_row.locator(".est-start").inner_text() not in ("", "—", "N/A")
    page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)

    # The site map: every node, coloured by use and state.
    page.goto(f"{live.url}/")
    cells = page.locator("#site-map .node")
    assert cells.count() == 4
    assert page.locator('#site-map .node[data-state="drained"]').count() == 1
    assert "fan replacement" in (page.locator('.node[data-node="u00003"]').get_attribute("title") or "")
    assert page.inner_text("#gpus-in-use").startswith("24")
    page.screenshot(path=str(tmp_path / "site.png"), full_page=True)

    # One job's story and its output.
    page.goto(f"{live.url}/jobs/{done}")
    assert page.inner_text("#job-state") == "completed"
    story = page.locator("#story tbody tr")
    assert [story.nth(i).locator("td").nth(3).inner_text() for i in range(story.count())] == [
        "pending", "running", "completed"
    ]  # fmt: skip
    assert "hello from the job" in page.inner_text("#log-stdout")

    # Charts are drawn by plotly (served by us: the page works offline).
    page.goto(f"{live.url}/tenants?hours=1")
    page.wait_for_selector("#usage-chart .main-svg", timeout=15_000)
    assert page.locator("#tenants tbody tr").count() == 3
    page.goto(f"{live.url}/utilisation?hours=1")
    page.wait_for_selector("#util-chart .main-svg", timeout=15_000)
    assert page.inner_text("#mean-util").endswith("%")
    page.screenshot(path=str(tmp_path / "utilisation.png"), full_page=True)
    assert errors == []
    assert (tmp_path / "site.png").stat().st_size > 10_000

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
    page.goto(f"{live.url}/queue")
    assert [r.get_attribute("data-job") for r in page.locator("#queue tbody tr").all()] == [str(waiting)]
    assert page.goto(f"{live.url}/jobs/{done}").status == 404
    page.context.clear_cookies()
    assert page.goto(link).status == 401  # the link works once
    page.close()


def test_the_network_in_the_dashboard(browser, live_network: LiveServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The sites with their load; and a tenant sees its own jobs on every site, and no one else's."""
    live = live_network
    with Client(live.url, live.plane.admin_token) as c:
        mine_de = c.submit(tenant="lab-a", name="mine-de", command=["sleep", "30"], gpus=8, site="de-1")
        mine_fr = c.submit(tenant="lab-a", name="mine-fr", command=["sleep", "30"], gpus=8, countries=["FR"])
        theirs = c.submit(tenant="startup-b", name="theirs", command=["sleep", "30"], gpus=8, site="de-1")
        _wait(lambda: all(c.job(j)["state"] == "running" for j in (mine_de, mine_fr, theirs)))
    with Client(live.url, live.plane.tokens["lab-a"]) as c:
        link = c.sign_in_link()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
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
    page.screenshot(path=str(tmp_path / "network.png"), full_page=True)
    # The queue: the tenant's own jobs, on both sites, with the site; the other tenant's job is not there.
    page.goto(f"{live.url}/queue")
    shown = {page.locator("#queue tbody tr").nth(k).get_attribute("data-job") for k in range(2)}
    assert page.locator("#queue tbody tr").count() == 2 and shown == {str(mine_de), str(mine_fr)}
    assert page.locator(f'tr[data-job="{mine_fr}"] .job-site').inner_text() == "fr-1"
    assert "theirs" not in page.content()
    page.goto(f"{live.url}/jobs/{mine_fr}")
    assert "fr-1" in page.inner_text("#job-site") and "may run in FR" in page.inner_text("#job-site")
    assert "routed to fr-1" in page.inner_text("#story")
    resp = page.goto(f"{live.url}/jobs/{theirs}")
    assert resp is not None and resp.status == 404
    assert errors == []
    page.close()
    with Client(live.url, live.plane.admin_token) as c:
        for j in (mine_de, mine_fr, theirs):
            c.cancel(j)
