"""Retired columns and tables (a field or entity removed from the workbook keeps its data until
``--allow-destructive`` drops it, after a backup), and the SQLite backup taken before an upgrade."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from app.migrate.data import _constraints, _Db
from app.migrate.declared import INTERNAL_PREFIXES
from app.migrate.describe import PlanLine


def retired_columns(conn: sa.Connection, metadata: sa.MetaData) -> list[tuple[str, str | None, int]]:
    """(table, column or None for a whole table, values) kept in the database but no longer declared."""
    insp = sa.inspect(conn)
    db = _Db(conn)
    found: list[tuple[str, str | None, int]] = []
    for table in sorted(insp.get_table_names()):
        if table.startswith(INTERNAL_PREFIXES):
            continue
        if table not in metadata.tables:
            found.append((table, None, db.count(table)))
            continue
        declared = set(metadata.tables[table].c.keys())
        for col in insp.get_columns(table):
            if col["name"] not in declared:
                found.append((table, col["name"], db.count(table, sa.column(col["name"]).is_not(None))))
    return found


def drop_retired(conn: sa.Connection, backup_dir: Path, metadata: sa.MetaData) -> list[PlanLine]:
    """Physically drop retired columns and tables after writing their data to ``backup_dir``."""
    op = Operations(MigrationContext.configure(conn))
    lines = []
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    backup_dir.mkdir(parents=True, exist_ok=True)
    for table, column, n in retired_columns(conn, metadata):
        cols = ["*"] if column is None else ["id", column]
        rows = conn.execute(sa.text(f"SELECT {', '.join(cols)} FROM {conn.dialect.identifier_preparer.quote(table)}")).mappings().all()  # noqa: S608 - names come from reflection
        target = backup_dir / f"{table}{'.' + column if column else ''}-{stamp}.json"
        target.write_text(json.dumps([dict(r) for r in rows], ensure_ascii=False, default=str), encoding="utf-8")
        if column is None:
            op.drop_table(table)
            lines.append(PlanLine("drop", f"删除表 {table}({n} 行,已备份到 {target.name})", f"dropped table {table} ({n} rows, saved to {target.name})", n))
        else:
            for name in _constraints(_Db(conn), table, column)["ix"]:
                op.drop_index(name, table_name=table)
            with op.batch_alter_table(table) as b:
                b.drop_column(column)
            lines.append(PlanLine("drop", f"删除列 {table}.{column}({n} 个值,已备份到 {target.name})",
                                  f"dropped column {table}.{column} ({n} values, saved to {target.name})", n))
    return lines


def sqlite_path(url: sa.URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def backup_sqlite(path: Path, backup_dir: Path) -> Path | None:
    if not path.exists():
        return None
    backup_dir.mkdir(parents=True, exist_ok=True)
    target = backup_dir / f"{path.stem}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}{path.suffix}"
    # SQLite's online backup: a consistent copy while the office keeps saving (a file copy could
    # catch a save half written)
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target
