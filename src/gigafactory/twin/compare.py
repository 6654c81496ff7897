"""``twin compare``: several policies × seeds on one site and workload, side by side with 95% intervals.

Each (policy, seed) is one run of :func:`gigafactory.twin.experiment.run_one`, in local processes or on Ray
(:mod:`gigafactory.twin.parallel`). A seed fixes the workload, the failures and every random choice, so policy A
with seed 3 and policy B with seed 3 see the same jobs: the runs are *paired*.

Statistics, from scipy (no hand-rolled formulas):

* each policy's mean over seeds with a 95% confidence interval from Student's t (``scipy.stats.t.interval`` on the
  standard error of the mean, ``scipy.stats.sem``);
* each pair of policies: the paired t-test's 95% interval for the mean difference per seed
  (``scipy.stats.ttest_rel(...).confidence_interval``). When that interval contains 0, the difference is
  **inside the noise** of these seeds, and the table says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from gigafactory.core.errors import ConfigError
from gigafactory.policy.profile import parse_profile
from gigafactory.report.html import Report, figure_div, shares_figure
from gigafactory.twin.experiment import Experiment, run_one
from gigafactory.twin.parallel import run_tasks

__all__ = ["MEASURES", "Measure", "check_plan", "compare", "write_outputs"]

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    better: str  # "higher" or "lower"
    get: Callable[[dict[str, Any]], float | None]
    unit: str = ""
    bounds: tuple[float, float] = (0.0, math.inf)  # what the measure can be: intervals are clipped to it


def _steady(*path: str, scale: float = 1.0) -> Callable[[dict[str, Any]], float | None]:
    def get(s: dict[str, Any]) -> float | None:
        v: Any = s.get("steady") or {}
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        return None if v is None else float(v) * scale

    return get


MEASURES = (
    Measure("utilisation", "utilisation (steady window)", "higher", _steady("utilisation"), bounds=(0.0, 1.0)),
    Measure("avg_jct_h", "mean JCT (steady window)", "lower", _steady("avg_jct_s", scale=1 / 3600), "h"),
    Measure("avg_queue_h", "mean queueing (steady window)", "lower", _steady("avg_queue_s", scale=1 / 3600), "h"),
    Measure(
        "fairness_deviation",
        "fairness deviation (steady window)",
        "lower",
        _steady("fairness", "deviation"),
        bounds=(0.0, 2.0),
    ),
    Measure("goodput", "goodput ratio (whole run)", "higher", lambda s: _goodput(s), bounds=(0.0, 1.0)),
)


def _goodput(s: dict[str, Any]) -> float | None:
    """Work kept over GPU-time allocated: what interruptions (work lost, restarts) and checkpoint writes cost.
    A job that fails by itself counts as delivered: the site gave it what it asked for."""
    if not s.get("gpu_hours") or s.get("goodput_gpu_h") is None:
        return None
    return float(s["goodput_gpu_h"]) / float(s["gpu_hours"])


@dataclass(frozen=True)
class _Task:
    exp: Experiment
    seed: int
    keep_shares: bool


def _run(task: _Task) -> dict[str, Any]:
    try:
        result = run_one(task.exp, task.seed, keep_log=False)
    except ConfigError as exc:
        raise ConfigError(f"policy {task.exp.policy}, seed {task.seed}: {exc}") from exc
    return {
        "policy": str(task.exp.policy),
        "seed": task.seed,
        "summary": result.summary,
        "shares": result.shares if task.keep_shares else None,
    }


def check_plan(exp: Experiment, policies: Sequence[str], seeds: Sequence[int]) -> None:
    """Refuse, naming the value, what cannot make a comparison with intervals."""
    if not policies:
        raise ConfigError("give at least one --policy to compare")
    seen: dict[str, str] = {}
    for p in policies:
        canonical = str(parse_profile(p))
        if canonical in seen:
            same = "" if seen[canonical] == p else f" (the same profile as {seen[canonical]!r})"
            raise ConfigError(f"policy {p!r} is listed twice{same}; list each policy once")
        seen[canonical] = p
    if len(set(seeds)) != len(seeds):
        dup = next(s for s in seeds if list(seeds).count(s) > 1)
        raise ConfigError(f"seed {dup} is listed twice; each seed is one paired sample")
    if len(seeds) < 2:
        raise ConfigError(
            f"seeds {', '.join(map(str, seeds)) or '(none)'}: a 95% interval needs at least 2 seeds, e.g. --seeds 1-5"
        )
    if exp.network is not None:
        raise ConfigError("twin compare runs one site; give --site, not a network")
    for p in policies:
        replace(exp, policy=p, seeds=tuple(seeds)).check()


def compare(
    exp: Experiment,
    policies: Sequence[str],
    seeds: Sequence[int],
    *,
    processes: int | None = None,
    ray_address: str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every policy × seed and compare; the result is what ``compare.json`` holds."""
    check_plan(exp, policies, seeds)
    tasks = [_Task(replace(exp, policy=p, seeds=(s,)), s, keep_shares=(s == seeds[0])) for p in policies for s in seeds]
    runs = run_tasks(_run, tasks, processes=processes, ray_address=ray_address, progress=progress)
    return summarise(exp, list(policies), list(seeds), runs)


def _interval(values: np.ndarray, bounds: tuple[float, float]) -> tuple[float, float, bool]:
    """Student's t interval for the mean, clipped to what the measure can be (with few seeds it reaches past it);
    the flag says whether it was clipped."""
    from scipy import stats

    mean = float(values.mean())
    sem = float(stats.sem(values))
    if sem == 0 or not math.isfinite(sem):
        return mean, mean, False
    low, high = (float(x) for x in stats.t.interval(CONFIDENCE, values.size - 1, loc=mean, scale=sem))
    clipped = low < bounds[0] or high > bounds[1]
    return max(low, bounds[0]), min(high, bounds[1]), clipped


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """b − a per seed: mean, the paired t interval, and whether it contains 0."""
    from scipy import stats

    d = b - a
    if np.all(d == d[0]):
        # No spread: the interval is the difference itself (t is undefined).
        low = high = float(d[0])
        p = 1.0 if d[0] == 0 else 0.0
    else:
        test = stats.ttest_rel(b, a)
        ci = test.confidence_interval(CONFIDENCE)
        low, high, p = float(ci.low), float(ci.high), float(test.pvalue)
    return {
        "difference": round(float(d.mean()), 6),
        "low": round(low, 6),
        "high": round(high, 6),
        "p_value": round(p, 6),
        "inside_noise": bool(low <= 0 <= high),
    }


def summarise(exp: Experiment, policies: list[str], seeds: list[int], runs: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(r["policy"], r["seed"]): r for r in runs}
    table: dict[str, dict[str, Any]] = {}
    values: dict[tuple[str, str], np.ndarray] = {}
    for p in policies:
        table[p] = {}
        for m in MEASURES:
            got = [m.get(by[(p, s)]["summary"]) for s in seeds]
            v = np.array([np.nan if x is None else x for x in got], dtype=np.float64)
            values[(p, m.key)] = v
            if np.isnan(v).any():
                table[p][m.key] = {"mean": None, "low": None, "high": None, "values": got}
                continue
            low, high, clipped = _interval(v, m.bounds)
            table[p][m.key] = {"mean": round(float(v.mean()), 6), "low": round(low, 6), "high": round(high, 6),
                               "clipped": clipped, "values": [round(float(x), 6) for x in v]}  # fmt: skip
    pairs = []
    for a, b in combinations(policies, 2):
        for m in MEASURES:
            va, vb = values[(a, m.key)], values[(b, m.key)]
            if np.isnan(va).any() or np.isnan(vb).any():
                continue
            pairs.append({"a": a, "b": b, "measure": m.key, **_paired(va, vb)})
    first = by[(policies[0], seeds[0])]["summary"]
    return {
        "site": first["site"],
        "workload": first["workload"],
        "days": exp.days,
        "horizon_days": exp.horizon_days,
        "failures": exp.failures,
        "tenants": exp.tenants or ("the experiment file's [[tenant]] tables" if exp.tenant_table else "the workload's"),
        "window": exp.window or "found per run (twin/windows.py)",
        "policies": policies,
        "profiles": {p: str(parse_profile(p)) for p in policies},
        "seeds": seeds,
        "confidence": CONFIDENCE,
        "method": "mean over seeds, Student's t interval (scipy.stats.t.interval, sem); pairs: paired t-test's "
        "interval for the mean difference per seed (scipy.stats.ttest_rel); inside the noise when it contains 0",
        "measures": {m.key: {"label": m.label, "better": m.better, "unit": m.unit} for m in MEASURES},
        "table": table,
        "pairs": pairs,
        "runs": [{"policy": r["policy"], "seed": r["seed"], "summary": r["summary"]} for r in runs],
        "_shares": {r["policy"]: r["shares"] for r in runs if r["shares"] is not None},
    }


def fmt(key: str, x: float | None) -> str:
    if x is None:
        return "–"
    if key in ("utilisation", "goodput"):
        return f"{x:.1%}"
    if key == "fairness_deviation":
        return f"{x:.3f}"
    return f"{x:.2f}"


def cell(key: str, c: dict[str, Any]) -> str:
    if c["mean"] is None:
        return "–"
    mark = "*" if c.get("clipped") else ""
    return f"{fmt(key, c['mean'])} [{fmt(key, c['low'])}, {fmt(key, c['high'])}]{mark}"


def settings_lines(result: dict[str, Any]) -> list[str]:
    """What the runs shared besides site, workload and seeds, and what each policy name stands for."""
    lines = [
        f"failures: {result['failures']} · tenants: {result['tenants']} · window: {result['window']}"
        + (f" · horizon: day {result['horizon_days']:g}" if result.get("horizon_days") else "")
    ]
    for p, full in result["profiles"].items():
        if p != full:
            lines.append(f"{p} = {full}")
    if any(c.get("clipped") for row in result["table"].values() for c in row.values()):
        lines.append(
            "*: the t interval reached past what the measure can be and is clipped to it; more seeds narrow it"
        )
    if len(result["seeds"]) < 5:
        lines.append(f"{len(result['seeds'])} seeds: intervals are wide; five or more tell policies apart better")
    return lines


def pair_text(key: str, pair: dict[str, Any]) -> str:
    sign = "+" if pair["difference"] >= 0 else ""
    diff = f"{sign}{fmt(key, pair['difference'])} [{fmt(key, pair['low'])}, {fmt(key, pair['high'])}]"
    return f"{diff} inside the noise" if pair["inside_noise"] else diff


def markdown(result: dict[str, Any]) -> str:
    measures = result["measures"]
    head = ["policy", *(f"{v['label']}{' (' + v['unit'] + ')' if v['unit'] else ''}" for v in measures.values())]
    lines = [
        f"{result['site']} · {result['workload']} · {result['days']:g} days · seeds "
        f"{', '.join(map(str, result['seeds']))} · mean [95% interval]",
        "",
        *(f"- {line}" for line in settings_lines(result)),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for p, row in result["table"].items():
        lines.append("| " + " | ".join([f"`{p}`", *(cell(k, row[k]) for k in measures)]) + " |")
    if len(result["policies"]) < 2:
        return "\n".join([*lines, "", "One policy: no paired differences."]) + "\n"
    lines += ["", "Paired differences (second − first, per seed; 95% interval):", ""]
    lines += ["| first | second | " + " | ".join(v["label"] for v in measures.values()) + " |"]
    lines += ["|---|---|" + "---|" * len(measures)]
    by_pair: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for pr in result["pairs"]:
        by_pair.setdefault((pr["a"], pr["b"]), {})[pr["measure"]] = pr
    for (a, b), row in by_pair.items():
        cells = [pair_text(k, row[k]) if k in row else "–" for k in measures]
        lines.append(f"| `{a}` | `{b}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_report(result: dict[str, Any]) -> Report:
    import plotly.graph_objects as go

    rep = Report(
        f"gigafactory twin compare: {result['site']}",
        f"workload {result['workload']} · {result['days']:g} days · {len(result['policies'])} policies × "
        f"{len(result['seeds'])} seeds · mean and 95% interval over seeds · " + " · ".join(settings_lines(result)),
    )
    measures = result["measures"]
    rep.heading("Side by side")
    rep.table(
        ["policy", *(v["label"] for v in measures.values())],
        [[p, *(cell(k, row[k]) for k in measures)] for p, row in result["table"].items()],
    )
    rep.heading("Paired differences")
    rep.paragraph(
        "Second minus first, per seed (the same jobs), with the paired t-test's 95% interval; "
        "'inside the noise' where the interval contains 0."
    )
    rep.table(
        ["first", "second", "measure", "difference [95%]", "p"],
        [[pr["a"], pr["b"], measures[pr["measure"]]["label"], pair_text(pr["measure"], pr), f"{pr['p_value']:.3f}"]
         for pr in result["pairs"]],
    )  # fmt: skip
    rep.heading("Distributions over seeds")
    for key, m in measures.items():
        fig = go.Figure()
        for p, row in result["table"].items():
            vals = [v for v in row[key]["values"] if v is not None]
            fig.add_trace(go.Box(y=vals, name=p, boxpoints="all", jitter=0.3, pointpos=0))
        unit = f" ({m['unit']})" if m["unit"] else ""
        fig.update_layout(title=f"{m['label']}{unit}, one point per seed", showlegend=False)
        rep._parts.append(figure_div(fig, height=320))
    shares = result.get("_shares") or {}
    if shares:
        rep.heading(f"Per-tenant share over time (seed {result['seeds'][0]})")
        for p, sh in shares.items():
            if not sh or not sh["t_s"]:
                continue
            rep.figure(shares_figure(sh, f"{p}: share received (solid) and entitled (dashed), per {{per}}")[0])
    return rep


def write_outputs(result: dict[str, Any], out: Path) -> tuple[Path, Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    paths = (out / "compare.json", out / "compare.md", out / "compare.html")
    paths[0].write_text(json.dumps(public, indent=1) + "\n")
    paths[1].write_text(markdown(result))
    paths[2].write_text(build_report(result).html())
    return paths
