"""The FGD experiment on every member of the paper's workload families (ATC'23 §6.3–6.6), generated from the
default openb trace (``src/gigafactory/twin/fgd_family.py``): each policy's GPU allocation at 100% and 130% of
the cluster's capacity arrived, and its margin over FGD, per member, over seeds 42-51 (the seed draws the member,
the arrival order and the node ranks). Results: bench/results/fgd_family.json; the README block ``fgd_family``.

Each run is appended to a cache (``out/fgd-family/runs.jsonl``) as soon as it ends, so an interrupted benchmark
resumes where it stopped, and a policy can be added later; ``--redo POLICY`` drops a policy's cached runs.

    python bench/fgd_family.py [--data ../shared/data/alibaba-openb] [--seeds 42-51] [--jobs 1]
        [--policies fgd-best-fit,fgd,fgd-joint,fgd-multiples,fgd-scarcity,fgd-outlook] [--members multigpu50]
        [--redo fgd-scarcity]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import write_result
from gigafactory.twin.fgd import PUBLISHED_NAMES
from gigafactory.twin.fgd_family import Family, FamilyKind
from gigafactory.twin.fgd_grid import GridTask, parse_seeds, run_grid

DEFAULT_DATA = (
    next(
        (p for p in (Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")) if p.is_dir()),
        Path("../shared/data"),
    )
    / "alibaba-openb"
)
POLICIES = "fgd-best-fit,fgd,fgd-joint,fgd-multiples,fgd-scarcity,fgd-outlook"
FAMILIES: tuple[tuple[FamilyKind, tuple[float, ...]], ...] = (
    (FamilyKind.GPUSHARE, (0.2, 0.4, 0.6, 0.8, 1.0)),
    (FamilyKind.MULTIGPU, (0.2, 0.3, 0.4, 0.5)),
    (FamilyKind.GPUSPEC, (0.1, 0.2, 0.25, 0.33)),
    (FamilyKind.CPU, (0.05, 0.1, 0.2, 0.25)),
)
MEMBERS = tuple(Family(kind, level) for kind, levels in FAMILIES for level in levels)


def _members(spec: str) -> list[Family]:
    if spec == "all":
        return list(MEMBERS)
    by_name = {m.paper_name: m for m in MEMBERS}
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in by_name]
    if unknown:
        raise SystemExit(f"unknown member {unknown[0]!r}; known: {', '.join(by_name)}")
    return [by_name[s] for s in wanted]


def _load(cache: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    runs: dict[tuple[str, str, int], dict[str, Any]] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                runs[(r["workload"], r["policy"], r["seed"])] = r
    return runs


def summarise(runs: dict[tuple[str, str, int], dict[str, Any]], members: list[Family], policies: list[str],
              seeds: list[int]) -> list[dict[str, Any]]:  # fmt: skip
    """Per member and policy: means over the seeds present, and the per-seed margin over FGD."""
    rows = []
    for m in members:
        fgd = {s: runs[(m.name, "fgd", s)] for s in seeds if (m.name, "fgd", s) in runs}
        for p in policies:
            mine = {s: runs[(m.name, p, s)] for s in seeds if (m.name, p, s) in runs}
            if not mine:
                continue
            row: dict[str, Any] = {
                "member": m.paper_name, "workload": m.name, "policy": p, "sc_policy": PUBLISHED_NAMES.get(p, p),
                "seeds": sorted(mine), "wall_s": round(float(np.mean([r["wall_s"] for r in mine.values()])), 2),
            }  # fmt: skip
            for col in ("100", "130"):
                row[f"alloc_{col}"] = round(float(np.mean([r[f"alloc_{col}"] for r in mine.values()])), 2)
                both = [s for s in mine if s in fgd]
                if both and p != "fgd":
                    d = np.array([mine[s][f"alloc_{col}"] - fgd[s][f"alloc_{col}"] for s in both])
                    row[f"margin_{col}"] = round(float(d.mean()), 2)
                    row[f"wins_{col}"] = int((d > 0).sum())
                    row[f"paired_seeds_{col}"] = len(both)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", default="42-51")
    parser.add_argument("--policies", default=POLICIES)
    parser.add_argument("--members", default="all", help="paper names (multigpu50,cpu250) or 'all'")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path("out/fgd-family/runs.jsonl"))
    parser.add_argument("--redo", default="", help="policies whose cached runs are dropped first")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave bench/results alone")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    members = _members(args.members)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    runs = _load(args.cache)
    redo = {p.strip() for p in args.redo.split(",") if p.strip()}
    if redo:
        runs = {k: v for k, v in runs.items() if k[1] not in redo}
        args.cache.write_text("".join(json.dumps(r) + "\n" for r in runs.values()))
    # Seed-major, so that a partial run already pairs every policy on the seeds it has done.
    tasks = [
        GridTask(str(args.data), m.name, p, s, None)
        for s in seeds
        for m in members
        for p in policies
        if (m.name, p, s) not in runs
    ]
    print(f"{len(tasks)} runs to do ({len(runs)} cached)", flush=True)
    t0 = time.perf_counter()
    with args.cache.open("a") as cache:

        def record(r: Any) -> None:
            row = {"workload": r.workload, "policy": r.policy, "seed": r.seed, "alloc_100": float(r.alloc[100]),
                   "alloc_130": float(r.alloc[130]), "failed": r.failed, "pods": r.pods,
                   "wall_s": r.wall_s}  # fmt: skip
            runs[(r.workload, r.policy, r.seed)] = row
            cache.write(json.dumps(row) + "\n")
            cache.flush()
            print(f"{r.workload:24s} {r.policy:14s} {r.seed} {r.alloc[100]:6.2f} {r.alloc[130]:6.2f} {r.wall_s:6.1f}s",
                  flush=True)  # fmt: skip

        run_grid(tasks, processes=args.jobs, progress=record)
    rows = summarise(runs, members, policies, seeds)
    for row in rows:
        margin = f"{row.get('margin_100', 0):+6.2f} {row.get('margin_130', 0):+6.2f}" if "margin_100" in row else ""
        print(f"{row['member']:12s} {row['sc_policy']:12s} {row['alloc_100']:6.2f} {row['alloc_130']:6.2f} {margin}")
    if args.no_write:
        return
    command = " ".join(["python bench/fgd_family.py", *sys.argv[1:]])
    path = write_result(
        "fgd_family",
        {"seeds": args.seeds, "orders": "derived from the seed", "base": "openb_pod_list_default",
         "command": command, "policies": policies,
         "members": [m.paper_name for m in members],
         "rows": rows, "total_wall_s": round(time.perf_counter() - t0, 1)},
    )  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
