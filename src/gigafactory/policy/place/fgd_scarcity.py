"""``fgd-scarcity``: ``fgd-multiples`` plus a reserve price on GPU models that model-restricted jobs will need.

(docstring to be written with measured figures)
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from gigafactory.core.jobs import Job, JobRequest
from gigafactory.core.topology import Topology
from gigafactory.policy.base import PLACE, PolicyFactory
from gigafactory.policy.place.fgd import NodeCounts
from gigafactory.policy.place.fgd_multiples import FgdMultiples
from gigafactory.policy.place.fragmentation import FloatArray, IntArray, PodType

__all__ = ["FgdScarcity", "reserve_price"]


def reserve_price(seen: Counter[PodType], topo: Topology) -> FloatArray:
    """Per GPU model of ``topo``: the share of its capacity that jobs restricted to GPU models will ask for once
    the cluster is full, capped at 1.

    Each restricted job type's share of the GPU demand seen is spread over the models it may use in proportion to
    their capacity; a model's load is what lands on it over its share of the capacity.
    """
    supply = np.bincount(topo.node_model, weights=topo.node_gpus, minlength=len(topo.models)).astype(np.float64)
    price = np.zeros(len(topo.models))
    total_supply = supply.sum()
    present = supply > 0
    demand: dict[tuple[str, ...], float] = {}
    total = 0.0
    for t, n in seen.items():
        if t.num_gpu <= 0 or t.gpu_milli <= 0:
            continue
        d = float(n) * t.num_gpu * t.gpu_milli
        total += d
        if t.models is not None:
            demand[t.models] = demand.get(t.models, 0.0) + d
    if total <= 0 or total_supply <= 0 or not demand:
        return price
    specs = list(demand)
    allowed = np.array([[m in s for m in topo.models] for s in specs], np.bool_) & present[None, :]
    share = np.array([demand[s] for s in specs]) / total  # share of all GPU demand
    restricted = ~(allowed == present[None, :]).all(axis=1)
    cover = allowed @ supply / total_supply  # share of all GPU capacity each spec may use
    ok = restricted & (cover > 0)
    load = (share[ok] / cover[ok]) @ allowed[ok].astype(np.float64)
    return np.minimum(1.0, load)


class FgdScarcity(FgdMultiples):
    name = "fgd-scarcity"

    def __init__(self) -> None:
        super().__init__()
        self._priced: NodeCounts | None = None
        self.price: FloatArray = np.zeros(0)

    def _model(self, job: Job, topo: Topology) -> NodeCounts:
        counts = super()._model(job, topo)
        if counts is not self._priced:  # re-estimated with the job mix: price from the jobs seen so far
            self.price = reserve_price(self._learned, topo)
            self._priced = counts
        return counts

    def _gain(self, req: JobRequest, nodes: IntArray, before: FloatArray, after: FloatArray) -> FloatArray:
        if req.total_milli == 0 or not self.price.any():
            return before - after
        price = self.price[self._priced.topo.node_model[nodes]] if self._priced else np.zeros(nodes.size)
        # Relative to the cheapest candidate: a job whose candidates share a price is scored as fgd-multiples does.
        return before - after - (price - price.min()) * req.total_milli


def _build() -> FgdScarcity:
    return FgdScarcity()  # always online: it learns the job mix and the demand per GPU model from what has arrived


PLACE.add(
    "fgd-scarcity",
    PolicyFactory(
        _build,
        "fgd-multiples with a reserve price on the GPU models that model-restricted jobs need (online)",
        {},
    ),
)
