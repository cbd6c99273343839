"""Questions a migration asks about the data already stored (counts, examples, sizes), with the
names a plan's earlier renames will give the tables and columns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.record.convert import convert
from app.spec.columns import COLUMN_TYPES, Col
from app.spec.steps import (
    RenameColumn,
    RenameTable,
    Step,
)


class _Db:
    """Questions about the data. While checking a plan, renames earlier in the plan are not applied
    yet, so names are looked up through ``aliases`` (new name → the name in the database now)."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.insp = sa.inspect(conn)
        # PostgreSQL: indexes of existing tables are built after the commit, concurrently
        self.online = conn.dialect.name == "postgresql"
        self.table_alias: dict[str, str] = {}
        self.column_alias: dict[tuple[str, str], str] = {}
        self._big: dict[str, bool] = {}

    def deferred(self, table: str) -> bool:
        """PostgreSQL and a table of ``ONLINE_INDEX_ROWS`` rows or more: a step that would scan or
        write every row under the table's lock leaves that part for :func:`finish_constraints`."""
        if not self.online:
            return False
        name = self._t(table)
        if name not in self._big:
            self._big[name] = _rows_at_least(self.conn, name, ONLINE_INDEX_ROWS)
        return self._big[name]

    def alias(self, step: Step) -> None:
        if isinstance(step, RenameTable):
            self.table_alias[step.new] = self.table_alias.get(step.old, step.old)
        elif isinstance(step, RenameColumn):
            self.column_alias[(step.table, step.new)] = self.column_alias.get((step.table, step.old), step.old)

    def tables(self) -> set[str]:
        names = set(self.insp.get_table_names())
        return names | {new for new, old in self.table_alias.items() if old in names}

    def _t(self, table: str) -> str:
        return self.table_alias.get(table, table)

    def _c(self, table: str, column: str) -> str:
        return self.column_alias.get((table, column), column)

    def columns(self, table: str) -> dict[str, Any]:
        if table not in self.tables():
            return {}
        cols = {c["name"]: c for c in self.insp.get_columns(self._t(table))}
        for (t, new), old in self.column_alias.items():
            if t == table and old in cols:
                cols[new] = cols.pop(old)
        return cols

    def t(self, table: str, *cols: str) -> sa.TableClause:
        """A table clause keyed by the names in the database now (the same as the plan's after renames)."""
        return sa.table(self._t(table), sa.column("id"), *[sa.column(self._c(table, c)) for c in cols])

    def col(self, table: str, column: str) -> sa.ColumnClause[Any]:
        return sa.column(self._c(table, column))

    def count(self, table: str, where: Any = None) -> int:
        if table not in self.tables():
            return 0
        q = sa.select(sa.func.count()).select_from(sa.table(self._t(table)))
        if where is not None:
            q = q.where(where)
        return int(self.conn.execute(q).scalar_one())

    def filled(self, table: str, column: str) -> int:
        return self.count(table, self.col(table, column).is_not(None)) if column in self.columns(table) else 0

    def nulls(self, table: str, column: str) -> int:
        return self.count(table, self.col(table, column).is_(None))

    def duplicates(self, table: str, column: str) -> list[tuple[Any, int]]:
        c = self.col(table, column)
        q = (sa.select(c, sa.func.count().label("n")).select_from(sa.table(self._t(table))).where(c.is_not(None))
             .group_by(c).having(sa.func.count() > 1).order_by(sa.desc("n"), c))
        return [(r[0], int(r[1])) for r in self.conn.execute(q)]

    def unconvertible(self, table: str, column: str, target: Col, allowed: tuple[str, ...] = ()) -> tuple[int, list[Any], dict[str, int]]:
        """Values that would not survive the conversion to ``target`` unchanged: (how many, the
        first examples, how many per reason — see :func:`conversion_problem`)."""
        t = self.t(table, column)
        c = t.c[self._c(table, column)]
        q = sa.select(t.c.id, c).where(c.is_not(None)).order_by(t.c.id)
        bad, examples, reasons = 0, list[Any](), dict[str, int]()
        for pk, value in self.conn.execute(q.execution_options(stream_results=True, yield_per=5000)):
            reason = conversion_problem(value, target, allowed, self.conn.dialect.name)
            if reason is not None:
                bad += 1
                reasons[reason] = reasons.get(reason, 0) + 1
                if len(examples) < EXAMPLES:
                    examples.append((pk, value))
        return bad, examples, reasons

    def dangling(self, table: str, column: str, target_table: str) -> tuple[int, list[Any]]:
        if target_table not in self.tables():
            return self.filled(table, column), []
        t = self.t(table, column)
        c = t.c[self._c(table, column)]
        ref = sa.table(self._t(target_table), sa.column("id"))
        q = (sa.select(t.c.id, c).select_from(t.outerjoin(ref, ref.c.id == c))
             .where(c.is_not(None), ref.c.id.is_(None)).order_by(t.c.id))
        rows = self.conn.execute(q).all()
        return len(rows), [(r[0], r[1]) for r in rows[:EXAMPLES]]

    def filled_examples(self, table: str, column: str) -> tuple[int, list[Any]]:
        t = self.t(table, column)
        c = t.c[self._c(table, column)]
        rows = self.conn.execute(sa.select(t.c.id, c).where(c.is_not(None)).order_by(t.c.id).limit(EXAMPLES)).all()
        return self.filled(table, column), [(r[0], r[1]) for r in rows]

    def linked_table(self, table: str, column: str) -> str:
        """The table a column's foreign key refers to now, by its name in the plan ("" if none)."""
        for fk in self.insp.get_foreign_keys(self._t(table)):
            if fk["constrained_columns"] == [self._c(table, column)]:
                ref = fk["referred_table"]
                return next((new for new, old in self.table_alias.items() if old == ref), ref)
        return ""

    def values_in(self, table: str, column: str, values: tuple[str, ...]) -> list[tuple[str, int]]:
        c = self.col(table, column)
        q = sa.select(c, sa.func.count()).select_from(sa.table(self._t(table))).where(c.in_(values)).group_by(c).order_by(c)
        return [(r[0], int(r[1])) for r in self.conn.execute(q)]


ONLINE_INDEX_ROWS = 10_000  # from here on an index of an existing table is built after the commit, concurrently


EXAMPLES = 5




LEADING_ZEROS = re.compile(r"^[+-]?0[0-9]")


REASONS = {  # why a value does not survive a type change: (zh, en)
    "invalid": ("不是有效的{type}", "not a valid {type}"),
    "leading_zeros": ("开头的 0 会丢失", "leading zeros would be lost"),
    "too_large": ("超出该类型的范围", "too large for the type"),
    "decimals": ("小数位超出该类型保留的位数", "more decimals than the type keeps"),
}


def conversion_problem(value: Any, target: Col, allowed: tuple[str, ...] = (), dialect: str = "") -> str | None:
    """Why ``value`` would not come out of a conversion to ``target`` as it went in (a key of
    :data:`REASONS`), or None. Beyond what :func:`convert` refuses: numbers written with leading
    zeros (codes such as ``007`` would become 7), integers past the column's range (PostgreSQL's
    INTEGER is 32-bit, SQLite's 64-bit) and decimals past the column's precision or scale."""
    try:
        converted = convert(value, target.type, target.length, allowed if target.type == "choice" else ())
    except ValueError:
        return "invalid"
    if target.type not in ("integer", "decimal", "money") or converted is None:
        return None
    if isinstance(value, str) and LEADING_ZEROS.match(value.strip().replace(",", "").replace(",", "")):
        return "leading_zeros"
    if target.type == "integer":
        bits = 63 if dialect == "sqlite" else 31
        return None if -(2 ** bits) <= converted < 2 ** bits else "too_large"
    precision, scale = COLUMN_TYPES[target.type][1]  # as the column declares it
    exponent = converted.normalize().as_tuple().exponent if converted else 0
    if isinstance(exponent, int) and -exponent > scale:
        return "decimals"
    return "too_large" if converted and converted.adjusted() >= precision - scale else None


INDEX_WAIT_MS = 60_000  # how long an online index build waits for older transactions to end


def _rows_at_least(conn: sa.Connection, table: str, n: int) -> bool:
    t = conn.dialect.identifier_preparer.quote(table)
    return conn.execute(sa.text(f"SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT :n) s"), {"n": n}).scalar_one() >= n  # noqa: S608 - a reflected name


@dataclass(frozen=True)
class _Have:
    table: str
    columns: tuple[str, ...]
    valid: bool
    plain: bool  # a btree index that is not unique: what a field's own index is
    unique: bool  # a unique btree index: what a unique field's constraint stands on
    owned: bool  # a constraint's index (a unique or primary key constraint)


def _index_catalogue(conn: sa.Connection, name: str | None = None) -> dict[str, _Have]:
    """name → what it is, of the indexes in the current schema, or of the one named (PostgreSQL).

    Read without JIT: on a catalogue with many tables, or one whose statistics lag behind dropped
    ones, the planner's estimate crosses ``jit_above_cost`` and compiling took 0.43 s of a 0.46 s
    read (an upgrade reads it several times)."""
    was = conn.execute(sa.text("SELECT current_setting('jit', true)")).scalar()
    if was is not None:
        conn.execute(sa.text("SELECT set_config('jit', 'off', true)"))
    found = _read_index_catalogue(conn, name)  # (on an error the transaction, and the setting with it, is rolled back)
    if was is not None:
        conn.execute(sa.text("SELECT set_config('jit', :was, true)"), {"was": was})
    return found


def _read_index_catalogue(conn: sa.Connection, name: str | None) -> dict[str, _Have]:
    rows = conn.execute(sa.text(
        "SELECT i.relname, t.relname, x.indisvalid, m.amname = 'btree' AND NOT x.indisunique, "
        "m.amname = 'btree' AND x.indisunique, EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid), "
        "ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o) "
        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_am m ON m.oid = i.relam JOIN pg_namespace s ON s.oid = t.relnamespace "
        "WHERE s.nspname = current_schema() AND (CAST(:n AS text) IS NULL OR i.relname = :n)"), {"n": name})
    return {index: _Have(table, tuple(columns), valid, plain, unique, owned)
            for index, table, valid, plain, unique, owned, columns in rows}


def _blockers_text(engine: sa.Engine, tables: list[str]) -> str:
    """:func:`_blockers` on a connection of its own, or nothing if the database cannot say."""
    try:
        with engine.connect() as conn:
            return _blockers(conn, tables)
    except sa.exc.DBAPIError:
        return ""


def _blockers(conn: sa.Connection, tables: list[str], limit: int = 5) -> str:
    """The other sessions holding locks on ``tables`` (or, if none, the oldest open transactions
    of this database), as text for a message about what is in the way."""
    rows = conn.execute(sa.text(
        "SELECT pid, state, usename, application_name, age, query, held FROM ("
        "SELECT a.pid, a.state, a.usename, a.application_name, a.xact_start, date_trunc('second', now() - a.xact_start) AS age, "
        "left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80) AS query, "
        "string_agg(DISTINCT c.relname, ', ') FILTER (WHERE c.relname = ANY(:tables)) AS held "
        "FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND l.granted "
        "LEFT JOIN pg_class c ON c.oid = l.relation "
        "WHERE a.pid <> pg_backend_pid() AND a.datname = current_database() AND a.xact_start IS NOT NULL "
        "GROUP BY a.pid, a.state, a.usename, a.application_name, a.xact_start, a.query) s "
        "ORDER BY held IS NULL, xact_start LIMIT :limit"), {"tables": tables, "limit": limit}).all()
    if not rows:
        return ""
    sessions = [f"pid {pid} ({user or '?'}{', ' + app if app else ''}; {state}, transaction open {age}"
                f"{', holds ' + held if held else ''}): {query}" for pid, state, user, app, age, query, held in rows]
    return " — in the way: " + "; ".join(sessions)


def _constraints(db: _Db, table: str, column: str) -> dict[str, list[str]]:
    insp = sa.inspect(db.conn)
    return {
        "fk": [fk["name"] for fk in insp.get_foreign_keys(table) if fk["constrained_columns"] == [column] and fk["name"]],
        "uq": [u["name"] for u in insp.get_unique_constraints(table) if u["column_names"] == [column] and u["name"]],
        "ix": [i["name"] for i in insp.get_indexes(table) if i["column_names"] == [column] and not i.get("unique") and i["name"]],
    }


def _q(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _unique_index_state(conn: sa.Connection, table: str, column: str, name: str) -> str | None:
    """What holds the index name ``name`` (PostgreSQL): None if nothing; "ours" if a valid unique
    btree index on exactly ``table.column`` that no constraint owns (an interrupted run built it
    and did not attach it); "invalid" if such an index a cancelled build left invalid; "other"
    if anything else (a constraint's index, an index of other columns)."""
    have = _index_catalogue(conn, name).get(name)
    if have is None:
        return None
    if have.table != table or have.columns != (column,) or not have.unique or have.owned:
        return "other"
    return "ours" if have.valid else "invalid"


@contextmanager
def _waiting(conn: sa.Connection, ms: int) -> Iterator[sa.Connection]:
    """``conn`` in AUTOCOMMIT waiting at most ``ms`` for each lock, both undone after, so the
    connection goes back to the pool as it came (the application's pages share it)."""
    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
    conn.exec_driver_sql(f"SET lock_timeout = {int(ms)}")
    try:
        yield conn
    finally:
        try:
            conn.exec_driver_sql("RESET lock_timeout")
        except sa.exc.DBAPIError:
            conn.invalidate()  # broken: not handed to anyone else


@contextmanager
def _briefly(conn: sa.Connection) -> Iterator[None]:
    """A transaction of its own on an AUTOCOMMIT connection, for steps that take the table's
    exclusive lock for a moment: it waits for the lock no longer than the upgrade's own steps do,
    so pages never queue behind it for long."""
    conn.exec_driver_sql("BEGIN")
    try:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(UPGRADE_LOCK_TIMEOUT_MS)}")
        yield
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


UPGRADE_LOCK_TIMEOUT_MS = 3_000  # per lock the upgrade's transaction waits for (PostgreSQL)


LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock not had within lock_timeout
