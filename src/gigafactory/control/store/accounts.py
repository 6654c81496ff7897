"""Tenants (the account tree, with who their jobs run as and their limits), API tokens and browser sessions.
The only writer of the ``tenants``, ``tokens`` and ``sessions`` tables.

Tokens are random 32-byte strings shown once when created; only their SHA-256 is stored. A browser never holds a
token: signing in exchanges one (or a one-time sign-in code) for a session, whose secret is all the cookie
carries, and which expires, and ends with its token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gigafactory.control.identity import Identity, UidRegistry, allocate_uid, check_unix_user, identity, isolating
from gigafactory.control.store.schema import meta, sessions, tenants, tokens
from gigafactory.core.errors import ConfigError
from gigafactory.core.tenants import ROOT, Tenant, TenantTree

__all__ = [
    "DEFAULT_MAX_JOBS",
    "DEFAULT_MAX_RATE",
    "SESSION_S",
    "SIGN_IN_CODE_S",
    "Limits",
    "Principal",
    "assign_uids",
    "create_session",
    "create_token",
    "hash_token",
    "identities",
    "limits",
    "load_tree",
    "lookup_session",
    "lookup_token",
    "put_tenant",
    "registry",
    "revoke_token",
]

# A tenant may have this many jobs submitted or waiting at once (Slurm's MaxSubmitJobs), and submit this many per
# second on average (in bursts of up to ten seconds' worth), unless the admin sets its own limits.
DEFAULT_MAX_JOBS = 10_000
DEFAULT_MAX_RATE = 100.0
SESSION_S = 12 * 3600.0  # a browser session lasts this long
SIGN_IN_CODE_S = 600.0  # a one-time sign-in link works once, within this long


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an admin, a tenant, or a reviewer of access calls.

    A reviewer is no tenant: its ``tenant`` is ``""``, which names no account, so every listing scoped to "the
    caller's tenant" shows a reviewer nothing, and it can submit nothing."""

    role: str  # admin | tenant | reviewer
    tenant: str | None
    token_id: int
    name: str = ""

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


ROLES = ("admin", "tenant", "reviewer")


def create_token(conn: Connection, *, role: str, tenant: str | None, name: str = "") -> tuple[int, str]:
    if role not in ROLES:
        raise ConfigError(f"role {role!r}; allowed: {', '.join(ROLES)}")
    if role == "reviewer" and not name:
        raise ConfigError("a reviewer token needs a name: calls name their reviewers by it")
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
        select(tokens.c.id, tokens.c.role, tokens.c.tenant, tokens.c.name, tokens.c.revoked).where(
            tokens.c.token_hash == hash_token(token)
        )
    ).first()
    if row is None or row.revoked:
        return None
    return _principal(row.role, row.tenant, int(row.id), row.name)


def _principal(role: str, tenant: str | None, token_id: int, name: str) -> Principal:
    return Principal(role, "" if role == "reviewer" else tenant, token_id, name or "")


def revoke_token(conn: Connection, token_id: int) -> bool:
    return bool(conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked=True)).rowcount)


@dataclass(frozen=True, slots=True)
class Limits:
    max_jobs: int
    max_rate: float


def limits(conn: Connection) -> dict[str, Limits]:
    rows = conn.execute(select(tenants.c.name, tenants.c.max_jobs, tenants.c.max_rate))
    return {
        r.name: Limits(r.max_jobs if r.max_jobs is not None else DEFAULT_MAX_JOBS,
                       r.max_rate if r.max_rate is not None else DEFAULT_MAX_RATE)
        for r in rows
    }  # fmt: skip


def identities(conn: Connection) -> dict[str, Identity | str]:
    """Who each tenant's jobs run as (see :mod:`gigafactory.control.identity`), or why they cannot run (its
    account is gone): such a tenant's jobs fail with that reason when they start."""
    out: dict[str, Identity | str] = {}
    for r in conn.execute(select(tenants.c.name, tenants.c.unix_user, tenants.c.uid)):
        try:
            out[r.name] = identity(r.unix_user, r.uid)
        except ConfigError as exc:
            out[r.name] = str(exc)
    return out


def registry(conn: Connection, home: Path) -> UidRegistry | None:
    """The host's uid registry, as this control plane's; None where uids do not matter (isolation is off)."""
    if not isolating():
        return None
    plane = conn.execute(select(meta.c.value).where(meta.c.key == "plane_id")).scalar()
    return UidRegistry(str(plane or "local"), home)


def assign_uids(conn: Connection, uids: UidRegistry | None = None) -> None:
    """Give every tenant without a dynamic uid one, and claim each tenant's uid in the host's registry; a tenant
    whose uid another control plane holds gets a new one."""
    rows = conn.execute(select(tenants.c.name, tenants.c.uid).order_by(tenants.c.name)).all()
    taken = {r.uid for r in rows if r.uid is not None}
    for r in rows:
        if r.uid is not None and (uids is None or uids.claim(r.uid, r.name)):
            continue
        claim = (lambda u, name=r.name: uids.claim(u, name)) if uids is not None else None
        uid = allocate_uid(taken, claim)
        taken.add(uid)
        conn.execute(tenants.update().where(tenants.c.name == r.name).values(uid=uid))


def load_tree(conn: Connection) -> TenantTree | None:
    rows = conn.execute(select(tenants).order_by(tenants.c.name)).all()
    if not rows:
        return None
    return TenantTree(Tenant(r.name, r.share, r.parent, r.guarantee, r.limit_gpus) for r in rows)


def put_tenant(
    conn: Connection, tenant: Tenant, *, capacity_gpus: int, uids: UidRegistry | None = None, **settings: Any
) -> None:
    """Create or change a tenant; the resulting tree must be consistent, or nothing changes.

    ``settings`` may set ``unix_user`` (the account its jobs run as; None: its dynamic uid), ``max_jobs`` and
    ``max_rate`` (None: the site defaults). A setting not given keeps its stored value. A new tenant's dynamic uid
    is claimed in ``uids``, the host's registry, when isolation is on.
    """
    unknown = set(settings) - {"unix_user", "max_jobs", "max_rate"}
    assert not unknown, unknown
    current = {r.name: r for r in conn.execute(select(tenants)).all()}
    user = settings.get("unix_user")
    if user:
        uid = check_unix_user(user)
        for r in current.values():
            if r.name != tenant.name and (r.unix_user == user or r.uid == uid):
                raise ConfigError(
                    f"unix_user {user!r} already runs tenant {r.name!r}'s jobs; tenants never share a uid"
                )
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
        **settings,
    }
    if tenant.name in current:
        conn.execute(tenants.update().where(tenants.c.name == tenant.name).values(**values))
    else:
        claim = (lambda u: uids.claim(u, tenant.name)) if uids is not None else None
        uid = allocate_uid({r.uid for r in current.values() if r.uid is not None}, claim)
        conn.execute(tenants.insert().values(name=tenant.name, created_at=time.time(), uid=uid, **values))


def create_session(conn: Connection, token_id: int, *, kind: str = "session", ttl_s: float | None = None) -> str:
    """A browser session (``kind="session"``) or a one-time sign-in code (``"code"``) carrying ``token_id``'s
    rights; returns its secret (only its hash is stored)."""
    assert kind in ("session", "code"), kind
    secret = ("gfs_" if kind == "session" else "gfc_") + secrets.token_urlsafe(32)
    now = time.time()
    ttl = ttl_s if ttl_s is not None else SESSION_S if kind == "session" else SIGN_IN_CODE_S
    conn.execute(
        sessions.insert().values(secret_hash=hash_token(secret), token_id=token_id, kind=kind, created_at=now,
                                 expires_at=now + ttl, used=False)
    )  # fmt: skip
    return secret


def lookup_session(conn: Connection, secret: str, *, kind: str = "session") -> Principal | None:
    """Who a session (or sign-in code) speaks for, if it is valid: not expired, its token not revoked, and, for a
    code, not used before (using it uses it up)."""
    row = conn.execute(
        select(sessions.c.id, sessions.c.kind, sessions.c.expires_at, sessions.c.used, tokens.c.id.label("tid"),
               tokens.c.role, tokens.c.tenant, tokens.c.name, tokens.c.revoked)
        .join(tokens, tokens.c.id == sessions.c.token_id)
        .where(sessions.c.secret_hash == hash_token(secret))
    ).first()  # fmt: skip
    if row is None or row.kind != kind or row.revoked or row.expires_at < time.time() or row.used:
        return None
    if kind == "code":
        taken = conn.execute(
            sessions.update().where(sessions.c.id == row.id, sessions.c.used.is_(False)).values(used=True)
        ).rowcount
        if not taken:
            return None
    return _principal(row.role, row.tenant, int(row.tid), row.name)
