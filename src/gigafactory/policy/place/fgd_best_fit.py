"""``fgd-best-fit`` (the FGD paper's BestFit): the node left with the least free CPU and GPU together.

``s = 0.5 (cpu_left - cpu_req)/MaxCPU + 0.5 (gpu_left - gpu_req)/MaxGPU``; score ``trunc(100 (1 - s))``. The paper
then min-max normalises the scores over feasible nodes, which is monotone and leaves the winner and its ties
unchanged, so it is skipped here. Unlike the foundation's ``best-fit`` (fewest free *GPUs*), it weighs CPU too.
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
class FgdBestFit(ScoredPlacer):
    name = "fgd-best-fit"

    def scores(self, req: JobRequest, cap: Capacity, cand: IntArray, rng: np.random.Generator) -> IntArray:
        max_cpu, max_gpu = site_maxima(cap)
        s = (
            0.5 * (cap.node_cpu[cand] - req.cpu_milli) / max_cpu
            + 0.5 * (cap.node_milli[cand] - req.total_milli) / max_gpu
        )
        score: IntArray = np.trunc(100 * (1 - s)).astype(np.int64)
        return score


PLACE.add("fgd-best-fit", PolicyFactory(FgdBestFit, "least free CPU and GPU left, weighed together (FGD paper)", {}))
