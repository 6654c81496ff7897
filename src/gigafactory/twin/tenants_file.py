"""Tenant trees from TOML: the accounts of a site, with shares, guarantees and limits.

::

    [[tenant]]
    name = "eu"            # a programme or funder
    share = 3
    [[tenant]]
    name = "eurollm"       # a project under it
    parent = "eu"
    share = 2
    guarantee = 8000       # GPUs it may always take back
    limit = 30000          # GPUs it may never exceed

Every problem (a missing name, a share that is not a positive number, a parent that does not exist, a cycle,
guarantees that add up to more than the site or than the parent's guarantee) is an error that names the file
and the account.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gigafactory.core.errors import ConfigError
from gigafactory.core.tenants import ROOT, Tenant, TenantTree

__all__ = ["load_tenants", "tenants_from_table"]

_KEYS = {"name", "share", "parent", "guarantee", "limit"}


def tenants_from_table(entries: Any, where: str) -> TenantTree:
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{where}: [[tenant]] must be a list of tables, at least one")
    tenants = []
    for i, entry in enumerate(entries, start=1):
        label = f"{where}: tenant {i}"
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise ConfigError(f"{label} has unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_KEYS))}")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{label} needs a name")
        share = entry.get("share", 1.0)
        if not isinstance(share, (int, float)) or isinstance(share, bool):
            raise ConfigError(f"{where}: tenant {name!r}: share = {share!r} is not a number")
        for key in ("guarantee", "limit"):
            v = entry.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise ConfigError(f"{where}: tenant {name!r}: {key} = {v!r} must be a whole number of GPUs")
        parent = entry.get("parent", ROOT)
        if not isinstance(parent, str):
            raise ConfigError(f"{where}: tenant {name!r}: parent = {parent!r} must be a tenant name")
        tenants.append(Tenant(name, float(share), parent, entry.get("guarantee"), entry.get("limit")))
    try:
        return TenantTree(tenants)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_tenants(path: str | Path) -> TenantTree:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tenant file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"tenant"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; a tenant file holds [[tenant]] tables")
    return tenants_from_table(data.get("tenant"), str(path))
