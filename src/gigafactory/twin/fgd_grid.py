"""Grids of FGD experiments (workloads × policies × seeds): run them in parallel, write the published CSV format,
compare with the published results, and report.

Runs go to local processes, or to a Ray cluster with ``ray_address`` (:mod:`gigafactory.twin.parallel`).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gigafactory.core.errors import ConfigError, TraceError
from gigafactory.report.html import Report, line_figure
from gigafactory.twin.fgd import COLUMNS, PUBLISHED_NAMES, TUNE, FgdResult, run_fgd
from gigafactory.twin.parallel import run_tasks

__all__ = [
    "Comparison",
    "GridTask",
    "compare",
    "parse_seeds",
    "read_published",
    "run_grid",
    "write_csv",
    "write_report",
    "write_summary",
]

_BY_PUBLISHED = {v: k for k, v in PUBLISHED_NAMES.items()}


def parse_seeds(text: str) -> list[int]:
    """``42-51``, ``42,45,50`` or ``7``."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ConfigError(f"seeds: {text!r} has an empty item; give seeds like 1-5 or 1,2,7")
        lo, dash, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise ConfigError(f"seeds: {part!r} is not a seed or a range like 42-51") from None
        if b < a:
            raise ConfigError(f"seeds: the range {part!r} runs backwards")
        seeds.extend(range(a, b + 1))
    if not seeds:
        raise ConfigError("no seeds given")
    return seeds


@dataclass(frozen=True)
class GridTask:
    data: str
    workload: str
    policy: str
    seed: int
    orders: str | None

    def run(self) -> FgdResult:
        return run_fgd(
            Path(self.data), self.workload, self.policy, self.seed, orders=Path(self.orders) if self.orders else None
        )


def _run_task(task: GridTask) -> FgdResult:
    return task.run()


def run_grid(
    tasks: Sequence[GridTask],
    *,
    processes: int | None = None,
    ray_address: str | None = None,
    progress: Callable[[FgdResult], None] | None = None,
) -> list[FgdResult]:
    """Run every task; results come back in task order."""
    return run_tasks(_run_task, tasks, processes=processes, ray_address=ray_address, progress=progress)


# ---- CSV in the published format --------------------------------------------------------------------------
HEADER = ["workload", "sc_policy", "tune", "seed", "total_gpus", *[str(c) for c in COLUMNS]]


def _cell(v: float) -> str:
    """As the published CSV writes numbers: Python's repr of the value rounded to 2 decimals; empty if missing."""
    return "" if math.isnan(v) else str(round(float(v), 2))


def write_csv(path: Path, results: Iterable[FgdResult], what: str = "alloc") -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for r in results:
            values = getattr(r, what)
            w.writerow([r.workload, r.sc_policy, TUNE, r.seed, r.total_gpus, *(_cell(v) for v in values)])


def read_published(path: Path) -> dict[tuple[str, str, int], np.ndarray]:
    """``(workload, our policy name, seed) → allocation columns 0..130`` from a published-format CSV."""
    out: dict[tuple[str, str, int], np.ndarray] = {}
    try:
        f = path.open(newline="")
    except OSError as exc:
        raise TraceError(str(path), f"cannot open: {exc.strerror}") from exc
    with f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise TraceError(str(path), "the file is empty", line=1)
        missing = [h for h in HEADER if h not in header]
        if missing:
            raise TraceError(str(path), f"missing column {missing[0]!r}", line=1)
        idx = {h: header.index(h) for h in HEADER}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise TraceError(str(path), f"has {len(row)} fields; the header has {len(header)}", line=line)
            try:
                seed = int(row[idx["seed"]])
            except ValueError:
                raise TraceError(str(path), f"{row[idx['seed']]!r} is not a seed", line=line, column="seed") from None
            values = np.full(len(COLUMNS), np.nan)
            for c in COLUMNS:
                text = row[idx[str(c)]].strip()
                if text:
                    try:
                        values[c] = float(text)
                    except ValueError:
                        raise TraceError(str(path), f"{text!r} is not a number", line=line, column=str(c)) from None
            policy = row[idx["sc_policy"]]
            out[(row[idx["workload"]], _BY_PUBLISHED.get(policy, policy), seed)] = values
    return out


# ---- comparison -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    workload: str
    policy: str
    seeds: int  # seeds present on both sides
    ours: np.ndarray  # mean over seeds, per column
    published: np.ndarray

    @property
    def diff(self) -> np.ndarray:
        return np.asarray(self.ours - self.published)

    def at(self, column: int) -> tuple[float, float, float]:
        return float(self.ours[column]), float(self.published[column]), float(self.diff[column])

    @property
    def max_abs_diff(self) -> float:
        d = np.abs(self.diff)
        return float(np.nanmax(d)) if np.isfinite(d).any() else math.nan


def compare(results: Sequence[FgdResult], published: dict[tuple[str, str, int], np.ndarray]) -> list[Comparison]:
    groups: dict[tuple[str, str], list[FgdResult]] = defaultdict(list)
    for r in results:
        groups[(r.workload, r.policy)].append(r)
    out = []
    for (workload, policy), runs in groups.items():
        pairs = [
            (r.alloc, published[(workload, policy, r.seed)]) for r in runs if (workload, policy, r.seed) in published
        ]
        if not pairs:
            continue
        ours = np.asarray(np.nanmean([p[0] for p in pairs], axis=0))
        pub = np.asarray(np.nanmean([p[1] for p in pairs], axis=0))
        out.append(Comparison(workload, policy, len(pairs), np.round(ours, 2), np.round(pub, 2)))
    return out


def means(results: Sequence[FgdResult]) -> dict[tuple[str, str], dict[str, Any]]:
    groups: dict[tuple[str, str], list[FgdResult]] = defaultdict(list)
    for r in results:
        groups[(r.workload, r.policy)].append(r)
    out = {}
    for key, runs in groups.items():
        alloc = np.nanmean([r.alloc for r in runs], axis=0)
        out[key] = {
            "seeds": [r.seed for r in runs],
            "alloc_100": round(float(alloc[100]), 2),
            "alloc_130": round(float(alloc[130]), 2),
            "failed_pods": round(float(np.mean([r.failed for r in runs])), 1),
            "wall_s": round(float(np.mean([r.wall_s for r in runs])), 3),
            "curve": alloc,
            "frag": np.nanmean([r.frag for r in runs], axis=0),
        }
    return out


def write_summary(path: Path, results: Sequence[FgdResult], comparisons: Sequence[Comparison] = ()) -> None:
    """Means over seeds per workload and policy, and the comparison with a published CSV, as JSON."""
    import json

    table = means(results)
    doc: dict[str, Any] = {
        "runs": len(results),
        "orders": sorted({r.orders for r in results}),
        "means": [
            {"workload": w, "policy": p, "sc_policy": PUBLISHED_NAMES.get(p, p),
             **{k: v for k, v in m.items() if k not in ("curve", "frag")}}
            for (w, p), m in table.items()
        ],
        "comparison": [
            {"workload": c.workload, "policy": c.policy, "seeds": c.seeds,
             "ours_100": c.at(100)[0], "published_100": c.at(100)[1], "diff_100": round(c.at(100)[2], 2),
             "ours_130": c.at(130)[0], "published_130": c.at(130)[1], "diff_130": round(c.at(130)[2], 2),
             "max_abs_diff": round(c.max_abs_diff, 2)}
            for c in comparisons
        ],
    }  # fmt: skip
    path.write_text(json.dumps(doc, indent=2) + "\n")


def write_report(path: Path, results: Sequence[FgdResult], comparisons: Sequence[Comparison] = ()) -> None:
    table = means(results)
    workloads = sorted({w for w, _ in table})
    policies = sorted({p for _, p in table}, key=lambda p: (p not in PUBLISHED_NAMES, PUBLISHED_NAMES.get(p, p)))
    rep = Report(
        "FGD experiment: GPU allocation on the Alibaba openb cluster",
        f"{len(results)} runs · {len(workloads)} workloads · {len(policies)} policies · "
        f"orders {', '.join(sorted({r.orders for r in results}))}",
    )
    rep.paragraph(
        "Pods arrive one by one until GPU requests reach 130% of the cluster's capacity; a pod that fits nowhere "
        "fails. Allocation: GPU milli allocated as a % of capacity, against the % of capacity that has arrived "
        "(mean over seeds)."
    )
    rep.table(
        ["workload", "policy", "seeds", "alloc @100%", "alloc @130%", "failed pods", "s per run"],
        [
            [w, PUBLISHED_NAMES.get(p, p), len(table[(w, p)]["seeds"]), f"{table[(w, p)]['alloc_100']:.2f}",
             f"{table[(w, p)]['alloc_130']:.2f}", f"{table[(w, p)]['failed_pods']:,.0f}",
             f"{table[(w, p)]['wall_s']:.2f}"]
            for w in workloads for p in policies if (w, p) in table
        ],
    )  # fmt: skip
    if comparisons:
        rep.heading("Against the published results")
        rep.table(
            ["workload", "policy", "ours @100", "published", "Δ", "ours @130", "published", "Δ", "max |Δ| 0..130"],
            [
                [c.workload, PUBLISHED_NAMES.get(c.policy, c.policy), *(f"{v:+.2f}" if i in (2, 5) else f"{v:.2f}"
                 for i, v in enumerate((*c.at(100), *c.at(130)))), f"{c.max_abs_diff:.2f}"]
                for c in comparisons
            ],
        )  # fmt: skip
    x = np.array(COLUMNS, dtype=float)
    for w in workloads:
        rep.heading(w)
        curves = {PUBLISHED_NAMES.get(p, p): table[(w, p)]["curve"] for p in policies if (w, p) in table}
        rep.figure(line_figure(x, curves, title="GPU allocation (%) vs arrived (%)", x_title="arrived, % of capacity",
                               y_title="allocated, % of capacity"))  # fmt: skip
        fig = line_figure(x[80:], {k: v[80:] for k, v in curves.items()}, title="the last stretch (80–130% arrived)",
                          x_title="arrived, % of capacity", y_title="allocated, % of capacity")  # fmt: skip
        rep.figure(fig)
        frags = {PUBLISHED_NAMES.get(p, p): table[(w, p)]["frag"] for p in policies if (w, p) in table}
        rep.figure(line_figure(x, frags, title="fragmented GPUs (% of capacity)", x_title="arrived, % of capacity",
                               y_title="fragmented, % of capacity"))  # fmt: skip
    path.write_text(rep.html())
