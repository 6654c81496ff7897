"""The sites and their nodes. The only writer of the ``sites`` and ``nodes`` tables.

A store holds one site (one Slurm cluster, or one machine for the local executor) or the sites of a network, each
with its country, energy figures and executor. Their topologies are saved when the control plane first starts,
and the daemon rebuilds each engine's :class:`Topology` from them; node states (up, down, drained) are updated as
the daemon learns of them. A node is named by its site and its index there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from gigafactory.control.store.schema import node_log, nodes, sites
from gigafactory.core.errors import ConfigError
from gigafactory.core.topology import Topology
from gigafactory.network.model import SiteSpec

__all__ = ["StoredSite", "load_site", "load_sites", "node_rows", "save_site", "set_node_state"]


@dataclass(frozen=True)
class StoredSite:
    id: int
    name: str
    spec: str  # the preset (or "slurm:<cluster>") it was built from
    topology: Topology
    country: str | None = None
    price_eur_mwh: float | None = None
    carbon_g_kwh: float | None = None
    pue: float | None = None
    power_cap_mw: float | None = None
    executor: dict[str, Any] = field(default_factory=dict)

    def as_spec(self) -> SiteSpec:
        """As a network's site (for the router), on the topology the store holds."""
        return SiteSpec(
            self.name,
            self.spec,
            self.country or "",
            self.price_eur_mwh or 0.0,
            self.carbon_g_kwh or 0.0,
            self.pue or 1.0,
            self.power_cap_mw,
            executor=self.executor,
        ).on(self.topology)


def save_site(conn: Connection, topo: Topology, spec: str, site: SiteSpec | None = None) -> int:
    """Save a site unless one of its name is already there (a different one there is an error). Without ``site``
    (a lone site, not a network's), the store may hold no other."""
    name = site.name if site is not None else topo.name
    rows = conn.execute(select(sites.c.id, sites.c.name, sites.c.spec)).all()
    if site is None and rows:
        if len(rows) > 1 or rows[0].spec != spec:
            held = rows[0].spec if len(rows) == 1 else f"a network of {len(rows)} sites"
            raise ConfigError(f"this store already holds site {held!r}; it cannot become {spec!r}")
        return int(rows[0].id)
    for row in rows:
        if row.name == name:
            if row.spec != spec:
                raise ConfigError(f"this store's site {name!r} is {row.spec!r}; it cannot become {spec!r}")
            return int(row.id)
    now = time.time()
    values: dict[str, Any] = {"name": name, "spec": spec, "created_at": now}
    if site is not None:
        values.update(
            country=site.country,
            price_eur_mwh=site.price_eur_mwh,
            carbon_g_kwh=site.carbon_g_kwh,
            pue=site.pue,
            power_cap_mw=site.power_cap_mw,
            executor=dict(site.executor) or None,
        )
    site_id = int(conn.execute(sites.insert().values(**values)).inserted_primary_key[0])  # type: ignore[index]
    conn.execute(
        nodes.insert(),
        [
            {
                "site_id": site_id,
                "idx": i,
                "name": topo.node_names[i],
                "model": topo.models[int(topo.node_model[i])],
                "gpus": int(topo.node_gpus[i]),
                "cpu_milli": int(topo.node_cpu[i]),
                "mem_mib": int(topo.node_mem[i]),
                "domain": int(topo.node_domain[i]),
                "pod": int(topo.node_pod[i]),
                "state": "up",
                "reason": "",
                "updated_at": now,
            }
            for i in range(topo.num_nodes)
        ],
    )
    return site_id


def load_sites(conn: Connection) -> list[StoredSite]:
    """Every site, in the order they were saved, each with its topology rebuilt from its nodes."""
    out = []
    for site in conn.execute(select(sites).order_by(sites.c.id)).all():
        rows = conn.execute(select(nodes).where(nodes.c.site_id == site.id).order_by(nodes.c.idx)).all()
        models = sorted({r.model for r in rows})
        mid = {m: i for i, m in enumerate(models)}
        topo = Topology.from_columns(
            site.name,
            models=models,
            node_model=np.array([mid[r.model] for r in rows]),
            node_gpus=np.array([r.gpus for r in rows]),
            node_cpu=np.array([r.cpu_milli for r in rows]),
            node_mem=np.array([r.mem_mib for r in rows]),
            node_domain=np.array([r.domain for r in rows]),
            node_pod=np.array([r.pod for r in rows]),
            node_names=[r.name for r in rows],
        )
        out.append(
            StoredSite(
                int(site.id),
                site.name,
                site.spec,
                topo,
                site.country,
                site.price_eur_mwh,
                site.carbon_g_kwh,
                site.pue,
                site.power_cap_mw,
                dict(site.executor or {}),
            )
        )
    return out


def load_site(conn: Connection) -> tuple[str, Topology] | None:
    """The first site: (its spec, its topology), or None."""
    all_sites = load_sites(conn)
    return (all_sites[0].spec, all_sites[0].topology) if all_sites else None


def node_rows(conn: Connection, site_id: int | None = None) -> list[dict[str, object]]:
    """Nodes as rows, each with ``site`` (its site's name); one site's, or every site's in site order."""
    q = select(nodes, sites.c.name.label("site")).join(sites, sites.c.id == nodes.c.site_id)
    if site_id is not None:
        q = q.where(nodes.c.site_id == site_id)
    return [dict(r._mapping) for r in conn.execute(q.order_by(nodes.c.site_id, nodes.c.idx))]


def set_node_state(conn: Connection, site_id: int, idx: int, state: str, reason: str = "") -> None:
    """Set a node's state, and log the change (``node_log``) when it is one: the node's history."""
    now = time.time()
    before = conn.execute(
        select(nodes.c.state, nodes.c.reason).where(nodes.c.site_id == site_id, nodes.c.idx == idx)
    ).first()
    conn.execute(
        nodes.update()
        .where(nodes.c.site_id == site_id, nodes.c.idx == idx)
        .values(state=state, reason=reason, updated_at=now)
    )
    if before is not None and (before.state, before.reason) != (state, reason):
        conn.execute(node_log.insert().values(site_id=site_id, idx=idx, time=now, state=state, reason=reason))
