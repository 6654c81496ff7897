"""Where a job runs: the GPUs it holds, how much of each, and the CPU and memory it takes on each node."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Placement", "split_by_weight"]


_Counts = tuple[list[int], list[int]]  # distinct ids, and how many of the nodes have each


class _Views:
    """A placement's derived views, made on first use (a frozen dataclass cannot assign them later)."""

    __slots__ = (
        "cpu_mem",
        "cpu_mem_made",
        "gpu_array",
        "gpus",
        "groups",
        "node_array",
        "num_gpus",
        "per_node",
        "whole_g",
    )

    def __init__(self) -> None:
        self.gpus: tuple[int, ...] | None = None
        self.num_gpus = -1
        self.node_array: npt.NDArray[np.int64] | None = None
        self.gpu_array: npt.NDArray[np.int64] | None = None
        self.per_node: npt.NDArray[np.int64] | None = None
        self.cpu_mem: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None  # None: takes neither
        self.cpu_mem_made = False
        self.whole_g = 0  # > 0: every GPU of every node, each node with this many (on_whole_nodes)
        # Capacity's (distinct ids, nodes per id) of the nodes' models, domains and pods, made on first use.
        self.groups: tuple[_Counts, _Counts, _Counts] | None = None


@dataclass(frozen=True)
class Placement:
    nodes: tuple[int, ...]  # distinct node indices, in allocation order
    node_gpus: tuple[tuple[int, ...], ...]  # per node: the global GPU indices taken there
    gpu_milli: int  # milli taken from every GPU listed (1000 for whole GPUs)
    cpu: tuple[int, ...]  # per node, milli-cores
    mem: tuple[int, ...]  # per node, MiB
    _views: _Views = field(default_factory=_Views, init=False, repr=False, compare=False)

    def __init__(
        self,
        nodes: tuple[int, ...],
        node_gpus: tuple[tuple[int, ...], ...],
        gpu_milli: int,
        cpu: tuple[int, ...],
        mem: tuple[int, ...],
    ) -> None:
        # Written out (frozen: through object.__setattr__): compiled, a dataclass-generated __init__ stays
        # interpreted and costs about six times as much (gigafactory._native); one is made per start and per trial.
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "node_gpus", node_gpus)
        object.__setattr__(self, "gpu_milli", gpu_milli)
        object.__setattr__(self, "cpu", cpu)
        object.__setattr__(self, "mem", mem)
        object.__setattr__(self, "_views", _Views())

    @property
    def gpus(self) -> tuple[int, ...]:
        v = self._views
        if v.gpus is None:
            v.gpus = tuple(g for per_node in self.node_gpus for g in per_node)
        return v.gpus

    @property
    def num_gpus(self) -> int:
        v = self._views
        if v.num_gpus < 0:
            v.num_gpus = sum(map(len, self.node_gpus))
        return v.num_gpus

    @property
    def node_array(self) -> npt.NDArray[np.int64]:
        v = self._views
        if v.node_array is None:
            v.node_array = np.fromiter(self.nodes, np.int64, len(self.nodes))
            v.node_array.setflags(write=False)
        return v.node_array

    @property
    def gpu_array(self) -> npt.NDArray[np.int64]:
        v = self._views
        if v.gpu_array is None:
            v.gpu_array = np.fromiter(self.gpus, np.int64, self.num_gpus)
            v.gpu_array.setflags(write=False)
        return v.gpu_array

    @property
    def per_node_array(self) -> npt.NDArray[np.int64]:
        """GPUs taken on each node, aligned with ``nodes``."""
        v = self._views
        if v.per_node is None:
            v.per_node = np.fromiter(map(len, self.node_gpus), np.int64, len(self.nodes))
            v.per_node.setflags(write=False)
        return v.per_node

    @property
    def cpu_mem_arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
        """CPU and memory per node as arrays aligned with ``nodes``; None if the placement takes neither."""
        v = self._views
        if not v.cpu_mem_made:
            v.cpu_mem_made = True
            if any(self.cpu) or any(self.mem):
                cpu = np.asarray(self.cpu, np.int64)
                mem = np.asarray(self.mem, np.int64)
                cpu.setflags(write=False)
                mem.setflags(write=False)
                v.cpu_mem = (cpu, mem)
        return v.cpu_mem

    @classmethod
    def on_whole_nodes(
        cls,
        nodes: npt.NDArray[np.int64],
        node_gpu_ids: tuple[tuple[int, ...], ...],
        gpu_start: npt.NDArray[np.int64],
        gpus_per_node: int,
        cpu: tuple[int, ...],
        mem: tuple[int, ...],
        *,
        listed: list[int] | None = None,
    ) -> Placement:
        """All GPUs of each of ``nodes`` (each with ``gpus_per_node``); the array views are filled in at once.
        ``listed``: the same nodes as a list, if the caller has one."""
        if listed is None:
            listed = nodes.tolist()
        pl = cls(tuple(listed), tuple([node_gpu_ids[n] for n in listed]), 1000, cpu, mem)
        v = pl._views
        v.node_array = nodes.astype(np.int64, copy=True)
        v.node_array.setflags(write=False)
        v.gpu_array = (gpu_start[nodes][:, None] + np.arange(gpus_per_node)[None, :]).ravel()
        v.gpu_array.setflags(write=False)
        v.num_gpus = len(listed) * gpus_per_node
        v.per_node = np.full(len(listed), gpus_per_node, np.int64)
        v.per_node.setflags(write=False)
        v.whole_g = gpus_per_node
        if cpu and cpu.count(cpu[0]) == len(cpu) and mem.count(mem[0]) == len(mem):  # a gang's, alike on each node
            v.cpu_mem_made = True
            if cpu[0] or mem[0]:
                v.cpu_mem = (np.full(len(cpu), cpu[0], np.int64), np.full(len(mem), mem[0], np.int64))
                v.cpu_mem[0].setflags(write=False)
                v.cpu_mem[1].setflags(write=False)
        return pl

    def describe(self, node_names: tuple[str, ...] | None = None) -> str:
        def name(n: int) -> str:
            return node_names[n] if node_names else str(n)

        parts = [f"{name(n)}[{len(g)}]" for n, g in zip(self.nodes, self.node_gpus, strict=True)]
        if len(parts) > 6:
            parts = [*parts[:3], f"... {len(parts) - 4} more ...", parts[-1]]
        return ",".join(parts)

    def __deepcopy__(self, memo: dict[int, object]) -> Placement:
        return self  # immutable: a copy of the engine (the forecast's) shares it


def split_by_weight(total: int, weights: list[int]) -> tuple[int, ...]:
    """Split ``total`` over ``weights`` in proportion, rounding up, so each share is at least its fraction.

    A job's CPU and memory are requested for the whole job and spread over its nodes by GPU count. Rounding up
    keeps a node from being handed less than its part; the sum may exceed ``total`` by under one per node.
    """
    if not weights:
        return ()
    if total == 0:
        return (0,) * len(weights)
    whole = sum(weights)
    if whole == 0:
        return (-(-total // len(weights)),) * len(weights)
    cache: dict[int, int] = {}
    out = []
    for w in weights:
        share = cache.get(w)
        if share is None:
            share = cache[w] = -(-total * w // whole)
        out.append(share)
    return tuple(out)
