"""Measurement windows: the whole run, and the steady state between warm-up and drain.

A run's whole-run figures mix three phases: the ramp-up while the site fills, the steady state while jobs keep
arriving, and the drain after the last arrival, when the last big jobs run alone. Planners compare policies on the
steady state, as simulation studies do. The **steady-state window** is, by default:

* from when the site first filled (``FILL`` of its GPUs allocated) to the last arrival;
* if the site never filled (a light load), from the end of the warm-up that the MSER-5 rule finds in the hourly
  utilisation, to the last arrival;
* or what ``--window FROM:TO`` (days after the first submission) says.

Each window reports the same figures: utilisation, JCT and queueing (of the jobs submitted in it), bounded
slowdown by job-size class, per-tenant queueing, and fairness against demand-capped entitlements
(:mod:`gigafactory.report.fairness`), in hourly and daily sub-windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gigafactory.core.errors import ConfigError
from gigafactory.core.tenants import TenantTree
from gigafactory.report.fairness import entitlement, jain, mser5
from gigafactory.twin.metrics import REJECTED, UNFINISHED, Metrics, binned_mean
from gigafactory.twin.workload import Workload

__all__ = ["FILL", "SIZE_CLASSES", "Jobs", "Window", "measure", "parse_window", "share_series", "steady_window"]

FloatArray = npt.NDArray[np.float64]
FILL = 0.9  # the share of GPUs allocated at which the site counts as full
SLOWDOWN_FLOOR_S = 10.0  # bounded slowdown: runs shorter than this count as this long
# Job-size classes for slowdown, by GPUs asked for (upper bounds, inclusive).
SIZE_CLASSES = ((1, "1"), (8, "2-8"), (64, "9-64"), (512, "65-512"), (4096, "513-4096"), (np.inf, ">4096"))
HOUR, DAY = 3600.0, 86_400.0


@dataclass(frozen=True)
class Jobs:
    """What the measures need of a run's jobs, besides the metrics: one entry per job, in workload order."""

    origin: float  # the first submission: window days count from it
    submit_s: FloatArray
    gpus: FloatArray  # GPU equivalents (a fractional GPU counts as its fraction)
    tenant: npt.NDArray[np.integer[Any]]  # index into ``names``
    names: tuple[str, ...]
    tree: TenantTree | None
    # (from, to, step) -> (the metrics, their grid): the whole run's grid serves its measures and its share plot
    grids: dict[tuple[float, float, float], tuple[Any, Any]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, workload: Workload, tree: TenantTree | None) -> Jobs:
        origin = float(workload.submit_s[0]) if len(workload) else 0.0
        return cls(origin, workload.submit_s, workload.gpu_equivalent, workload.tenant, tuple(workload.tenants), tree)


@dataclass(frozen=True)
class Window:
    from_s: float
    to_s: float
    rule: str

    def describe(self, origin: float) -> dict[str, Any]:
        return {
            "from_s": round(self.from_s, 3),
            "to_s": round(self.to_s, 3),
            "from_day": round((self.from_s - origin) / DAY, 3),
            "to_day": round((self.to_s - origin) / DAY, 3),
            "rule": self.rule,
        }


def parse_window(text: str) -> tuple[float, float]:
    """``FROM:TO`` in days after the first submission, e.g. ``2:14`` or ``0.5:10``."""
    lo, sep, hi = text.partition(":")
    try:
        a, b = float(lo), float(hi)
    except ValueError:
        raise ConfigError(f"window {text!r}: give FROM:TO in days after the first submission, e.g. 2:14") from None
    if not sep or not (np.isfinite(a) and np.isfinite(b)):
        raise ConfigError(f"window {text!r}: give FROM:TO in days after the first submission, e.g. 2:14")
    if a < 0 or b <= a:
        raise ConfigError(f"window {text!r}: FROM must be at least 0 and below TO")
    if b - a < 1 / 24:
        raise ConfigError(f"window {text!r}: shorter than an hour; a window that short measures nothing")
    return a, b


def steady_window(met: Metrics, start: float, last_arrival: float, stop: float) -> Window:
    """The default steady-state window (see the module docstring)."""
    t = np.frombuffer(met._t_alloc, dtype=np.float64)
    level = np.cumsum(np.frombuffer(met._d_alloc, dtype=np.float64))
    full = np.flatnonzero((level >= FILL * met.num_gpus - 1e-9) & (t < last_arrival))
    if full.size:
        return Window(float(t[full[0]]), last_arrival, f"from when the site first filled ({FILL:.0%} of GPUs "
                      "allocated) to the last arrival")  # fmt: skip
    width = HOUR * max(1, math.ceil((last_arrival - start) / HOUR / MAX_BINS))  # hourly, unless years long
    hours = np.arange(start, last_arrival + width, width)
    if hours.size >= 3:
        util = binned_mean(t, np.frombuffer(met._d_alloc, dtype=np.float64), hours)
        cut = mser5(util)
        begin = float(hours[cut])
        if begin < last_arrival:
            return Window(begin, last_arrival, "from the end of warm-up (MSER-5 on hourly utilisation; the site "
                          "never filled) to the last arrival")  # fmt: skip
    return Window(start, stop, "the whole run: arrivals stopped before a steady state could be told")


def given_window(days: tuple[float, float], start: float, stop: float) -> Window:
    a, b = start + days[0] * DAY, start + days[1] * DAY
    if b > stop + 1e-6:
        end = math.floor((stop - start) / DAY * 1e4) / 1e4  # rounded down: a window up to it fits
        raise ConfigError(f"window {days[0]:g}:{days[1]:g}: the run ended at day {end:.4f}; give a window inside it")
    return Window(a, b, f"given: days {days[0]:g} to {days[1]:g} after the first submission")


def measure(met: Metrics, window: Window, jobs: Jobs) -> dict[str, Any]:
    """Every windowed figure of ``met`` over ``window``."""
    a, b = window.from_s, window.to_s
    submit_s, gpus, tenant = jobs.submit_s, jobs.gpus, jobs.tenant
    inside = (submit_s >= a) & (submit_s < b) if b > a else np.zeros(submit_s.size, dtype=bool)
    ran = ~np.isnan(met.first_start)
    ended = ran & (met.state != UNFINISHED) & (met.state != REJECTED)
    jct = met.end - submit_s
    wait = met.first_start - submit_s
    out: dict[str, Any] = {
        "window": window.describe(jobs.origin),
        "utilisation": round(met.utilisation(a, b), 6),
        "jobs_submitted": int(inside.sum()),
        **_stats("jct_s", jct[inside & ended]),
        **_stats("queue_s", wait[inside & ran]),
        "slowdown": _slowdown(met, inside & ended, jct, gpus),
    }
    fair = _fairness(met, a, b, jobs)
    out["fairness"] = fair.pop("_overall")
    for k, name in enumerate(jobs.names):
        mine = inside & (tenant == k)
        fair[name].update({"jobs_submitted": int(mine.sum()), **_stats("queue_s", wait[mine & ran])})
    out["tenants"] = fair
    return out


def _stats(what: str, values: FloatArray) -> dict[str, float | None]:
    if values.size == 0:
        return {f"avg_{what}": None, f"p50_{what}": None, f"p99_{what}": None}
    return {
        f"avg_{what}": round(float(values.mean()), 3),
        f"p50_{what}": round(float(np.percentile(values, 50)), 3),
        f"p99_{what}": round(float(np.percentile(values, 99)), 3),
    }


def _slowdown(met: Metrics, chosen: npt.NDArray[np.bool_], jct: FloatArray, gpus: FloatArray) -> dict[str, Any]:
    """Bounded slowdown, JCT / max(time spent running, 10 s), per job-size class."""
    out: dict[str, Any] = {}
    lower = 0.0
    for upper, label in SIZE_CLASSES:
        sel = chosen & (gpus > lower) & (gpus <= upper)
        lower = upper
        if not sel.any():
            continue
        slow = jct[sel] / np.maximum(met.run_s[sel], SLOWDOWN_FLOOR_S)
        out[label] = {
            "jobs": int(sel.sum()),
            "mean": round(float(slow.mean()), 4),
            "p50": round(float(np.percentile(slow, 50)), 4),
            "p99": round(float(np.percentile(slow, 99)), 4),
        }
    return out


@dataclass(frozen=True)
class _Grid:
    """Per-tenant received and entitled GPUs, as means over fine bins of a window."""

    edges: FloatArray
    received: FloatArray  # [bins, tenants]
    entitled: FloatArray  # [bins, tenants]

    @property
    def width(self) -> FloatArray:
        return np.diff(self.edges)


def _grid(met: Metrics, a: float, b: float, jobs: Jobs, step: float) -> _Grid | None:
    hit = jobs.grids.get((a, b, step))
    if hit is not None and hit[0] is met:
        grid: _Grid | None = hit[1]
        return grid
    grid = _grid_of(met, a, b, jobs, step)
    jobs.grids[(a, b, step)] = (met, grid)
    return grid


def _grid_of(met: Metrics, a: float, b: float, jobs: Jobs, step: float) -> _Grid | None:
    submit_s, gpus, tenant, names = jobs.submit_s, jobs.gpus, jobs.tenant, jobs.names
    n = len(names)
    t_alloc = np.frombuffer(met._t_alloc, dtype=np.float64)
    d_alloc = np.frombuffer(met._d_alloc, dtype=np.float64)
    j_alloc = np.frombuffer(met._j_alloc, dtype=np.int64)
    if b <= a or j_alloc.size != t_alloc.size:
        return None
    edges = np.append(np.arange(a, b, step), b)
    who = tenant[j_alloc] if j_alloc.size else np.zeros(0, dtype=np.int64)
    received = np.stack([binned_mean(t_alloc[who == k], d_alloc[who == k], edges) for k in range(n)], axis=1)
    # Demand: a job asks for its GPUs from its submission until its final end (or for ever, if it never ended).
    ends = np.isfinite(met.end)
    times = np.concatenate([submit_s, met.end[ends]])
    deltas = np.concatenate([gpus, -gpus[ends]])
    owner = np.concatenate([tenant, tenant[ends]])
    order = np.argsort(times, kind="stable")
    times, deltas, owner = times[order], deltas[order], owner[order]
    demand = np.stack([binned_mean(times[owner == k], deltas[owner == k], edges) for k in range(n)], axis=1)
    t_cap = np.concatenate([[min(jobs.origin, a)], np.frombuffer(met._t_cap, dtype=np.float64)])
    d_cap = np.concatenate([[float(met.num_gpus)], np.frombuffer(met._d_cap, dtype=np.float64)])
    capacity = binned_mean(t_cap, d_cap, edges)
    return _Grid(edges, received, entitlement(capacity, demand, names, jobs.tree))


MAX_BINS = 50_000


def _step(span: float) -> float:
    """Fine bins of 5 minutes; coarser (a divisor of a day, then whole days) only for runs so long that there would
    be more than ``MAX_BINS``."""
    for w in (300.0, 900.0, HOUR, 4 * HOUR, DAY):
        if span / w <= MAX_BINS:
            return w
    return DAY * math.ceil(span / MAX_BINS / DAY)


def _fairness(met: Metrics, a: float, b: float, jobs: Jobs) -> dict[str, Any]:
    names = jobs.names
    step = _step(b - a)
    grid = _grid(met, a, b, jobs, step)
    if grid is None:
        return {"_overall": None, **{name: {} for name in names}}
    w = grid.width[:, None]
    got = (grid.received * w).sum(axis=0)
    owed = (grid.entitled * w).sum(axis=0)
    gap = np.maximum(grid.entitled - grid.received, 0.0)  # GPUs a tenant was owed and did not hold
    excess = np.maximum(grid.received - grid.entitled, 0.0).sum(axis=1, keepdims=True)  # held beyond entitlement
    # Of a tenant's gap, the part other tenants held in its place (shared in proportion to the gaps); the rest stood
    # idle while it waited (fragmentation, a reservation for a big job, GPUs its jobs could not use).
    taken = np.divide(gap * np.minimum(excess, gap.sum(axis=1, keepdims=True)), gap.sum(axis=1, keepdims=True),
                      out=np.zeros_like(gap), where=gap.sum(axis=1, keepdims=True) > 0)  # fmt: skip
    short = (gap * w).sum(axis=0)
    by_others = (taken * w).sum(axis=0)
    share_got = got / got.sum() if got.sum() > 0 else np.zeros_like(got)
    share_owed = owed / owed.sum() if owed.sum() > 0 else np.zeros_like(owed)
    overall: dict[str, Any] = {
        "deviation": round(float(np.abs(share_got - share_owed).sum()), 6),
        "owed_not_received_gpu_h": round(float(short.sum()) / HOUR, 3),
        "taken_by_others_gpu_h": round(float(by_others.sum()) / HOUR, 3),
        "entitlement": "demand-capped max-min down the tenant tree",
    }
    for label, size in (("hourly", HOUR), ("daily", DAY)):
        windows = _sub_windows(grid, size, step)
        if windows is None:
            overall[label] = None
            continue
        r, e = windows
        dev = np.abs(_shares(r) - _shares(e)).sum(axis=1)
        used = (r.sum(axis=1) > 0) & (e.sum(axis=1) > 0)
        j = jain(r, e)
        j = j[~np.isnan(j)]
        overall[label] = {
            "windows": int(r.shape[0]),
            "deviation_mean": round(float(dev[used].mean()), 6) if used.any() else None,
            "jain_mean": round(float(j.mean()), 6) if j.size else None,
            "jain_min": round(float(j.min()), 6) if j.size else None,
        }
    tenants = {
        name: {
            "gpu_hours": round(float(got[k]) / HOUR, 3),
            "share_received": round(float(share_got[k]), 6),
            "share_entitled": round(float(share_owed[k]), 6),
            "deviation": round(float(share_got[k] - share_owed[k]), 6),
            "owed_not_received_gpu_h": round(float(short[k]) / HOUR, 3),
            "taken_by_others_gpu_h": round(float(by_others[k]) / HOUR, 3),
        }
        for k, name in enumerate(names)
    }
    return {"_overall": overall, **tenants}


def _sub_windows(grid: _Grid, size: float, step: float) -> tuple[FloatArray, FloatArray] | None:
    """GPU-seconds received and entitled per tenant in each whole ``size`` window of the grid; None if the grid is
    too coarse or the window too short for one."""
    per = round(size / step)
    if per < 1 or size % step:
        return None
    full = (grid.edges.size - 1) // per
    if full < 1:
        return None
    k = full * per
    w = grid.width[:k, None]
    r = (grid.received[:k] * w).reshape(full, per, -1).sum(axis=1)
    e = (grid.entitled[:k] * w).reshape(full, per, -1).sum(axis=1)
    return r, e


def _shares(x: FloatArray) -> FloatArray:
    total = x.sum(axis=1, keepdims=True)
    return np.asarray(np.divide(x, total, out=np.zeros_like(x), where=total > 0))


def share_series(met: Metrics, start: float, stop: float, jobs: Jobs) -> dict[str, Any] | None:
    """Per-tenant received and entitled shares per day (per hour for runs under three days), and each period's
    Jain's index and fairness deviation, for plots."""
    size = HOUR if stop - start < 3 * DAY else DAY
    step = _step(stop - start)
    if size % step:
        size = step
    grid = _grid(met, start, stop, jobs, step)
    if grid is None:
        return None
    per = max(round(size / step), 1)
    bins = grid.edges.size - 1
    groups = np.arange(bins) // per
    count = int(groups[-1]) + 1 if bins else 0
    w = grid.width[:, None]
    r = np.zeros((count, grid.received.shape[1]))
    e = np.zeros_like(r)
    np.add.at(r, groups, grid.received * w)
    np.add.at(e, groups, grid.entitled * w)
    return {
        "t_s": grid.edges[:-1:per].tolist(),
        "width_s": size,
        "received": _shares(r).T.tolist(),
        "entitled": _shares(e).T.tolist(),
        "jain": [None if np.isnan(x) else round(float(x), 6) for x in jain(r, e)],
        "deviation": np.abs(_shares(r) - _shares(e)).sum(axis=1).round(6).tolist(),
        "tenants": list(jobs.names),
    }
