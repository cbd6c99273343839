"""${message}

Revisions are written by `crm generate`, not by `alembic revision`; this template exists because
Alembic expects one in its script directory.
"""

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
