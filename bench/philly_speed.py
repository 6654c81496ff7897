"""How fast is a whole Philly replay, end to end, against a minimal reference simulator, side by side in one run?

Each case runs `gigafactory twin run` as a user would (process start, reading the trace, the simulation, writing
summary.json and report.html): with the compiled engine where it is built (make native), and again from the
engine's pure-Python source, to show what compiling gains; and, where the reference knows the policy (strict
FIFO, greedy backfill), `bench/philly_reference.py` on the same trace and site. Both are separate processes,
timed by wall clock and by the CPU time the process used (on a busy machine the CPU time is the steadier figure).
Results: bench/results/philly_speed.json.

    python bench/philly_speed.py [--data ../shared/data/philly/philly.csv] [--case PH1:fifo ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_result

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[1] / "shared" / "data" / "philly" / "philly.csv"
SITES = {
    "PH1": (96, None),
    "PH2": (80, None),
    "PH3": (80, ("2017-10-01", "2017-11-30")),
    "PH4": (64, ("2017-10-01", "2017-11-30")),
}
POLICIES = {
    "fifo": "fifo+none+best-fit",
    "greedy": "fifo+greedy+best-fit",
    "fifo+easy": "fifo+easy+best-fit",
    "sjf+easy": "sjf+easy+best-fit",
    "las": "las:queues=2+greedy+preempt+best-fit",
    "fair-share+easy": "fair-share+easy+best-fit",
}
CASES = [
    "PH1:fifo", "PH1:greedy", "PH2:greedy", "PH4:greedy", "PH2:las", "PH4:las", "PH2:fair-share+easy", "PH2:sjf+easy",
]  # fmt: skip


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=HERE.parent, env=env).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


def run_case(case: str, data: Path, pure_too: bool) -> dict[str, object]:
    site, label = case.split(":", 1)
    nodes, window = SITES[site]
    workload = f"philly:{data}" + (f",from={window[0]},to={window[1]}" if window else "")
    exe = str(Path(sys.executable).with_name("gigafactory"))

    def ours(pure: bool) -> tuple[float, float, dict[str, object]]:
        env = {**os.environ, "GIGAFACTORY_PURE": "1" if pure else ""}
        with tempfile.TemporaryDirectory() as out:
            wall, cpu, _ = timed(
                [exe, "twin", "run", "--site", f"hgx-h100:nodes={nodes}", "--policy", POLICIES[label],
                 "--workload", workload, "--seed", "0", "--out", out], env
            )  # fmt: skip
            return wall, cpu, json.loads((Path(out) / "summary.json").read_text())

    wall, cpu, summary = ours(pure=False)
    row: dict[str, object] = {
        "case": case, "policy": POLICIES[label], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "sim_wall_s": summary["wall_s"], "avg_jct_s": summary["avg_jct_s"], "p99_jct_s": summary["p99_jct_s"],
        "utilisation": summary["utilisation"],
    }  # fmt: skip
    if pure_too:  # the same engine from its Python source: what compiling it gains, measured beside it
        pwall, pcpu, psummary = ours(pure=True)
        same = all(psummary[k] == summary[k] for k in ("avg_jct_s", "p99_jct_s", "utilisation", "events"))
        row["pure"] = {"wall_s": round(pwall, 2), "cpu_s": round(pcpu, 2), "same_results": same}
        row["pure_cpu_ratio"] = round(pcpu / cpu, 2)
    if label in ("fifo", "greedy"):
        cmd = [sys.executable, str(HERE / "philly_reference.py"), "--data", str(data), "--policy", label]
        cmd += ["--nodes", str(nodes)] + (["--from", window[0], "--to", window[1]] if window else [])
        rwall, rcpu, rout = timed(cmd)
        ref = json.loads(rout)
        row["reference"] = {"wall_s": round(rwall, 2), "cpu_s": round(rcpu, 2)}
        row["reference"].update({k: ref[k] for k in ("avg_jct_s", "p99_jct_s", "utilisation")})
        row["cpu_ratio"] = round(cpu / rcpu, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--case", action="append", help=f"SITE:POLICY (default: {' '.join(CASES)})")
    parser.add_argument("--no-pure", action="store_true", help="do not also time the pure-Python engine")
    args = parser.parse_args()
    from gigafactory import _native

    pure_too = _native.state == "compiled" and not args.no_pure
    if not args.data.exists():
        sys.exit(f"no Philly trace at {args.data}: give --data")
    rows = []
    for case in args.case or CASES:
        row = run_case(case, args.data.resolve(), pure_too)
        rows.append(row)
        ref = row.get("reference")
        tail = ""
        if isinstance(ref, dict):
            tail = f"  reference {ref['wall_s']} s wall, {ref['cpu_s']} s CPU (ours {row['cpu_ratio']}x)"
        if isinstance(row.get("pure"), dict):
            tail += f"  pure Python {row['pure']['cpu_s']} s CPU ({row['pure_cpu_ratio']}x ours)"
        sim = row["sim_wall_s"]
        print(f"{case:22s} {row['wall_s']:6.2f} s wall, {row['cpu_s']:6.2f} s CPU (simulation {sim} s){tail}")
    print(f"wrote {write_result('philly_speed', {'runs': rows, 'load_average': os.getloadavg()[0]})}")


if __name__ == "__main__":
    main()
