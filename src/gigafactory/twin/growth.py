"""The growth scenario's runner: the twin at each year's offered load on a scale model, and the report.

The pure planner (:mod:`gigafactory.plan.growth`) sizes every year; this module measures each year with the twin
and writes ``growth.json`` and ``report.html``.

**The scale model.** One site of about ``scale`` GPUs (10,008 by default: 139 GB200 NVL72 racks) of the network's
dominant GPU model (:func:`~gigafactory.plan.growth.scale_preset`), running the ``llm`` workload at the year's
offered load for ``days`` days with fixed seeds and the ``default`` policy, no failures. The run stops when the
window ends (``horizon_days = days``), so in a year where demand outruns capacity the queue is still there at the
end. What is measured:

* **utilisation**: share of GPU-time allocated over the window after a warm-up (a day, or a quarter of a shorter
  window), since the site starts empty;
* **queueing delay**, mean and p99, over the jobs submitted after the warm-up; a job not started by the end counts
  with its wait so far, so in an overloaded year these are lower bounds that grow with ``days``;
* **unstarted share**: GPU-time of the jobs not started by the end / GPU-time of every job submitted; from it and
  the utilisation, :func:`~gigafactory.plan.growth.year_unmet_share` gives the year's unmet demand.

Each year's jobs are drawn at exactly its offered load (:func:`exact_load_workload`).

Why it stands for the full size: the offered load (work submitted / capacity) is the year's, and the ``llm``
generator draws job sizes up to a sixth of the site, so the largest jobs hold the same share of the scale model as
of a 100k-GPU site (1,024 of 10,008 GPUs; 16,384 of 100,008). Its limits are in ``docs/planning.md``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gigafactory.core.errors import ConfigError
from gigafactory.core.presets import build_site
from gigafactory.core.tenants import TenantTree
from gigafactory.core.topology import Topology
from gigafactory.plan.growth import (
    GrowthScenario,
    GrowthStep,
    GrowthYear,
    Outrun,
    ScaleMeasurement,
    dominant_model,
    growth_path,
    growth_year,
    outrun,
    scale_preset,
)
from gigafactory.plan.network import SiteInputs
from gigafactory.report.html import Report, amount, bar_figure, line_figure
from gigafactory.twin.experiment import Experiment
from gigafactory.twin.sim import Simulation
from gigafactory.twin.workload import Workload
from gigafactory.twin.workloads import load_workload
from gigafactory.twin.workloads.llm import PARAMS as LLM_PARAMS

__all__ = [
    "DAYS",
    "SCALE_GPUS",
    "GrowthResult",
    "build_growth_report",
    "exact_load_workload",
    "measure",
    "run_growth",
    "write_growth_outputs",
]

SCALE_GPUS = 10_008
DAYS = 14.0
POLICY = "default"
DRAW_LIMIT = float(LLM_PARAMS["load"].maximum or 5.0)  # the most the llm workload generator takes
HEADROOM = (1.25, 1.5, 2.0)  # draw at this much more load, then thin to the year's (exact_load_workload)
MAX_LOAD = DRAW_LIMIT / HEADROOM[0]  # the highest offered load a year may ask for
DAY = 86_400.0

Progress = Callable[[int, float], None]  # (year, offered load): called before each year's run


@dataclass(frozen=True)
class GrowthResult:
    network: str
    scenario: GrowthScenario
    years: tuple[GrowthYear, ...]
    outrun: Outrun
    scale_site: str
    scale_gpus: int
    days: float
    seeds: tuple[int, ...]
    policy: str
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "scenario": asdict(self.scenario),
            "scale_model": {
                "site": self.scale_site,
                "gpus": self.scale_gpus,
                "days": self.days,
                "seeds": list(self.seeds),
                "policy": self.policy,
                "workload": "llm (offered load = the year's)",
                "failures": "none",
            },
            "years": [y.row() for y in self.years],
            "outrun": {**asdict(self.outrun), "summary": self.outrun.sentence()},
            "sites_first_year": {
                s.name: {
                    "gpus": s.inputs.gpus,
                    "gpu_model": s.inputs.gpu_model,
                    "pue": s.inputs.pue,
                    "price_eur_mwh": s.inputs.price_eur_mwh,
                }
                for s in self.years[0].step.sites
            },
            "economics": {
                k: v
                for k, v in asdict(self.years[0].step.sites[0].inputs).items()
                if k not in ("gpus", "gpu_model", "watts", "pue", "price_eur_mwh", "utilisation")
            },
            "wall_s": round(self.wall_s, 3),
        }


def measure(site: str, load: float, days: float, seeds: Sequence[int], policy: str = POLICY) -> ScaleMeasurement:
    """Run the twin on ``site`` at offered ``load`` for ``days`` days, once per seed; the means of the measures."""
    if not 0 < load <= MAX_LOAD:
        raise ConfigError(f"offered load {load:.2f} is outside what the growth runner takes (0, {MAX_LOAD:g}]")
    rows = [_measure_one(site, load, days, seed, policy) for seed in seeds]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return ScaleMeasurement(
        site=site,
        gpus=build_site(site).num_gpus,
        days=days,
        seeds=tuple(seeds),
        load_asked=load,
        load_offered=mean["load_offered"],
        utilisation=mean["utilisation"],
        queue_mean_s=mean["queue_mean_s"],
        queue_p99_s=mean["queue_p99_s"],
        unstarted_share=mean["unstarted_share"],
        jobs=round(mean["jobs"]),
        waiting_at_end=round(mean["waiting_at_end"]),
        wall_s=sum(r["wall_s"] for r in rows),
    )


def exact_load_workload(topo: Topology, load: float, days: float, seed: int) -> tuple[Workload, TenantTree | None]:
    """An ``llm`` workload whose offered load is ``load`` to within a fraction of a percent.

    On a scale model a few long, large jobs make the offered load of one draw vary by about ±10% (its standard
    deviation is 8% for 14 days on 1,008 GPUs); a full-size year's demand does not. So the jobs are drawn at a higher
    load and thinned at random (seeded) to the year's GPU-time: first a random prefix, then, in the same random
    order, any job that still fits. Thinning keeps the mix of sizes, run times and arrival times.
    """
    target = load * topo.num_gpus * days * DAY
    for headroom in HEADROOM:
        drawn = min(load * headroom, DRAW_LIMIT)
        wl, tenants = load_workload(f"llm:load={drawn:.6g}", topo, days=days, seed=seed)
        work = wl.gpu_equivalent * wl.runtime_s
        if work.sum() >= target:
            break
    else:
        return wl, tenants  # cannot happen below MAX_LOAD in practice: the draw falls short, so keep all of it
    order = np.random.default_rng([seed, 0x6A0]).permutation(len(wl))
    cum = np.cumsum(work[order])
    k = int(np.searchsorted(cum, target, side="right"))
    keep = list(order[:k])
    gap = target - (float(cum[k - 1]) if k else 0.0)
    for j in order[k:].tolist():
        if gap <= target * 1e-4:
            break
        if work[j] <= gap:
            keep.append(j)
            gap -= float(work[j])
    return wl.subset(np.array(keep, dtype=np.int64), f"llm:load={load:.6g} (thinned from {drawn:.6g})"), tenants


def _measure_one(site: str, load: float, days: float, seed: int, policy: str) -> dict[str, float]:
    topo = build_site(site)
    wl, tenants = exact_load_workload(topo, load, days, seed)
    end = days * DAY
    t0 = time.perf_counter()
    sim = Simulation(topo, wl, policy, seed=seed, tenants=tenants, keep_log=False, horizon_s=end)
    met = sim.run().metrics
    wall = time.perf_counter() - t0
    warmup = min(DAY, end / 4)
    work = wl.gpu_equivalent * wl.runtime_s
    started = ~np.isnan(met.first_start)
    wait = np.where(started, met.first_start, end) - wl.submit_s
    after = wl.submit_s >= warmup
    waits = wait[after] if after.any() else wait
    total = float(work.sum())
    return {
        "load_offered": total / (topo.num_gpus * end),
        "utilisation": met.utilisation(warmup, end),
        "queue_mean_s": float(waits.mean()) if waits.size else 0.0,
        "queue_p99_s": float(np.percentile(waits, 99)) if waits.size else 0.0,
        "unstarted_share": float(work[~started].sum()) / total if total > 0 else 0.0,
        "jobs": float(len(wl)),
        "waiting_at_end": float((~started).sum()),
        "wall_s": wall,
    }


def run_growth(
    network: str,
    sites: Sequence[SiteInputs],
    scenario: GrowthScenario,
    *,
    scale: int = SCALE_GPUS,
    days: float = DAYS,
    seeds: Sequence[int] = (1,),
    policy: str = POLICY,
    progress: Progress | None = None,
) -> GrowthResult:
    """Size every year, measure each with the twin on the scale model, and map the measures onto the years."""
    if not days > 0 or not math.isfinite(days):
        raise ConfigError(f"days={days:g} must be greater than 0")
    if not seeds:
        raise ConfigError("seeds must list at least one seed")
    steps = growth_path(scenario, sites)
    for step in steps:  # refuse before any run, not in the fifth year
        if step.offered_load > MAX_LOAD:
            raise ConfigError(
                f"year {step.year}: offered load {step.offered_load:.2f} is more than the growth runner takes "
                f"({MAX_LOAD:g}); lower --demand-growth or raise --target"
            )
    site = scale_preset(dominant_model(sites), scale)
    Experiment(site=site, policy=policy, days=days).check()
    t0 = time.perf_counter()
    years = []
    for step in steps:
        if progress is not None:
            progress(step.year, step.offered_load)
        years.append(growth_year(network, step, measure(site, step.offered_load, days, seeds, policy)))
    return GrowthResult(
        network=network,
        scenario=scenario,
        years=tuple(years),
        outrun=outrun(years),
        scale_site=site,
        scale_gpus=build_site(site).num_gpus,
        days=days,
        seeds=tuple(seeds),
        policy=policy,
        wall_s=time.perf_counter() - t0,
    )


def _hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} d"


def _shade(fig: Any, steps: Sequence[GrowthStep]) -> None:
    """Shade the years where demand outruns capacity."""
    for s in steps:
        if s.demand_gpu_hours > s.capacity_gpu_hours:
            fig.add_vrect(x0=s.year - 0.5, x1=s.year + 0.5, fillcolor="#e12d39", opacity=0.08, line_width=0)


def build_growth_report(result: GrowthResult) -> Report:
    sc = result.scenario
    years = result.years
    steps = [y.step for y in years]
    x = np.array([s.year for s in steps], dtype=float)
    first, last = years[0], years[-1]
    rep = Report(
        f"gigafactory plan growth: {result.network}",
        f"{sc.from_year}-{sc.to_year} · capacity ×{sc.target:g} on a geometric path · demand from "
        f"{sc.start_load:.0%} of capacity, growing {sc.demand_growth:.0%} a year · twin scale model "
        f"{result.scale_site} ({result.scale_gpus:,} GPUs), {result.days:g} days, seeds "
        f"{', '.join(map(str, result.seeds))}, policy {result.policy} · {result.wall_s:.0f} s",
    )
    rep.kpis(
        [
            (f"GPUs {sc.from_year} → {sc.to_year}", f"{first.step.gpus:,} → {last.step.gpus:,}"),
            (
                f"facility MW {sc.from_year} → {sc.to_year}",
                f"{first.plan.totals['facility_mw']:,.0f} → {last.plan.totals['facility_mw']:,.0f}",
            ),
            (f"offered load {sc.to_year}", f"{last.step.offered_load:.2f}"),
            (f"unmet demand {sc.to_year}", f"{last.unmet_share:.1%}"),
            (f"mean queueing {sc.to_year}", _hours(last.measured.queue_mean_s)),
            (f"TCO {sc.to_year}", f"€{last.plan.totals['tco_per_year_eur'] / 1e9:,.2f}B / year"),
        ]
    )
    rep.heading("Where demand outruns capacity")
    rep.paragraph(result.outrun.sentence())
    rep.table(
        ["year", "demand / capacity", "demand − capacity (M GPU-h)", "unmet (twin)", "unmet (M GPU-h)"],
        [
            [
                y.step.year,
                f"{y.step.offered_load:.2f}",
                f"{(y.step.demand_gpu_hours - y.step.capacity_gpu_hours) / 1e6:+,.1f}",
                f"{y.unmet_share:.1%}",
                f"{y.unmet_gpu_hours / 1e6:,.1f}",
            ]
            for y in years
        ],
    )
    rep.heading("Capacity and demand")
    fig = line_figure(
        x,
        {
            "capacity (GPUs × 8,760 h)": np.array([s.capacity_gpu_hours for s in steps]) / 1e6,
            "demand": np.array([s.demand_gpu_hours for s in steps]) / 1e6,
            "served (twin)": np.array([y.served_gpu_hours for y in years]) / 1e6,
        },
        title="GPU-hours a year (shaded: demand above capacity)",
        x_title="year",
        y_title="million GPU-hours",
    )
    _shade(fig, steps)
    rep.figure(fig)
    rep.figure(
        bar_figure(
            [str(s.year) for s in steps],
            [y.unmet_gpu_hours / 1e6 for y in years],
            title="Unmet demand: GPU-hours a year the capacity cannot serve",
            y_title="million GPU-hours",
        )
    )
    rep.heading("Power")
    rep.figure(
        line_figure(
            x,
            {
                "facility MW": np.array([y.plan.totals["facility_mw"] for y in years]),
                "IT MW": np.array([y.plan.totals["it_mw"] for y in years]),
            },
            title="Power at full load",
            x_title="year",
            y_title="MW",
        )
    )
    rep.heading("Queueing delay (twin)")
    fig = line_figure(
        x,
        {
            "mean": np.array([y.measured.queue_mean_s for y in years]) / 3600.0,
            "p99": np.array([y.measured.queue_p99_s for y in years]) / 3600.0,
        },
        title="Queueing delay (shaded: demand above capacity)",
        x_title="year",
        y_title="hours",
    )
    _shade(fig, steps)
    rep.figure(fig)
    rep.paragraph(
        f"Measured on the scale model over {result.days:g} days at each year's offered load. A job still waiting at "
        "the end counts with its wait so far: where demand outruns capacity the queue grows for as long as the "
        "overload lasts, so these delays are lower bounds that grow with the window."
    )
    rep.heading("Cost")
    rep.figure(
        bar_figure(
            [str(s.year) for s in steps],
            [y.plan.totals["tco_per_year_eur"] / 1e6 for y in years],
            title="TCO a year (depreciation + energy + opex)",
            y_title="million EUR",
        )
    )
    rep.heading("Every year")
    rep.table(
        ["year", "GPUs", "facility MW", "demand / capacity", "twin load", "utilisation", "mean queueing",
         "p99 queueing", "unmet", "energy MWh", "TCO €M", "€ / GPU-h"],
        [
            [
                y.step.year, f"{y.step.gpus:,}", f"{y.plan.totals['facility_mw']:,.0f}",
                f"{y.step.offered_load:.2f}", f"{y.measured.load_offered:.2f}", f"{y.measured.utilisation:.1%}",
                _hours(y.measured.queue_mean_s), _hours(y.measured.queue_p99_s), f"{y.unmet_share:.1%}",
                amount(y.plan.totals["annual_energy_mwh"]), f"{y.plan.totals['tco_per_year_eur'] / 1e6:,.0f}",
                f"{y.plan.cost_per_gpu_hour_eur:.2f}",
            ]
            for y in years
        ],
    )  # fmt: skip
    rep.paragraph(
        "Twin load is the offered load of the workload as drawn (its GPU-time over the scale model's capacity): a "
        "few long, large jobs make it vary around the year's figure. Cost plans each year's sites at the "
        "utilisation the twin measured; docs/planning.md gives every default and its source."
    )
    return rep


def write_growth_outputs(result: GrowthResult, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "growth.json"
    json_path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    html_path = out / "report.html"
    html_path.write_text(build_growth_report(result).html())
    return json_path, html_path
