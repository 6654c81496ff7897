"""``llm``: a synthetic LLM-era workload, calibrated to the AcmeTrace clusters (NSDI'24; ../shared/data/acme).

What the generator reproduces, and from which published figure:

* **Job sizes.** Most jobs are tiny and a few are huge: the median job holds 1 GPU (Seren and Kalos
  ``med_gpu_num`` = 1), while jobs of 256 GPUs or more are about 4% of jobs and hold most of the GPU time (Kalos:
  4.3% of jobs, 96.3% of GPU time; Seren: jobs of 128+ GPUs hold 71%). Sizes are powers of two up to a sixth of
  the site, so a 100k-GPU site runs 16,384-GPU pre-training gangs.
* **Run times.** Log-normal per size class: debugging and evaluation jobs of minutes (Kalos' median GPU job
  runs about 2 minutes), fine-tuning of hours, pre-training of many hours to two weeks (Seren's longest job ran
  14 days).
* **Outcomes.** About 40% of jobs fail or are cancelled (Kalos: 54% complete, 40% fail, 6% cancelled; Seren
  50/43/8). A failed or cancelled job ends part-way through its planned run, early more often than late.
* **Arrivals.** Poisson, with a diurnal swing, at the rate that makes the *offered load* (GPU-time submitted
  per unit of site capacity and time) equal ``load``.
* **Estimates.** Users ask for a time limit above the planned run: planned × a log-normal factor around 2.
* **Tenants.** ``tenants`` accounts with unequal shares (the largest about four times the smallest); each job
  belongs to one, drawn in proportion to its share.
* **Checkpoints.** Jobs of 64 GPUs or more checkpoint at the Young-Daly interval for the failure rate their nodes
  see, writing for 30 s (under 256 GPUs) or 60 s, and pay 120 s to (re)start; smaller jobs do neither.

Parameters: ``load`` (offered load, default 0.85), ``tenants`` (default 10), ``diurnal`` (amplitude of the
daily swing, 0..0.9, default 0.3), ``model`` (restrict jobs to one GPU model), ``max_gpus`` (the largest size
class; default a sixth of the site, or of a network's largest site). The simulated window is the
experiment's ``days``.
"""

from __future__ import annotations

import math

import numpy as np

from gigafactory.core.errors import ConfigError
from gigafactory.core.spec import Param
from gigafactory.core.tenants import TenantTree
from gigafactory.core.topology import Topology
from gigafactory.twin.workload import CANCELLED, COMPLETED, FAILED, YOUNG_DALY, Workload

__all__ = ["PARAMS", "SIZE_CLASSES", "generate"]

DAY = 86_400.0

# (size in GPUs, share of jobs, median run time in hours, log-normal sigma, cap in hours, P(fail), P(cancel))
SIZE_CLASSES: tuple[tuple[int, float, float, float, float, float, float], ...] = (
    (1, 0.550, 0.10, 1.9, 48, 0.40, 0.06),
    (2, 0.040, 0.15, 1.8, 48, 0.40, 0.06),
    (4, 0.060, 0.20, 1.8, 48, 0.38, 0.06),
    (8, 0.170, 0.30, 1.8, 72, 0.38, 0.06),
    (16, 0.050, 0.8, 1.6, 120, 0.32, 0.08),
    (32, 0.040, 1.0, 1.6, 120, 0.32, 0.08),
    (64, 0.030, 1.2, 1.6, 120, 0.30, 0.08),
    (128, 0.020, 1.5, 1.6, 168, 0.30, 0.08),
    (256, 0.0120, 4.0, 1.5, 336, 0.25, 0.18),
    (512, 0.0090, 5.0, 1.5, 336, 0.25, 0.18),
    (1024, 0.0080, 6.0, 1.5, 336, 0.25, 0.20),
    (2048, 0.0050, 6.0, 1.5, 336, 0.22, 0.22),
    (4096, 0.0035, 6.0, 1.4, 336, 0.22, 0.22),
    (8192, 0.0017, 6.0, 1.4, 336, 0.20, 0.25),
    (16384, 0.0008, 6.0, 1.4, 336, 0.20, 0.25),
)

TENANT_NAMES = (
    "eurollm",
    "openscience",
    "medai",
    "climate-lab",
    "robotics-co",
    "lang-startup",
    "vision-startup",
    "uni-consortium",
    "fintech-ai",
    "public-sector",
    "bio-foundry",
    "auto-ai",
    "energy-ai",
    "edu-ai",
    "space-ai",
    "legal-ai",
)

PARAMS = {
    "load": Param(float, 0.85, minimum=0.0, exclusive_minimum=True, maximum=5.0, help="offered load"),
    "tenants": Param(int, 10, minimum=1, maximum=64, help="number of tenants"),
    "diurnal": Param(float, 0.3, minimum=0.0, maximum=0.9, help="amplitude of the daily swing"),
    "model": Param(str, "", help="restrict jobs to this GPU model"),
    "max_gpus": Param(int, 0, minimum=0, help="largest job size class (0: a sixth of the site)"),
}


def tenant_tree(count: int) -> tuple[tuple[str, ...], TenantTree]:
    names = tuple(TENANT_NAMES[i] if i < len(TENANT_NAMES) else f"tenant-{i:02d}" for i in range(count))
    # Unequal shares: 4, 3.6, ..., about 1 for the last; a few big funders and a long tail.
    shares = {n: round(4.0 - 3.0 * i / max(count - 1, 1), 2) for i, n in enumerate(names)}
    return names, TenantTree.flat(shares)


def _size_table(topo: Topology, max_gpus: int = 0) -> np.ndarray:
    """The size classes up to ``max_gpus`` (0: a sixth of the site), their job shares renormalised."""
    cap = max_gpus if max_gpus > 0 else max(1, topo.num_gpus // 6)
    rows = np.array([c for c in SIZE_CLASSES if c[0] <= cap or c[0] == 1], dtype=np.float64)
    rows[:, 1] /= rows[:, 1].sum()
    return rows


def generate(
    topo: Topology,
    days: float,
    seed: int,
    *,
    load: float = 0.85,
    tenants: int = 10,
    diurnal: float = 0.3,
    model: str = "",
    max_gpus: int = 0,
) -> tuple[Workload, TenantTree]:
    if not days > 0:
        raise ConfigError(f"workload llm: days={days} must be greater than 0")
    model_sets: tuple[tuple[str, ...], ...] = ()
    if model:
        if model not in topo.models:
            raise ConfigError(f"workload llm: model={model!r} is not on this site; it has {', '.join(topo.models)}")
        model_sets = ((model,),)
    rng = np.random.default_rng([seed, 0x11A])
    table = _size_table(topo, max_gpus)
    sizes, shares, medians, sigmas, caps, p_fail, p_cancel = table.T
    # Mean planned GPU-hours per job, by class, for the arrival rate that gives the offered load.
    mean_hours = np.array(
        [_capped_lognormal_mean(math.log(m), s, c) for m, s, c in zip(medians, sigmas, caps, strict=True)]
    )
    # Failed and cancelled jobs run part of their plan: E[U^1.5] = 0.4 of it.
    early = 1.0 - (p_fail + p_cancel) * (1.0 - 0.4)
    gpu_hours_per_job = float((shares * sizes * mean_hours * early).sum())
    capacity_gpu_hours = topo.num_gpus * days * 24.0
    n = max(1, int(rng.poisson(load * capacity_gpu_hours / gpu_hours_per_job)))
    submit = _arrivals(rng, n, days * DAY, diurnal)
    cls = rng.choice(len(sizes), size=n, p=shares)
    gpus = sizes[cls].astype(np.int64)
    planned = np.exp(rng.normal(np.log(medians[cls] * 3600.0), sigmas[cls]))
    planned = np.clip(planned, 30.0, caps[cls] * 3600.0)
    u = rng.random(n)
    outcome = np.full(n, COMPLETED, np.int8)
    outcome[u < p_fail[cls] + p_cancel[cls]] = CANCELLED
    outcome[u < p_fail[cls]] = FAILED
    runtime = planned.copy()
    cut = outcome != COMPLETED
    runtime[cut] = np.maximum(planned[cut] * rng.random(int(cut.sum())) ** 1.5, 10.0)
    estimate = np.ceil(planned * np.exp(rng.normal(math.log(2.0), 0.5, n)).clip(1.1, 20.0) / 60.0) * 60.0
    names, tree = tenant_tree(tenants)
    weights = np.array([tree.normalised_share(t) for t in names])
    tenant = rng.choice(len(names), size=n, p=weights / weights.sum()).astype(np.int32)
    per_node_cpu = int(topo.node_cpu.max()) // max(topo.max_gpus_per_node, 1)
    per_node_mem = int(topo.node_mem.max()) // max(topo.max_gpus_per_node, 1)
    wl = Workload.build(
        f"llm:load={load:g},tenants={tenants}" + (f",model={model}" if model else ""),
        {
            "submit_s": submit,
            "gpus": gpus,
            "cpu_milli": gpus * (per_node_cpu // 2),
            "mem_mib": gpus * (per_node_mem // 2),
            "runtime_s": runtime,
            "estimate_s": estimate,
            "outcome": outcome,
            "tenant": tenant,
            "model_set": np.full(n, 0 if model else -1, np.int16),
            "ckpt_s": np.where(gpus >= 64, YOUNG_DALY, np.nan),
            "ckpt_write": np.where(gpus >= 256, 60.0, np.where(gpus >= 64, 30.0, 0.0)),
            "restart_s": np.where(gpus >= 64, 120.0, 0.0),
        },
        tenants=names,
        model_sets=model_sets,
        target_load=load,
        outcome_model="llm: AcmeTrace's shares of jobs that fail or are cancelled by themselves, per size class",
    )
    return wl, tree


def _arrivals(rng: np.random.Generator, n: int, window_s: float, diurnal: float) -> np.ndarray:
    """``n`` arrival times in ``[0, window_s)`` from a Poisson process with a daily sinusoidal rate."""
    if diurnal == 0:
        return np.sort(rng.random(n) * window_s)
    out = np.empty(0)
    while out.size < n:
        t = rng.random(2 * n) * window_s
        # Peak in the working day (15:00), trough at night.
        keep = rng.random(t.size) * (1 + diurnal) < 1 + diurnal * np.cos(2 * np.pi * (t / DAY - 15 / 24))
        out = np.concatenate([out, t[keep]])
    return np.sort(out[:n])


def _capped_lognormal_mean(mu: float, sigma: float, cap_hours: float) -> float:
    """E[min(X, cap)] in hours for X log-normal(mu, sigma) with median in hours; exact, by the closed form."""
    from math import erf, exp, log, sqrt

    def phi(x: float) -> float:
        return 0.5 * (1 + erf(x / sqrt(2)))

    c = log(cap_hours)
    below = exp(mu + sigma**2 / 2) * phi((c - mu - sigma**2) / sigma)
    above = cap_hours * (1 - phi((c - mu) / sigma))
    return below + above
