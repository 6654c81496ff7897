"""Built-in site presets, chosen by a spec string such as ``gb200-nvl72:racks=1389``.

* ``gb200-nvl72`` — GB200 NVL72 racks: one rack is one NVLink domain of 18 compute trays (nodes) × 4 GPUs;
  racks are grouped in pods (scalable units) of ``pod_racks`` racks. 1,389 racks are 100,008 GPUs.
* ``hgx-h100`` — 8-GPU HGX H100 nodes; each node is its own NVLink domain; pods of ``pod_nodes`` nodes
  (a DGX SuperPOD scalable unit is 32 nodes).
* ``uniform`` — ``nodes`` × ``gpus`` of one ``model``; each node is a domain, pods of ``pod_nodes`` nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gigafactory.core.errors import ConfigError
from gigafactory.core.hardware import GPU_MODELS
from gigafactory.core.registry import Registry
from gigafactory.core.spec import Param, Spec, bind_params, parse_spec
from gigafactory.core.topology import Topology

__all__ = ["SITE_PRESETS", "SitePreset", "build_site"]

MAX_NODES = 2_000_000


@dataclass(frozen=True, slots=True)
class SitePreset:
    summary: str
    params: Mapping[str, Param]
    build: Callable[..., Topology]


SITE_PRESETS: Registry[SitePreset] = Registry("site preset")


def build_site(spec: str | Spec) -> Topology:
    """Build a :class:`Topology` from ``name:key=value,...``; errors name the bad value and what is allowed."""
    parsed = spec if isinstance(spec, Spec) else parse_spec(spec, what="site")
    preset = SITE_PRESETS.get(parsed.name)
    kwargs: dict[str, Any] = bind_params(f"site {parsed.name}", preset.params, parsed.params)
    return preset.build(name=str(parsed), **kwargs)


def _hierarchy(num_nodes: int, nodes_per_domain: int, domains_per_pod: int) -> tuple[np.ndarray, np.ndarray]:
    node = np.arange(num_nodes, dtype=np.int64)
    domain = node // nodes_per_domain
    return domain, domain // domains_per_pod


def _gb200(name: str, racks: int, pod_racks: int) -> Topology:
    nodes_per_rack = 18
    n = racks * nodes_per_rack
    if n > MAX_NODES:
        raise ConfigError(f"site {name}: {racks} racks is more than this build supports")
    domain, pod = _hierarchy(n, nodes_per_rack, pod_racks)
    names = tuple(f"r{r:04d}-n{k:02d}" for r in range(racks) for k in range(nodes_per_rack))
    return Topology.from_columns(
        name,
        models=("GB200",),
        node_model=np.zeros(n, np.int64),
        node_gpus=np.full(n, 4, np.int64),
        node_cpu=np.full(n, 144_000, np.int64),  # two 72-core Grace CPUs per compute tray
        node_mem=np.full(n, 960 * 1024, np.int64),  # 960 GiB LPDDR5X per tray
        node_domain=domain,
        node_pod=pod,
        node_names=names,
    )


def _hgx(name: str, nodes: int, pod_nodes: int) -> Topology:
    if nodes > MAX_NODES:
        raise ConfigError(f"site {name}: {nodes} nodes is more than this build supports")
    domain, pod = _hierarchy(nodes, 1, pod_nodes)
    return Topology.from_columns(
        name,
        models=("H100",),
        node_model=np.zeros(nodes, np.int64),
        node_gpus=np.full(nodes, 8, np.int64),
        node_cpu=np.full(nodes, 112_000, np.int64),  # 2 × 56 cores (DGX H100)
        node_mem=np.full(nodes, 2048 * 1024, np.int64),
        node_domain=domain,
        node_pod=pod,
        node_names=tuple(f"h{i:05d}" for i in range(nodes)),
    )


def _uniform(name: str, nodes: int, gpus: int, model: str, cpu: int, mem_gib: int, pod_nodes: int) -> Topology:
    if model not in GPU_MODELS:
        raise ConfigError(f"site {name}: unknown GPU model {model!r}; known: {', '.join(sorted(GPU_MODELS))}")
    if nodes > MAX_NODES:
        raise ConfigError(f"site {name}: {nodes} nodes is more than this build supports")
    domain, pod = _hierarchy(nodes, 1, pod_nodes)
    return Topology.from_columns(
        name,
        models=(model,),
        node_model=np.zeros(nodes, np.int64),
        node_gpus=np.full(nodes, gpus, np.int64),
        node_cpu=np.full(nodes, cpu * 1000, np.int64),
        node_mem=np.full(nodes, mem_gib * 1024, np.int64),
        node_domain=domain,
        node_pod=pod,
        node_names=tuple(f"u{i:05d}" for i in range(nodes)),
    )


SITE_PRESETS.add(
    "gb200-nvl72",
    SitePreset(
        "GB200 NVL72 racks (18 nodes × 4 GPUs, one NVLink domain per rack), grouped in pods",
        {
            "racks": Param(int, 1389, minimum=1, help="number of NVL72 racks (1,389 ≈ 100k GPUs)"),
            "pod_racks": Param(int, 8, minimum=1, help="racks per pod (scalable unit)"),
        },
        _gb200,
    ),
)
SITE_PRESETS.add(
    "hgx-h100",
    SitePreset(
        "8-GPU HGX H100 nodes, each its own NVLink domain, grouped in pods",
        {
            "nodes": Param(int, 128, minimum=1, help="number of 8-GPU nodes"),
            "pod_nodes": Param(int, 32, minimum=1, help="nodes per pod (scalable unit)"),
        },
        _hgx,
    ),
)
SITE_PRESETS.add(
    "uniform",
    SitePreset(
        "nodes × GPUs per node of one GPU model",
        {
            "nodes": Param(int, 16, minimum=1, help="number of nodes"),
            "gpus": Param(int, 8, minimum=1, maximum=64, help="GPUs per node"),
            "model": Param(str, "H100", help="GPU model"),
            "cpu": Param(int, 64, minimum=1, help="CPU cores per node"),
            "mem_gib": Param(int, 512, minimum=1, help="memory per node, GiB"),
            "pod_nodes": Param(int, 1_000_000, minimum=1, help="nodes per pod"),
        },
        _uniform,
    ),
)
