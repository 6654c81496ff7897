"""Tenants (the account tree) and API tokens. The only writer of the ``tenants`` and ``tokens`` tables.

Tokens are random 32-byte strings shown once when created; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gigafactory.control.store.schema import tenants, tokens
from gigafactory.core.errors import ConfigError
from gigafactory.core.tenants import ROOT, Tenant, TenantTree

__all__ = ["Principal", "create_token", "hash_token", "load_tree", "lookup_token", "put_tenant", "revoke_token"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an admin, or a tenant."""

    role: str  # admin | tenant
    tenant: str | None
    token_id: int

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: Connection, *, role: str, tenant: str | None, name: str = "") -> tuple[int, str]:
    if role not in ("admin", "tenant"):
        raise ConfigError(f"role {role!r}; allowed: admin, tenant")
    if role == "tenant":
        if tenant is None:
            raise ConfigError("a tenant token needs a tenant")
        if conn.execute(select(tenants.c.name).where(tenants.c.name == tenant)).first() is None:
            raise ConfigError(f"unknown tenant {tenant!r}")
    token = "gf_" + secrets.token_urlsafe(32)
    row = conn.execute(
        tokens.insert().values(
            token_hash=hash_token(token),
            tenant=tenant if role == "tenant" else None,
            role=role,
            name=name,
            created_at=time.time(),
            revoked=False,
        )
    )
    return int(row.inserted_primary_key[0]), token  # type: ignore[index]


def lookup_token(conn: Connection, token: str) -> Principal | None:
    row = conn.execute(
        select(tokens.c.id, tokens.c.role, tokens.c.tenant, tokens.c.revoked).where(
            tokens.c.token_hash == hash_token(token)
        )
    ).first()
    if row is None or row.revoked:
        return None
    return Principal(row.role, row.tenant, int(row.id))


def revoke_token(conn: Connection, token_id: int) -> bool:
    return bool(conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked=True)).rowcount)


def load_tree(conn: Connection) -> TenantTree | None:
    rows = conn.execute(select(tenants).order_by(tenants.c.name)).all()
    if not rows:
        return None
    return TenantTree(Tenant(r.name, r.share, r.parent, r.guarantee, r.limit_gpus) for r in rows)


def put_tenant(conn: Connection, tenant: Tenant, *, capacity_gpus: int) -> None:
    """Create or change a tenant; the resulting tree must be consistent, or nothing changes."""
    current = {r.name: r for r in conn.execute(select(tenants)).all()}
    proposed = [
        Tenant(r.name, r.share, r.parent, r.guarantee, r.limit_gpus) for r in current.values() if r.name != tenant.name
    ]
    proposed.append(tenant)
    tree = TenantTree(proposed)  # raises ConfigError on cycles, bad shares, unknown parents
    tree.check_capacity(capacity_gpus)
    values = {
        "parent": tenant.parent or ROOT,
        "share": tenant.share,
        "guarantee": tenant.guarantee,
        "limit_gpus": tenant.limit,
    }
    if tenant.name in current:
        conn.execute(tenants.update().where(tenants.c.name == tenant.name).values(**values))
    else:
        conn.execute(tenants.insert().values(name=tenant.name, created_at=time.time(), **values))
