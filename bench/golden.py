"""Golden summaries: the README's twin cases, run and compared with `bench/golden/*.json`, so that a refactor or a
speed change that alters any scheduling decision shows at once. Everything in `summary.json` is compared except
what the wall clock decides (`wall_s`, `events_per_s`).

    python bench/golden.py --check            # every case; exit 1 and a diff where a summary changed
    python bench/golden.py --check --quick    # the cases that take under a few seconds (the test suite runs these)
    python bench/golden.py --write            # record the current summaries (only after a change meant to alter them)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
REPO = HERE.parent


def _data() -> Path:
    """$GIGAFACTORY_DATA, else ../shared/data beside the checkout, else /work/shared/data (as the tests look)."""
    if os.environ.get("GIGAFACTORY_DATA"):
        return Path(os.environ["GIGAFACTORY_DATA"])
    for candidate in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "data"


DATA = _data()
CLOCK_FIELDS = ("wall_s", "events_per_s")

# name: (experiment settings, quick). Paths under {data} are read from the shared data directory.
PHILLY = "philly:{data}/philly/philly.csv"
CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "demo-100k-30d": (
        {"site": "gb200-nvl72:racks=1389", "workload": "llm:load=0.85", "policy": "fifo+easy+topology", "days": 30},
        False,
    ),
    "experiment-toml": ({"config": "examples/experiment.toml"}, True),
    "llama3-54d": (
        {
            "site": "hgx-h100:nodes=2176,pod_nodes=32", "workload": "single:gpus=16384,hours=5000",
            "failures": "llama3", "horizon_days": 54, "policy": "fifo+none+topology",
        },
        True,
    ),
    "rsc1-ettr": (
        {
            "site": "hgx-h100:nodes=544,pod_nodes=32", "failures": "rsc1",
            "workload": "single:gpus=4096,hours=1500,ckpt=60,write_s=60,restart_s=300",
        },
        True,
    ),
    "tiresias-pollux-1": (
        {"site": "uniform:nodes=16,gpus=4", "policy": "tiresias",
         "workload": "pollux:{data}/pollux-rigid/1.0-workload-1.csv"},
        True,
    ),
    "philly-ph1-fifo-easy": (
        {"site": "hgx-h100:nodes=96", "policy": "fifo+easy+best-fit", "workload": PHILLY},
        False,
    ),
    "philly-ph4-sjf-easy": (
        {
            "site": "hgx-h100:nodes=64", "policy": "sjf+easy+best-fit",
            "workload": "philly:{data}/philly/philly.csv,from=2017-10-01,to=2017-11-30",
        },
        False,
    ),
    "philly-ph2-las": (
        {"site": "hgx-h100:nodes=80", "policy": "las:queues=2+greedy+preempt+best-fit", "workload": PHILLY},
        False,
    ),
    "philly-ph2-fair-share": (
        {"site": "hgx-h100:nodes=80", "policy": "fair-share+easy+best-fit", "workload": PHILLY},
        False,
    ),
    "tenants-reclaim": (
        {
            "site": "hgx-h100:nodes=64", "workload": "llm:tenants=3", "tenants": "examples/tenants.toml",
            "policy": "fair-share+quota+reclaim+easy+best-fit", "days": 7,
        },
        True,
    ),
    "award-programme": (
        {
            "site": "hgx-h100:nodes=4", "workload": "llm:load=0.9,tenants=3", "policy": "fifo+easy+best-fit+award",
            "programme": "calls=4,cover=0.8", "days": 20,
        },
        True,
    ),
    "failures-rack": (
        {
            "site": "gb200-nvl72:racks=40", "workload": "llm:load=0.9,tenants=4",
            "failures": "llama3:rack_per_day=0.05,rack_repair_h=8-24", "policy": "las:queues=2+greedy+reclaim+topology",
            "days": 7,
        },
        True,
    ),
    "rounds-priority": (
        {"site": "hgx-h100:nodes=32", "workload": "llm:load=1.2,tenants=3",
         "policy": "priority+greedy+preempt+packing+rounds:interval=60", "days": 5},
        True,
    ),
}  # fmt: skip


def _experiment(settings: dict[str, Any]) -> Any:
    from gigafactory.twin.experiment import Experiment, load_experiment

    values = {k: (v.format(data=DATA) if isinstance(v, str) else v) for k, v in settings.items()}
    if "config" in values:
        return load_experiment(REPO / values.pop("config")).with_overrides(**values)
    values["tenants"] = str(REPO / values["tenants"]) if "tenants" in values else None
    return Experiment(**values)


def run_case(name: str) -> dict[str, Any]:
    from gigafactory.twin.experiment import run_one

    exp = _experiment(CASES[name][0])
    summary = run_one(exp, exp.seeds[0], keep_log=False).summary
    kept = {k: v for k, v in summary.items() if k not in CLOCK_FIELDS}
    # Paths name where this checkout and its data lie, not what was run: record them as placeholders.
    text = (
        json.dumps(kept).replace(json.dumps(str(DATA))[1:-1], "{data}").replace(json.dumps(str(REPO))[1:-1], "{repo}")
    )
    return dict(json.loads(text))


def available(name: str) -> bool:
    return "{data}" not in json.dumps(CASES[name][0]) or DATA.is_dir()


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            if k not in new:
                out.append(f"{path}{k}: removed (was {old[k]!r})")
            elif k not in old:
                out.append(f"{path}{k}: added ({new[k]!r})")
            else:
                out += diff(old[k], new[k], f"{path}{k}.")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in diff(a, b, f"{path}{i}.")]
    return [] if old == new else [f"{path.rstrip('.')}: {old!r} -> {new!r}"]


def _settle(name: str, summary: dict[str, Any], *, write: bool) -> int:
    """Write or compare one case's summary as soon as it is done; 1 if it differs from its golden file."""
    path = GOLDEN / f"{name}.json"
    if write:
        path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        print(f"{name}: wrote {path.relative_to(REPO)}", flush=True)
        return 0
    if not path.exists():
        print(f"{name}: no golden file {path.relative_to(REPO)}; run --write", flush=True)
        return 1
    changes = diff(json.loads(path.read_text()), json.loads(json.dumps(summary)))
    if not changes:
        print(f"{name}: same", flush=True)
        return 0
    print(f"{name}: {len(changes)} change(s)", flush=True)
    for line in changes[:20]:
        print(f"  {line}", flush=True)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="only the quick cases")
    parser.add_argument("--case", action="append", help="only this case (repeatable)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    names = args.case or [n for n, (_, quick) in CASES.items() if quick or not args.quick]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; known: {', '.join(CASES)}")
    skipped = [n for n in names if not available(n)]
    names = [n for n in names if n not in skipped]
    for n in skipped:
        print(f"{n}: skipped, no data at {DATA}")
    GOLDEN.mkdir(exist_ok=True)
    failed = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_case, name): name for name in names}
        for future in as_completed(futures):
            name = futures[future]
            failed += _settle(name, future.result(), write=args.write)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
