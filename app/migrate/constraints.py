"""Constraints a big table gets after the upgrade's commit (PostgreSQL): a new link's key check, a
field made unique or required — checked, filled or built in short transactions, reads and writes
going on (:class:`ConstraintWork`, :func:`finish_constraints`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.messages import msg
from app.migrate import data
from app.migrate.data import EXAMPLES, _blockers_text, _briefly, _Db, _q, _unique_index_state, _waiting
from app.migrate.declared import INTERNAL_PREFIXES, _default_value, _name, sa_type
from app.spec.columns import Col, fit_name

log = logging.getLogger(__name__)


FILL_BATCH = 2_000  # empty rows a transaction when a field made required is filled after the commit (a save waits at most one batch)


REQUIRED_PREFIX = "nn_"  # a check standing in for NOT NULL until the rows are filled (big tables)


def _required_name(table: str, column: str) -> str:
    """The name of the check that stands in for NOT NULL until the rows are filled."""
    return fit_name(f"{REQUIRED_PREFIX}{table}_{column}")


def _add_link_unchecked(db: _Db, table: str, column: str, ref: str) -> None:
    """The link's foreign key, enforced from now on for every row written, while the rows already
    there are checked after the commit (``VALIDATE CONSTRAINT``, which blocks no reads or writes)."""
    c = db.conn
    c.execute(sa.text(f"ALTER TABLE {_q(c, table)} ADD CONSTRAINT {_q(c, _name('fk', table, column, ref))} "
                      f"FOREIGN KEY ({_q(c, column)}) REFERENCES {_q(c, ref)} (id) NOT VALID"))


def _drop_required_checks(db: _Db, table: str, column: str) -> None:
    """Inside the upgrade's transaction: the required-check an unfinished upgrade left on a field
    removed or made optional since goes with the change — left, it would refuse every row saved
    without the field (PostgreSQL)."""
    if db.online:
        for name in _required_checks(db.conn, table, column):
            db.conn.execute(sa.text(f"ALTER TABLE {_q(db.conn, table)} DROP CONSTRAINT {_q(db.conn, name)}"))


def _required_checks(conn: sa.Connection, table: str, column: str) -> list[str]:
    """The required-checks (:func:`_require`) left on ``table.column`` by an unfinished upgrade."""
    return [name for t, name, col in _pending_checks(conn) if (t, col) == (table, column)]


def _pending_checks(conn: sa.Connection) -> list[tuple[str, str, str]]:
    """(table, constraint, column) of every required-check left by an upgrade (PostgreSQL)."""
    return _one_column_constraints(conn, "c.contype = 'c' AND left(c.conname, :n) = :p",
                                   {"p": REQUIRED_PREFIX, "n": len(REQUIRED_PREFIX)})


def _one_column_constraints(conn: sa.Connection, where: str, params: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(table, constraint, column) of the one-column constraints of the current schema that
    ``where`` (over ``pg_constraint c``) picks, in table and name order (PostgreSQL)."""
    return [tuple(r) for r in conn.execute(sa.text(
        "SELECT t.relname, c.conname, a.attname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1] "
        f"WHERE n.nspname = current_schema() AND cardinality(c.conkey) = 1 AND {where} ORDER BY 1, 2"), params or {})]


@dataclass(frozen=True)
class ConstraintWork:
    """What an upgrade leaves for after its commit on a big table (PostgreSQL), read off the
    catalogue against what the workbook declares, so what an interrupted run left undone is found
    by the next one:

    * ``validate``: a foreign key added NOT VALID — every row's link is checked;
    * ``require``: a field declared required whose column still allows empty values — filled
      with its default in batches, then made NOT NULL (:func:`_require`); also a required-check
      left on a field made optional since, which is dropped;
    * ``unique``: a unique field without its constraint — ``CREATE UNIQUE INDEX CONCURRENTLY``,
      then the constraint takes that index.
    """

    kind: str
    table: str
    column: str
    name: str
    col: Col | None = None  # as the workbook declares the field now

    def describe(self) -> str:
        return {"validate": f"check every link of {self.table}.{self.column} ({self.name})",
                "require": f"make {self.table}.{self.column} required",
                "unique": f"make {self.table}.{self.column} unique ({self.name})"}[self.kind]


def pending_constraints(conn: sa.Connection, declared: sa.MetaData) -> list[ConstraintWork]:
    """The constraint work (:class:`ConstraintWork`) this database still owes ``declared``."""
    if conn.dialect.name != "postgresql":
        return []
    insp = sa.inspect(conn)
    tables = {t for t in insp.get_table_names() if t in declared.tables and not t.startswith(INTERNAL_PREFIXES)}
    work = [ConstraintWork("validate", t, column, name)
            for t, name, column in _one_column_constraints(conn, "c.contype = 'f' AND NOT c.convalidated") if t in tables]
    checks = {(t, column): name for t, name, column in _pending_checks(conn)}
    for table in sorted(tables):
        have = {tuple(u["column_names"]) for u in insp.get_unique_constraints(table)}
        nullable = {c["name"]: c["nullable"] for c in insp.get_columns(table)}
        for column in declared.tables[table].columns:
            col = column.info.get("crm")
            if col is not None and not col.nullable and nullable.get(column.name):
                work.append(ConstraintWork("require", table, column.name, checks.pop((table, column.name), "")
                                           or _required_name(table, column.name), col))
            if column.unique and column.name in nullable and (column.name,) not in have:
                work.append(ConstraintWork("unique", table, column.name, _name("uq", table, column.name)))
    # a check left on a field made optional (or removed) since: nothing to fill, the check goes
    work += [ConstraintWork("require", t, column, name) for (t, column), name in checks.items() if t in tables]
    return work


def finish_constraints(engine: sa.Engine, declared: sa.MetaData,
                       progress: Callable[[str], None] = log.info) -> tuple[list[str], list[str], int]:
    """PostgreSQL, after the upgrade's commit: the constraint work it left on big tables
    (:class:`ConstraintWork`), each on its own connection, the office working meanwhile. Returns
    (what was done, what could not be done and why, how many rows were filled); nothing is
    raised: what is left stays in the catalogue and the next ``crm upgrade`` does it."""
    done: list[str] = []
    failed: list[str] = []
    filled = 0
    if engine.dialect.name != "postgresql":
        return done, failed, filled
    with engine.connect() as conn:
        work = pending_constraints(conn, declared)
    for job in work:
        progress(job.describe())
        started = time.perf_counter()
        try:
            with engine.connect() as conn, _waiting(conn, data.INDEX_WAIT_MS) as conn:  # read at call time (settable)
                text, rows = {"validate": _validate, "require": _require, "unique": _unique}[job.kind](conn, job)
                filled += rows
        except (sa.exc.DBAPIError, _Unfinished) as exc:
            reason = str(exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc).splitlines()[0]
            failed.append(f"{job.describe()}: {reason}{_blockers_text(engine, [job.table])}")
            log.warning("not finished: %s", failed[-1])
            continue
        done.append(f"{text}, {time.perf_counter() - started:.1f} s")
        log.info("constraints: %s", done[-1])
    return done, failed, filled


class _Unfinished(Exception):
    """Constraint work that the data does not allow yet (said why, in both languages)."""


def _validate(conn: sa.Connection, job: ConstraintWork) -> tuple[str, int]:
    conn.execute(sa.text(f"ALTER TABLE {_q(conn, job.table)} VALIDATE CONSTRAINT {_q(conn, job.name)}"))
    return f"checked every link of {job.table}.{job.column}", 0


def _require(conn: sa.Connection, job: ConstraintWork) -> tuple[str, int]:
    """A field made required on a big table. Inside the upgrade's transaction nothing was done
    (a NOT NULL there would scan the table under its lock, the fill write every empty row under
    it). Here: the empty rows get the default, a batch a transaction; a check not yet validated
    then stops anyone saving a row without the field (no scan; not before the fill, or saving any
    row still empty would fail); rows left empty meanwhile are filled; the check is validated
    (reads and writes go on) and proves NOT NULL, which is then set without a scan."""
    table, column = _q(conn, job.table), _q(conn, job.column)
    check = _q(conn, job.name)
    present = job.name in _required_checks(conn, job.table, job.column)
    if job.col is None or job.col.nullable:  # the field was removed or made optional since
        with _briefly(conn):
            conn.execute(sa.text(f"ALTER TABLE {table} DROP CONSTRAINT {check}"))
        return f"{job.table}.{job.column} no longer required: check {job.name} dropped", 0
    filled = _fill(conn, job)
    if job.col.default is None:  # nothing to fill with: stop before a check refuses saving those rows
        _still_empty(conn, job, drop=present)
    if not present:
        with _briefly(conn):
            conn.execute(sa.text(f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"))
    filled += _fill(conn, job)  # rows saved empty before the check was there
    _still_empty(conn, job, drop=True)
    conn.execute(sa.text(f"ALTER TABLE {table} VALIDATE CONSTRAINT {check}"))
    with _briefly(conn):  # NOT NULL is proven by the validated check: no scan under the exclusive lock
        conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL"))
        conn.execute(sa.text(f"ALTER TABLE {table} DROP CONSTRAINT {check}"))
    return f"made {job.table}.{job.column} required ({filled} empty rows got the default {job.col.default!r})", filled


def _still_empty(conn: sa.Connection, job: ConstraintWork, drop: bool) -> None:
    """Stop (reported) if rows of the field are still empty — rows saved empty since the plan was
    checked, with no default to give them; ``drop``: the required-check goes first, so saving
    those rows keeps working."""
    table, column = _q(conn, job.table), _q(conn, job.column)
    empty = conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {column} IS NULL")).scalar_one()  # noqa: S608 - quoted names
    if not empty:
        return
    if drop:
        with _briefly(conn):
            conn.execute(sa.text(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {_q(conn, job.name)}"))
    raise _Unfinished(msg("%(column)s 仍有 %(n)s 行为空,请在 fields 的 default 列给出默认值或补填这些行",
                          column=f"{job.table}.{job.column}", n=empty))


def _fill(conn: sa.Connection, job: ConstraintWork) -> int:
    """Give the empty rows of a field made required its default, ``FILL_BATCH`` of them a
    transaction (no row stays locked for long), walking the ids; how many were filled."""
    if job.col is None or job.col.default is None:
        return 0
    value = sa.literal(_default_value(job.col), sa_type(job.col))
    t = sa.table(job.table, sa.column("id"), sa.column(job.column))
    empty = t.c[job.column].is_(None)
    filled, lo = 0, conn.execute(sa.select(sa.func.min(t.c.id)).where(empty)).scalar()
    while lo is not None:
        batch = sa.select(t.c.id).where(empty, t.c.id >= lo).order_by(t.c.id).limit(FILL_BATCH).subquery()
        hi = conn.execute(sa.select(sa.func.max(batch.c.id))).scalar()
        if hi is None:
            break
        filled += conn.execute(sa.update(t).where(t.c.id >= lo, t.c.id <= hi, empty).values({job.column: value})).rowcount
        lo = hi + 1
    return filled


def _unique(conn: sa.Connection, job: ConstraintWork) -> tuple[str, int]:
    table, name = _q(conn, job.table), _q(conn, job.name)
    state = _unique_index_state(conn, job.table, job.column, job.name)
    if state == "other":
        raise _Unfinished(msg("索引名 %(name)s 已被别的索引或约束占用", name=job.name))
    if state == "invalid":  # a cancelled build's
        conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
    if state != "ours":  # "ours": built by an interrupted run, valid: it only needs attaching
        try:
            conn.execute(sa.text(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} ({_q(conn, job.column)})"))
        except sa.exc.IntegrityError:
            conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
            dups = _Db(conn).duplicates(job.table, job.column)
            listing = ", ".join(f"{v!r} ×{n}" for v, n in dups[:EXAMPLES])
            raise _Unfinished(msg("%(n)s 个值重复:%(values)s — 请先修改这些行", n=len(dups), values=listing)) from None
    with _briefly(conn):
        conn.execute(sa.text(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}"))
    how = f"index {job.name} built concurrently" if state != "ours" else f"index {job.name} an interrupted run built"
    return f"made {job.table}.{job.column} unique ({how})", 0


