"""A minimal reference simulator for the Philly trace: the floor our engine's speed is compared with.

It knows only what strict FIFO and greedy backfill need: nodes of 8 GPUs, a queue in submission order, a heap of
job ends. A job of up to 8 GPUs goes on the node with the fewest free GPUs that can take it (lowest index on a
tie); a larger one takes whole free nodes, lowest index first, plus a remainder by the same best-fit rule. No
CPU, memory, topology, tenants, failures, checkpoints, logs or invariant checks. Python's csv module reads the
file (the project does not depend on pandas). It is also a cross-check of the engine's results (`bench/philly_speed.py`
compares average and p99 JCT and utilisation).

    python bench/philly_reference.py --policy fifo|greedy [--nodes 96] [--from 2017-10-01 --to 2017-11-30]
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "philly" / "philly.csv"
GPUS_PER_NODE = 8


def load(path: Path, start: str = "", end: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def stamp(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()

    lo = stamp(start + " 00:00:00") if start else -np.inf
    hi = stamp(end + " 00:00:00") + 86_400 if end else np.inf
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            t = stamp(r["timestamp"])
            if lo <= t < hi:
                rows.append((t, int(r["num_gpus"]), float(r["duration"])))
    ts = np.array([r[0] for r in rows])
    order = np.argsort(ts, kind="stable")
    table = np.array(rows)[order]
    return table[:, 0] - table[:, 0].min(), table[:, 1].astype(np.int64), table[:, 2]


def place(free: list[int], count: list[int], g: int) -> list[tuple[int, int]] | None:
    """Best fit on one node, or whole free nodes plus a best-fit remainder; None if it does not fit. ``count[k]``
    is the number of nodes with ``k`` free GPUs: it turns most misses into one look."""
    if g <= GPUS_PER_NODE:
        if not any(count[g:]):
            return None
        best, left = -1, GPUS_PER_NODE + 1
        for n, f in enumerate(free):
            if g <= f < left:
                best, left = n, f
                if f == g:
                    break
        return [(best, g)]
    whole, rem = divmod(g, GPUS_PER_NODE)
    if count[GPUS_PER_NODE] < whole:
        return None
    nodes = [n for n, f in enumerate(free) if f == GPUS_PER_NODE]
    taken = [(n, GPUS_PER_NODE) for n in nodes[:whole]]
    if rem:
        used = {n for n, _ in taken}
        best, left = -1, GPUS_PER_NODE + 1
        for n, f in enumerate(free):
            if n not in used and rem <= f < left:
                best, left = n, f
        if best < 0:
            return None
        taken.append((best, rem))
    return taken


def take(free: list[int], count: list[int], pl: list[tuple[int, int]], sign: int) -> None:
    for node, k in pl:
        count[free[node]] -= 1
        free[node] += sign * k
        count[free[node]] += 1


def simulate(submit: np.ndarray, gpus: np.ndarray, dur: np.ndarray, nodes: int, policy: str) -> dict[str, float]:
    free = [GPUS_PER_NODE] * nodes
    count = [0] * GPUS_PER_NODE + [nodes]
    queue: list[int] = []
    ends: list[tuple[float, int, list[tuple[int, int]]]] = []
    start = np.zeros(len(submit))
    i, n, now = 0, len(submit), 0.0
    subs, gs, ds = submit.tolist(), gpus.tolist(), dur.tolist()
    while i < n or ends:
        now = min(subs[i] if i < n else np.inf, ends[0][0] if ends else np.inf)
        while ends and ends[0][0] <= now:
            _, _, pl = heapq.heappop(ends)
            take(free, count, pl, +1)
        while i < n and subs[i] <= now:
            queue.append(i)
            i += 1
        kept = []
        smallest_miss = GPUS_PER_NODE * nodes + 1  # free GPUs only shrink during a pass: bigger jobs miss too
        for pos, j in enumerate(queue):
            pl = None if gs[j] >= smallest_miss else place(free, count, gs[j])
            if pl is None:
                smallest_miss = min(smallest_miss, gs[j])
                if policy == "fifo" or smallest_miss == 1:
                    kept.extend(queue[pos:])
                    break
                kept.append(j)
                continue
            take(free, count, pl, -1)
            start[j] = now
            heapq.heappush(ends, (now + ds[j], j, pl))
        queue = kept
    jct = start + dur - submit
    makespan = float((start + dur).max() - submit.min())
    return {
        "avg_jct_s": round(float(jct.mean()), 1),
        "p99_jct_s": round(float(np.percentile(jct, 99)), 1),
        "utilisation": round(float((gpus * dur).sum() / (nodes * GPUS_PER_NODE * makespan)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--policy", choices=("fifo", "greedy"), default="fifo")
    parser.add_argument("--nodes", type=int, default=96)
    parser.add_argument("--from", dest="start", default="")
    parser.add_argument("--to", dest="end", default="")
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = simulate(*load(args.data, args.start, args.end), args.nodes, args.policy)
    result["wall_s"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
