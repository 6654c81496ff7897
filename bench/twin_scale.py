"""How fast is the twin at gigafactory scale? Simulated events per second and wall time for the demo site
(GB200 NVL72, 1,389 racks = 100,008 GPUs) under the demo workload, at several simulated spans up to a year, with
failures on: the Llama 3 component rates plus whole-rack failures (one per rack every ~500 days, an assumption;
no public rate exists), big jobs checkpointing at the Young-Daly interval.

Each span runs in a fresh process so its peak memory (max RSS) is its own. Engine invariant checks are off, as in
every benchmark. Results: bench/results/twin_scale.json.

    python bench/twin_scale.py                 # 1, 7, 30, 90 and 365 days
    python bench/twin_scale.py --days 1 7      # a quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from common import write_result

SITE = "gb200-nvl72:racks=1389"
WORKLOAD = "llm:load=0.85,tenants=10"
POLICY = "default"
FAILURES = "llama3:rack_per_day=0.002,rack_repair_h=8-24"


def one(days: float, seed: int, failures: str) -> dict[str, object]:
    from gigafactory.core import build_site
    from gigafactory.twin import Simulation, load_workload
    from gigafactory.twin.failures import load_failures

    t0 = time.perf_counter()
    topo = build_site(SITE)
    wl, tree = load_workload(WORKLOAD, topo, days=days, seed=seed)
    setup = time.perf_counter() - t0
    result = Simulation(
        topo, wl, POLICY, seed=seed, tenants=tree, keep_log=False, failures=load_failures(failures)
    ).run()
    s = result.summary
    return {
        "days": days,
        "seed": seed,
        "jobs": s["jobs"],
        "events": s["events"],
        "setup_s": round(setup, 3),
        "wall_s": s["wall_s"],
        "events_per_s": s["events_per_s"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "utilisation": s["utilisation"],
        "offered_load": s["offered_load"],
        "avg_queue_s": s["avg_queue_s"],
        "backfilled": s["backfilled"],
        "failures": s["failures"],
        "interruptions": s["interruptions"],
        "ettr": s["ettr"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, nargs="+", default=[1, 7, 30, 90, 365])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--failures", default=FAILURES)
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.seed, args.failures)))
        return
    runs = []
    for days in args.days:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(days), "--seed", str(args.seed), "--failures", args.failures],
            capture_output=True,
            text=True,
            check=True,
        )
        run = json.loads(out.stdout)
        runs.append(run)
        print(
            f"{days:>6g} days: {run['jobs']:>9,} jobs {run['events']:>10,} events in {run['wall_s']:>8.1f} s "
            f"= {run['events_per_s']:>8,.0f} events/s, peak {run['peak_rss_mb']:,.0f} MB"
        )
    path = write_result(
        "twin_scale",
        {"site": SITE, "workload": WORKLOAD, "policy": POLICY, "failures": args.failures, "validate": False,
         "runs": runs},
    )  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
