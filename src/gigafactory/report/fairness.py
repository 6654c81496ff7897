"""Fairness as tenants feel it: demand-capped entitlements, shares in time windows, Jain's index.

Pure functions over arrays; the twin (:mod:`gigafactory.twin.metrics`) and the control plane's reports both use
them.

**Entitlement.** At any moment a tenant is owed a part of the GPUs in service, found max-min (water-filling) down
the tenant tree: a node's GPUs are split among its children in proportion to their shares, but no child gets more
than it asks for (the GPUs its waiting and running jobs want), nor more than its limit (``Tenant.limit``: the GPUs
it may never exceed, at every level of the tree); what a child leaves is split again among the others, in
proportion. A tenant with nothing waiting or running is owed nothing, and its share goes to the rest. This is the
weighted max-min allocation of DRF, Themis and Slurm's fair-share with one resource.

**Received share in a window** (an hour, a day, the steady-state window): the tenant's GPU-hours there over all
tenants' GPU-hours there. The **entitled share** is the same ratio of entitlements. Their difference is the
tenant's **deviation**; the sum of the absolute deviations is the window's **fairness deviation** (0: every tenant
got its entitled part of what was used; 2: the opposite of entitled).

**Jain's index** over the tenants owed something in a window, of received / entitled: 1 when each got the same
fraction of its entitlement, 1/n when one tenant got everything.

**Owed but not received**: the GPU-hours by which a tenant's entitlement exceeded its allocation, summed over time.
It counts GPUs that stood idle while the tenant waited (fragmentation, a reservation for a big job) as well as GPUs
others held; the part **taken by others** is what tenants held beyond their own entitlement at the same time,
shared among the tenants short of theirs in proportion to how short they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gigafactory.core.tenants import ROOT, TenantTree

__all__ = ["entitlement", "jain", "max_min", "mser5"]

FloatArray = npt.NDArray[np.float64]


def max_min(capacity: FloatArray, demand: FloatArray, weights: FloatArray) -> FloatArray:
    """Weighted max-min split of ``capacity[t]`` among columns with ``demand[t, i]`` and ``weights[i]``, for
    every row ``t`` at once: no column gets more than its demand, and what is left is shared by weight."""
    rows, cols = demand.shape
    out = np.zeros((rows, cols))
    if cols == 0 or rows == 0:
        return out
    remaining = np.maximum(capacity.astype(np.float64), 0.0).copy()
    active = np.ones((rows, cols), dtype=bool)
    w = np.asarray(weights, dtype=np.float64)[None, :]
    for _ in range(cols + 1):
        wsum = np.where(active, w, 0.0).sum(axis=1)
        fair = np.divide(remaining[:, None] * w, wsum[:, None], out=np.zeros((rows, cols)), where=wsum[:, None] > 0)
        capped = active & (demand <= fair)
        if not capped.any():
            break
        out[capped] = demand[capped]
        remaining -= np.where(capped, demand, 0.0).sum(axis=1)
        np.maximum(remaining, 0.0, out=remaining)
        active &= ~capped
    return np.where(active, fair, out)


def entitlement(
    capacity: FloatArray, demand: FloatArray, tenants: Sequence[str], tree: TenantTree | None
) -> FloatArray:
    """Each tenant's (column's) entitlement, capped by demand and by the limits on the way, max-min down ``tree``
    (equal shares when ``None``).

    ``demand[t, i]`` is what tenant ``tenants[i]`` asks for at row ``t``. An account with a limit asks for no more
    than its limit, whatever its tenants want. Tenants missing from the tree share equally with the tree's top
    level, with weight 1."""
    names = list(tenants)
    if tree is None:
        return max_min(capacity, demand, np.ones(len(names)))
    column = {name: i for i, name in enumerate(names)}
    out = np.zeros_like(demand, dtype=np.float64)

    def leaves_under(node: str) -> list[int]:
        kids = tree.children(node)
        if not kids:
            return [column[node]] if node in column else []
        return [c for k in kids for c in leaves_under(k)]

    def split(node: str, cap: FloatArray, kids: list[tuple[str | None, float, list[int]]]) -> None:
        if not kids:
            return
        want = np.stack([_capped(name, demand[:, cols].sum(axis=1)) for name, _, cols in kids], axis=1)
        got = max_min(cap, want, np.array([w for _, w, _ in kids]))
        for j, (name, _, cols) in enumerate(kids):
            if name is None or not tree.children(name):
                out[:, cols[0]] = got[:, j]  # a leaf: one column
            else:
                split(name, got[:, j], _children(name))

    def _children(node: str) -> list[tuple[str | None, float, list[int]]]:
        return [(k, tree[k].share, leaves_under(k)) for k in tree.children(node) if leaves_under(k)]

    def _capped(name: str | None, want: FloatArray) -> FloatArray:
        limit = tree[name].limit if name is not None else None
        return want if limit is None else np.minimum(want, float(limit))

    top = _children(ROOT)
    strays = [i for name, i in column.items() if name not in tree]
    top += [(None, 1.0, [i]) for i in strays]
    split(ROOT, capacity, top)
    return out


def jain(received: FloatArray, entitled: FloatArray) -> FloatArray:
    """Jain's index per row, over the columns owed something in that row, of received / entitled; NaN where
    nobody was owed anything."""
    owed = entitled > 0
    x = np.divide(received, entitled, out=np.zeros_like(received, dtype=np.float64), where=owed)
    n = owed.sum(axis=1)
    s1 = x.sum(axis=1)
    s2 = (x * x).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        j = s1 * s1 / (n * s2)
    j[(n == 0)] = np.nan
    j[(n > 0) & (s2 == 0)] = 0.0  # owed, and nobody got anything
    return np.asarray(j)


def mser5(values: FloatArray) -> int:
    """The warm-up to cut from a series by the MSER-5 rule (White 1997): batch means of 5, then the truncation
    ``d`` (at most half the batches) that minimises the standard error of the mean of what remains; returns how
    many of the original values to cut."""
    m = values.size // 5
    if m < 4:
        return 0
    batches = values[: m * 5].reshape(m, 5).mean(axis=1)
    # Sums over the tail batches[d:], for every d.
    tail = np.cumsum(batches[::-1])[::-1]
    tail2 = np.cumsum((batches * batches)[::-1])[::-1]
    count = np.arange(m, 0, -1, dtype=np.float64)
    sse = tail2 - tail * tail / count
    score = sse / (count * count)
    d = int(np.argmin(score[: m // 2 + 1]))
    return d * 5
