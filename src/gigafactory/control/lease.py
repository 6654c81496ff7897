"""One controller per store: the daemon's lease, and the lock that ``serve`` holds.

Two daemons on one store would each start what the other started, and bill it twice. So a daemon holds a
**lease** on its store for as long as it lives:

* on SQLite, an exclusive ``flock`` on ``<database>.daemon.lock`` beside the database file, which names the holder;
* on PostgreSQL, a session advisory lock on a connection of its own, whose ``application_name`` names the holder.

The kernel, or the database server, drops a lease the moment its holder dies, so a dead daemon never blocks the
next one. A second daemon refuses to start, and says who holds the lease.

A lease can also be lost while its holder lives on: a PostgreSQL restart drops the connection. So every write of
the daemon is **fenced** as well. Taking the lease raises an epoch in ``meta``, and each of the daemon's
transactions first checks that the epoch is still its own (:meth:`Lease.fence`). A daemon that lost its lease
writes nothing more, and exits.

``serve`` holds a lock of its own (``"serve"``) the same way, so a second ``serve`` on the same store refuses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import Engine as Store
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gigafactory.control.store.db import bump_meta, fence_meta
from gigafactory.core.errors import ConfigError, GigafactoryError

__all__ = ["Lease", "LeaseHeldError", "LeaseLostError"]

# Advisory lock keys (two int4: the first spells "gfac").
_PG_CLASS = 0x67666163
_PG_KEYS = {"daemon": 1, "serve": 2}


class LeaseHeldError(ConfigError):
    """Another process holds the lease: this one must not start."""


class LeaseLostError(GigafactoryError):
    """The lease is gone (another process may hold it now): stop writing, and exit."""


def _holder_text(name: str) -> str:
    since = dt.datetime.now().isoformat(timespec="seconds")
    return f"gigafactory {name} pid {os.getpid()} on {socket.gethostname()} since {since}"


class Lease:
    """A held lease (see the module docstring). :meth:`acquire` takes one or raises :class:`LeaseHeldError`."""

    def __init__(self, name: str, epoch: int | None, *, fd: int | None = None, conn: Connection | None = None):
        self.name = name
        self.epoch = epoch
        self._fd = fd
        self._conn = conn

    @classmethod
    def acquire(cls, store: Store, name: str = "daemon") -> Lease:
        assert name in _PG_KEYS, name
        holder = _holder_text(name)
        if store.dialect.name == "postgresql":
            lease = cls._acquire_pg(store, name, holder)
        else:
            lease = cls._acquire_file(store, name, holder)
        if name == "daemon":
            with store.begin() as conn:
                lease.epoch = bump_meta(conn, "daemon_epoch")
        return lease

    @classmethod
    def _acquire_file(cls, store: Store, name: str, holder: str) -> Lease:
        db = store.url.database
        if not db or db == ":memory:":
            return cls(name, None)  # a private in-memory store: nobody else can open it
        path = Path(db).with_name(Path(db).name + f".{name}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            said = os.pread(fd, 500, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LeaseHeldError(f"this store already has a {name}: {said} holds {path}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder + "\n").encode(), 0)
        return cls(name, None, fd=fd)

    @classmethod
    def _acquire_pg(cls, store: Store, name: str, holder: str) -> Lease:
        conn = store.connect()
        try:
            conn.execute(text("select set_config('application_name', :h, false)"), {"h": holder[:63]})
            got = conn.execute(
                text("select pg_try_advisory_lock(:c, :k)"), {"c": _PG_CLASS, "k": _PG_KEYS[name]}
            ).scalar()
            conn.commit()
            if not got:
                said = conn.execute(
                    text(
                        "select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid "
                        "where l.locktype = 'advisory' and l.granted and l.classid = :c and l.objid = :k "
                        "and l.database = (select oid from pg_database where datname = current_database())"
                    ),
                    {"c": _PG_CLASS, "k": _PG_KEYS[name]},
                ).scalar()
                conn.rollback()
                raise LeaseHeldError(f"this store already has a {name}: {said or 'another process'} holds its lock")
        except BaseException:
            conn.close()
            raise
        return cls(name, None, conn=conn)

    def fence(self, conn: Connection) -> None:
        """In a write transaction: make sure this lease is still the store's current one, or raise LeaseLostError."""
        if self.epoch is not None and not fence_meta(conn, "daemon_epoch", str(self.epoch)):
            raise LeaseLostError(f"another daemon took over this store (epoch {self.epoch} is not the current one)")

    def check(self) -> None:
        """Is the lease still held? (Only a PostgreSQL lease can be lost while its holder lives.)"""
        if self._conn is not None:
            try:
                self._conn.execute(text("select 1")).scalar()
                self._conn.rollback()
            except Exception as exc:
                raise LeaseLostError(f"the connection holding the {self.name} lease was lost: {exc}") from exc

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            # Unlock first: closing the session frees the lock too, but only once the server has noticed, so a
            # successor starting at once could still find it held. (A lost connection has nothing left to free.)
            with contextlib.suppress(Exception):
                self._conn.execute(
                    text("select pg_advisory_unlock(:c, :k)"), {"c": _PG_CLASS, "k": _PG_KEYS[self.name]}
                )
                self._conn.commit()
            with contextlib.suppress(Exception):
                self._conn.invalidate()  # closes the session
                self._conn.close()
            self._conn = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
