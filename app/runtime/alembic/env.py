"""Alembic environment of the generated revisions: always run on a connection handed over by
``app.runtime.migrate`` (one transaction for all pending revisions; batch mode for SQLite)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    render_as_batch=True,
    transaction_per_migration=False,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
