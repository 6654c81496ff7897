"""``fair-share``: tenants first by how far their decayed usage is below their share, in the manner of Slurm's
Fair Tree; within a tenant, first submitted first.

Usage is GPU-seconds decayed with a half-life (``half_life_h``, default 24 h), kept by the engine per tenant.
The tenant tree is walked from the root: at each level, siblings are ranked by ``share / usage`` (both
normalised among the siblings; higher first, ties by name), and the leaves come out in that depth-first order,
so a tenant under-served at any level comes before all tenants of an over-served sibling.

Within one pass, every job that starts charges its tenant ``GPUs × min(estimate, half-life)`` GPU-seconds before
the next ranking, as Kueue's admission fair sharing charges an admitted workload's request: one pass does not
hand the whole site to the tenant that happened to rank first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gigafactory.core.jobs import Job
from gigafactory.core.spec import Param
from gigafactory.core.tenants import ROOT, TenantTree
from gigafactory.policy.base import ORDER, PolicyFactory, SchedulerView


@dataclass(frozen=True, slots=True)
class FairShare:
    half_life_h: float = 24.0
    name: str = "fair-share"
    grouped = True
    continuous_keys = False

    @property
    def half_life_s(self) -> float:
        return self.half_life_h * 3600.0

    def key_changes_at(self, job: Job, attained_gpu_s: float, started_s: float) -> float:
        return math.inf

    def key(self, job: Job, attained_gpu_s: float = 0.0) -> tuple[Any, ...]:
        return (job.submit_s, job.id)

    def group(self, job: Job) -> str:
        return job.tenant

    def charge(self, job: Job) -> float:
        est = job.estimate_s if job.estimate_s is not None else self.half_life_s
        return job.request.gpu_equivalent * min(est, self.half_life_s)

    def rank_groups(self, groups: list[str], view: SchedulerView, charged: dict[str, float]) -> dict[str, Any]:
        if len(groups) == 1:
            return {groups[0]: (0,)}
        usage = view.usage_all()
        for g, c in charged.items():
            usage[g] = usage.get(g, 0.0) + c
        tree = view.tenants
        if tree is None or not all(g in tree for g in groups):
            # No tree: every tenant an equal share.
            return {g: (usage.get(g, 0.0), g) for g in groups}
        order = _fair_tree(tree, usage)
        return {g: (order.get(g, math.inf), g) for g in groups}


@lru_cache(maxsize=16)
def _structure(tree: TenantTree) -> dict[str, tuple[tuple[str, ...], tuple[float, ...]]]:
    """Per account with children: the children and their shares, normalised among them."""
    out = {}
    for node in [ROOT, *tree.names()]:
        kids = tuple(tree.children(node))
        if kids:
            total = sum(tree[k].share for k in kids)
            out[node] = (kids, tuple(tree[k].share / total for k in kids))
    return out


def _fair_tree(tree: TenantTree, usage: dict[str, float]) -> dict[str, int]:
    """Leaves in Fair Tree order: depth first, siblings by share/usage, highest first, ties by name."""
    structure = _structure(tree)
    used: dict[str, float] = {}

    def total(name: str) -> float:
        got = used.get(name)
        if got is None:
            node = structure.get(name)
            got = usage.get(name, 0.0) if node is None else sum(total(k) for k in node[0])
            used[name] = got
        return got

    out: dict[str, int] = {}

    def walk(node: str) -> None:
        entry = structure.get(node)
        if entry is None:
            out[node] = len(out)
            return
        kids, shares = entry
        use = [total(k) for k in kids]
        whole = sum(use)
        ranked = sorted(
            zip(kids, shares, use, strict=True),
            key=lambda e: (-(math.inf if whole <= 0 or e[2] <= 0 else e[1] / (e[2] / whole)), e[0]),
        )
        for kid, _, _ in ranked:
            walk(kid)

    walk(ROOT)
    return out


ORDER.add(
    "fair-share",
    PolicyFactory(
        FairShare,
        "tenants by decayed usage against share (Fair Tree), then first submitted",
        {"half_life_h": Param(float, 24.0, minimum=0.0, exclusive_minimum=True, help="usage half-life, hours")},
    ),
)
