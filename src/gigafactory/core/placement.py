"""Where a job runs: the GPUs it holds, how much of each, and the CPU and memory it takes on each node."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

__all__ = ["Placement", "split_by_weight"]


@dataclass(frozen=True)
class Placement:
    nodes: tuple[int, ...]  # distinct node indices, in allocation order
    node_gpus: tuple[tuple[int, ...], ...]  # per node: the global GPU indices taken there
    gpu_milli: int  # milli taken from every GPU listed (1000 for whole GPUs)
    cpu: tuple[int, ...]  # per node, milli-cores
    mem: tuple[int, ...]  # per node, MiB

    @cached_property
    def gpus(self) -> tuple[int, ...]:
        return tuple(g for per_node in self.node_gpus for g in per_node)

    @cached_property
    def num_gpus(self) -> int:
        return sum(map(len, self.node_gpus))

    @cached_property
    def node_array(self) -> npt.NDArray[np.int64]:
        arr = np.fromiter(self.nodes, np.int64, len(self.nodes))
        arr.setflags(write=False)
        return arr

    @cached_property
    def gpu_array(self) -> npt.NDArray[np.int64]:
        arr = np.fromiter(self.gpus, np.int64, self.num_gpus)
        arr.setflags(write=False)
        return arr

    @classmethod
    def on_whole_nodes(
        cls,
        nodes: npt.NDArray[np.int64],
        node_gpu_ids: tuple[tuple[int, ...], ...],
        gpu_start: npt.NDArray[np.int64],
        gpus_per_node: int,
        cpu: tuple[int, ...],
        mem: tuple[int, ...],
    ) -> Placement:
        """All GPUs of each of ``nodes`` (each with ``gpus_per_node``); the array views are filled in at once."""
        listed = nodes.tolist()
        pl = cls(tuple(listed), tuple(node_gpu_ids[n] for n in listed), 1000, cpu, mem)
        arr = nodes.astype(np.int64, copy=True)
        arr.setflags(write=False)
        gpus = (gpu_start[nodes][:, None] + np.arange(gpus_per_node)[None, :]).ravel()
        gpus.setflags(write=False)
        cache = pl.__dict__  # cached_property's own store: frozen only forbids attribute assignment
        cache["node_array"] = arr
        cache["gpu_array"] = gpus
        cache["num_gpus"] = len(listed) * gpus_per_node
        return pl

    def describe(self, node_names: tuple[str, ...] | None = None) -> str:
        def name(n: int) -> str:
            return node_names[n] if node_names else str(n)

        parts = [f"{name(n)}[{len(g)}]" for n, g in zip(self.nodes, self.node_gpus, strict=True)]
        if len(parts) > 6:
            parts = [*parts[:3], f"... {len(parts) - 4} more ...", parts[-1]]
        return ",".join(parts)


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
