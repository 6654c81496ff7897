"""The physical model of one site, stored as columns.

Vocabulary, from large to small: a **site** holds **pods** (scalable units or network blocks); a pod holds
**domains** (NVLink domains: a GB200 NVL72 rack of 18 nodes, or one 8-GPU HGX node); a domain holds **nodes**;
a node holds **GPUs**, all of one model, plus CPU (milli-cores) and memory (MiB).

Everything is a numpy column indexed by node (or by GPU for the few per-GPU facts); there are no per-GPU
Python objects. Invariants, checked on construction:

* nodes are ordered by pod, then domain, so every domain and every pod is a contiguous range of nodes;
* domain and pod ids are dense, starting at 0, in node order; a domain lies in exactly one pod;
* GPUs are numbered node by node: node ``n`` owns GPUs ``gpu_start[n] : gpu_start[n + 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from gigafactory.core.errors import ConfigError

__all__ = ["Topology"]

IntArray = npt.NDArray[np.int64]


def _ranges(ids: IntArray, count: int) -> IntArray:
    """Start offsets (``count + 1`` of them) of the contiguous runs of ``ids`` = 0, 0, 1, 1, 1, 2, ..."""
    starts = np.searchsorted(ids, np.arange(count + 1), side="left")
    return starts.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Topology:
    name: str
    models: tuple[str, ...]
    node_model: IntArray
    node_gpus: IntArray
    node_cpu: IntArray
    node_mem: IntArray
    node_domain: IntArray
    node_pod: IntArray
    node_names: tuple[str, ...]
    node_rank: IntArray  # tie-break rank: lower wins among equal scores
    gpu_start: IntArray = field(init=False)
    gpu_node: IntArray = field(init=False)
    domain_start: IntArray = field(init=False)
    pod_start: IntArray = field(init=False)
    domain_pod: IntArray = field(init=False)
    pod_domain_start: IntArray = field(init=False)

    @classmethod
    def from_columns(
        cls,
        name: str,
        *,
        models: Sequence[str],
        node_model: Sequence[int] | IntArray,
        node_gpus: Sequence[int] | IntArray,
        node_cpu: Sequence[int] | IntArray,
        node_mem: Sequence[int] | IntArray,
        node_domain: Sequence[int] | IntArray | None = None,
        node_pod: Sequence[int] | IntArray | None = None,
        node_names: Sequence[str] | None = None,
        node_rank: Sequence[int] | IntArray | None = None,
    ) -> Topology:
        n = len(node_model)
        if n == 0:
            raise ConfigError(f"site {name!r} has no nodes")

        def col(values: Sequence[int] | IntArray | None, default: IntArray) -> IntArray:
            arr = default if values is None else np.asarray(values, dtype=np.int64)
            if arr.shape != (n,):
                raise ConfigError(f"site {name!r}: a node column has {arr.shape} entries, expected {n}")
            arr = arr.copy()
            arr.setflags(write=False)
            return arr

        names = tuple(node_names) if node_names is not None else tuple(f"n{i:05d}" for i in range(n))
        if len(names) != n:
            raise ConfigError(f"site {name!r}: {len(names)} node names for {n} nodes")
        return cls(
            name=name,
            models=tuple(models),
            node_model=col(node_model, np.zeros(n, np.int64)),
            node_gpus=col(node_gpus, np.zeros(n, np.int64)),
            node_cpu=col(node_cpu, np.zeros(n, np.int64)),
            node_mem=col(node_mem, np.zeros(n, np.int64)),
            node_domain=col(node_domain, np.arange(n, dtype=np.int64)),
            node_pod=col(node_pod, np.zeros(n, np.int64)),
            node_names=names,
            node_rank=col(node_rank, np.arange(n, dtype=np.int64)),
        )

    def __post_init__(self) -> None:
        n = self.num_nodes
        if self.node_model.min() < 0 or self.node_model.max() >= len(self.models):
            raise ConfigError(f"site {self.name!r}: a node names a GPU model outside {self.models}")
        if (self.node_gpus < 0).any() or (self.node_gpus > 64).any():
            raise ConfigError(f"site {self.name!r}: GPUs per node must be between 0 and 64")
        if (self.node_cpu < 0).any() or (self.node_mem < 0).any():
            raise ConfigError(f"site {self.name!r}: CPU and memory must not be negative")
        for label, ids in (("domain", self.node_domain), ("pod", self.node_pod)):
            steps = np.diff(ids)
            if ids[0] != 0 or (steps < 0).any() or (steps > 1).any():
                raise ConfigError(
                    f"site {self.name!r}: nodes must be ordered by {label}, with {label} ids 0, 1, 2, ..."
                )
        gpu_start = np.zeros(n + 1, np.int64)
        np.cumsum(self.node_gpus, out=gpu_start[1:])
        num_domains = int(self.node_domain[-1]) + 1
        num_pods = int(self.node_pod[-1]) + 1
        domain_start = _ranges(self.node_domain, num_domains)
        domain_pod = self.node_pod[domain_start[:-1]]
        # A domain must not straddle two pods.
        if (self.node_pod[domain_start[1:] - 1] != domain_pod).any():
            raise ConfigError(f"site {self.name!r}: an NVLink domain spans two pods")
        frozen = {
            "gpu_start": gpu_start,
            "gpu_node": np.repeat(np.arange(n, dtype=np.int64), self.node_gpus),
            "domain_start": domain_start,
            "pod_start": _ranges(self.node_pod, num_pods),
            "domain_pod": domain_pod,
            "pod_domain_start": _ranges(domain_pod, num_pods),
        }
        for key, arr in frozen.items():
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)

    # ---- sizes --------------------------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return int(self.node_model.shape[0])

    @property
    def num_gpus(self) -> int:
        return int(self.gpu_start[-1])

    @property
    def num_domains(self) -> int:
        return int(self.domain_start.shape[0] - 1)

    @property
    def num_pods(self) -> int:
        return int(self.pod_start.shape[0] - 1)

    @property
    def max_gpus_per_node(self) -> int:
        return int(self.node_gpus.max())

    def model_id(self, model: str) -> int | None:
        try:
            return self.models.index(model)
        except ValueError:
            return None

    def gpus_by_model(self) -> dict[str, int]:
        counts = np.bincount(self.node_model, weights=self.node_gpus, minlength=len(self.models))
        return {m: int(c) for m, c in zip(self.models, counts, strict=True) if c > 0}

    def describe(self) -> str:
        by_model = ", ".join(f"{c:,} {m}" for m, c in self.gpus_by_model().items())
        return (
            f"{self.name}: {self.num_gpus:,} GPUs ({by_model}) on {self.num_nodes:,} nodes, "
            f"{self.num_domains:,} NVLink domains, {self.num_pods:,} pods"
        )

    @cached_property
    def largest_group(self) -> tuple[int, int]:
        """The most nodes in one NVLink domain and in one pod: a gang of more nodes fits in no single one."""
        return int(np.diff(self.domain_start).max(initial=0)), int(np.diff(self.pod_start).max(initial=0))

    @cached_property
    def node_gpu_ids(self) -> tuple[tuple[int, ...], ...]:
        """Per node, the global indices of its GPUs (a tuple each, for building placements quickly)."""
        return tuple(tuple(range(a, b)) for a, b in pairwise(self.gpu_start.tolist()))

    def with_ranks(self, ranks: Sequence[int] | IntArray) -> Topology:
        """The same site with another node tie-break rank (used by experiments that fix a rank per seed)."""
        return Topology.from_columns(
            self.name,
            models=self.models,
            node_model=self.node_model,
            node_gpus=self.node_gpus,
            node_cpu=self.node_cpu,
            node_mem=self.node_mem,
            node_domain=self.node_domain,
            node_pod=self.node_pod,
            node_names=self.node_names,
            node_rank=ranks,
        )
