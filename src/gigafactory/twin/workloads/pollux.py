"""``pollux:FILE[,restart_s=30]``: one rigid workload of the Pollux artifact (OSDI'21; ../shared/data/pollux-rigid).

Columns ``name, time, application, num_replicas, batch_size, iso_packed``: each job asks for ``num_replicas``
GPUs and takes ``iso_packed`` seconds when alone on tightly packed GPUs. Estimates are exact. ``restart_s``
(default 30 s, as the Pollux simulator charges Tiresias) is paid on every start and restart. ``iso_packed`` is
the wall time of an uninterrupted run in the Pollux simulator, which charges ``restart_s`` on the first start
too (an uncontended job's published JCT is its wait for the next 60 s round plus ``iso_packed``, to the
second), so a job works ``iso_packed - restart_s`` seconds and its first start brings it back to ``iso_packed``.
With ``spread`` (the default) a job may take free GPUs on any nodes, as Pollux places replicas;
``spread=false`` makes it a gang.
"""

from __future__ import annotations

import numpy as np

from gigafactory.core.errors import ConfigError, TraceError
from gigafactory.core.spec import Param
from gigafactory.core.tenants import TenantTree
from gigafactory.core.topology import Topology
from gigafactory.twin.traces.table import as_float, as_int, as_str, read_table
from gigafactory.twin.workload import Workload

__all__ = ["PARAMS", "generate", "read_pollux"]

PARAMS = {
    "": Param(str, "", help="path of a Pollux workload CSV"),
    "path": Param(str, "", help="path of a Pollux workload CSV"),
    "restart_s": Param(float, 30.0, minimum=0.0, help="seconds every (re)start costs"),
    "spread": Param(bool, True, help="a job may take free GPUs on any nodes (as Pollux places replicas)"),
}


def read_pollux(
    path: str, *, restart_s: float = 30.0, spread: bool = True, skip_bad_rows: bool = False
) -> tuple[Workload, int]:
    def check(row: dict[str, object]) -> str | None:
        if int(row["num_replicas"]) < 1:  # type: ignore[call-overload]
            return "num_replicas must be at least 1"
        if not float(row["iso_packed"]) > restart_s:  # type: ignore[arg-type]
            return f"iso_packed must be more than restart_s ({restart_s:g} s), which it includes"
        if float(row["time"]) < 0:  # type: ignore[arg-type]
            return "time must not be negative"
        return None

    table = read_table(
        path,
        {"name": as_str, "time": as_float, "num_replicas": as_int, "iso_packed": as_float},
        {"application": as_str, "batch_size": as_int},
        skip_bad_rows=skip_bad_rows,
        validate=check,
    )
    if not len(table):
        raise TraceError(path, "no jobs")
    wall = np.asarray(table.columns["iso_packed"], dtype=np.float64)
    runtime = wall - restart_s  # the first start's restart_s is part of iso_packed
    wl = Workload.build(
        f"pollux:{path}",
        {
            "submit_s": table.columns["time"],
            "gpus": table.columns["num_replicas"],
            "runtime_s": runtime,
            "estimate_s": wall,
            "restart_s": np.full(runtime.size, restart_s),
            "gang": np.full(runtime.size, 0 if spread else 1),
        },
        skipped_rows=table.skipped,
    )
    return wl, table.skipped


def generate(
    topo: Topology, days: float, seed: int, *, path: str = "", restart_s: float = 30.0, spread: bool = True,
    skip_bad_rows: bool = False, **rest: str,
) -> tuple[Workload, TenantTree | None]:  # fmt: skip
    file = rest.pop("", "") or path
    if not file:
        raise ConfigError("workload pollux needs a path: pollux:FILE")
    wl, _ = read_pollux(file, restart_s=restart_s, spread=spread, skip_bad_rows=skip_bad_rows)
    return wl, None
