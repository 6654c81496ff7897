"""A 100k-GPU site with thousands of jobs in every state, written straight into a store: what the dashboard's
browser tests and ``bench/dashboard_weight.py`` look at. No daemon runs; the jobs' states, placements and times
are made up, deterministically (a seeded generator), as the daemon would have left them."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sqlalchemy import Engine as Store

from gigafactory.control.store import jobs as jobstore
from gigafactory.control.store.site import load_sites

BIG_SITE = "gb200-nvl72:racks=1389"  # 100,008 GPUs, 25,002 nodes
NODES_PER_RACK = 18
GPUS_PER_NODE = 4
TENANTS = ("lab-a", "startup-b", "uni-c")
HUGE_RACKS = 416  # the huge job: r[0000-0415]-n[00-17], 7,488 nodes


def populate(
    store: Store, *, finished: int = 3000, running: int = 300, waiting: int = 200, seed: int = 1
) -> dict[str, Any]:
    """Jobs on a ``BIG_SITE`` store: one huge running job of lab-a on the first 416 racks, ``running`` smaller
    running jobs after it, ``finished`` ended ones (completed, failed, cancelled) placed anywhere, and ``waiting``
    pending ones. Returns what the tests look for: the huge job's id, and some ids per tenant and state."""
    rng = np.random.default_rng(seed)
    now = time.time()
    nodes = 1389 * NODES_PER_RACK

    def spec(tenant: str, name: str, n_nodes: int) -> dict[str, Any]:
        return {"tenant": tenant, "name": name, "command": ["python", "train.py", "--steps", "1000"], "env": {},
                "gpus": n_nodes * GPUS_PER_NODE, "gpu_milli": 1000, "cpu_milli": 1000, "mem_mib": 0,
                "locality": "any", "estimate_s": 86400.0}  # fmt: skip

    def placement(first: int, n: int) -> dict[str, Any]:
        return {"nodes": list(range(first, first + n)), "gpus": [[0, 1, 2, 3]] * n, "gpu_milli": 1000}

    rows: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    rows.append(spec("lab-a", "frontier-pretrain", HUGE_RACKS * NODES_PER_RACK))
    updates.append({"state": "running", "attempt": 1, "placement": placement(0, HUGE_RACKS * NODES_PER_RACK),
                    "started_at": now - 7200, "first_started_at": now - 7200, "submitted_at": now - 7300})  # fmt: skip
    at = HUGE_RACKS * NODES_PER_RACK
    for k in range(running):
        n = int(rng.integers(1, 19))
        if at + n > nodes:
            break
        tenant = TENANTS[k % 3]
        rows.append(spec(tenant, f"{tenant}-run-{k}", n))
        started = now - float(rng.uniform(60, 36000))
        updates.append({"state": "running", "attempt": 1, "placement": placement(at, n), "started_at": started,
                        "first_started_at": started, "submitted_at": started - 30})  # fmt: skip
        at += n
    ends = ("completed", "completed", "completed", "failed", "cancelled")
    for k in range(finished):
        n = int(rng.integers(1, 9))
        first = int(rng.integers(0, nodes - n))
        tenant = TENANTS[int(rng.integers(0, 3))]
        state = ends[k % len(ends)]
        ended = now - float(rng.uniform(0, 30 * 86400))
        started = ended - float(rng.uniform(60, 86400))
        rows.append(spec(tenant, f"{tenant}-done-{k}", n))
        updates.append({"state": state, "attempt": 1, "placement": placement(first, n), "started_at": started,
                        "first_started_at": started, "ended_at": ended, "submitted_at": started - 60,
                        "exit_code": 0 if state == "completed" else 1 if state == "failed" else None,
                        "reason": "exit code 1" if state == "failed" else "cancelled by an admin"
                        if state == "cancelled" else ""})  # fmt: skip
    for k in range(waiting):
        tenant = TENANTS[k % 3]
        rows.append(spec(tenant, f"{tenant}-wait-{k}", int(rng.integers(1, 64))))
        updates.append({"state": "pending", "submitted_at": now - float(rng.uniform(0, 3600)),
                        "est_start": now + 60.0 * (k + 1)})  # fmt: skip
    keys = (
        "state",
        "attempt",
        "placement",
        "started_at",
        "first_started_at",
        "ended_at",
        "submitted_at",
        "exit_code",
        "reason",
        "est_start",
    )  # every row names every column, for one insert of them all
    with store.begin() as conn:
        site = str(load_sites(conn)[0].name)
        full = [{**r, **dict.fromkeys(keys), "attempt": 0, "reason": "", **u, "site": site}
                for r, u in zip(rows, updates, strict=True)]  # fmt: skip
        ids = jobstore.insert_jobs(conn, full)
    return {"huge": ids[0], "ids": ids, "states": [u["state"] for u in updates], "tenants": [r["tenant"] for r in rows]}
