"""A model's training compute as the engine sees it, for the AI Act desk's admission hold.

The driver tells the engine, per model, the compute its ended attempts have counted so far (``ModelChanged``), whether
its provider has recorded the Art. 52 notification, and the FLOP per GPU-second its jobs are assumed to do (the
site's peak × the upper end of the utilisation range, so the projection errs high). The ``ai-act`` admit policy then
holds a job that would take a model over :data:`SYSTEMIC_RISK_FLOP` before the notification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ASSUMED_RUN_S", "SYSTEMIC_RISK_FLOP", "ModelCompute", "sig2"]

SYSTEMIC_RISK_FLOP = 1e25  # Art. 51(2) AI Act: presumed systemic risk when training compute is greater than this
ASSUMED_RUN_S = 24 * 3600.0  # a job with no time limit is projected to run this long (the engine's default too)


@dataclass(frozen=True, slots=True)
class ModelCompute:
    model: int
    tenant: str
    counted_flop: float  # by attempts that have ended (billed), counted purposes only
    notified: bool
    flop_per_gpu_s: float


def sig2(flop: float) -> str:
    """``2.3×10^25``: two significant figures, as a notification gives it."""
    if flop == 0 or not math.isfinite(flop):
        return "0" if flop == 0 else str(flop)
    mant, exp = f"{flop:.1e}".split("e")  # (formatting rounds, and never divides by an underflowed power of ten)
    return f"{mant}×10^{int(exp)}"
