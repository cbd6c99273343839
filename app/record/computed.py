"""Computed fields kept exact: formulas, lookups and roll-ups (``fields.formula``) recomputed in
the transaction of the change that affects them, set-based.

Every computed field compiles to one SQL value over its table (:func:`app.spec.sqlexpr.compile_value`:
a roll-up is a correlated ``SELECT count(*) …``), so recomputing is one
``UPDATE t SET f = <value> WHERE id IN (…) AND f IS DISTINCT FROM <value>`` per entity, whoever
wrote: the ORM's flush (forms, API, workflow steps and their effects, regrade, reassignment — all
save through the session) and the importer's batched writes call :func:`propagate` with the rows
they wrote. From there the change travels along the dependencies: the parents a roll-up counts
them in, the records whose lookup reads them, and on from those whose values actually moved
(the ``RETURNING`` of each UPDATE), until nothing moves.

On PostgreSQL the rows about to be recomputed are locked first (``FOR UPDATE``, in id order): a
second transaction adding a child to the same parent waits, and its UPDATE then runs with a
snapshot that sees the first one's child — no increment is lost under READ COMMITTED.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from app.spec.expr import Expr, parse, record_lookup
from app.spec.formula import Analysis, analyse, dependencies
from app.spec.model import Entity, Field, Spec
from app.spec.sqlexpr import compile_value

CHUNK = 5000  # ids per statement (SQLite allows 32766 parameters)
MAX_ROUNDS = 200  # the workbook check refuses cycles; this only guards against a bug


@dataclass(frozen=True)
class Computed:
    entity: str
    field: Field
    expr: Expr
    analysis: Analysis


@dataclass
class Graph:
    """The computed fields of a Spec and who depends on whom, entity by entity."""

    fields: dict[str, list[Computed]] = field(default_factory=dict)
    # child entity -> (parent entity, the child's link column): parents whose roll-ups count it
    parents: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    # entity -> (reader entity, chain of link columns from the reader to it): records whose lookups read it
    readers: dict[str, set[tuple[str, tuple[tuple[str, str], ...]]]] = field(default_factory=dict)
    # (read entity, dependent entity) -> the read entity's fields its roll-ups or lookups read: when
    # only computed values of a row moved, a dependent reading none of them has nothing to redo
    reads: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    graded: dict[str, set[str]] = field(default_factory=dict)  # entity -> its graded fields (a roll-up may move them)

    def watched(self, entity: str) -> bool:
        """Whether a write to ``entity`` may move a computed value anywhere."""
        return entity in self.fields or entity in self.parents or entity in self.readers


def graph(spec: Spec) -> Graph:
    return spec.derived("computed_graph", _build)


def _build(spec: Spec) -> Graph:
    from app.record.grading import graded_fields

    g = Graph()
    for e in spec.entities:
        g.graded[e.name] = {x for gf in graded_fields(spec, e) for x in (gf.field, gf.reason_field) if x}
    for e in spec.entities:
        for f in e.fields:
            if not f.formula:
                continue
            expr = parse(f.formula)
            a = analyse(spec, e, f, expr)
            g.fields.setdefault(e.name, []).append(Computed(e.name, f, expr, a))
            for r in a.rollups:
                child = spec.entity(r.child)
                link = child.field(r.link) if child is not None else None
                if link is not None:
                    g.parents.setdefault(r.child, set()).add((e.name, link.column))
            for entity, name in dependencies(spec, e, a):
                if entity != e.name:
                    g.reads.setdefault((entity, e.name), set()).add(name)
            for path in a.paths:
                _add_readers(spec, g, e, path)
    return g


def _add_readers(spec: Spec, g: Graph, e: Entity, path: str) -> None:
    """``e`` reads ``path`` (``order.customer.region``): each entity along it has ``e`` as reader
    through the chain of link columns that leads there."""
    chain: list[tuple[str, str]] = []
    current: Entity | None = e
    for part in path.split(".")[:-1]:
        f = current.field(part) if current is not None else None
        if f is None or f.type != "link" or current is None:
            return
        chain.append((current.name, f.column))
        current = spec.entity(f.link)
        if current is not None:
            g.readers.setdefault(current.name, set()).add((e.name, tuple(chain)))


Ids = set[int] | None  # None: every row


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    items = sorted(ids)
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def refresh(conn: sa.Connection, spec: Spec, tables: dict[str, sa.Table], entity: str, ids: Ids,
            now: dt.datetime | None = None, only: Iterable[Computed] | None = None) -> set[int]:
    """Recompute ``entity``'s computed fields (or ``only`` those) on rows ``ids``; the ids whose values moved."""
    items = list(only) if only is not None else graph(spec).fields.get(entity, [])
    if not items:
        return set()
    e = spec.entity(entity)
    assert e is not None
    table = tables[entity]
    moment = now or dt.datetime.now()
    values: dict[str, Any] = {c.field.column: compile_value(c.expr, spec, e, table, tables, moment, conn.dialect.name) for c in items}
    differs = sa.or_(*(table.c[col].is_distinct_from(v) for col, v in values.items()))
    # what the system keeps is no one's edit: the row's changed on/by stay (Core would apply their onupdate)
    keep = {name: table.c[name] for name in ("changed_on", "changed_by_fk") if name in table.c}
    moved: set[int] = set()
    for part in ([None] if ids is None else _chunks(ids)):
        where = differs if part is None else sa.and_(table.c.id.in_(part), differs)
        if conn.dialect.name == "postgresql" and part is not None:
            conn.execute(sa.select(table.c.id).where(table.c.id.in_(part)).order_by(table.c.id).with_for_update())
        moved.update(conn.execute(sa.update(table).where(where).values({**values, **keep}).returning(table.c.id)).scalars())
    return moved


def count_changes(conn: sa.Connection, spec: Spec, tables: dict[str, sa.Table], entity: str, computed: Computed,
                  examples: int = 3, now: dt.datetime | None = None, exists: bool = True) -> tuple[int, list[tuple[int, Any, Any]]]:
    """How many rows a (new or changed) computed field would change, and a few (id, old, new);
    ``exists``: whether its column is there yet (a new one is empty)."""
    e = spec.entity(entity)
    assert e is not None
    table = tables[entity]
    value = compile_value(computed.expr, spec, e, table, tables, now or dt.datetime.now(), conn.dialect.name)
    column: Any = table.c[computed.field.column] if exists else sa.null()
    differs = column.is_distinct_from(value)
    n = conn.execute(sa.select(sa.func.count()).select_from(table).where(differs)).scalar_one()
    rows = conn.execute(sa.select(table.c.id, column, value).where(differs).order_by(table.c.id).limit(examples)).all()
    return n, [(r[0], r[1], r[2]) for r in rows]


def _regrade_moved(conn: sa.Connection, spec: Spec, tables: dict[str, sa.Table], entity: str, moved: set[int],
                   now: dt.datetime | None) -> None:
    """Grades whose rules read a computed field that moved on rows ``moved`` (a customer's value
    tier from its yearly amount): graded again, set-based, with their history."""
    from app.record.grading import graded_fields, regrade

    e = spec.entity(entity)
    names = {c.field.name for c in graph(spec).fields.get(entity, [])}
    if e is None or not moved or not names:
        return
    fields = {g.field for g in graded_fields(spec, e) if g.names() & names}
    for part in ([] if not fields else _chunks(moved)):
        regrade(conn, spec, e, tables, (now or dt.datetime.now()).replace(microsecond=0), ids=part, fields=fields)


def _dependents(conn: sa.Connection, g: Graph, tables: dict[str, sa.Table], entity: str, ids: Ids,
                computed_only: bool = False) -> dict[str, Ids]:
    """The rows whose computed values read the rows ``ids`` of ``entity``; ``computed_only``: only
    computed values of those rows moved (a book's loan count), so a dependent reading none of them
    (the loans' lookup of the book's title) is left alone."""
    out: dict[str, Ids] = {}
    moved = {c.field.name for c in g.fields.get(entity, [])} | g.graded.get(entity, set())

    def affected(dependent: str) -> bool:
        return not computed_only or bool(g.reads.get((entity, dependent), set()) & moved)

    for parent, column in g.parents.get(entity, ()):
        if not affected(parent):
            continue
        if ids is None:
            out[parent] = None
            continue
        t = tables[entity]
        found: set[int] = set()
        for part in _chunks(ids):
            found.update(x for x in conn.execute(sa.select(t.c[column]).where(t.c.id.in_(part)).distinct()).scalars() if x is not None)
        _merge(out, parent, found)
    for reader, chain in g.readers.get(entity, ()):
        if not affected(reader):
            continue
        if ids is None:
            out[reader] = None
            continue
        found = set()
        for part in _chunks(ids):
            query: Any = part
            for name, column in reversed(chain):  # from the read entity back to the reader
                t = tables[name]
                query = sa.select(t.c.id).where(t.c[column].in_(query))
            found.update(conn.execute(query).scalars())
        _merge(out, reader, found)
    return out


def _merge(into: dict[str, Ids], entity: str, ids: Ids) -> None:
    if entity in into and into[entity] is None:
        return
    if ids is None:
        into[entity] = None
    elif ids:
        into.setdefault(entity, set()).update(ids)  # type: ignore[union-attr]


def propagate(conn: sa.Connection, spec: Spec, tables: dict[str, sa.Table], written: dict[str, Ids],
              extra: dict[str, Ids] | None = None, now: dt.datetime | None = None) -> dict[str, set[int] | None]:
    """After rows ``written`` (entity → ids, None: all) changed, and ``extra`` rows (parents a child
    left) may have, recompute every computed value that reads them, on and on; what moved, by entity."""
    g = graph(spec)
    moved: dict[str, set[int] | None] = {}
    pending: dict[str, Ids] = {}
    for name, ids in (extra or {}).items():
        _merge(pending, name, ids)
    # the written rows: their own computed fields, then everything that reads them whether or not those moved
    for name, ids in written.items():
        if ids is not None and not ids:
            continue
        changed = refresh(conn, spec, tables, name, ids, now)
        if changed:
            _merge(moved, name, changed)
            _regrade_moved(conn, spec, tables, name, changed, now)
        for dep, dep_ids in _dependents(conn, g, tables, name, ids).items():
            _merge(pending, dep, dep_ids)
    for _ in range(MAX_ROUNDS):
        if not pending:
            return moved
        name = next(iter(pending))
        ids = pending.pop(name)
        changed = refresh(conn, spec, tables, name, ids, now)
        if not changed:
            continue
        _merge(moved, name, changed)
        _regrade_moved(conn, spec, tables, name, changed, now)
        for dep, dep_ids in _dependents(conn, g, tables, name, changed, computed_only=True).items():
            _merge(pending, dep, dep_ids)
    raise RuntimeError("computed fields keep changing each other: a cycle the workbook check should have refused")


def python_value(c: Computed, obj: Any, calendar: Any) -> Any:
    """A formula without roll-ups worked out on a record in memory, so the grading and the rules of
    the same save read it; the database's value, written right after, is the one kept."""
    if c.analysis.rollups or any("." in p for p in c.analysis.paths):
        # a roll-up, or a lookup through a link the session may not have loaded (a new record given
        # only its link's id): the database works it out right after the write
        return getattr(obj, c.field.column, None)
    try:
        return c.expr.evaluate(record_lookup(obj), calendar=calendar)
    except (TypeError, ValueError, ArithmeticError, OverflowError):
        return None


def changed_fields(previous: Spec | None, spec: Spec) -> list[Computed]:
    """The computed fields ``spec`` adds or whose formula it rewrites since ``previous`` (all of
    them for a database whose spec is not known)."""
    out = []
    for name, items in graph(spec).fields.items():
        before = previous.entity(name) if previous is not None else None
        for c in items:
            old = before.field(c.field.name) if before is not None else None
            if old is None or old.formula != c.field.formula or old.type != c.field.type:
                out.append(c)
    return out


def fill_changed(conn: sa.Connection, previous: Spec | None, spec: Spec, tables: dict[str, sa.Table]) -> dict[str, int]:
    """In an upgrade's transaction: every new or rewritten computed field filled in bulk (one
    UPDATE per entity), and what reads them after; how many rows moved, by entity."""
    entities = {c.entity for c in changed_fields(previous, spec)}
    if not entities:
        return {}
    moved = propagate(conn, spec, tables, {}, {name: None for name in sorted(entities)})
    return {name: len(ids or ()) for name, ids in moved.items()}


def refresh_time_dependent(conn: sa.Connection, spec: Spec, tables: dict[str, sa.Table], now: dt.datetime) -> int:
    """The scheduler's pass: formulas that move with the clock (``today()``, ``days_since``…)
    recomputed set-based at ``now``, and what reads them; how many rows moved."""
    total = 0
    for name, items in graph(spec).fields.items():
        timed = [c for c in items if c.analysis.time_dependent]
        if not timed:
            continue
        moved = refresh(conn, spec, tables, name, None, now, only=timed)
        total += len(moved)
        if moved:
            total += sum(len(ids or ()) for ids in propagate(conn, spec, tables, {name: moved}, now=now).values())
    return total
