"""The two rules every tool gets wrong, and the notification clock.

* **GPAI** (guidelines, indicative): training compute strictly above 10^23 FLOP **and** a generative model (text,
  code, speech, text-to-image, text-to-video). Narrow models are out whatever their compute.
* **Systemic risk** (Art. 51(2)): cumulative training compute strictly **greater than** 10^25 FLOP. Exactly 10^25 is
  not. (The Commission may also designate a model; that is a fact to record, not a threshold.)
* **Modification** (guidelines §3.2): the modifier provides a *new* model when its modification uses more than one
  third of the original's training compute; with the original's compute unknown, one third of 10^25 for an original
  with systemic risk, one third of 10^23 otherwise.
* **Notification** (Art. 52(1)): within two weeks of the threshold being met or of it becoming known that it will be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gigafactory.core.compute import sig2
from gigafactory.core.errors import RequestError
from gigafactory.desk.law import GPAI_FLOP, MODIFICATION_FRACTION, NOTIFY_DAYS, SYSTEMIC_FLOP

__all__ = ["MAX_FLOP", "Verdict", "check_flop", "modification", "notify_by", "sig2", "thresholds"]

MAX_FLOP = 1e35  # far above any training run (10^25 is ~5.6M H100-hours): larger is a typo


@dataclass(frozen=True, slots=True)
class Verdict:
    value: bool
    rule: str


def check_flop(name: str, flop: float) -> float:
    if isinstance(flop, bool) or not isinstance(flop, (int, float)) or not math.isfinite(flop):
        raise RequestError(f"{name}={flop!r} must be a finite number of FLOP")
    if flop < 0:
        raise RequestError(f"{name}={flop:g} must not be negative")
    if flop > MAX_FLOP:
        raise RequestError(f"{name}={flop:g} is above {MAX_FLOP:g} FLOP, beyond any training run")
    return float(flop)


def thresholds(flop: float, generative: bool) -> dict[str, Verdict]:
    """Is a model with ``flop`` of (cumulative, counted) training compute a GPAI model, and one with systemic risk?"""
    c = check_flop("flop", flop)
    above_gpai = c > GPAI_FLOP
    gpai = Verdict(
        above_gpai and generative,
        f"{sig2(c)} FLOP is {'above' if above_gpai else 'not above'} 10^23 (guidelines C(2025) 5045, indicative "
        f"criterion) and the model is {'generative' if generative else 'not generative'}: "
        + ("both hold" if above_gpai and generative else "both must hold"),
    )
    systemic = Verdict(
        c > SYSTEMIC_FLOP,
        f"{sig2(c)} FLOP is {'greater than' if c > SYSTEMIC_FLOP else 'not greater than'} 10^25 (Art. 51(2): "
        "presumed when cumulative training compute is greater than 10^25 FLOP)",
    )
    return {"gpai": gpai, "systemic_risk": systemic}


def modification(
    added_flop: float, original_flop: float | None = None, original_systemic: bool = False
) -> dict[str, Any]:
    """Does a modification of ``added_flop`` make the modifier the provider of a new model?"""
    added = check_flop("added_flop", added_flop)
    if original_flop is not None:
        orig = check_flop("original_flop", original_flop)
        if orig <= 0:
            raise RequestError("original_flop must be greater than 0 (or leave it out when it is unknown)")
        threshold, basis = orig * MODIFICATION_FRACTION, f"one third of the original's {sig2(orig)} FLOP"
    elif original_systemic:
        threshold, basis = SYSTEMIC_FLOP * MODIFICATION_FRACTION, "original unknown, with systemic risk: ⅓ × 10^25"
    else:
        threshold, basis = GPAI_FLOP * MODIFICATION_FRACTION, "original unknown: ⅓ × 10^23"
    new = added > threshold
    return {
        "new_model": new,
        "threshold_flop": threshold,
        "fraction_of_original": None if original_flop is None else added / original_flop,
        "rule": f"{sig2(added)} FLOP is {'more than' if new else 'not more than'} {sig2(threshold)} ({basis}; "
        "guidelines §3.2)",
    }


def notify_by(met_or_foreseen_s: float) -> float:
    """The Art. 52(1) deadline: two weeks after the threshold was met or became foreseeable (Unix seconds)."""
    return met_or_foreseen_s + NOTIFY_DAYS * 86_400.0
