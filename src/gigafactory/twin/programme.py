"""An access programme for the twin: calls that award tenants GPU-hours, replayed against a workload.

``calls=4,cover=0.8,response_days=4`` over a 365-day workload: a call every quarter. Each call awards every tenant
that submits work in its period ``cover`` × the GPU-hours it submits then, granted ``response_days`` after the call
opens and valid for one period from then (the EuroHPC access modes answer within 2–10 working days, and their
awards last 1–12 months: BENCHMARKS.md B6). A tenant's jobs charge its active award; with the ``award`` admit
policy a job waits while its award is used up or not yet granted, and a running one is stopped when its award runs
out. ``cover`` below 1 leaves tenants short; above 1 gives slack.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigafactory.core.awards import Award
from gigafactory.core.errors import ConfigError
from gigafactory.core.spec import Param, bind_params, parse_spec
from gigafactory.twin.workload import Workload

__all__ = ["PROGRAMME_PARAMS", "parse_programme", "programme_awards"]

PROGRAMME_PARAMS = {
    "calls": Param(int, 4, minimum=1, maximum=1000, help="calls over the run, evenly spaced"),
    "cover": Param(float, 1.0, minimum=0.0, exclusive_minimum=True, help="awarded / submitted GPU-hours"),
    "response_days": Param(float, 4.0, minimum=0.0, help="days from a call's opening to its awards"),
}


def parse_programme(text: str, days: float) -> dict[str, Any]:
    """``calls=4,cover=0.8`` (or ``programme:calls=4,...``) over ``days``, checked against :data:`PROGRAMME_PARAMS`."""
    spec = parse_spec(f"programme:{text}" if text and ":" not in text else text or "programme")
    if spec.name != "programme":
        raise ConfigError(f"programme {text!r}: write it as calls=4,cover=0.8,response_days=4")
    p = bind_params("programme", PROGRAMME_PARAMS, spec.params)
    period = days / p["calls"]
    if p["response_days"] >= period:
        raise ConfigError(f"programme: response_days={p['response_days']:g} must be shorter than a call's period "
                          f"({period:g} days: {days:g} days / {p['calls']} calls)")  # fmt: skip
    return p


def programme_awards(text: str, workload: Workload, days: float) -> list[Award]:
    """The awards of the programme ``text`` (``calls=4,cover=0.8,...``) for ``workload`` over ``days``."""
    p = parse_programme(text, days)
    period = days * 86_400.0 / p["calls"]
    response = p["response_days"] * 86_400.0
    start = float(workload.submit_s[0]) if len(workload) else 0.0
    gpu_h = workload.gpu_equivalent * workload.runtime_s / 3600.0
    call = np.minimum(((workload.submit_s - start) // period).astype(np.int64), p["calls"] - 1)
    awards: list[Award] = []
    for c in range(p["calls"]):
        granted = start + c * period + response
        mine = call == c
        for t_idx, name in enumerate(workload.tenants):
            hours = float(gpu_h[mine & (workload.tenant == t_idx)].sum())
            if hours <= 0:
                continue
            awards.append(
                Award(len(awards) + 1, name, round(p["cover"] * hours, 3), granted, granted + period, f"call {c + 1}")
            )
    return awards
