"""Loading many rows at once, the way each database does it fastest.

* PostgreSQL: ``COPY … FROM STDIN`` in the caller's transaction (column types' bind processing,
  e.g. encryption at rest, is applied first, as an INSERT would). For a big load into an empty
  table the secondary indexes and the unique and foreign-key constraints are dropped first and
  put back once at the end (one sort per index, one join per foreign key, instead of a million
  index insertions and trigger calls), in the same transaction.
* Elsewhere (SQLite): one ``executemany`` INSERT per chunk.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

BIG_LOAD = 10_000  # rows: from here on, rebuilding the indexes once beats maintaining them row by row


def _formatters(conn: sa.Connection, table: sa.Table, columns: list[str]) -> list[Callable[[Any], Any]]:
    """Per column: the type's bind processing (encryption …) and then text as COPY reads it."""
    result: list[Callable[[Any], Any]] = []
    for name in columns:
        column_type = table.c[name].type
        process = column_type.bind_processor(conn.dialect) if isinstance(column_type, sa.types.TypeDecorator) else None

        def fmt(value: Any, process: Callable[[Any], Any] | None = process) -> Any:
            if value is None:
                return None
            return process(value) if process is not None else value

        result.append(fmt)
    return result


def _copy(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    prep = conn.dialect.identifier_preparer
    formats = _formatters(conn, table, columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        # None is written as an unquoted empty field, which COPY … CSV reads as NULL
        writer.writerow([fmt(row[c]) for fmt, c in zip(formats, columns, strict=True)])
    buffer.seek(0)
    target = f"{prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)})"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {target} FROM STDIN WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()


def load_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in ``conn``'s transaction."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        _copy(conn, table, rows)
    else:
        conn.execute(sa.insert(table), rows)


def _droppable_indexes(conn: sa.Connection, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the table's secondary indexes: not the primary key, not a constraint's."""
    q = sa.text(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE t.relname = :t AND n.nspname = current_schema() AND NOT x.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
    )
    return [(r[0], r[1]) for r in conn.execute(q, {"t": table})]


def _droppable_constraints(conn: sa.Connection, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the table's foreign-key and unique constraints."""
    q = sa.text(
        "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE t.relname = :t AND n.nspname = current_schema() AND c.contype IN ('f', 'u') ORDER BY c.contype DESC, c.conname"
    )
    return [(r[0], r[1]) for r in conn.execute(q, {"t": table})]


@contextmanager
def loading(conn: sa.Connection, table: sa.Table, rows: int) -> Iterator[None]:
    """Around a load of ``rows`` rows: on PostgreSQL, when the load is big and the table empty,
    its secondary indexes, unique and foreign-key constraints are dropped first and put back
    afterwards — each checked and built once, as pg_restore does — in the same transaction, so
    a row that breaks one still fails the whole load."""
    indexes: list[tuple[str, str]] = []
    constraints: list[tuple[str, str]] = []
    prep = conn.dialect.identifier_preparer
    name = prep.format_table(table)
    if conn.dialect.name == "postgresql" and rows >= BIG_LOAD:
        empty = conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None
        if empty:
            indexes = _droppable_indexes(conn, table.name)
            constraints = _droppable_constraints(conn, table.name)
            for index, _definition in indexes:
                conn.execute(sa.text(f"DROP INDEX {prep.quote(index)}"))
            for constraint, _definition in constraints:
                conn.execute(sa.text(f"ALTER TABLE {name} DROP CONSTRAINT {prep.quote(constraint)}"))
    yield
    if indexes or constraints:
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
        # as PostgreSQL printed them (exec_driver_sql: a cast like ::text is not a bind parameter)
        for constraint, definition in reversed(constraints):  # unique ones first: a foreign key may need one
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD CONSTRAINT {prep.quote(constraint)} {definition}")
        for _index, definition in indexes:
            conn.exec_driver_sql(definition)


def analyze(engine: sa.Engine, tables: list[str]) -> None:
    """Fresh planner statistics after a big load (lists choose their plans from them); on
    PostgreSQL also a VACUUM, so counts and sorted pages can be answered from indexes alone."""
    postgres = engine.dialect.name == "postgresql"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        prep = conn.dialect.identifier_preparer
        for name in tables:
            conn.execute(sa.text(f"{'VACUUM (ANALYZE)' if postgres else 'ANALYZE'} {prep.quote(name)}"))
