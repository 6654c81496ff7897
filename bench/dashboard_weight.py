"""How heavy and how fast are the dashboard's pages at 100k GPUs? Page weight and time to first paint, per page.

A control plane on the 100k-GPU GB200 preset (``gb200-nvl72:racks=1389``, 25,002 nodes) holds 10,000 finished
jobs, 300 running ones (one of them on 7,488 nodes) and 200 waiting ones (tests/control/bigsite.py writes them).
The real API serves it on loopback; Debian's Chromium (headless, 1440×900, driven by Playwright) opens each page
in a fresh context, so that nothing is cached, as an admin. Per page: the HTML's size, everything the page loaded
(HTML, stylesheet, scripts), the server's time to answer the HTML, and first contentful paint, as the browser's
own Performance API reports them; the median of ``--repeat`` loads. Results: bench/results/dashboard_weight.json.

    python bench/dashboard_weight.py [--finished 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.control.bigsite import BIG_SITE, populate  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]  # fmt: skip

MEASURE = """() => new Promise(resolve => {
  function report(fcp) {
    const nav = performance.getEntriesByType("navigation")[0];
    const res = performance.getEntriesByType("resource");
    resolve({
      html_bytes: nav.decodedBodySize,
      total_bytes: nav.decodedBodySize + res.reduce((s, r) => s + r.decodedBodySize, 0),
      requests: 1 + res.length,
      server_ms: nav.responseStart - nav.requestStart,
      fcp_ms: fcp,
      load_ms: nav.loadEventEnd,
    });
  }
  // First contentful paint, once the browser has one (buffered: it may have come before this runs).
  new PerformanceObserver(list => {
    const e = list.getEntries().find(p => p.name === "first-contentful-paint");
    if (e) report(e.startTime);
  }).observe({ type: "paint", buffered: true });
  setTimeout(() => report(-1), 10000);
})"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--finished", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from gigafactory.control.api.app import create_app
    from gigafactory.control.client import Client
    from gigafactory.control.config import ControlConfig, init_control
    from gigafactory.core.tenants import Tenant

    tmp = Path(tempfile.mkdtemp(prefix="gf-bench-dash-"))
    cfg = ControlConfig(tmp / "gf", None)
    store = init_control(cfg, site=BIG_SITE, tenants=[Tenant(t, 1.0) for t in ("lab-a", "startup-b", "uni-c")])
    info = populate(store, finished=args.finished)
    admin = cfg.admin_token_file.read_text().strip()

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(cfg, store), host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    pages = {
        "site map (100k GPUs)": "/",
        "site map by tenant": "/?colour=tenant",
        f"jobs ({args.finished:,} finished)": "/jobs",
        "jobs, completed, page 50": "/jobs?state=completed&page=50",
        "jobs, search": "/jobs?q=done-99",
        "queue": "/queue",
        "job on 7,488 nodes": f"/jobs/{info['huge']}",
        "pod": "/site/pods/0",
        "rack": "/site/racks/0",
        "node": "/site/nodes/r0000-n00",
        "tenants (chart)": "/tenants",
        "utilisation (chart)": "/utilisation",
        "API docs": "/docs",
    }
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for label, path in pages.items():
            samples = []
            for _ in range(args.repeat):
                ctx = browser.new_context(viewport={"width": 1440, "height": 900})
                page = ctx.new_page()
                with Client(url, admin) as c:
                    page.goto(c.sign_in_link())
                page.goto(url + path, wait_until="load")
                samples.append(page.evaluate(MEASURE))
                ctx.close()
            med = {k: statistics.median(s[k] for s in samples) for k in ("html_bytes", "total_bytes", "server_ms",
                                                                         "fcp_ms", "load_ms", "requests")}  # fmt: skip
            rows.append({"page": label, "path": path, **med})
            print(f"{label:<28} html {med['html_bytes'] / 1024:7.0f} KiB  all {med['total_bytes'] / 1024:7.0f} KiB  "
                  f"server {med['server_ms']:6.0f} ms  first paint {med['fcp_ms']:6.0f} ms")  # fmt: skip
        browser.close()
    server.should_exit = True
    load = os.getloadavg()[1]  # the last 5 minutes: on a busy machine, the times are the machine's as much as ours
    write_result("dashboard_weight", {"site": BIG_SITE, "finished_jobs": args.finished, "repeat": args.repeat,
                                      "viewport": "1440x900", "load_average": round(load, 1),
                                      "pages": rows})  # fmt: skip


if __name__ == "__main__":
    main()
