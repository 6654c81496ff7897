"""Workload families of the FGD paper (ATC'23 §6.3–6.6), generated from the default openb trace.

The paper varies one kind of pod at a time and measures how each policy copes. Its authors published the family
members as files (``alibaba/clusterdata``, ``cluster-trace-gpu-v2023/csv``: the ``gpushare``, ``multigpu``,
``gpuspec`` and ``cpu`` pod lists, "sampled from the default one, emphasizing certain types of workloads"); the
x-axes of their plots (``hkust-adsl/kubernetes-scheduler-simulator``, ``experiments/plot/plot_openb_*_bar.py``)
say what each level measures. Only five of those files are in the shared data, so this module generates any
member from the default trace, with the same measures:

================  ======================================================  ======================  ==============
kind              the level is the share of ...                           paper's levels          default trace
================  ======================================================  ======================  ==============
``gpushare``      GPU requests made by GPU-sharing pods (< 1 GPU)         0.2, 0.4 … 1.0          0.285
``multigpu``      GPU requests made by multi-GPU pods (≥ 2 GPUs)          0.2, 0.3, 0.4, 0.5      0.073
``gpuspec``       GPU requests made by pods restricted to GPU models      0.1, 0.2, 0.25, 0.33    0
``cpu``           pods that ask for no GPU, by count                      0.05, 0.1, 0.2, 0.25    0.133
================  ======================================================  ======================  ==============

**How a member is built** (pure functions of the pod table and a seed):

* ``gpushare`` and ``multigpu``: the GPU pods are split into the kind and the rest. Each side is brought to its
  target GPU requests (``level × total`` and ``(1 - level) × total``, the total GPU requests of the trace held):
  a side above its target keeps a random subset of its pods; a side below keeps all and gains copies of its own
  pods drawn uniformly with replacement. So each kind keeps its own mix of sizes, CPU and memory. CPU-only pods
  are untouched. (The published files hold the pod count instead for ``gpushare`` and add pods for
  ``multigpu``; holding GPU requests keeps members comparable, and the experiment tunes every member to 130% of
  the cluster anyway.)
* ``gpuspec``: GPU pods, in random order, get a GPU-model constraint until constrained pods make ``level`` of
  the GPU requests. Constraints are drawn from the ones the published ``gpuspec10`` file uses, with their
  frequencies (:data:`SPECS`), and only among those some node of the cluster could host the pod under.
* ``cpu``: CPU-only pods are subsampled, or resampled with replacement, until they are ``level`` of all pods;
  the GPU pods are untouched.

Kept pods keep their names; a copy is named ``<original>~<kind><k>``. A member is written
``family:KIND=LEVEL`` (``family:multigpu=0.3``); :func:`parse_family` checks it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gigafactory.core.errors import ConfigError
from gigafactory.core.topology import Topology
from gigafactory.twin.traces.openb import PodList, spec_models

__all__ = ["PREFIX", "SPECS", "Family", "FamilyKind", "generate", "is_family", "kind_share", "parse_family"]

PREFIX = "family:"

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# GPU-model constraints and how often each appears among the GPU pods of the published openb_pod_list_gpuspec10
# (alibaba/clusterdata, CC BY 4.0), duplicate models within a constraint merged.
SPECS: tuple[tuple[str, int], ...] = (
    ("T4", 355),
    ("G2", 120),
    ("P100", 100),
    ("V100M16|V100M32", 61),
    ("P100|V100M16|V100M32", 26),
    ("G2|P100|T4|V100M16|V100M32", 20),
    ("G3", 17),
    ("A10|G2|T4|V100M16|V100M32", 9),
    ("P100|V100M16", 6),
    ("P100|T4|V100M16|V100M32", 5),
    ("V100M16", 4),
    ("V100M32", 4),
    ("A10|G2|P100|T4|V100M16|V100M32", 3),
    ("T4|V100M16|V100M32", 1),
    ("A10|T4", 1),
)


class FamilyKind(enum.Enum):
    GPUSHARE = "gpushare"
    MULTIGPU = "multigpu"
    GPUSPEC = "gpuspec"
    CPU = "cpu"


@dataclass(frozen=True, slots=True)
class Family:
    kind: FamilyKind
    level: float

    @property
    def name(self) -> str:
        """``family:multigpu=0.3``: the canonical spelling, used as the workload's name in results."""
        return f"{PREFIX}{self.kind.value}={self.level:g}"

    @property
    def paper_name(self) -> str:
        """The published file's suffix: ``multigpu30``, ``gpushare100``, ``gpuspec33``, ``cpu050``."""
        if self.kind is FamilyKind.CPU:
            return f"cpu{round(self.level * 1000):03d}"
        return f"{self.kind.value}{round(self.level * 100)}"


def is_family(name: str) -> bool:
    return name.strip().startswith(PREFIX)


def parse_family(text: str) -> Family:
    """``family:KIND=LEVEL`` → :class:`Family`; ``ConfigError`` naming the bad part otherwise."""
    body = text.strip().removeprefix(PREFIX)
    kinds = ", ".join(k.value for k in FamilyKind)
    kind_text, eq, level_text = body.partition("=")
    if not eq:
        raise ConfigError(f"workload {text!r}: write family:KIND=LEVEL, e.g. family:multigpu=0.3 (KIND: {kinds})")
    try:
        kind = FamilyKind(kind_text.strip())
    except ValueError:
        raise ConfigError(f"workload {text!r}: unknown family {kind_text.strip()!r}; known: {kinds}") from None
    try:
        level = float(level_text)
    except ValueError:
        raise ConfigError(f"workload {text!r}: level {level_text.strip()!r} is not a number") from None
    upper = 1.0 if kind is not FamilyKind.CPU else 0.95
    if not (math.isfinite(level) and 0.0 <= level <= upper):
        raise ConfigError(f"workload {text!r}: level {level_text.strip()!r} must lie in [0, {upper:g}]")
    return Family(kind, level)


# ---- measures ---------------------------------------------------------------------------------------------
def _gpu_requests(pods: PodList) -> IntArray:
    return np.asarray(pods.total_milli, dtype=np.int64)


def _members(pods: PodList, kind: FamilyKind) -> BoolArray:
    gpu = pods.num_gpu > 0
    if kind is FamilyKind.GPUSHARE:
        return np.asarray(gpu & (pods.gpu_milli < 1000))
    if kind is FamilyKind.MULTIGPU:
        return np.asarray(pods.num_gpu > 1)
    if kind is FamilyKind.GPUSPEC:
        return np.asarray(gpu & np.array([bool(s) for s in pods.spec], dtype=np.bool_))
    return np.asarray(~gpu)


def kind_share(pods: PodList, kind: FamilyKind) -> float:
    """The family's own measure on ``pods``: share of GPU requests, or for ``cpu`` share of pods by count."""
    members = _members(pods, kind)
    if kind is FamilyKind.CPU:
        return float(members.mean()) if len(pods) else 0.0
    gpu = _gpu_requests(pods)
    total = int(gpu.sum())
    return float(gpu[members].sum()) / total if total else 0.0


# ---- generation -------------------------------------------------------------------------------------------
def _to_target(idx: IntArray, weight: IntArray, target: float, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """Indices to keep and indices to copy so that ``weight`` sums to about ``target``.

    Above target: a random subset (a shuffled prefix, closest to the target). Below: all of them, plus draws
    with replacement until the target is reached (the last draw kept if it lands nearer than stopping short).
    """
    total = int(weight[idx].sum())
    none = np.zeros(0, np.int64)
    if target >= total:
        if idx.size == 0 or total == target:
            return idx, none
        draws: list[int] = []
        while total < target:
            i = int(idx[rng.integers(idx.size)])
            w = int(weight[i])
            if total + w - target > target - total:  # overshooting would miss by more than stopping
                break
            draws.append(i)
            total += w
        return idx, np.asarray(draws, dtype=np.int64)
    order = idx[rng.permutation(idx.size)]
    cum = np.cumsum(weight[order])
    k = int(np.searchsorted(cum, target, side="right"))  # cum[k-1] <= target < cum[k]
    if k < order.size and cum[k] - target < target - (cum[k - 1] if k else 0):
        k += 1
    return np.sort(order[:k]), none


def _assemble(
    base: PodList, keep: IntArray, copies: IntArray, tag: str, spec: tuple[str, ...] | None = None
) -> PodList:
    """Kept pods in base order, then copies named ``<original>~<tag><k>``."""
    keep = np.sort(keep)
    rows = np.concatenate([keep, copies]).astype(np.int64)
    out = base.take(rows)
    names = out.names[: keep.size] + tuple(f"{base.names[i]}~{tag}{k}" for k, i in enumerate(copies.tolist()))
    return PodList(out.source, names, out.cpu, out.mem, out.num_gpu, out.gpu_milli, spec or out.spec)


def _feasible_specs(base: PodList, topo: Topology) -> list[tuple[int, ...]]:
    """For each pod, the indices into :data:`SPECS` under which some node could host it alone."""
    model_index = {m: i for i, m in enumerate(topo.models)}
    spec_nodes = []
    for spec, _ in SPECS:
        models = spec_models(spec) or ()
        allowed = np.isin(topo.node_model, [model_index[m] for m in models if m in model_index])
        spec_nodes.append(allowed)
    out: list[tuple[int, ...]] = []
    for i in range(len(base)):
        fits = (topo.node_gpus >= base.num_gpu[i]) & (topo.node_cpu >= base.cpu[i]) & (topo.node_mem >= base.mem[i])
        out.append(tuple(j for j, allowed in enumerate(spec_nodes) if bool((fits & allowed).any())))
    return out


def generate(base: PodList, family: Family, seed: int, topo: Topology | None = None) -> PodList:
    """The member ``family`` of the trace ``base`` for ``seed``: the same inputs always give the same table.

    ``topo`` (the cluster) is needed for ``gpuspec``, whose constraints must leave each pod a node to run on.
    """
    rng = np.random.default_rng([seed, 0xFA417])
    level = family.level
    kind = family.kind
    every = np.arange(len(base), dtype=np.int64)
    gpu = _gpu_requests(base)
    gpu_pods = base.num_gpu > 0
    if kind in (FamilyKind.GPUSHARE, FamilyKind.MULTIGPU):
        members = _members(base, kind)
        total = int(gpu.sum())
        inside, outside = every[members], every[gpu_pods & ~members]
        if level > 0 and inside.size == 0:
            raise ConfigError(f"{family.name}: the trace {base.source} has no {kind.value} pods to draw from")
        if level < 1 and outside.size == 0:
            raise ConfigError(f"{family.name}: the trace {base.source} has only {kind.value} pods")
        keep_in, copy_in = _to_target(inside, gpu, level * total, rng)
        keep_out, copy_out = _to_target(outside, gpu, (1 - level) * total, rng)
        keep = np.concatenate([every[~gpu_pods], keep_in, keep_out])
        return _assemble(base, keep, np.concatenate([copy_in, copy_out]), kind.value)
    if kind is FamilyKind.CPU:
        cpu_only = every[~gpu_pods]
        if level > 0 and cpu_only.size == 0:
            raise ConfigError(f"{family.name}: the trace {base.source} has no CPU-only pods to draw from")
        n_gpu = int(gpu_pods.sum())
        want = round(level / (1 - level) * n_gpu)
        ones = np.ones(len(base), np.int64)
        keep_cpu, copy_cpu = _to_target(cpu_only, ones, want, rng)
        return _assemble(base, np.concatenate([every[gpu_pods], keep_cpu]), copy_cpu, kind.value)
    # GPUSPEC
    if topo is None:
        raise ConfigError(f"{family.name}: needs the cluster's node list to choose feasible GPU-model constraints")
    spec = list(base.spec)
    constrained = int(gpu[_members(base, kind)].sum())
    target = level * int(gpu.sum())
    weights = np.array([w for _, w in SPECS], dtype=np.float64)
    feasible = _feasible_specs(base, topo)
    for i in every[gpu_pods][rng.permutation(int(gpu_pods.sum()))].tolist():
        if constrained >= target:
            break
        if spec[i] or not feasible[i]:
            continue
        if constrained + gpu[i] - target > target - constrained:
            continue  # this pod would overshoot more than leaving it out; a smaller one may come
        choices = np.array(feasible[i], dtype=np.int64)
        p = weights[choices] / weights[choices].sum()
        spec[i] = SPECS[int(rng.choice(choices, p=p))][0]
        constrained += int(gpu[i])
    return PodList(base.source, base.names, base.cpu, base.mem, base.num_gpu, base.gpu_milli, tuple(spec))
