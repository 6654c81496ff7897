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
        return _fair_keys(tree, usage, groups)

    def __deepcopy__(self, memo: dict[int, object]) -> FairShare:
        return self  # immutable: a copy of the engine (the forecast's) shares it


_Structure = tuple[dict[str, tuple[tuple[str, ...], tuple[float, ...]]], dict[str, tuple[str, float]]]


@lru_cache(maxsize=16)
def _structure(tree: TenantTree) -> _Structure:
    """Per account with children: the children and their shares, normalised among them; per account below the
    root: its parent and its normalised share."""
    kids_of: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {}
    above: dict[str, tuple[str, float]] = {}
    for node in [ROOT, *tree.names()]:
        kids = tuple(tree.children(node))
        if kids:
            total = sum(tree[k].share for k in kids)
            shares = tuple(tree[k].share / total for k in kids)
            kids_of[node] = (kids, shares)
            for k, share in zip(kids, shares, strict=True):
                above[k] = (node, share)
    return kids_of, above


def _fair_keys(tree: TenantTree, usage: dict[str, float], groups: list[str]) -> dict[str, Any]:
    """A key per group that sorts the leaves in Fair Tree order: depth first, siblings by share/usage, highest
    first, ties by name. A leaf's key is its path from the root, one ``(-share/usage, name)`` per level, so two
    leaves compare at the level where their paths part, as siblings; accounts with children come after every leaf,
    by name. Keys, not positions: the caller's heap sorts them, and only the groups asked for are keyed."""
    kids_of, above = _structure(tree)
    used: dict[str, float] = {}
    whole_of: dict[str, float] = {}

    def total(name: str) -> float:
        got = used.get(name)
        if got is None:
            node = kids_of.get(name)
            got = usage.get(name, 0.0) if node is None else sum(total(k) for k in node[0])
            used[name] = got
        return got

    def whole(parent: str) -> float:
        got = whole_of.get(parent)
        if got is None:
            got = whole_of[parent] = sum(total(k) for k in kids_of[parent][0])
        return got

    keys: dict[str, Any] = {}
    for g in groups:
        if g in kids_of:
            keys[g] = (1, g)
            continue
        path = []
        node = g
        while node in above:
            parent, share = above[node]
            w = whole(parent)
            u = total(node)
            path.append((-(math.inf if w <= 0 or u <= 0 else share / (u / w)), node))
            node = parent
        path.reverse()
        keys[g] = (0, tuple(path))
    return keys


ORDER.add(
    "fair-share",
    PolicyFactory(
        FairShare,
        "tenants by decayed usage against share (Fair Tree), then first submitted",
        {"half_life_h": Param(float, 24.0, minimum=0.0, exclusive_minimum=True, help="usage half-life, hours")},
    ),
)
