"""A growth scenario: capacity grows to ``target`` times its size on a geometric path while demand grows at its own
rate; for each year, the sizes, the offered load, what the twin measured at that load, and the cost.

Vocabulary:

* **capacity factor** of year y: target ** ((y − y0) / (y1 − y0)); 1 in the first year, exactly ``target`` in the
  last. Every site grows by it (its GPUs rounded to a whole number).
* **demand** (GPU-hours a year): ``start_load`` × the first year's GPUs × 8,760 × (1 + ``demand_growth``) ** (y − y0).
* **offered load**: demand / (the year's GPUs × 8,760). Above 1, demand outruns capacity.
* **measurement**: what the twin saw running a scale model of the network at that offered load
  (:class:`ScaleMeasurement`, filled in by ``gigafactory.twin.growth``, not here: this module is pure). Queueing
  delays are taken as they are; **unmet demand** is the share of the submitted work that had not started when the
  run ended, applied to the year's demand.
* **cost**: the year's sites planned (:mod:`gigafactory.plan.network`) at the utilisation the twin measured.

Pure: the twin runs elsewhere; this module sizes the years and maps the measurements onto them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gigafactory.core.errors import ConfigError
from gigafactory.plan.model import HOURS_PER_YEAR
from gigafactory.plan.network import NetworkPlan, SiteInputs, plan_sites

__all__ = [
    "DEMAND_GROWTH",
    "START_LOAD",
    "UNMET_THRESHOLD",
    "GrowthScenario",
    "GrowthStep",
    "GrowthYear",
    "Outrun",
    "ScaleMeasurement",
    "capacity_factor",
    "dominant_model",
    "gpu_hours",
    "growth_path",
    "growth_year",
    "outrun",
    "parse_target",
    "scale_preset",
    "scale_sites",
    "year_unmet_share",
]

START_LOAD = 0.8  # demand in the first year / capacity: an assumption (docs/planning.md)
DEMAND_GROWTH = 0.40  # a year: an assumption (docs/planning.md)
MAX_YEARS = 100
UNMET_THRESHOLD = 0.01  # a year "leaves demand unmet" when the twin left more than this share of the work unstarted


def parse_target(text: str) -> float:
    """``3x``, ``3`` or ``2.5x``: the capacity of the last year over the first's."""
    raw = text.strip().lower().removesuffix("x").removesuffix("×").strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"target={text!r} must be a multiple above 0, such as 3x (three times the first year's)")
    return value


@dataclass(frozen=True, slots=True)
class GrowthScenario:
    from_year: int
    to_year: int
    target: float  # capacity in to_year / capacity in from_year
    demand_growth: float = DEMAND_GROWTH
    start_load: float = START_LOAD

    def __post_init__(self) -> None:
        if self.from_year > self.to_year:
            raise ConfigError(f"from={self.from_year} is after to={self.to_year}: the window must run forward")
        if self.from_year == self.to_year:
            raise ConfigError(f"from={self.from_year} and to={self.to_year} are one year: give at least two")
        if self.to_year - self.from_year >= MAX_YEARS:
            raise ConfigError(f"from={self.from_year} to={self.to_year} is more than {MAX_YEARS} years")
        for name, low in (("target", 0.0), ("demand_growth", -1.0), ("start_load", 0.0)):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= low:
                raise ConfigError(f"{name}={value:g} must be greater than {low:g}")

    @property
    def years(self) -> range:
        return range(self.from_year, self.to_year + 1)


def capacity_factor(scenario: GrowthScenario, year: int) -> float:
    return float(scenario.target ** ((year - scenario.from_year) / (scenario.to_year - scenario.from_year)))


def scale_sites(sites: Sequence[SiteInputs], factor: float) -> tuple[SiteInputs, ...]:
    """Every site ``factor`` times its GPUs, rounded (at least one)."""
    return tuple(replace(s, inputs=replace(s.inputs, gpus=max(1, round(s.inputs.gpus * factor)))) for s in sites)


@dataclass(frozen=True, slots=True)
class GrowthStep:
    year: int
    factor: float
    sites: tuple[SiteInputs, ...]  # the year's sites: the first year's, scaled by ``factor``
    gpus: int
    capacity_gpu_hours: float  # GPUs × 8,760
    demand_gpu_hours: float
    offered_load: float  # demand / capacity


def growth_path(scenario: GrowthScenario, sites: Sequence[SiteInputs]) -> tuple[GrowthStep, ...]:
    base = sum(s.inputs.gpus for s in sites)
    demand0 = scenario.start_load * base * HOURS_PER_YEAR
    steps = []
    for year in scenario.years:
        factor = capacity_factor(scenario, year)
        scaled = scale_sites(sites, factor)
        gpus = sum(s.inputs.gpus for s in scaled)
        capacity = gpus * HOURS_PER_YEAR
        demand = demand0 * (1.0 + scenario.demand_growth) ** (year - scenario.from_year)
        steps.append(GrowthStep(year, factor, scaled, gpus, capacity, demand, demand / capacity))
    return tuple(steps)


def dominant_model(sites: Sequence[SiteInputs]) -> str:
    """The GPU model with the most GPUs (ties: by name)."""
    by_model: dict[str, int] = {}
    for s in sites:
        by_model[s.inputs.gpu_model] = by_model.get(s.inputs.gpu_model, 0) + s.inputs.gpus
    return min(by_model, key=lambda m: (-by_model[m], m))


def scale_preset(model: str, gpus: int) -> str:
    """A site preset of about ``gpus`` GPUs of ``model``: NVL72 racks for GB200, 8-GPU nodes otherwise."""
    if gpus < 1:
        raise ConfigError(f"scale={gpus} must be at least 1 GPU")
    if model == "GB200":
        return f"gb200-nvl72:racks={max(1, round(gpus / 72))}"
    nodes = max(1, round(gpus / 8))
    if model == "H100":
        return f"hgx-h100:nodes={nodes}"
    return f"uniform:nodes={nodes},gpus=8,model={model}"


@dataclass(frozen=True, slots=True)
class ScaleMeasurement:
    """What the twin measured on the scale model at one offered load (means over its seeds)."""

    site: str  # the scale model's preset
    gpus: int
    days: float
    seeds: tuple[int, ...]
    load_asked: float
    load_offered: float  # the workload as run: GPU-time submitted / (GPUs × the window)
    utilisation: float  # share of GPU-time allocated, after the warm-up
    queue_mean_s: float  # jobs not started by the end count with their wait so far
    queue_p99_s: float
    unstarted_share: float  # work of the jobs not started by the end / all work submitted
    jobs: int
    waiting_at_end: int
    wall_s: float


@dataclass(frozen=True, slots=True)
class GrowthYear:
    step: GrowthStep
    measured: ScaleMeasurement
    plan: NetworkPlan  # the year's sites at the measured utilisation
    unmet_share: float  # of the year's demand (year_unmet_share(measured))
    unmet_gpu_hours: float
    served_gpu_hours: float

    def row(self) -> dict[str, Any]:
        s, m, p = self.step, self.measured, self.plan
        return {
            "year": s.year,
            "capacity_factor": s.factor,
            "gpus": s.gpus,
            "it_mw": p.totals["it_mw"],
            "facility_mw": p.totals["facility_mw"],
            "capacity_gpu_hours": s.capacity_gpu_hours,
            "demand_gpu_hours": s.demand_gpu_hours,
            "offered_load": s.offered_load,
            "served_gpu_hours": self.served_gpu_hours,
            "unmet_gpu_hours": self.unmet_gpu_hours,
            "unmet_share": self.unmet_share,
            "twin_unstarted_share": m.unstarted_share,
            "queue_mean_s": m.queue_mean_s,
            "queue_p99_s": m.queue_p99_s,
            "utilisation": m.utilisation,
            "twin_offered_load": m.load_offered,
            "energy_mwh": p.totals["annual_energy_mwh"],
            "energy_cost_eur": p.totals["annual_energy_cost_eur"],
            "capex_eur": p.totals["capex_eur"],
            "tco_per_year_eur": p.totals["tco_per_year_eur"],
            "cost_per_gpu_hour_eur": p.cost_per_gpu_hour_eur,
            "twin_jobs": m.jobs,
            "twin_waiting_at_end": m.waiting_at_end,
            "twin_wall_s": m.wall_s,
        }


def year_unmet_share(measured: ScaleMeasurement) -> float:
    """The share of a year's demand the capacity cannot serve, from what the twin measured.

    Where the twin ended with no backlog (at most ``UNMET_THRESHOLD`` of the work unstarted), capacity kept up: the
    share is what was unstarted, about 0. Where it ended with one, capacity was binding, and the GPUs serve work at
    the utilisation the twin reached: the share is 1 − utilisation / offered load (what a run from an empty site
    leaves unstarted under-counts it by the work still running at the end, and would let served exceed capacity).
    """
    p = measured.unstarted_share
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"unstarted_share={p:g} must be between 0 and 1")
    if p <= UNMET_THRESHOLD:
        return p
    return max(p, 1.0 - measured.utilisation / measured.load_asked)


def growth_year(network: str, step: GrowthStep, measured: ScaleMeasurement) -> GrowthYear:
    """The year's figures: its sites planned at the measured utilisation, and its unmet demand."""
    # A share in (0, 1]: a twin run that allocated nothing still costs its capital.
    u = min(max(measured.utilisation, 1e-9), 1.0)
    sites = tuple(replace(s, inputs=replace(s.inputs, utilisation=u)) for s in step.sites)
    share = year_unmet_share(measured)
    unmet = share * step.demand_gpu_hours
    return GrowthYear(step, measured, plan_sites(network, sites), share, unmet, step.demand_gpu_hours - unmet)


@dataclass(frozen=True, slots=True)
class Outrun:
    """Where demand outruns capacity, and by how much."""

    years: tuple[int, ...]  # demand above capacity (offered load > 1)
    unmet_years: tuple[int, ...]  # more than UNMET_THRESHOLD of the demand unmet
    worst_year: int | None  # the year demand most exceeds capacity
    worst_gap_gpu_hours: float  # demand − capacity that year (0 if never)
    worst_ratio: float  # demand / capacity that year
    unmet_gpu_hours: float  # summed over every year

    def sentence(self) -> str:
        if not self.years and not self.unmet_years:
            return "Capacity keeps ahead of demand in every year, and the twin left no demand unmet."
        parts = []
        if self.years:
            parts.append(
                f"Demand outruns capacity from {self.years[0]} ({len(self.years)} of the years); the gap is largest "
                f"in {self.worst_year}: demand {self.worst_ratio:.2f}× capacity, "
                f"{gpu_hours(self.worst_gap_gpu_hours)} more than the GPUs can give."
            )
        else:
            parts.append("Demand stays below nameplate capacity in every year.")
        if self.unmet_years:
            parts.append(
                f"The twin leaves demand unmet in {', '.join(map(str, self.unmet_years))}: "
                f"{gpu_hours(self.unmet_gpu_hours)} in all."
            )
        return " ".join(parts)


def gpu_hours(x: float) -> str:
    """GPU-hours that read well: 14.9 billion, 310 million, 52,000."""
    if abs(x) >= 1e9:
        return f"{x / 1e9:,.1f} billion GPU-hours"
    if abs(x) >= 1e6:
        return f"{x / 1e6:,.1f} million GPU-hours"
    return f"{x:,.0f} GPU-hours"


def outrun(years: Sequence[GrowthYear]) -> Outrun:
    over = [y for y in years if y.step.demand_gpu_hours > y.step.capacity_gpu_hours]
    worst = max(over, key=lambda y: (y.step.offered_load, -y.step.year), default=None)
    return Outrun(
        years=tuple(y.step.year for y in over),
        unmet_years=tuple(y.step.year for y in years if y.unmet_share > UNMET_THRESHOLD),
        worst_year=None if worst is None else worst.step.year,
        worst_gap_gpu_hours=0.0 if worst is None else worst.step.demand_gpu_hours - worst.step.capacity_gpu_hours,
        worst_ratio=0.0 if worst is None else worst.step.offered_load,
        unmet_gpu_hours=math.fsum(y.unmet_gpu_hours for y in years),
    )
