"""Alembic environment: always run programmatically (``monitor.store.engine.upgrade``) on a given connection."""

from __future__ import annotations

from alembic import context

from monitor.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable from a hand-written alembic.ini
    raise RuntimeError("run migrations with `qmon db upgrade`, not the alembic command")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
