"""Opening the store: SQLite (WAL) in a data directory by default, PostgreSQL by URL; migrations with Alembic.

:func:`open_store` returns a SQLAlchemy engine whose schema is migrated to the latest revision. Writes the
``meta`` table (schema facts, heartbeats).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import Connection

from gigafactory.control.store.schema import meta
from gigafactory.core.errors import ConfigError

__all__ = ["bump_meta", "default_url", "fence_meta", "get_meta", "open_store", "set_meta"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'gigafactory.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; WAL fsyncs at checkpoints
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def open_store(url: str, *, migrate: bool = True) -> Engine:
    """An engine for ``url`` with the schema at the latest migration. Bad URLs are a clear error."""
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
            event.listen(engine, "connect", _sqlite_pragmas)
        elif url.startswith("postgresql"):
            engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        else:
            raise ConfigError(f"--db {url!r}: only sqlite:///PATH and postgresql+psycopg://... are supported")
        if migrate:
            upgrade(engine)
    except ConfigError:
        raise
    except Exception as exc:  # the driver's own errors: unreachable server, bad credentials, unwritable file
        raise ConfigError(f"--db {_redact(url)}: cannot open the store: {exc}") from exc
    return engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def get_meta(conn: Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute(select(meta.c.value).where(meta.c.key == key)).first()
    return row[0] if row else default


def set_meta(conn: Connection, key: str, value: str) -> None:
    if conn.execute(select(meta.c.key).where(meta.c.key == key)).first():
        conn.execute(meta.update().where(meta.c.key == key).values(value=value))
    else:
        conn.execute(meta.insert().values(key=key, value=value))


def bump_meta(conn: Connection, key: str) -> int:
    """Add one to an integer fact (0 if absent) and return the new value."""
    value = int(get_meta(conn, key, "0") or 0) + 1
    set_meta(conn, key, str(value))
    return value


def fence_meta(conn: Connection, key: str, value: str) -> bool:
    """In a write transaction: True if ``key`` still holds ``value``. The row stays locked (PostgreSQL) or the
    database stays reserved (SQLite) until the transaction ends, so the answer holds for the whole transaction."""
    return bool(
        conn.execute(meta.update().where(meta.c.key == key, meta.c.value == value).values(value=value)).rowcount
    )


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
