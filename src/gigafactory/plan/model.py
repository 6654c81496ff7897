"""The capacity planner's arithmetic for one site: power, energy, cost per GPU-hour, and one 10^25-FLOP training run.

Vocabulary (every figure is per year of 8,760 hours):

* **IT power** (``it_mw``): GPUs × system watts per GPU (the whole node's or rack's power at full load divided by
  its GPUs, so CPUs, memory, NICs and fans count), in MW.
* **Facility power** (``facility_mw``): IT power × PUE, exactly.
* **Energy** (``annual_energy_mwh``): facility power × 8,760 h × (utilisation + (1 − utilisation) × idle power
  fraction). With the default idle fraction of 0 a GPU draws its full power while allocated and nothing while idle:
  the twin's own energy accounting (``docs/network.md``), so the planner and the twin agree.
* **Energy cost** (``annual_energy_cost_eur``): energy × price, exactly.
* **Capital** (``capex_eur``): GPUs × capex per GPU (the compute) + facility MW × capex per MW (the building,
  power and cooling). Each is written off in equal parts over its own depreciation period.
* **TCO per year**: depreciation + energy cost + opex (a fraction of capital each year; 0 by default).
* **Delivered GPU-hours**: GPUs × 8,760 × utilisation × ETTR: the hours that did useful work.
* **Cost per GPU-hour**: TCO per year / delivered GPU-hours.
* **The training run**: ``run_flop`` (10^25 by default, the EU AI Act's threshold for systemic risk) needs
  run_flop / (peak dense BF16 FLOP/s × MFU) / 3,600 GPU-hours. It gets ``run_share`` of the site's delivered
  GPU-hours (the whole site by default), so its wall time is GPU-hours / (GPUs × share × utilisation × ETTR), and
  it costs GPU-hours × cost per GPU-hour.

Every default and its public source is in ``DEFAULTS`` and ``docs/planning.md``; keep the two in step.
Pure: values in, values out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from gigafactory.core.errors import ConfigError
from gigafactory.core.hardware import GPU_MODELS

__all__ = [
    "DEFAULTS",
    "DEFAULT_SITE",
    "HOURS_PER_YEAR",
    "USD_PER_EUR",
    "PlanInputs",
    "PlanResult",
    "describe_inputs",
    "plan",
]

HOURS_PER_YEAR = 8_760.0
DEFAULT_SITE = "gb200-nvl72:racks=1389"  # the twin's default site: 100,008 GB200 GPUs

# B6: a GB200 NVL72 rack costs about $3.4M for compute plus $2.5M for the rest of the facility; it draws 120-132 kW
# (132 kW, the upper end, as in core/hardware.py). One exchange rate for every conversion (an assumption: about the
# ECB's euro reference rate against the dollar averaged over 2024).
USD_PER_EUR = 1.08
RACK_GPUS = 72
RACK_IT_MW = 0.132
RACK_COMPUTE_USD = 3.4e6
RACK_FACILITY_USD = 2.5e6
DEFAULT_PUE = 1.3


@dataclass(frozen=True, slots=True)
class Default:
    value: Any
    source: str


DEFAULTS: dict[str, Default] = {
    "gpus": Default(100_008, f"the twin's default site, {DEFAULT_SITE} (BENCHMARKS B4)"),
    "gpu_model": Default("GB200", f"the twin's default site, {DEFAULT_SITE}"),
    "watts": Default(
        None, "system power per GPU from core/hardware.py: DGX data sheets; GB200 NVL72 rack 132 kW / 72 (B6)"
    ),
    "pue": Default(DEFAULT_PUE, "new large sites reach 1.1-1.3 (B6; Uptime 2024 industry average 1.56): upper end"),
    "price_eur_mwh": Default(190.0, "EU non-household electricity, H2 2024 average, EUR 0.19/kWh (Eurostat, B6)"),
    "capex_eur_per_gpu": Default(
        RACK_COMPUTE_USD / RACK_GPUS / USD_PER_EUR, "GB200 NVL72 rack compute ~$3.4M (B6) / 72 GPUs / 1.08 USD per EUR"
    ),
    "capex_eur_per_mw": Default(
        RACK_FACILITY_USD / (RACK_IT_MW * DEFAULT_PUE) / USD_PER_EUR,
        "rest of facility ~$2.5M per NVL72 rack (B6) / (0.132 MW x PUE 1.3) / 1.08 USD per EUR",
    ),
    "depreciation_years": Default(5.0, "assumption: GPUs and servers written off over 5 years (no cited source)"),
    "facility_depreciation_years": Default(15.0, "assumption: building, power and cooling over 15 years"),
    "opex_fraction": Default(0.0, "assumption: staff, maintenance, network and software not counted unless given"),
    "idle_power_fraction": Default(0.0, "idle draw not counted, as in the twin's energy accounting"),
    "utilisation": Default(0.85, "assumption: the twin's default offered load (llm load=0.85); measure with a run"),
    "ettr": Default(0.90, "MegaScale: over 90% effective training time (BENCHMARKS B5)"),
    "mfu": Default(0.40, "large-run MFU 38-43% (Llama 3) and 55% (MegaScale) (B6): about the Llama 3 figure"),
    "run_flop": Default(1e25, "the EU AI Act's presumption of systemic risk: 10^25 FLOP of training compute"),
    "run_share": Default(1.0, "the training run gets the whole site"),
}


def _default(name: str) -> Any:
    return DEFAULTS[name].value


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What the planner needs for one site. Every value is checked when it is built; an error names the field."""

    gpus: int = _default("gpus")
    gpu_model: str = _default("gpu_model")
    watts: float | None = None  # system watts per GPU; None: the catalogue's figure for gpu_model
    pue: float = _default("pue")
    price_eur_mwh: float = _default("price_eur_mwh")
    capex_eur_per_gpu: float = _default("capex_eur_per_gpu")
    capex_eur_per_mw: float = _default("capex_eur_per_mw")  # per MW of facility power (IT × PUE)
    depreciation_years: float = _default("depreciation_years")  # the GPUs and servers
    facility_depreciation_years: float = _default("facility_depreciation_years")
    opex_fraction: float = _default("opex_fraction")  # yearly operating cost besides energy, as a share of capex
    idle_power_fraction: float = _default("idle_power_fraction")  # an idle GPU's draw, as a share of full power
    utilisation: float = _default("utilisation")  # share of GPU-time allocated
    ettr: float = _default("ettr")  # share of allocated time that does useful work
    mfu: float = _default("mfu")  # model FLOP utilisation of the training run
    run_flop: float = _default("run_flop")
    run_share: float = _default("run_share")  # share of the site the training run gets

    def __post_init__(self) -> None:
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int):
            raise ConfigError(f"gpus={self.gpus!r} must be a whole number")
        if self.gpus < 1:
            raise ConfigError(f"gpus={self.gpus} must be at least 1")
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if name in ("gpus", "gpu_model") or value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name}={value!r} must be a finite number")
        if self.watts is None and self.gpu_model not in GPU_MODELS:
            known = ", ".join(sorted(GPU_MODELS))
            raise ConfigError(f"gpu_model={self.gpu_model!r} is not in the catalogue ({known}); give its watts per GPU")
        _positive(self, "watts", "depreciation_years", "facility_depreciation_years", "run_flop")
        _at_least(self, 0.0, "price_eur_mwh", "capex_eur_per_gpu", "capex_eur_per_mw", "opex_fraction")
        _at_least(self, 1.0, "pue")
        _share(self, "utilisation", "ettr", "mfu", "run_share")
        if not 0.0 <= self.idle_power_fraction <= 1.0:
            raise ConfigError(f"idle_power_fraction={self.idle_power_fraction:g} must be between 0 and 1")
        # Bounds far beyond any real site, so that no figure overflows into inf (a typo, not a plan).
        for name, most in _MOST.items():
            value = getattr(self, name)
            if value is not None and value > most:
                raise ConfigError(f"{name}={value:g} is above {most:g}, beyond any real site")

    @property
    def system_watts(self) -> float:
        if self.watts is not None:
            return float(self.watts)
        return GPU_MODELS[self.gpu_model].system_watts

    @property
    def peak_flops(self) -> float | None:
        """Dense BF16 peak FLOP/s per GPU; None for a model the catalogue does not know."""
        m = GPU_MODELS.get(self.gpu_model)
        return None if m is None else m.bf16_tflops * 1e12


_MOST = {"gpus": 1e9, "watts": 1e6, "pue": 10.0, "price_eur_mwh": 1e5, "capex_eur_per_gpu": 1e8,
         "capex_eur_per_mw": 1e11, "depreciation_years": 100.0, "facility_depreciation_years": 100.0,
         "run_flop": 1e35}  # fmt: skip


def _positive(inputs: PlanInputs, *names: str) -> None:
    for name in names:
        value = getattr(inputs, name)
        if value is not None and not value > 0:
            raise ConfigError(f"{name}={value:g} must be greater than 0")


def _at_least(inputs: PlanInputs, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(inputs, name)
        if value < minimum:
            raise ConfigError(f"{name}={value:g} must be at least {minimum:g}")


def _share(inputs: PlanInputs, *names: str) -> None:
    for name in names:
        value = getattr(inputs, name)
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{name}={value:g} must be a share in (0, 1]: above 0 and at most 1")


@dataclass(frozen=True, slots=True)
class PlanResult:
    inputs: PlanInputs
    watts_per_gpu: float
    it_mw: float
    facility_mw: float
    annual_energy_mwh: float
    annual_energy_cost_eur: float
    capex_gpus_eur: float
    capex_facility_eur: float
    capex_eur: float
    annual_depreciation_eur: float
    annual_opex_eur: float
    tco_per_year_eur: float
    delivered_gpu_hours: float
    cost_per_gpu_hour_eur: float
    run_gpu_hours: float | None  # None where the GPU model's peak FLOP/s is not known
    run_wall_days: float | None
    run_cost_eur: float | None

    def figures(self) -> dict[str, Any]:
        """The results alone, as plain values (no inputs)."""
        out = asdict(self)
        out.pop("inputs")
        return out


def plan(inputs: PlanInputs) -> PlanResult:
    """Size and cost one site for a year (the module docstring defines every figure)."""
    watts = inputs.system_watts
    it_mw = inputs.gpus * watts / 1e6
    facility_mw = it_mw * inputs.pue
    load = inputs.utilisation + (1.0 - inputs.utilisation) * inputs.idle_power_fraction
    energy_mwh = facility_mw * HOURS_PER_YEAR * load
    energy_cost = energy_mwh * inputs.price_eur_mwh
    capex_gpus = inputs.gpus * inputs.capex_eur_per_gpu
    capex_facility = facility_mw * inputs.capex_eur_per_mw
    capex = capex_gpus + capex_facility
    depreciation = capex_gpus / inputs.depreciation_years + capex_facility / inputs.facility_depreciation_years
    opex = capex * inputs.opex_fraction
    tco = depreciation + energy_cost + opex
    delivered = inputs.gpus * HOURS_PER_YEAR * inputs.utilisation * inputs.ettr
    per_hour = tco / delivered
    run_hours = run_days = run_cost = None
    peak = inputs.peak_flops
    if peak is not None:
        run_hours = inputs.run_flop / (peak * inputs.mfu) / 3600.0
        rate = inputs.gpus * inputs.run_share * inputs.utilisation * inputs.ettr  # useful GPU-hours per hour
        run_days = run_hours / rate / 24.0
        run_cost = run_hours * per_hour
    return PlanResult(
        inputs=inputs,
        watts_per_gpu=watts,
        it_mw=it_mw,
        facility_mw=facility_mw,
        annual_energy_mwh=energy_mwh,
        annual_energy_cost_eur=energy_cost,
        capex_gpus_eur=capex_gpus,
        capex_facility_eur=capex_facility,
        capex_eur=capex,
        annual_depreciation_eur=depreciation,
        annual_opex_eur=opex,
        tco_per_year_eur=tco,
        delivered_gpu_hours=delivered,
        cost_per_gpu_hour_eur=per_hour,
        run_gpu_hours=run_hours,
        run_wall_days=run_days,
        run_cost_eur=run_cost,
    )


def describe_inputs(inputs: PlanInputs, given: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each input with its value and where it came from: ``given`` maps the fields someone set to how they set them
    (``--pue``, ``run out/x/summary.json``); every other field is marked a default, with its source."""
    out: dict[str, dict[str, Any]] = {}
    for f in fields(inputs):
        value = getattr(inputs, f.name)
        if f.name == "watts" and value is None:
            value = inputs.system_watts
        if f.name in given:
            out[f.name] = {"value": value, "default": False, "source": given[f.name]}
        else:
            out[f.name] = {"value": value, "default": True, "source": DEFAULTS[f.name].source}
    return out
