"""GPU models that gigafactory knows the numbers of (BENCHMARKS.md B6).

A site may use any model name (the Alibaba trace has ``G2`` and ``T4``); this catalogue only adds the figures
that accounting, energy and the AI Act desk need, and the names the site presets accept.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GPU_MODELS", "GpuModel"]


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str
    bf16_tflops: float  # dense BF16 peak, TFLOP/s
    watts: float  # board power at full load
    memory_gb: float


GPU_MODELS: dict[str, GpuModel] = {
    m.name: m
    for m in (
        GpuModel("A100", 312.0, 400.0, 80.0),
        GpuModel("H100", 989.0, 700.0, 80.0),
        GpuModel("H200", 989.0, 700.0, 141.0),
        GpuModel("B200", 2250.0, 1000.0, 192.0),
        GpuModel("GB200", 2500.0, 1200.0, 192.0),
    )
}
