"""Load on the live control plane: submissions per second through the API, and the daemon's scheduling cycle at
100k GPUs with 10k jobs waiting.

    python bench/api_load.py [--seconds 20] [--clients 2] [--concurrency 32] [--skip-cycle]

1. **Submissions.** ``gigafactory serve --no-daemon`` runs in a process of its own (SQLite, the 100k-GPU
   ``gb200-nvl72`` site). A client process on loopback POSTs single jobs (``/api/v1/jobs``) on 32 connections as
   fast as the server answers, then on 4 (latency when not saturated), then batches of 100
   (``/api/v1/jobs/batch``). Each answer means the job is durable (committed).
2. **Scheduling cycle.** A daemon on that site with ~95% of the GPUs busy and 10,000 jobs waiting; each step takes
   new submissions and finished jobs. Records ``engine.handle`` alone (the cycle) and the whole step (store reads,
   decision, one transaction, outbox). The executor here starts nothing: the jobs would run on other machines.

Writes ``bench/results/api_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx  # for set-up calls only

from common import write_result

SITE = "gb200-nvl72:racks=1389"


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- 1. submissions -------------------------------------------------------------------------------------------
async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive connection. A load generator must cost less than the server it loads,
    and a general-purpose client (httpx) costs more per request than our server does, so this speaks HTTP itself."""
    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    payload = await reader.readexactly(length) if length else b""
    return int(status_line.split()[1]), payload


def _client(url: str, token: str, seconds: float, concurrency: int, batch: int, out: Any) -> None:
    host, port = url.removeprefix("http://").split(":")
    path = "/api/v1/jobs" if batch == 1 else "/api/v1/jobs/batch"
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()  # fmt: skip

    async def main() -> tuple[int, list[float], int]:
        lat: list[float] = []
        errors = 0
        done = 0
        stop = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal errors, done
            reader, writer = await asyncio.open_connection(host, int(port))
            i = 0
            while time.perf_counter() < stop:
                job = {"command": ["python", "train.py", f"--run={w}-{i}"], "gpus": random.choice([4, 8, 64, 72]),
                       "key": f"{os.getpid()}-{batch}-{w}-{i}-{random.random()}"}  # as the CLI sends one  # fmt: skip
                jobs = [{**job, "key": f"{job['key']}-{k}"} for k in range(batch)]
                body = json.dumps(job if batch == 1 else {"jobs": jobs}).encode()
                t0 = time.perf_counter()
                status, payload = await _post(reader, writer, head, body)
                lat.append(time.perf_counter() - t0)
                if status == 201:
                    done += len(json.loads(payload)["ids"])
                else:
                    errors += 1
                i += 1
            writer.close()

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return done, lat, errors

    out.put(asyncio.run(main()))


def submissions(seconds: float, clients: int, concurrency: int, tmp: Path) -> dict[str, Any]:
    port = 18642
    data = tmp / "serve"
    server = subprocess.Popen(
        [sys.executable, "-m", "gigafactory", "serve", "--data-dir", str(data), "--site", SITE, "--port", str(port),
         "--no-daemon"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not come up")
            time.sleep(0.2)
        admin = {"Authorization": f"Bearer {(data / 'admin.token').read_text().strip()}"}
        # The load is one tenant's; lift its per-tenant limits (10,000 waiting, 100/s by default) out of the way.
        httpx.put(f"{url}/api/v1/admin/tenants/bench", json={"share": 1.0, "max_jobs": 100_000_000, "max_rate": 1e9},
                  headers=admin).raise_for_status()  # fmt: skip
        token = httpx.post(f"{url}/api/v1/admin/tokens", json={"role": "tenant", "tenant": "bench"}, headers=admin)
        tok = token.json()["token"]
        results = {}
        for label, batch, conc in (("single", 1, concurrency), ("single_light", 1, 4), ("batch100", 100, 4)):
            cpu0 = _cpu_s(server.pid)
            q: Any = mp.Queue()
            procs = [mp.Process(target=_client, args=(url, tok, seconds, conc, batch, q)) for _ in range(clients)]
            t0 = time.perf_counter()
            for p in procs:
                p.start()
            parts = [q.get() for _ in procs]
            for p in procs:
                p.join()
            wall = time.perf_counter() - t0
            server_cpu = _cpu_s(server.pid) - cpu0
            jobs = sum(d for d, _, _ in parts)
            lat = [x for _, ls, _ in parts for x in ls]
            results[label] = {
                "jobs": jobs,
                "requests": len(lat),
                "errors": sum(e for _, _, e in parts),
                "seconds": round(wall, 2),
                "jobs_per_s": round(jobs / seconds, 1),
                "p50_ms": round(_pct(lat, 50) * 1000, 2),
                "p99_ms": round(_pct(lat, 99) * 1000, 2),
                "clients": clients,
                "concurrency": conc,
                "server_cpu_ms_per_request": round(server_cpu / max(1, len(lat)) * 1000, 3),
                "server_cpu_share": round(server_cpu / wall, 2),
            }
            print(label, results[label], flush=True)
        return results
    finally:
        server.terminate()
        server.wait(20)


# ---- 2. the scheduling cycle ----------------------------------------------------------------------------------
class BenchExecutor:
    """Starts nothing; reports as finished the attempts it is told to finish (the load's completions)."""

    name = "bench"

    def __init__(self) -> None:
        self.finish: list[tuple[int, int]] = []

    def attempt_dir(self, job_id: int, attempt: int) -> None:
        return None

    def start(self, launch: Any) -> None:
        pass

    def stop(self, job_id: int, attempt: int) -> None:
        pass

    def poll(self, running: dict[int, int]) -> list[Any]:
        from gigafactory.control.executors.base import Report

        out = [Report(j, a, "finished", 0) for j, a in self.finish if running.get(j) == a]
        self.finish = []
        return out

    def nodes(self) -> list[Any]:
        return []


def cycle(tmp: Path, pending: int, steps: int, profile: str = "fifo+easy+topology") -> dict[str, Any]:
    from gigafactory.control.config import ControlConfig, init_control
    from gigafactory.control.daemon import Daemon
    from gigafactory.control.store import jobs as jobstore
    from gigafactory.core.tenants import Tenant

    rng = random.Random(0)
    cfg = ControlConfig(tmp / "cycle")
    tenants = [Tenant(f"t{i}") for i in range(10)]
    store = init_control(cfg, site=SITE, tenants=tenants)
    ex = BenchExecutor()
    d = Daemon(store, ex, profile=profile, forecast_every_s=1e9)

    def job(gpus: int, est: float) -> dict[str, Any]:
        return {"tenant": f"t{rng.randrange(10)}", "name": "", "command": ["x"], "gpus": gpus, "estimate_s": est}

    sizes = [4, 8, 16, 72, 144, 288, 576, 1152]
    # Fill ~95% of the site with running jobs, then queue `pending` jobs that must wait.
    fill, gpus = [], 0
    while gpus < 0.95 * d.topo.num_gpus:
        g = rng.choice([72, 144, 288, 576])
        fill.append(job(g, 3600 * rng.uniform(1, 48)))
        gpus += g
    with store.begin() as conn:
        jobstore.insert_jobs(conn, fill)
    d.step()
    with store.begin() as conn:
        jobstore.insert_jobs(conn, [job(rng.choice(sizes), 3600 * rng.uniform(1, 24)) for _ in range(pending)])
    d.step()
    running0, pending0 = len(d.engine.running()), len(d.engine.pending())
    cyc, step, persist = [], [], []
    for _ in range(steps):
        with store.begin() as conn:
            jobstore.insert_jobs(conn, [job(rng.choice(sizes), 3600 * rng.uniform(1, 24)) for _ in range(5)])
        ex.finish = [(j, d.engine.job(j).attempt) for j in rng.sample(d.engine.running(), 2)]
        t0 = time.perf_counter()
        s = d.step()
        step.append(time.perf_counter() - t0)
        cyc.append(s.cycle_s)
        persist.append(s.persist_s)
    t0 = time.perf_counter()
    d.forecast(time.time())
    forecast_s = time.perf_counter() - t0
    # A restart: the engine rebuilt from the store (every waiting and running job, node states, usage).
    t0 = time.perf_counter()
    Daemon(store, BenchExecutor(), profile=profile, forecast_every_s=1e9)
    recover_s = time.perf_counter() - t0
    # As the daemon does it: forked, so that the loop only pays for the fork and for reading the answer.
    from gigafactory.control.daemon import _ForecastRun

    t0 = time.perf_counter()
    run = _ForecastRun.start([d.engine], time.time())
    fork_s = time.perf_counter() - t0
    while (outcome := run.poll()) is None:
        time.sleep(0.01)
    forked_s = run.elapsed()
    assert outcome.starts is not None and len(outcome.starts) > 0
    out = {
        "site": SITE,
        "gpus": d.topo.num_gpus,
        "running_at_start": running0,
        "pending_at_start": pending0,
        "pending_at_end": len(d.engine.pending()),
        "steps": steps,
        "cycle_p50_ms": round(statistics.median(cyc) * 1000, 2),
        "cycle_p99_ms": round(_pct(cyc, 99) * 1000, 2),
        "step_p50_ms": round(statistics.median(step) * 1000, 2),
        "step_p99_ms": round(_pct(step, 99) * 1000, 2),
        "persist_p99_ms": round(_pct(persist, 99) * 1000, 2),
        "forecast_s": round(forecast_s, 2),
        "recover_s": round(recover_s, 2),
        "forecast_fork_ms": round(fork_s * 1000, 1),
        "forecast_forked_wall_s": round(forked_s, 2),
        "profile": d.profile,
    }
    print("cycle", out, flush=True)
    store.dispose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--clients", type=int, default=1, help="client processes (this machine has few cores)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--pending", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--skip-cycle", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subs = submissions(args.seconds, args.clients, args.concurrency, Path(tmp))
        cyc = None if args.skip_cycle else cycle(Path(tmp), args.pending, args.steps)
    path = write_result("api_load", {"submissions": subs, "cycle": cyc, "store": "sqlite",
                                     "goal": {"jobs_per_s": 1000, "cycle_p99_ms": 50}})  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
