"""Per-tenant accounting the engine keeps for policies: GPUs held now, and GPU-seconds used, decayed.

Decayed usage with half-life ``h`` is ``U(t) = sum over past use of GPUs × 2^(-(t - s)/h) ds``. Between changes a
tenant holds a constant ``g`` GPUs, so ``U`` is updated exactly and lazily: ``U ← U·d + g·h/ln2·(1 - d)`` with
``d = 2^(-Δt/h)``, whenever ``g`` changes or ``U`` is read. Written only by the engine.
"""

from __future__ import annotations

import math

from mypy_extensions import mypyc_attr

__all__ = ["UsageLedger"]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)  # copyable when compiled (gigafactory._native)
class UsageLedger:
    def __init__(self, half_life_s: float = math.inf) -> None:
        self.half_life_s = half_life_s
        self._held: dict[str, float] = {}  # GPUs (fractions count) held now
        self._usage: dict[str, float] = {}  # decayed GPU-seconds as of _at
        self._at: dict[str, float] = {}
        self._all_at = -math.inf  # every tenant's usage is as of this time (the clock never goes back)

    def held(self, tenant: str) -> float:
        return self._held.get(tenant, 0.0)

    def tenants(self) -> list[str]:
        return sorted(t for t, g in self._held.items() if g > 1e-12)

    def _advance(self, tenant: str, now: float) -> None:
        last = self._at.get(tenant)
        if last is None:
            self._at[tenant] = now
            return
        dt = now - last
        if dt <= 0:
            return
        g = self._held.get(tenant, 0.0)
        u = self._usage.get(tenant, 0.0)
        h = self.half_life_s
        if math.isinf(h):
            self._usage[tenant] = u + g * dt
        else:
            d = 2.0 ** (-dt / h)
            self._usage[tenant] = u * d + g * h / math.log(2) * (1.0 - d)
        self._at[tenant] = now

    def change(self, tenant: str, gpus: float, now: float) -> None:
        self._advance(tenant, now)
        self._held[tenant] = self._held.get(tenant, 0.0) + gpus

    def usage(self, tenant: str, now: float) -> float:
        self._advance(tenant, now)
        return self._usage.get(tenant, 0.0)

    def usage_all(self, now: float) -> dict[str, float]:
        """Decayed usage of every tenant seen so far (a fresh dict the caller may change)."""
        if now != self._all_at:  # a pass asks again after each start, at the same time: nothing to advance then
            for tenant in self._at:
                self._advance(tenant, now)
            self._all_at = now
        return dict(self._usage)
