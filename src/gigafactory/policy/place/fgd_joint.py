"""``fgd-joint``: fragmentation gradient descent on a *joint* CPU–GPU measure of what a node can still host.

**The idea.** FGD (ATC'23) scores a placement by how much it changes the node's fragmentation: the free GPU
capacity that typical jobs cannot use. It checks CPU only as a yes/no per job type: if the node has CPU for one
more job of a type, all its GPUs with room for that type count as usable. On a busy cluster that is too kind.
A node with eight free GPUs but CPU for two more jobs can host two jobs, not eight, and the GPU capacity the CPU
cannot feed is as stranded as a sliver of 100 milli-GPU. On the Alibaba openb cluster CPU runs out alongside GPU
(requests reach about 106% of CPU capacity when GPU requests reach 130%), and nodes with almost no CPU left hold
much of FGD's idle GPU capacity at the end.

So for each typical job type ``m`` this policy counts as usable only what ``m``'s jobs can actually take:

* whole-GPU types of ``k`` GPUs use fully free GPUs in multiples of ``k``, at most ``cpu_free // cpu(m)`` jobs;
* GPU-sharing types use the GPUs with room for them (as FGD does), scaled down by the fraction of those GPUs
  the node's free CPU can feed (``min(1, cpu_free // cpu(m) / gpus with room)``);

and everything else of the node's free GPU capacity is fragment for ``m``. Where CPU is plentiful this is FGD's
measure, except that a k-GPU type no longer counts the full GPUs beyond a multiple of k as usable. Scoring, ties
(smallest node rank) and GPU choice are FGD's.

**Online.** With no target given (the default), the typical job types are learned from the jobs seen so far,
each counted once, as :class:`~.fgd.FgdPlacer` does; it never sees future arrivals or their order.
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.topology import Topology
from gigafactory.policy.base import PLACE, PolicyFactory
from gigafactory.policy.place.fgd import FgdPlacer
from gigafactory.policy.place.fragmentation import FloatArray, FragModel, IntArray, TargetWorkload

__all__ = ["FgdJoint", "JointFragModel"]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class JointFragModel(FragModel):
    """The joint measure. Whole-GPU types come first in the column order so each kind is a contiguous slice."""

    def __init__(self, target: TargetWorkload, topo: Topology) -> None:
        order = sorted(range(len(target.types)), key=lambda i: target.types[i].gpu_milli < 1000)
        target = TargetWorkload(tuple(target.types[i] for i in order), tuple(target.prob[i] for i in order))
        super().__init__(target, topo)
        self._nw = int((self.milli >= 1000).sum())
        self._cpu_f = np.maximum(self.cpu, 1).astype(np.float64)
        self._num_f = np.maximum(self.num, 1).astype(np.float64)
        self._size_f = self._num_f * 1000.0

    # Whole-GPU types count at most as many jobs as the node's free CPU feeds (fgd-multiples turns this off).
    cpu_caps_whole = True

    def frag(self, c: IntArray, s: IntArray, free: IntArray, cpu: IntArray, nodes: IntArray) -> FloatArray:
        return self.weigh(self.per_type(c, s, free, cpu, nodes))

    def per_type(
        self, c: IntArray, s: IntArray, free: IntArray, cpu: IntArray, nodes: IntArray, caps_whole: bool | None = None
    ) -> FloatArray:
        """Fragment for each type (``[states, types]``, milli-GPU): the node's free GPU capacity less what the type
        can use of it. ``caps_whole`` overrides :attr:`cpu_caps_whole`."""
        nw = self._nw
        # Exact: for integers below 2**53, floor(a / b) in float64 equals a // b.
        cpu_jobs = np.floor(cpu[:, None] / self._cpu_f)
        fits = self.access[self._node_model[nodes]] & (c >= self.num) & (cpu_jobs > 0)
        free_f = free.astype(np.float64)[:, None]
        out = np.empty(c.shape, np.float64)
        cw = c[:, :nw]
        jobs_w = np.floor(cw / self._num_f[:nw])
        if self.cpu_caps_whole if caps_whole is None else caps_whole:
            jobs_w = np.minimum(jobs_w, cpu_jobs[:, :nw])
        usable_w = jobs_w * self._size_f[:nw]
        out[:, :nw] = free_f - usable_w
        cs = c[:, nw:]
        usable_s = (free_f - s[:, nw:]) * np.minimum(1.0, cpu_jobs[:, nw:] / np.maximum(cs, 1))
        out[:, nw:] = free_f - usable_s
        frag: FloatArray = np.where(fits, out, free_f)
        return frag


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class FgdJoint(FgdPlacer):
    name = "fgd-joint"
    model_class = JointFragModel


def _build() -> FgdJoint:
    return FgdJoint()  # always online: it learns the job mix from what has arrived


PLACE.add(
    "fgd-joint",
    PolicyFactory(
        _build,
        "FGD on a joint CPU-GPU measure: GPU capacity the node's CPU cannot feed counts as fragment (online)",
        {},
    ),
)
