"""The compute ledger of one model: its training runs, what each cost in FLOP by each method, what counts, where
the thresholds stand, and the notification clock.

Runs carry the GPU-seconds the control plane billed them (per GPU model), and, while they run, their rate and how
long they may still run (their time limit); planned runs carry the GPU-hours planned (a dry run) or the parameters and
tokens declared. The ledger relies on the hardware estimate wherever a run has GPU time, on the architecture estimate
otherwise, and says which for each run.

**The clock** (Art. 52(1)): it opens when the counted compute crosses 10^25 FLOP, or when a crossing becomes
foreseeable: a running job that would cross it by the end of its time limit at its present rate, or a planned run
whose estimate would (then, at the time the plan was recorded). The ledger is computed afresh from the facts; the
driver keeps the first time it saw a crossing (``clock_opened_at``), so the deadline does not move. The
notification is due 14 days after it opened. A model whose provider has recorded a notification has no open clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gigafactory.desk.compute import Estimate, Purpose, architecture_estimate, hardware_estimate
from gigafactory.desk.law import GPAI_FLOP, SYSTEMIC_FLOP
from gigafactory.desk.thresholds import modification, notify_by, sig2, thresholds

__all__ = ["ModelFacts", "RunFacts", "ledger"]


@dataclass(frozen=True, slots=True)
class RunFacts:
    id: int
    purpose: Purpose
    gpu_seconds: dict[str, float] = field(default_factory=dict)  # billed and used so far, per GPU model
    running_gpus: dict[str, float] = field(default_factory=dict)  # GPUs running now, per GPU model
    remaining_s: float = 0.0  # how much longer those may run (their time limit); 0: unknown or none
    planned_gpu_hours: dict[str, float] = field(default_factory=dict)  # a planned run (a dry run through the twin)
    parameters: float | None = None
    tokens: float | None = None
    mfu: tuple[float, float] = (0.35, 0.45)
    recorded_at: float = 0.0
    label: str = ""  # what it is, when it is not a recorded run (jobs submitted naming the model)
    note: str = ""  # how it was planned (a dry run through the twin, say)


@dataclass(frozen=True, slots=True)
class ModelFacts:
    id: int
    name: str
    generative: bool
    original_flop: float | None = None  # a modification: the original's compute, if known
    original_systemic: bool = False
    modifies: str | None = None  # the original's name; None: not a modification
    notified_at: float | None = None
    clock_opened_at: float | None = None  # when the driver first saw the crossing met or foreseeable


def ledger(model: ModelFacts, runs: list[RunFacts], now: float) -> dict[str, Any]:
    rows = []
    counted = low = high = 0.0
    projected = 0.0  # counted compute by the end of the running jobs' limits and of the planned runs
    plow = phigh = 0.0  # its range
    methods = set()
    crossing: float | None = None  # when it became foreseeable (or met)
    for r in sorted(runs, key=lambda r: r.recorded_at):
        est: Estimate | None = None
        if r.gpu_seconds and sum(r.gpu_seconds.values()) > 0:
            est = hardware_estimate(r.gpu_seconds, r.mfu)
        elif r.planned_gpu_hours:
            est = hardware_estimate({m: h * 3600 for m, h in r.planned_gpu_hours.items()}, r.mfu)
        elif r.parameters is not None and r.tokens is not None:
            est = architecture_estimate(r.parameters, r.tokens)
        arch = architecture_estimate(r.parameters, r.tokens) if r.parameters and r.tokens else None
        planned = not r.gpu_seconds and (bool(r.planned_gpu_hours) or arch is not None) and not r.running_gpus
        flop = est.flop if est is not None else 0.0
        more = 0.0
        if r.running_gpus and r.remaining_s > 0:
            more = hardware_estimate({m: g * r.remaining_s for m, g in r.running_gpus.items()}, r.mfu).flop
        row = {"run": r.id, "label": r.label or f"run {r.id}", "purpose": r.purpose.value,
               "counts": r.purpose.counts, "planned": planned,
               "method": est.method if est else None, "flop": flop, "flop_2sf": sig2(flop),
               "low": est.low if est else 0.0, "high": est.high if est else 0.0,
               "assumptions": est.assumptions if est else "no GPU time and no declared size yet",
               "architecture_flop": arch.flop if arch else None, "projected_more_flop": more,
               "note": r.note}  # fmt: skip
        rows.append(row)
        if not r.purpose.counts:
            continue
        before = projected
        if not planned:
            counted += flop
            low += est.low if est else 0.0
            high += est.high if est else 0.0
        projected += flop + more
        mid = (r.mfu[0] + r.mfu[1]) / 2
        plow += (est.low if est else 0.0) + more * r.mfu[0] / mid
        phigh += (est.high if est else 0.0) + more * r.mfu[1] / mid
        if est is not None:
            methods.add(est.method)
        if crossing is None and before <= SYSTEMIC_FLOP < projected:
            crossing = r.recorded_at if planned else now  # (the driver keeps the first time it saw it)
    verdict = thresholds(counted, model.generative)
    foreseen = thresholds(projected, model.generative)
    out: dict[str, Any] = {
        "model": model.id,
        "name": model.name,
        "generative": model.generative,
        "runs": rows,
        "counted_flop": counted,
        "counted_flop_2sf": sig2(counted),
        "range_flop": [low, high],
        "projected_flop": projected,
        "projected_range_flop": [plow, phigh],
        "relies_on": " and ".join(sorted(methods)) or "nothing yet",
        "gpai": verdict["gpai"].value,
        "gpai_rule": verdict["gpai"].rule,
        "systemic_risk": verdict["systemic_risk"].value,
        "systemic_risk_rule": verdict["systemic_risk"].rule,
        "systemic_risk_foreseeable": foreseen["systemic_risk"].value,
        "distance_to_gpai_flop": max(GPAI_FLOP - counted, 0.0),
        "distance_to_systemic_flop": max(SYSTEMIC_FLOP - counted, 0.0),
    }
    if model.modifies is not None:
        out["modification"] = modification(counted, model.original_flop, model.original_systemic)
        ahead = modification(projected, model.original_flop, model.original_systemic)
        out["modification_foreseeable"] = ahead["new_model"]
        # Guidelines §3.2: modifying a model with systemic risk by more than a third of its compute makes the
        # modifier the provider of a GPAI model with systemic risk: the same notification duty.
        systemic_original = model.original_systemic or (model.original_flop or 0.0) > SYSTEMIC_FLOP
        if systemic_original and ahead["new_model"]:
            out["systemic_risk_foreseeable"] = True
            out["systemic_risk"] = out["systemic_risk"] or out["modification"]["new_model"]
            out["systemic_risk_rule"] += (
                "; and as a modification of more than a third of a systemic-risk model's compute, it is a new GPAI "
                "model with systemic risk (guidelines §3.2)"
            )
            if crossing is None:
                crossing = now
    clock = None
    if crossing is not None and model.clock_opened_at is not None:
        crossing = min(crossing, model.clock_opened_at)
    if crossing is not None and model.notified_at is None:
        due = notify_by(crossing)
        clock = {"opened_at": crossing, "due_at": due, "overdue": now > due,
                 "why": "met" if out["systemic_risk"] else "foreseeable"}  # fmt: skip
    out["clock"] = clock
    out["notified_at"] = model.notified_at
    out["draft"] = _draft(model, out) if out["systemic_risk_foreseeable"] else None
    return out


def _draft(model: ModelFacts, led: dict[str, Any]) -> str:
    """The notification's substance (Art. 52(1)): the figure to two significant figures, the method, assumptions."""
    lines = [
        f"Notification under Article 52(1) of Regulation (EU) 2024/1689: model {model.name!r}.",
        f"Cumulative training compute: {led['counted_flop_2sf']} FLOP so far"
        + (f"; {sig2(led['projected_flop'])} FLOP expected with the runs in progress and planned"
           if led["projected_flop"] > led["counted_flop"] else "") + ".",
        f"The threshold of 10^25 FLOP (Art. 51(2)) is {'met' if led['systemic_risk'] else 'expected to be met'}.",
        f"Method: {led['relies_on']} estimate (Commission guidelines C(2025) 5045, Annex A); range "
        f"{sig2(led['range_flop'][0])}–{sig2(led['range_flop'][1])} FLOP for the compute so far"
        + (f", {sig2(led['projected_range_flop'][0])}–{sig2(led['projected_range_flop'][1])} FLOP for the expected "
           "figure" if led["projected_flop"] > led["counted_flop"] else "")
        + (" (its low end is not above 10^25: the crossing is likely, not certain)"
           if led["projected_range_flop"][0] <= SYSTEMIC_FLOP < led["projected_flop"] else "") + ".",
        "Assumptions, run by run:",
    ]  # fmt: skip
    lines += [f"- {r['label']} ({r['purpose']}{', planned' if r['planned'] else ''}): {r['flop_2sf']} FLOP; "
              f"{r['assumptions']}{'; ' + r['note'] if r.get('note') else ''}"
              for r in led["runs"] if r["counts"]]  # fmt: skip
    excluded = [r for r in led["runs"] if not r["counts"]]
    if excluded:
        lines.append(
            "Not counted (excluded purposes): " + ", ".join(f"{r['label']} ({r['purpose']})" for r in excluded)
        )
    if not math.isfinite(led["counted_flop"]):
        lines.append("The figure is not finite: check the runs.")
    return "\n".join(lines)
