"""GPU fragmentation of a node against a target workload (the FGD paper's measure, ATC'23 §4).

Vocabulary:

* A **pod type** is ``(cpu, gpu_milli, num_gpu, models)``; memory is not part of it.
* The **target workload** ``M`` is a set of pod types with probabilities ``p_m``: the "typical pods" that make
  up 95% of a trace (:meth:`TargetWorkload.typical`), or any distribution a caller provides or learns.
* A node's free GPU milli is **fragment** for type ``m`` when ``m`` cannot use it: ``m`` needs no GPU; ``m`` may
  not run on this GPU model; the node lacks CPU for ``m``; or fewer than ``num_gpu`` GPUs have ``gpu_milli``
  free. When ``m`` fits, only the GPUs with less than ``gpu_milli`` free are fragment.
* ``F(n) = sum_m p_m * frag_m(n)`` in milli-GPU.

Everything is vectorised over many node states at once. A node state is described by per-type counts that
change little when one pod is placed: ``c[m]`` = GPUs with at least ``gpu_milli(m)`` free and ``s[m]`` = free
milli on the GPUs with less than that. :class:`FragModel` computes them from a free-GPU matrix, updates them for
a hypothetical placement, and turns them into ``F``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from mypy_extensions import mypyc_attr

from gigafactory.core.topology import Topology

__all__ = ["FragModel", "PodType", "TargetWorkload"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, order=True)
class PodType:
    cpu: int
    gpu_milli: int
    num_gpu: int
    spec: str = ""  # allowed GPU models, "|"-separated, "" = any

    @property
    def models(self) -> tuple[str, ...] | None:
        parts = tuple(sorted({p for p in self.spec.split("|") if p}))
        return parts or None

    def __deepcopy__(self, memo: dict[int, object]) -> PodType:
        return self  # immutable: a copy of the engine (the forecast's) shares it


@dataclass(frozen=True)
class TargetWorkload:
    types: tuple[PodType, ...]
    prob: tuple[float, ...]

    @classmethod
    def typical(cls, pods: Iterable[PodType], coverage: float = 0.95) -> TargetWorkload:
        """The most popular types until they cover ``coverage`` of the pods (the one crossing it included),
        renormalised. Equal counts rank the lexicographically larger ``(cpu, gpu_milli, num_gpu, spec)`` first.
        """
        counts = Counter(pods)
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        kept: list[tuple[PodType, int]] = []
        covered = 0
        for t, c in ranked:
            kept.append((t, c))
            covered += c
            if covered >= coverage * total:
                break
        kept_total = sum(c for _, c in kept)
        return cls(tuple(t for t, _ in kept), tuple(c / kept_total for _, c in kept))

    @classmethod
    def from_counts(cls, counts: Counter[PodType]) -> TargetWorkload:
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        return cls(tuple(t for t, _ in ranked), tuple(c / total for _, c in ranked))

    def __deepcopy__(self, memo: dict[int, object]) -> TargetWorkload:
        return self  # immutable: a copy of the engine (the forecast's) shares it


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class FragModel:
    """A target workload laid out as arrays for one site's GPU models."""

    def __init__(self, target: TargetWorkload, topo: Topology) -> None:
        self.target = target
        types = target.types
        self.p: FloatArray = np.asarray(target.prob, dtype=np.float64)
        self.cpu: IntArray = np.array([t.cpu for t in types], dtype=np.int64)
        self.milli: IntArray = np.array([t.gpu_milli for t in types], dtype=np.int64)
        self.num: IntArray = np.array([t.num_gpu for t in types], dtype=np.int64)
        gpu_types = (self.milli > 0) & (self.num > 0)
        # access[model, m]: type m can use GPUs of this model at all.
        self.access = np.zeros((len(topo.models), len(types)), np.bool_)
        for j, t in enumerate(types):
            allowed = t.models
            for i, model in enumerate(topo.models):
                self.access[i, j] = gpu_types[j] and (allowed is None or model in allowed)
        self._node_model = topo.node_model

    def __len__(self) -> int:
        return int(self.p.size)

    def counts(self, left: IntArray) -> tuple[IntArray, IntArray]:
        """``c`` and ``s`` (``[nodes, types]``) from free milli per GPU (``[nodes, GPUs]``, -1 = no GPU)."""
        ge = left[:, :, None] >= self.milli[None, None, :]
        c = ge.sum(axis=1)
        s = np.where(~ge & (left[:, :, None] >= 0), left[:, :, None], 0).sum(axis=1)
        return c.astype(np.int64), s.astype(np.int64)

    def frag(self, c: IntArray, s: IntArray, free: IntArray, cpu: IntArray, nodes: IntArray) -> FloatArray:
        """``F`` of node states: counts ``c``/``s``, total free milli ``free`` and free CPU ``cpu`` per state,
        on the GPU models of ``nodes``."""
        fits = self.access[self._node_model[nodes]] & (c >= self.num) & (cpu[:, None] >= self.cpu)
        return self.weigh(np.where(fits, s, free[:, None]).astype(np.float64))

    def weigh(self, frag: FloatArray) -> FloatArray:
        """``sum_m p_m * frag[:, m]``, accumulated type by type in order, as the paper's simulator does.

        A matrix product would be faster but sums in an order that depends on the batch's shape; the last bits
        then differ between batches, and truncated scores occasionally tie differently.
        """
        if frag.shape[1] == 0:
            return np.zeros(frag.shape[0])
        total: FloatArray = np.add.accumulate(frag * self.p, axis=1)[:, -1]  # strictly left to right
        return total

    def after_share(self, c: IntArray, s: IntArray, before: IntArray, after: IntArray) -> tuple[IntArray, IntArray]:
        """Counts after one GPU's free milli goes from ``before`` to ``after`` (one value per state)."""
        mm = self.milli[None, :]
        b = before[:, None]
        a = after[:, None]
        c2 = c - (b >= mm) + (a >= mm)
        s2 = s - np.where(b < mm, b, 0) + np.where(a < mm, a, 0)
        return c2, s2
