"""Tenants: a tree of accounts with shares.

An account is a programme, a funder (a member state or an investor), an organisation or a project. Each has a
``share`` (a weight among its siblings), and optionally a ``guarantee`` (GPUs it may always reclaim) and a
``limit`` (GPUs it may never exceed). Jobs belong to leaf accounts.

The *normalised share* of an account is its fraction of the whole site: the product, along its path from the
root, of ``share / sum of siblings' shares``. The leaves' normalised shares sum to 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gigafactory.core.errors import ConfigError

__all__ = ["ROOT", "Tenant", "TenantTree"]

ROOT = "root"


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    share: float = 1.0
    parent: str = ROOT
    guarantee: int | None = None  # GPUs
    limit: int | None = None  # GPUs


class TenantTree:
    """A validated tree of :class:`Tenant` accounts under an implicit root named ``root``."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self._by_name: dict[str, Tenant] = {}
        for t in tenants:
            if not t.name or t.name == ROOT:
                raise ConfigError(f"tenant name {t.name!r} is reserved or empty")
            if t.name in self._by_name:
                raise ConfigError(f"tenant {t.name!r} is defined twice")
            if not t.share > 0:
                raise ConfigError(f"tenant {t.name!r}: share={t.share!r} must be greater than 0")
            for label, v in (("guarantee", t.guarantee), ("limit", t.limit)):
                if v is not None and v < 0:
                    raise ConfigError(f"tenant {t.name!r}: {label}={v} must not be negative")
            if t.guarantee is not None and t.limit is not None and t.guarantee > t.limit:
                raise ConfigError(f"tenant {t.name!r}: guarantee {t.guarantee} is above its limit {t.limit}")
            self._by_name[t.name] = t
        self._children: dict[str, list[str]] = {ROOT: []}
        for t in self._by_name.values():
            if t.parent != ROOT and t.parent not in self._by_name:
                raise ConfigError(f"tenant {t.name!r}: parent {t.parent!r} is not a tenant")
            self._children.setdefault(t.parent, []).append(t.name)
        for kids in self._children.values():
            kids.sort()
        self._check_acyclic()
        self._norm: dict[str, float] = {}
        self._normalise(ROOT, 1.0)
        if not self._by_name:
            raise ConfigError("a tenant tree needs at least one tenant")

    @classmethod
    def flat(cls, shares: Mapping[str, float]) -> TenantTree:
        return cls(Tenant(name, share) for name, share in shares.items())

    def _check_acyclic(self) -> None:
        for name in self._by_name:
            seen = {name}
            cur = self._by_name[name].parent
            while cur != ROOT:
                if cur in seen:
                    raise ConfigError(f"tenant tree has a cycle through {cur!r}")
                seen.add(cur)
                cur = self._by_name[cur].parent

    def _normalise(self, node: str, fraction: float) -> None:
        kids = self._children.get(node, [])
        total = sum(self._by_name[k].share for k in kids)
        for k in kids:
            f = fraction * self._by_name[k].share / total
            self._norm[k] = f
            self._normalise(k, f)

    def check_capacity(self, gpus: int) -> None:
        """Guarantees must fit the site, at every level of the tree."""
        for parent, kids in self._children.items():
            total = sum(self._by_name[k].guarantee or 0 for k in kids)
            cap = gpus if parent == ROOT else (self._by_name[parent].guarantee or gpus)
            if total > cap:
                where = "the site" if parent == ROOT else f"tenant {parent!r}"
                raise ConfigError(f"guarantees under {where} add up to {total} GPUs, above its {cap}")

    # ---- queries ------------------------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Tenant:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f"unknown tenant {name!r}; known: {', '.join(sorted(self._by_name))}") from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def leaves(self) -> list[str]:
        return [n for n in self.names() if not self._children.get(n)]

    def children(self, name: str = ROOT) -> list[str]:
        return list(self._children.get(name, []))

    def path(self, name: str) -> list[str]:
        """Accounts from the top of the tree down to ``name``."""
        out = []
        cur = name
        while cur != ROOT:
            out.append(cur)
            cur = self[cur].parent
        return out[::-1]

    def normalised_share(self, name: str) -> float:
        return self._norm[self[name].name]
