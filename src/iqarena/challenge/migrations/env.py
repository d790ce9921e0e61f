"""Alembic environment of the challenge database: run on the connection the caller passes (db.migrate)."""

from alembic import context

from iqarena.challenge.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
