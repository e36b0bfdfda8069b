"""Alembic environment: runs on the connection the service hands it (see service.db)."""

from __future__ import annotations

from alembic import context

from envyard.service.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` CLI use: build an engine from settings
    from envyard.service.db import make_engine
    from envyard.service.settings import Settings

    connection = make_engine(Settings().db_url).connect()

context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
