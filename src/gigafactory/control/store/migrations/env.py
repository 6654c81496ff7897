"""Alembic environment: runs on the connection :func:`gigafactory.control.store.db.upgrade` hands it."""

from __future__ import annotations

from alembic import context

from gigafactory.control.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic command line by hand
    raise SystemExit("run migrations through gigafactory (it passes the connection)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
