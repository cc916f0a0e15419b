"""Alembic environment: runs on the connection that :mod:`portrait_builder.store.migrate` hands over."""

from alembic import context

from portrait_builder.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds for ALTER
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
