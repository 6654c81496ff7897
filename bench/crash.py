"""The crash benchmark: 100 × kill -9 of the daemon during a few thousand real jobs (local executor).

    python bench/crash.py [--jobs 3000] [--kills 100] [--db postgresql+psycopg://…]

Writes ``bench/results/crash.json`` (``crash_postgresql.json`` with ``--db``): jobs, kills, wall time, final
states, GPU-seconds billed against GPU-seconds the runners recorded (and the largest gap for one attempt), and any
problem found (there must be none).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import write_result
from gigafactory.control.crashtest import crash_run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = crash_run(Path(tmp) / "gf", jobs=args.jobs, kills=args.kills, seed=args.seed, db=args.db, max_sleep_s=1.0,
                      timeout_s=1800)  # fmt: skip
    result = {
        "jobs": r.jobs,
        "kills": r.kills,
        "wall_s": round(r.wall_s, 1),
        "states": r.states,
        "problems": r.problems[:50],
        "billed_gpu_s": round(r.billed_gpu_s, 3),
        "ran_gpu_s": round(r.ran_gpu_s, 3),
        "worst_billing_error_s": round(r.worst_billing_error_s, 6),
        "ok": r.ok,
        "store": "postgresql" if args.db else "sqlite",
    }
    print(json.dumps(result, indent=2))
    print(f"wrote {write_result('crash' if args.db is None else 'crash_postgresql', result)}")
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
