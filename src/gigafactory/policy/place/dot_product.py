"""``dot-product`` (FGD paper's DotProd): the node whose remaining CPU and GPU, as a vector, has the smallest dot
product with the request, i.e. the node least like the request (both normalised by the site's largest node).

Score ``trunc(100 * (1 - d/2))`` with ``d = (cpu_left/MaxCPU)(cpu_req/MaxCPU) + (gpu_left/MaxGPU)(gpu_req/MaxGPU)``,
from the node's free capacity *before* placement. A shared GPU is chosen by best fit.
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
class DotProduct(ScoredPlacer):
    name = "dot-product"

    def scores(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> IntArray:
        max_cpu, max_gpu = site_maxima(cap)
        d = (cap.node_cpu[cand] / max_cpu) * (req.cpu_milli / max_cpu) + (cap.node_milli[cand] / max_gpu) * (
            req.total_milli / max_gpu
        )
        score = np.trunc(100 * (1 - d / 2)).astype(np.int64)
        score[cap.node_cpu[cand] < req.cpu_milli] = 0
        return score


PLACE.add("dot-product", PolicyFactory(DotProduct, "smallest dot product of free capacity and request (FGD paper)", {}))
