"""The tables every workbook shares — FAB's ``ab_*`` and the runtime's ``crm_*`` — created and brought
up to date here, so FAB never runs ``create_all`` over the entities' tables behind the migrations."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from flask_appbuilder import Model

log = logging.getLogger(__name__)



def ensure_system_tables(engine: sa.Engine) -> None:
    """FAB's tables (ab_*) and the runtime's own (crm_*), the same for every workbook. Created here
    so FAB never runs create_all over the entities' tables behind the migrations' back."""
    import flask_appbuilder.security.sqla.models  # noqa: F401 - registers the ab_* tables

    from app.record import audit as _audit  # noqa: F401 - registers crm_audit
    from app.record import tables as _crm_tables  # noqa: F401 - registers the crm_* tables

    tables = [t for name, t in Model.metadata.tables.items() if name.startswith(("ab_", "crm_"))]
    with engine.connect() as conn:
        present = set(sa.inspect(conn).get_table_names())
    missing = [t for t in tables if t.name not in present]
    if missing:  # (every upgrade and start-up passes here: one catalogue read when nothing is missing)
        Model.metadata.create_all(engine, tables=missing)
    add_system_columns(engine, [t for t in tables if t.name.startswith("crm_") and t.name in present])


def add_system_columns(engine: sa.Engine, tables: list[sa.Table]) -> list[str]:
    """Columns a later release added to the runtime's own tables, added to a database made by an
    earlier one (only nullable columns are ever added, so existing rows stay valid). Returns
    ``table.column`` of what was added."""
    added: list[str] = []
    columns = _columns_of_all(engine, [t.name for t in tables])
    for table in tables:
        present = columns.get(table.name, set())
        for column in table.columns:
            if not present or column.name in present:  # absent tables are create_all's
                continue
            if not column.nullable or column.primary_key:
                raise RuntimeError(f"{table.name}.{column.name}: a system column added later must be nullable")
            try:
                with engine.begin() as conn:
                    Operations(MigrationContext.configure(conn)).add_column(table.name, sa.Column(column.name, column.type, nullable=True))
            except sa.exc.DBAPIError:
                if column.name not in _columns_of(engine, table.name):  # not another process adding it at the same moment
                    raise
                continue
            added.append(f"{table.name}.{column.name}")
    added += _add_system_indexes(engine, tables)
    if added:
        log.info("system columns added: %s", ", ".join(added))
    return added


def _add_system_indexes(engine: sa.Engine, tables: list[sa.Table]) -> list[str]:
    """Indexes a later release declared on the runtime's own tables (over columns added above),
    created on a database made by an earlier one."""
    names = [t.name for t in tables]
    if not names:
        return []
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        found = inspector.get_multi_indexes(filter_names=[n for n in names if inspector.has_table(n)])
        present = {ix["name"] for indexes in found.values() for ix in indexes}
        present |= {uc["name"] for (_s, _t), ucs in inspector.get_multi_unique_constraints(filter_names=list({t for _s, t in found})).items()
                    for uc in ucs}
    added = []
    for table in tables:
        for index in table.indexes:
            if index.name not in present:
                index.create(engine, checkfirst=True)
                added.append(str(index.name))
    return added


def _columns_of_all(engine: sa.Engine, names: list[str]) -> dict[str, set[str]]:
    """The columns of each of the tables that exist (one catalogue query on PostgreSQL)."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        have = set(inspector.get_table_names())
        present = [n for n in names if n in have]
        if not present:
            return {}
        found = inspector.get_multi_columns(filter_names=present)
    return {table: {c["name"] for c in cols} for (_schema, table), cols in found.items()}


def _columns_of(engine: sa.Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        return {c["name"] for c in inspector.get_columns(table)} if inspector.has_table(table) else set()
