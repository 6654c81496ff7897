"""Where a control plane keeps its things, and setting one up.

A control plane lives in a data directory (default ``~/.gigafactory``): the SQLite store (unless ``--db`` names a
PostgreSQL server), the jobs' working directories and logs, and the first admin token. :func:`init_control` makes a
store ready: migrated, holding the site, the executor's name, the policy profile and an admin token.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine as Store
from sqlalchemy import select

from gigafactory.control.store import accounts
from gigafactory.control.store.db import default_url, get_meta, open_store, set_meta
from gigafactory.control.store.schema import tenants as tenants_table
from gigafactory.control.store.schema import tokens
from gigafactory.control.store.site import save_site
from gigafactory.core.errors import ConfigError
from gigafactory.core.presets import build_site
from gigafactory.core.tenants import Tenant
from gigafactory.core.topology import Topology
from gigafactory.policy.profile import parse_profile

__all__ = ["EXECUTORS", "ControlConfig", "default_data_dir", "init_control"]

EXECUTORS = ("local", "slurm")


def default_data_dir() -> Path:
    env = os.environ.get("GIGAFACTORY_HOME")
    return Path(env) if env else Path.home() / ".gigafactory"


@dataclass(frozen=True)
class ControlConfig:
    data_dir: Path
    db: str | None = None  # a URL; None: SQLite in data_dir

    @property
    def url(self) -> str:
        return self.db or default_url(self.data_dir)

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin.token"

    def open(self) -> Store:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return open_store(self.url)


def init_control(
    cfg: ControlConfig,
    *,
    site: str = "uniform:nodes=4,gpus=8",
    executor: str = "local",
    profile: str = "fifo+easy+best-fit",
    tenants: list[Tenant] | None = None,
    topology: Topology | None = None,
) -> Store:
    """Open (and on first use set up) the store. Returns it; the first admin token is in ``cfg.admin_token_file``.

    ``topology`` overrides ``site`` (the Slurm executor reads the site from the cluster).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor {executor!r}; known: {', '.join(EXECUTORS)}")
    parse_profile(profile)  # a bad profile is an error now, not when the daemon starts
    topo = topology if topology is not None else build_site(site)
    store = cfg.open()
    with store.begin() as conn:
        save_site(conn, topo, site)
        if get_meta(conn, "plane_id") is None:
            # Names this control plane's work where others may see it (Slurm job names on a shared cluster).
            set_meta(conn, "plane_id", secrets.token_hex(3))
        for key, value in (("executor", executor), ("profile", profile)):
            have = get_meta(conn, key)
            if have is None:
                set_meta(conn, key, value)
            elif have != value:
                raise ConfigError(f"this store runs with {key} {have!r}; it cannot switch to {value!r}")
        for t in tenants or ():
            if conn.execute(select(tenants_table.c.name).where(tenants_table.c.name == t.name)).first() is None:
                accounts.put_tenant(conn, t, capacity_gpus=topo.num_gpus)
        has_admin = conn.execute(select(tokens.c.id).where(tokens.c.role == "admin")).first() is not None
        if not has_admin or not cfg.admin_token_file.exists():
            _, secret = accounts.create_token(conn, role="admin", tenant=None, name="first admin")
            write_secret(cfg.admin_token_file, secret)
    return store


def write_secret(path: Path, secret: str) -> None:
    """Write a token readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    tmp.replace(path)
