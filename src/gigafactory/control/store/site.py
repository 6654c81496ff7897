"""The site and its nodes. The only writer of the ``sites`` and ``nodes`` tables.

A store holds one site (one Slurm cluster, or one machine for the local executor). Its topology is saved once,
when the control plane first starts, and the daemon rebuilds the engine's :class:`Topology` from it; node states
(up, down, drained) are updated as the daemon learns of them.
"""

from __future__ import annotations

import time

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from gigafactory.control.store.schema import nodes, sites
from gigafactory.core.errors import ConfigError
from gigafactory.core.topology import Topology

__all__ = ["load_site", "node_rows", "save_site", "set_node_state"]


def save_site(conn: Connection, topo: Topology, spec: str) -> int:
    """Save ``topo`` unless a site is already there; a different one already there is an error."""
    row = conn.execute(select(sites.c.id, sites.c.spec)).first()
    if row is not None:
        if row.spec != spec:
            raise ConfigError(f"this store already holds site {row.spec!r}; it cannot become {spec!r}")
        return int(row.id)
    now = time.time()
    site_id = int(
        conn.execute(sites.insert().values(name=topo.name, spec=spec, created_at=now)).inserted_primary_key[0]  # type: ignore[index]
    )
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


def load_site(conn: Connection) -> tuple[str, Topology] | None:
    site = conn.execute(select(sites.c.id, sites.c.name, sites.c.spec)).first()
    if site is None:
        return None
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
    return site.spec, topo


def node_rows(conn: Connection) -> list[dict[str, object]]:
    return [dict(r._mapping) for r in conn.execute(select(nodes).order_by(nodes.c.idx))]


def set_node_state(conn: Connection, idx: int, state: str, reason: str = "") -> None:
    conn.execute(nodes.update().where(nodes.c.idx == idx).values(state=state, reason=reason, updated_at=time.time()))
