"""Training compute: the two estimates the guidelines accept, the purposes that count, and the cumulative sum.

* **Hardware estimate** (guidelines, Annex A): C = Σ GPUs × seconds × peak FLOP/s × utilisation, from the control
  plane's own accounting and the dense BF16 peak of each GPU model (``core/hardware.py``; all operations count
  equally, whatever their precision). A GPU model whose peak is not known is refused, never guessed.
* **Architecture estimate**: C ≈ 6 · parameters · tokens, for dense transformers.

Both carry an uncertainty; the guidelines accept any method within ±30%, with its assumptions documented. The
hardware estimate's uncertainty is that of the utilisation (MFU) assumed: given as a range, it is the range's half
width relative to its middle; the architecture estimate's is taken as ±30% unless given.

**What counts** (guidelines, Annex A): pre-training, further training of the same model, non-public synthetic-data
generation (every sample generated) and the compute behind merged or initialising weights. Evaluation, red-teaming,
failed experiments and exploratory research, teacher and reward-model training are excluded.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from gigafactory.core.errors import RequestError
from gigafactory.core.hardware import GPU_MODELS

__all__ = ["COUNTED", "Estimate", "Purpose", "architecture_estimate", "cumulative", "hardware_estimate"]

MAX_GPU_SECONDS = 1e15  # 3×10^7 GPU-years
MAX_PARAMETERS = 1e15
MAX_TOKENS = 1e17


class Purpose(enum.Enum):
    PRE_TRAINING = "pre-training"
    FURTHER_TRAINING = "further-training"
    SYNTHETIC_DATA = "synthetic-data"  # non-public synthetic-data generation: every sample generated
    MERGE_OR_INIT = "merge-or-init"  # compute behind merged or initialising weights
    EVALUATION = "evaluation"
    RED_TEAMING = "red-teaming"
    FAILED_EXPERIMENT = "failed-experiment"  # and exploratory research
    REWARD_MODEL = "reward-model"
    TEACHER = "teacher"  # training a distillation teacher

    @property
    def counts(self) -> bool:
        return self in COUNTED


COUNTED = frozenset({Purpose.PRE_TRAINING, Purpose.FURTHER_TRAINING, Purpose.SYNTHETIC_DATA, Purpose.MERGE_OR_INIT})


@dataclass(frozen=True, slots=True)
class Estimate:
    flop: float
    low: float
    high: float
    method: str  # hardware | architecture
    assumptions: str

    @property
    def uncertainty(self) -> float:
        """Half the range, relative to the estimate (0.3 = ±30%)."""
        return (self.high - self.low) / 2 / self.flop if self.flop > 0 else 0.0


def hardware_estimate(gpu_seconds: dict[str, float], mfu: tuple[float, float] = (0.35, 0.45)) -> Estimate:
    """From GPU-seconds per GPU model and an MFU range (default 35–45%, around the 38–43% of Llama 3's large runs,
    BENCHMARKS.md B6): the middle of the range is the estimate, its ends the bounds."""
    lo_u, hi_u = mfu
    if not (0 < lo_u <= hi_u <= 1):
        raise RequestError(f"mfu={mfu!r}: give a range 0 < low <= high <= 1")
    peak = 0.0
    for model, secs in gpu_seconds.items():
        if model not in GPU_MODELS:
            known = ", ".join(sorted(GPU_MODELS))
            raise RequestError(f"GPU model {model!r}: its peak FLOP/s is not known (known: {known}); the hardware "
                               "estimate is refused rather than guessed: use the architecture estimate")  # fmt: skip
        if not (math.isfinite(secs) and 0 <= secs <= MAX_GPU_SECONDS):
            raise RequestError(f"{model}: {secs!r} GPU-seconds must be between 0 and {MAX_GPU_SECONDS:g}")
        peak += secs * GPU_MODELS[model].bf16_tflops * 1e12
    mid = (lo_u + hi_u) / 2
    parts = ", ".join(f"{s / 3600:,.0f} {m} GPU-hours at {GPU_MODELS[m].bf16_tflops:g} TFLOP/s"
                      for m, s in sorted(gpu_seconds.items()))  # fmt: skip
    return Estimate(peak * mid, peak * lo_u, peak * hi_u, "hardware",
                    f"Σ GPUs × seconds × dense BF16 peak × utilisation: {parts or 'no GPU time'}; utilisation "
                    f"{lo_u:.0%}–{hi_u:.0%} (estimate at {mid:.0%})")  # fmt: skip


def architecture_estimate(parameters: float, tokens: float, uncertainty: float = 0.3) -> Estimate:
    for name, v, most in (("parameters", parameters, MAX_PARAMETERS), ("tokens", tokens, MAX_TOKENS)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 or v > most:
            raise RequestError(f"{name}={v!r} must be a number above 0 and at most {most:g}")
    if not 0 <= uncertainty < 1:
        raise RequestError(f"uncertainty={uncertainty!r} must be between 0 and 1")
    flop = 6.0 * parameters * tokens
    why = f"6 · {parameters:.3g} parameters · {tokens:.3g} tokens (dense transformer); ±{uncertainty:.0%}"
    return Estimate(flop, flop * (1 - uncertainty), flop * (1 + uncertainty), "architecture", why)


def cumulative(runs: Iterable[tuple[Purpose, float]]) -> float:
    """The compute that counts towards the thresholds: the counted purposes only."""
    return sum(flop for purpose, flop in runs if purpose.counts)
