"""``gpu-packing`` (FGD paper's GpuPacking): fill partly used GPUs first, then partly used nodes, then empty ones.

For the GPUs a job would take (ascending free share, ties by index): if some are fully free (``u`` of them), the
node scores ``max(50 - u, 33)``; if none is, ``max(100 - (sum of free*100//1000 over them)//10, 50)``. A node
whose GPUs are all free (``f`` of them) scores ``max(33 - f, f)``. CPU-only jobs score 0 everywhere.
"""

from __future__ import annotations

import numpy as np
from mypy_extensions import mypyc_attr

from gigafactory.core.capacity import Capacity
from gigafactory.core.jobs import JobRequest
from gigafactory.policy.base import PLACE, PolicyFactory
from gigafactory.policy.place.common import IntArray
from gigafactory.policy.place.scored import ScoredPlacer, best_fit_gpu_left


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class GpuPacking(ScoredPlacer):
    name = "gpu-packing"

    def scores(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> IntArray:
        if req.gpus == 0:
            return np.zeros(cand.size, np.int64)
        gpus = cap.topo.node_gpus[cand]
        all_free = cap.node_whole[cand] == gpus
        if req.fractional:
            left = best_fit_gpu_left(cap, cand, req.gpu_milli)
            partial = np.maximum(100 - (left * 100 // 1000) // 10, 50)
            score = np.where(left == 1000, max(50 - 1, 33), partial)
        else:
            score = np.full(cand.size, max(50 - req.gpus, 33), np.int64)
        return np.where(all_free, np.maximum(33 - gpus, gpus), score).astype(np.int64)


PLACE.add("gpu-packing", PolicyFactory(GpuPacking, "partly used GPUs first, then partly used nodes (FGD paper)", {}))
