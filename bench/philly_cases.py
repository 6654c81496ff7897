"""The Philly trace replayed whole (BENCHMARKS.md B3): cases PH1-PH4 under five policies, with the gap to the lower
bounds (no rigid scheduler can beat the durations themselves) and the wall time of each run. Results:
bench/results/philly_cases.json.

    python bench/philly_cases.py [--data ../shared/data/philly/philly.csv] [--jobs 2]
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from common import write_result
from gigafactory.core import build_site
from gigafactory.twin import Simulation
from gigafactory.twin.workloads.philly import read_philly

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "philly" / "philly.csv"
CASES = {
    "PH1": (96, None),  # full trace, 768 GPUs
    "PH2": (80, None),  # full trace, 640 GPUs (stress)
    "PH3": (80, ("2017-10-01", "2017-11-30")),  # Oct-Nov, 640 GPUs
    "PH4": (64, ("2017-10-01", "2017-11-30")),  # Oct-Nov, 512 GPUs (heavy)
}
POLICIES = {
    "fifo": "fifo+none+best-fit",
    "fifo+easy": "fifo+easy+best-fit",
    "sjf+easy": "sjf+easy+best-fit",
    "las": "las:queues=2+greedy+preempt+best-fit",  # Tiresias' 2D-LAS, preemptive, event-driven
    "fair-share+easy": "fair-share+easy+best-fit",
}


def run(args: tuple[str, str, str]) -> dict[str, object]:
    case, label, path = args
    nodes, window = CASES[case]
    topo = build_site(f"hgx-h100:nodes={nodes}")
    start, end = window or ("", "")
    wl, tree, _ = read_philly(path, start=start, end=end)
    s = Simulation(topo, wl, POLICIES[label], seed=0, tenants=tree, keep_log=False).run().summary
    dur = wl.runtime_s
    bounds = {"avg": float(dur.mean()), "p50": float(np.percentile(dur, 50)), "p99": float(np.percentile(dur, 99))}
    return {
        "case": case, "policy": label, "profile": POLICIES[label], "gpus": topo.num_gpus, "jobs": len(wl),
        "offered_load": s["offered_load"], "avg_jct_s": s["avg_jct_s"], "p50_jct_s": s["p50_jct_s"],
        "p99_jct_s": s["p99_jct_s"], "avg_queue_s": s["avg_queue_s"], "p99_queue_s": s["p99_queue_s"],
        "utilisation": s["utilisation"], "makespan_s": s["makespan_s"], "preemptions": s["preemptions"],
        "bound_avg_jct_s": round(bounds["avg"], 1), "bound_p50_jct_s": round(bounds["p50"], 1),
        "bound_p99_jct_s": round(bounds["p99"], 1),
        "gap_avg": round(s["avg_jct_s"] / bounds["avg"] - 1, 4),
        "gap_p50": round(s["p50_jct_s"] / bounds["p50"] - 1, 4),
        "gap_p99": round(s["p99_jct_s"] / bounds["p99"] - 1, 4), "wall_s": s["wall_s"], "events": s["events"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    tasks = [(c, p, str(args.data)) for c in CASES for p in POLICIES]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run, tasks))
    for r in rows:
        print(
            f"{r['case']} {r['policy']:16s} avg JCT {r['avg_jct_s']:9.0f} s (+{r['gap_avg']:.1%}) "
            f"p50 {r['p50_jct_s']:7.0f} p99 {r['p99_jct_s']:9.0f} queue {r['avg_queue_s']:7.0f} s "
            f"util {r['utilisation']:.3f} in {r['wall_s']:.1f} s"
        )
    print(f"wrote {write_result('philly_cases', {'runs': rows, 'processes': args.jobs})}")


if __name__ == "__main__":
    main()
