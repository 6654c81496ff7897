"""How long does one FGD experiment take? One run per placement policy: the default openb workload, seed 42, with
the recorded arrival order (10,866 pods on 1,213 nodes). Results: bench/results/fgd_speed.json.

The anchor is the paper's own Go simulator, built from its source on a machine like this one (BENCHMARKS.md B1):
FGD 4,056 s of CPU (58 min wall), BestFit 3,241 s of CPU, per run of the default workload.

    python bench/fgd_speed.py [--data ../shared/data/alibaba-openb] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from common import write_result
from gigafactory.policy import PLACE
from gigafactory.twin.fgd import PUBLISHED_NAMES, run_fgd

ANCHOR_CPU_S = {"fgd": 4056.0, "fgd-best-fit": 3241.0}
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alibaba-openb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workload", default="default")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for policy in PLACE.names():
        walls, cpus = [], []
        result = None
        for _ in range(args.repeat):
            c0 = time.process_time()
            w0 = time.perf_counter()
            result = run_fgd(args.data, args.workload, policy, args.seed, orders=args.data / "fgd-orders")
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        assert result is not None
        row = {
            "policy": policy,
            "sc_policy": PUBLISHED_NAMES.get(policy, policy),
            "pods": result.pods,
            "wall_s": round(statistics.median(walls), 3),
            "cpu_s": round(statistics.median(cpus), 3),
            "alloc_130": float(result.alloc[130]),
        }
        if policy in ANCHOR_CPU_S:
            row["anchor_cpu_s"] = ANCHOR_CPU_S[policy]
            row["speedup_cpu"] = round(ANCHOR_CPU_S[policy] / row["cpu_s"], 1)
        runs.append(row)
        print(f"{policy:15s} {row['wall_s']:7.2f} s wall {row['cpu_s']:7.2f} s CPU  alloc@130 {row['alloc_130']:.2f}")
    path = write_result(
        "fgd_speed",
        {
            "workload": args.workload,
            "seed": args.seed,
            "orders": "recorded",
            "repeat": args.repeat,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "runs": runs,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
