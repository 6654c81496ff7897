"""GPU models that gigafactory knows the numbers of (BENCHMARKS.md B6).

A site may use any model name (the Alibaba trace has ``G2`` and ``T4``); this catalogue only adds the figures
that accounting, energy and the AI Act desk need, and the names the site presets accept.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SYSTEM_WATTS", "GPU_MODELS", "GpuModel", "system_watts"]

DEFAULT_SYSTEM_WATTS = 1_000.0  # per GPU, for models not in the catalogue (the Alibaba trace's G2, T4, ...)


def system_watts(model: str) -> float:
    """System power per GPU at full load for ``model``; :data:`DEFAULT_SYSTEM_WATTS` when it is not known."""
    m = GPU_MODELS.get(model)
    return m.system_watts if m is not None else DEFAULT_SYSTEM_WATTS


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str
    bf16_tflops: float  # dense BF16 peak, TFLOP/s
    watts: float  # board power at full load
    memory_gb: float
    # Power of the whole system at full load per GPU: the node's (or NVL72 rack's) maximum power / its GPUs, so
    # CPUs, memory, NICs and fans are counted. Used for energy and power caps.
    system_watts: float


GPU_MODELS: dict[str, GpuModel] = {
    m.name: m
    for m in (
        GpuModel("A100", 312.0, 400.0, 80.0, 6_500 / 8),  # DGX A100: 6.5 kW max for 8 GPUs
        GpuModel("H100", 989.0, 700.0, 80.0, 10_200 / 8),  # DGX H100: 10.2 kW max
        GpuModel("H200", 989.0, 700.0, 141.0, 10_200 / 8),  # DGX H200: 10.2 kW max
        GpuModel("B200", 2250.0, 1000.0, 192.0, 14_300 / 8),  # DGX B200: 14.3 kW max
        GpuModel("GB200", 2500.0, 1200.0, 192.0, 132_000 / 72),  # NVL72 rack: 120-132 kW (B6), the upper end
    )
}
