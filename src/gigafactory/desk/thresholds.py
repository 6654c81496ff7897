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
        f"{_near(c, GPAI_FLOP)} FLOP is {'above' if above_gpai else 'not above'} 10^23 (guidelines C(2025) 5045, "
        f"indicative criterion) and the model is {'generative' if generative else 'not generative'}: "
        + ("both hold" if above_gpai and generative else "both must hold"),
    )
    systemic = Verdict(
        c > SYSTEMIC_FLOP,
        f"{_near(c, SYSTEMIC_FLOP)} FLOP is {'greater than' if c > SYSTEMIC_FLOP else 'not greater than'} 10^25 "
        "(Art. 51(2): a GPAI model is presumed to have systemic risk when its cumulative training compute is greater "
        "than 10^25 FLOP)"
        + ("; the presumption is for GPAI models, and this one is not one by the indicative criterion: it applies "
           "if the model is a GPAI model on other grounds (Art. 3(63))" if c > SYSTEMIC_FLOP and not gpai.value
           else ""),
    )  # fmt: skip
    return {"gpai": gpai, "systemic_risk": systemic}


def modification(
    added_flop: float, original_flop: float | None = None, original_systemic: bool = False
) -> dict[str, Any]:
    """Does a modification of ``added_flop`` make the modifier the provider of a new model?"""
    added = check_flop("added_flop", added_flop)
    if original_flop is not None:
        orig = check_flop("original_flop", original_flop)
        if orig < 1:
            raise RequestError("original_flop must be at least 1 FLOP (or leave it out when it is unknown)")
        threshold, basis = orig * MODIFICATION_FRACTION, f"one third of the original's {sig2(orig)} FLOP"
        if orig <= GPAI_FLOP:
            basis += "; note that an original of 10^23 FLOP or less is not a GPAI model by the indicative criterion"
    elif original_systemic:
        threshold, basis = SYSTEMIC_FLOP * MODIFICATION_FRACTION, "original unknown, with systemic risk: ⅓ × 10^25"
    else:
        threshold, basis = GPAI_FLOP * MODIFICATION_FRACTION, "original unknown: ⅓ × 10^23"
    new = added > threshold
    return {
        "new_model": new,
        "threshold_flop": threshold,
        "fraction_of_original": None if original_flop is None else added / original_flop,
        "rule": f"{_near(added, threshold)} FLOP is {'more than' if new else 'not more than'} "
        f"{_near(threshold, added)} ({basis}; "
        "guidelines §3.2)",
    }


def _near(flop: float, threshold: float) -> str:
    """Two significant figures, or as many as it takes to tell ``flop`` from ``threshold`` (1.0000001×10^25)."""
    if flop == threshold or flop == 0 or threshold == 0:
        return sig2(flop)
    for digits in range(2, 17):
        a, b = f"{flop:.{digits - 1}e}", f"{threshold:.{digits - 1}e}"
        if a != b:
            mant, exp = a.split("e")
            return sig2(flop) if digits == 2 else f"{mant}×10^{int(exp)}"
    return f"{flop!r}"


def notify_by(met_or_foreseen_s: float) -> float:
    """The Art. 52(1) deadline: two weeks after the threshold was met or became foreseeable (Unix seconds)."""
    return met_or_foreseen_s + NOTIFY_DAYS * 86_400.0
