"""``gpu-clustering`` (FGD paper's GpuClustering): put alike GPU jobs together.

A job's tag is "shared GPU" or "k whole GPUs" (CPU-only jobs have none and score 0 everywhere). With
``b = (25 * (MaxGPU - free)) // MaxGPU`` for the node's free milli-GPU, a node scores ``b + 75`` if it holds only
jobs of the same tag, ``b + 50`` if it holds that tag among others, ``b + 25`` if it holds no GPU job, and ``b``
otherwise.
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest
from gigafactory.policy.base import PLACE, PolicyFactory
from gigafactory.policy.place.common import IntArray
from gigafactory.policy.place.scored import ScoredPlacer, site_maxima


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class GpuClustering(ScoredPlacer):
    name = "gpu-clustering"

    def scores(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> IntArray:
        if req.gpus == 0:
            return np.zeros(cand.size, np.int64)
        _, max_gpu = site_maxima(cap)
        b = (25 * (int(max_gpu) - cap.node_milli[cand])) // int(max_gpu)
        kinds = cap.node_kinds[cand]
        tag = 0 if req.fractional else req.gpus
        mine = kinds[:, tag] > 0
        others = (kinds.sum(axis=1) - kinds[:, tag]) > 0
        bonus = np.where(mine & ~others, 75, np.where(mine, 50, np.where(~others, 25, 0)))
        return b + bonus


PLACE.add("gpu-clustering", PolicyFactory(GpuClustering, "nodes that hold jobs of the same GPU shape (FGD paper)", {}))
