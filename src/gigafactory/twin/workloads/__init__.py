"""Workload sources, chosen by a spec string: ``llm:load=0.85`` (synthetic), and trace readers.

Each source takes the site (some generators scale to it), the number of days to cover and a seed, and returns
a :class:`~gigafactory.twin.workload.Workload` plus, when it defines one, its tenant tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gigafactory.core.registry import Registry
from gigafactory.core.spec import Param, Spec, bind_params, parse_spec
from gigafactory.core.tenants import TenantTree
from gigafactory.core.topology import Topology
from gigafactory.twin.workload import Workload
from gigafactory.twin.workloads import llm, philly, pollux, single

__all__ = ["WORKLOADS", "WorkloadSource", "load_workload"]


@dataclass(frozen=True, slots=True)
class WorkloadSource:
    summary: str
    params: Mapping[str, Param]
    build: Callable[..., tuple[Workload, TenantTree | None]]
    reads_file: bool = False  # takes skip_bad_rows


WORKLOADS: Registry[WorkloadSource] = Registry("workload")
WORKLOADS.add("llm", WorkloadSource("synthetic LLM-era workload calibrated to AcmeTrace", llm.PARAMS, llm.generate))
WORKLOADS.add("single", WorkloadSource("one job of N GPUs for H hours", single.PARAMS, single.generate))
WORKLOADS.add("philly", WorkloadSource("the Microsoft Philly trace (2017)", philly.PARAMS, philly.generate, True))
WORKLOADS.add("pollux", WorkloadSource("one rigid Pollux workload (OSDI'21)", pollux.PARAMS, pollux.generate, True))


def load_workload(
    spec: str | Spec, topo: Topology, *, days: float, seed: int, skip_bad_rows: bool = False
) -> tuple[Workload, TenantTree | None]:
    parsed = spec if isinstance(spec, Spec) else parse_spec(spec, what="workload")
    source = WORKLOADS.get(parsed.name)
    kwargs: dict[str, Any] = bind_params(f"workload {parsed.name}", source.params, parsed.params)
    if source.reads_file:
        kwargs["skip_bad_rows"] = skip_bad_rows
    return source.build(topo, days, seed, **kwargs)
