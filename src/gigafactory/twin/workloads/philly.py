"""``philly:PATH[,from=YYYY-MM-DD,to=YYYY-MM-DD]``: the Microsoft Philly trace (2017), as processed by the Pollux
artifact (columns ``timestamp, duration, num_gpus, gpu_time, cluster``; ../shared/data/philly).

Rows are sorted by submission time (the file is not), exact duplicates are kept as distinct jobs, and
submission times count from the first job kept. ``from``/``to`` keep the jobs submitted on those days, both
included. Each virtual cluster (``cluster``) becomes a tenant, all with equal shares. The trace has no user
estimates: jobs' estimates are their durations (``estimate=exact``, the usual assumption), or none
(``estimate=none``). A malformed row is an error naming the line, unless ``--skip-bad-rows``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from gigafactory.core.errors import ConfigError, TraceError
from gigafactory.core.spec import Param
from gigafactory.core.tenants import TenantTree
from gigafactory.core.topology import Topology
from gigafactory.twin.traces.table import as_float, as_int, as_str, read_table
from gigafactory.twin.workload import Workload

__all__ = ["PARAMS", "generate", "read_philly"]

PARAMS = {
    "": Param(str, "", help="path of philly.csv"),
    "path": Param(str, "", help="path of philly.csv"),
    "from": Param(str, "", help="first submission day kept, YYYY-MM-DD"),
    "to": Param(str, "", help="last submission day kept, YYYY-MM-DD"),
    "estimate": Param(str, "exact", help="exact or none"),
}


def _timestamp(text: str) -> float:
    # fromisoformat is C and ten times faster than strptime, but takes more forms: accept only this one.
    if len(text) != 19 or text[10] != " " or text[4] != "-" or text[13] != ":":
        raise ValueError(f"{text!r} is not a time like 2017-10-09 07:01:55")
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is not a time like 2017-10-09 07:01:55") from None


def _day(name: str, text: str) -> float:
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()
    except ValueError:
        raise ConfigError(f"workload philly: {name}={text!r} is not a day like 2017-10-01") from None


def read_philly(
    path: str, *, start: str = "", end: str = "", estimate: str = "exact", skip_bad_rows: bool = False
) -> tuple[Workload, TenantTree, int]:
    if estimate not in ("exact", "none"):
        raise ConfigError(f"workload philly: estimate={estimate!r}; allowed: exact, none")

    def check(row: dict[str, object]) -> str | None:
        if not float(row["duration"]) > 0:  # type: ignore[arg-type]
            return "duration must be positive"
        if int(row["num_gpus"]) < 1:  # type: ignore[call-overload]
            return "num_gpus must be at least 1"
        return None

    table = read_table(
        path,
        {"timestamp": _timestamp, "duration": as_float, "num_gpus": as_int, "cluster": as_str},
        {"gpu_time": as_float},
        skip_bad_rows=skip_bad_rows,
        validate=check,
    )
    if not len(table):
        raise TraceError(path, "no jobs")
    ts = np.asarray(table.columns["timestamp"], dtype=np.float64)
    keep = np.ones(ts.size, np.bool_)
    if start:
        keep &= ts >= _day("from", start)
    if end:
        keep &= ts < _day("to", end) + timedelta(days=1).total_seconds()
    if not keep.any():
        raise ConfigError(
            f"workload philly: no job was submitted between {start or 'the start'} and {end or 'the end'}"
        )
    idx = np.flatnonzero(keep)
    clusters = [table.columns["cluster"][i] for i in idx]
    names = sorted(set(clusters))
    code = {c: k for k, c in enumerate(names)}
    duration = np.asarray(table.columns["duration"], dtype=np.float64)[idx]
    tenants = tuple(f"vc-{c}" for c in names)
    wl = Workload.build(
        "philly" + (f":from={start}" if start else "") + (f",to={end}" if end else ""),
        {
            "submit_s": ts[idx] - ts[idx].min(),
            "gpus": np.asarray(table.columns["num_gpus"], dtype=np.int64)[idx],
            "runtime_s": duration,
            "estimate_s": duration if estimate == "exact" else np.full(idx.size, np.nan),
            "tenant": np.array([code[c] for c in clusters], dtype=np.int32),
        },
        tenants=tenants,
        skipped_rows=table.skipped,
    )
    return wl, TenantTree.flat(dict.fromkeys(tenants, 1.0)), table.skipped


def generate(
    topo: Topology,
    days: float,
    seed: int,
    *,
    path: str = "",
    estimate: str = "exact",
    skip_bad_rows: bool = False,
    **window: str,
) -> tuple[Workload, TenantTree | None]:
    file = window.pop("", "") or path
    if not file:
        raise ConfigError("workload philly needs a path: philly:PATH[,from=YYYY-MM-DD,to=YYYY-MM-DD]")
    wl, tree, _ = read_philly(
        file, start=window.get("from", ""), end=window.get("to", ""), estimate=estimate, skip_bad_rows=skip_bad_rows
    )
    return wl, tree
