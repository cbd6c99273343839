"""Grading from the ``grading`` sheet: the first matching rule gives the grade.

Two ways, one meaning: ``grade_record`` evaluates a record in Python (on every save), and
``regrade`` updates a whole table set-based — one ``UPDATE … CASE`` per graded field, with the
history of changes written by one ``INSERT … SELECT`` — falling back to Python only for rules SQL
cannot express (``working_hours``).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.messages import msg
from app.record.tables import GradeChange
from app.spec.expr import Expr, parse, record_lookup
from app.spec.model import Entity, GradingRule, Spec
from app.spec.sqlexpr import NotCompilable, compile_condition


@dataclass(frozen=True)
class Graded:
    entity: str
    field: str
    rules: tuple[tuple[GradingRule, Expr | None], ...]
    reason_field: str  # a text field "<field>_reason" of the entity, filled with the explanation, or ""

    def names(self) -> set[str]:
        return {n for _, e in self.rules if e is not None for n in e.names}


_GRADED: dict[tuple[int, str], tuple[Spec, tuple[Graded, ...]]] = {}


def graded_fields(spec: Spec, entity: Entity) -> list[Graded]:
    """The graded fields of ``entity`` with their parsed rules, parsed once per spec: record pages,
    REST answers and exports ask on every request."""
    key = (id(spec), entity.name)
    known = _GRADED.get(key)
    if known is None or known[0] is not spec:
        known = _GRADED[key] = (spec, tuple(_graded_fields(spec, entity)))
    return list(known[1])


def reason_fields(spec: Spec, entity: Entity) -> set[str]:
    """The fields of ``entity`` that hold a grade's reason (they quote the values their rule looked at)."""
    return {g.reason_field for g in graded_fields(spec, entity) if g.reason_field}


def _graded_fields(spec: Spec, entity: Entity) -> list[Graded]:
    result = []
    fields = sorted({r.field for r in spec.grading if r.entity == entity.name})
    for fname in fields:
        rules = tuple((r, parse(r.condition) if r.condition else None)
                      for r in spec.grading if r.entity == entity.name and r.field == fname)
        reason = entity.field(f"{fname}_reason")
        result.append(Graded(entity.name, fname, rules, reason.name if reason is not None and reason.type in ("text", "string") else ""))
    return result


# a reason is stored with the record (and compared with what SQL computes): in the bilingual form
OTHERWISE = msg("其他情况")


def explain(rule: GradingRule, expr: Expr | None, lookup: Any) -> str:
    """Why a record has its grade: the rule (its cell and note) and the values it looked at."""
    seen: str
    if expr is None:
        seen = OTHERWISE
    else:
        values = ", ".join(f"{n}={_show(lookup(n))}" for n in dict.fromkeys(expr.names))
        seen = f"{rule.condition} ← {values}"
    note = f"{rule.note} — " if rule.note else ""
    return f"{rule.grade}: {note}{seen} [{rule.ref}]"


def mask_reason(text: Any, hidden: set[str] | frozenset[str]) -> Any:
    """A stored reason with the values of ``hidden`` fields withheld: it quotes every value its
    rule looked at (``annual_amount=1016269.54``), and a reader's role may hide some of them."""
    if not text or not hidden or not isinstance(text, str):
        return text
    names = "|".join(re.escape(n) for n in sorted(hidden, key=len, reverse=True))
    text = re.sub(rf"(?<![\w.])({names})=.*?(?=, [\w.]+=| \[|$)", r"\1=(无权查看)", text)
    # the rule's condition names a hidden field (grade_override == 'A', credit_limit >= 500000):
    # its literal tells that field's value as well as the value would
    parts = _REASON.match(text)
    if parts and re.search(rf"(?<![\w.])(?:{names})(?!\w)", parts["condition"]):
        return f"{parts['head']}{HIDDEN_CONDITION}{parts['tail']}"
    return text


HIDDEN_CONDITION = "(依据含无权查看的字段)"
# "grade: note — condition ← values [ref]" (explain) or "grade: note — condition [ref]" (the set-based regrade)
_REASON = re.compile(r"^(?P<head>[^:]*: (?:.* — )?)(?P<condition>.*?)(?P<tail>(?: ← .*?)?(?: \[[^\]]*\])?)$", re.S)


def _show(value: Any) -> str:
    if value is None:
        return "空"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def grade_lookup(lookup: Any, graded: Graded, now: dt.datetime, calendar: Any) -> tuple[GradingRule, Expr | None] | None:
    for rule, expr in graded.rules:
        if expr is None or expr.test(lookup, now, calendar):
            return rule, expr
    return None


def grade_record(obj: Any, spec: Spec, entity: Entity, now: dt.datetime | None = None) -> list[tuple[str, Any, Any, GradingRule, str]]:
    """Set the graded fields of ``obj``; return (field, old, new, rule, explanation) per change."""
    now = now or dt.datetime.now()
    lookup = record_lookup(obj)
    changes = []
    for graded in graded_fields(spec, entity):
        hit = grade_lookup(lookup, graded, now, spec.calendar)
        new = hit[0].grade if hit else None
        old = getattr(obj, graded.field, None)
        why = explain(hit[0], hit[1], lookup) if hit else ""
        if graded.reason_field:
            setattr(obj, graded.reason_field, why or None)
        if old != new:
            setattr(obj, graded.field, new)
            if hit:
                changes.append((graded.field, old, new, hit[0], why))
    return changes


def grade_change_row(entity: str, record_id: int, field: str, old: Any, new: Any, rule: str, why: str | None,
                     at: dt.datetime) -> dict[str, Any]:
    """One row of the grade history (``crm_grade_change``), as every path writes it: a save, an
    import, a regrade in Python. ``rule`` is the grading row's reference (``grading!C4``)."""
    return {"entity": entity, "record_id": record_id, "field": field, "old_value": old, "new_value": new, "rule": rule,
            "explanation": why, "changed_on": at}


def explain_now(spec: Spec, entity: Entity, graded: Graded, obj: Any, now: dt.datetime | None = None) -> str:
    lookup = record_lookup(obj)
    hit = grade_lookup(lookup, graded, now or dt.datetime.now(), spec.calendar)
    return explain(*hit, lookup) if hit else ""


# -- set-based ----------------------------------------------------------------------------------

def case_expression(spec: Spec, entity: Entity, graded: Graded, tables: dict[str, sa.Table], now: dt.datetime, dialect: str) -> Any:
    table = tables[entity.name]
    whens: list[tuple[Any, Any]] = []
    otherwise: Any = sa.null()
    for rule, expr in graded.rules:
        if expr is None:
            otherwise = sa.literal(rule.grade)
            break
        whens.append((compile_condition(expr, spec, entity, table, tables, now, dialect), sa.literal(rule.grade)))
    return sa.case(*whens, else_=otherwise) if whens else otherwise


def reason_expression(graded: Graded, spec: Spec, entity: Entity, tables: dict[str, sa.Table], now: dt.datetime, dialect: str) -> Any:
    table = tables[entity.name]
    whens: list[tuple[Any, Any]] = []
    for rule, expr in graded.rules:
        text = f"{rule.grade}: {rule.note + ' — ' if rule.note else ''}{rule.condition or OTHERWISE} [{rule.ref}]"
        if expr is None:
            return sa.case(*whens, else_=sa.literal(text)) if whens else sa.literal(text)
        whens.append((compile_condition(expr, spec, entity, table, tables, now, dialect), sa.literal(text)))
    return sa.case(*whens, else_=sa.null())


def impact(conn: sa.Connection, spec: Spec, entity: Entity, graded: Graded, tables: dict[str, sa.Table],
           now: dt.datetime) -> Counter[tuple[Any, Any]]:
    """(stored grade, grade by these rules) → number of records."""
    table = tables[entity.name]
    try:
        new = case_expression(spec, entity, graded, tables, now, conn.dialect.name)
    except NotCompilable:
        return _impact_python(conn, spec, entity, graded, tables, now)
    q = sa.select(table.c[graded.field], new, sa.func.count()).group_by(table.c[graded.field], new)
    return Counter({(r[0], r[1]): int(r[2]) for r in conn.execute(q)})


def regrade(conn: sa.Connection, spec: Spec, entity: Entity, tables: dict[str, sa.Table],
            now: dt.datetime | None = None, ids: list[int] | None = None,
            fields: set[str] | None = None) -> dict[str, Counter[tuple[Any, Any]]]:
    """Recompute every graded field of ``entity`` (or those in ``fields``) for all rows (or rows
    ``ids``: the parents whose roll-ups a save moved); returns (old, new) → rows per field.

    Per graded field one ``INSERT … SELECT`` writes the history of the rows that change; then one
    ``UPDATE … SET field = CASE …`` per entity touches only the rows whose grade changes.
    """
    now = now or dt.datetime.now().replace(microsecond=0)
    table = tables[entity.name]
    history = GradeChange.__table__
    result: dict[str, Counter[tuple[Any, Any]]] = {}
    values: dict[str, Any] = {}
    changed: list[Any] = []
    batch = f"regrade {uuid.uuid4().hex[:12]}"  # marks this run's history rows
    scope = table.c.id.in_(ids) if ids is not None else sa.true()
    for graded in graded_fields(spec, entity):
        if fields is not None and graded.field not in fields:
            continue
        try:
            new = case_expression(spec, entity, graded, tables, now, conn.dialect.name)
        except NotCompilable:
            if ids is None:  # some rows' grades: the rule SQL cannot ask waits for their next save or the nightly run
                result[graded.field] = _regrade_python(conn, spec, entity, graded, tables, now)
            continue
        column = table.c[graded.field]
        before = Counter({r[0]: int(r[1]) for r in conn.execute(sa.select(column, sa.func.count()).where(scope).group_by(column))})
        last_id = conn.execute(sa.select(sa.func.max(history.c.id))).scalar() or 0
        conn.execute(history.insert().from_select(
            ["entity", "record_id", "field", "old_value", "new_value", "rule", "changed_on"],
            sa.select(sa.literal(entity.name), table.c.id, sa.literal(graded.field), column, new, sa.literal(batch),
                      sa.literal(now, sa.DateTime)).where(scope, column.is_distinct_from(new)),
        ))
        h = history.c
        # this run's rows are the ids after last_id: a primary-key range, however long the history grows
        moves = Counter({(r[0], r[1]): int(r[2]) for r in conn.execute(
            sa.select(h.old_value, h.new_value, sa.func.count()).where(h.id > last_id, h.rule == batch, h.field == graded.field)
            .group_by(h.old_value, h.new_value))})
        leaving: Counter[Any] = Counter()
        for (old, _new), n in moves.items():
            leaving[old] += n
        for grade, n in before.items():
            if n - leaving[grade]:
                moves[(grade, grade)] += n - leaving[grade]
        result[graded.field] = moves
        values[graded.field] = new
        changed.append(column.is_distinct_from(new))
        if graded.reason_field:
            values[graded.reason_field] = reason_expression(graded, spec, entity, tables, now, conn.dialect.name)
            changed.append(table.c[graded.reason_field].is_distinct_from(values[graded.reason_field]))
    if values:
        conn.execute(sa.update(table).where(scope, sa.or_(*changed)).values(values))
    return result


def _rows_lookup(conn: sa.Connection, spec: Spec, entity: Entity, tables: dict[str, sa.Table], row: Any, cache: dict[Any, Any]) -> Any:
    """A lookup over a plain row that follows links with (cached) queries."""

    def lookup(path: str) -> Any:
        current_entity, current = entity, row
        for part in path.split("."):
            if current is None:
                return None
            f = current_entity.field(part)
            if f is None:
                return current.get(part)
            value = current.get(f.column)
            if f.type != "link" or part == path.split(".")[-1]:
                return value
            key = (f.link, value)
            if key not in cache:
                t = tables[f.link]
                cache[key] = conn.execute(sa.select(t).where(t.c.id == value)).mappings().first()
            current_entity, current = spec.entity(f.link), cache[key]  # type: ignore[assignment]
        return current

    return lookup


def _python_grades(conn: sa.Connection, spec: Spec, entity: Entity, graded: Graded, tables: dict[str, sa.Table],
                   now: dt.datetime) -> list[tuple[int, Any, Any, str]]:
    table = tables[entity.name]
    cache: dict[Any, Any] = {}
    out = []
    for row in conn.execute(sa.select(table)).mappings():
        lookup = _rows_lookup(conn, spec, entity, tables, row, cache)
        hit = grade_lookup(lookup, graded, now, spec.calendar)
        out.append((row["id"], row[graded.field], hit[0].grade if hit else None, explain(*hit, lookup) if hit else ""))
    return out


def _impact_python(conn: sa.Connection, spec: Spec, entity: Entity, graded: Graded, tables: dict[str, sa.Table],
                   now: dt.datetime) -> Counter[tuple[Any, Any]]:
    return Counter((old, new) for _, old, new, _ in _python_grades(conn, spec, entity, graded, tables, now))


def _regrade_python(conn: sa.Connection, spec: Spec, entity: Entity, graded: Graded, tables: dict[str, sa.Table],
                    now: dt.datetime) -> Counter[tuple[Any, Any]]:
    table = tables[entity.name]
    rows = _python_grades(conn, spec, entity, graded, tables, now)
    moves = Counter((old, new) for _pk, old, new, _why in rows)
    changed = [(pk, old, new, why) for pk, old, new, why in rows if old != new]
    if changed:
        conn.execute(GradeChange.__table__.insert(), [
            grade_change_row(entity.name, pk, graded.field, old, new, "regrade", why, now) for pk, old, new, why in changed])
        conn.execute(sa.update(table).where(table.c.id == sa.bindparam("_pk")).values({graded.field: sa.bindparam("_v")}),
                     [{"_pk": pk, "_v": new} for pk, _old, new, _why in changed])
    if graded.reason_field:
        conn.execute(sa.update(table).where(table.c.id == sa.bindparam("_pk")).values({graded.reason_field: sa.bindparam("_v")}),
                     [{"_pk": pk, "_v": why or None} for pk, _old, _new, why in rows])
    return moves


def move_examples(conn: sa.Connection, spec: Spec, entity: Entity, graded: Graded, tables: dict[str, sa.Table], now: dt.datetime,
                  moves: Counter[tuple[Any, Any]], limit: int = 5) -> dict[tuple[Any, Any], list[tuple[int, str]]]:
    """Up to ``limit`` records of each move between grades (stored ≠ by these rules), as
    (id, number and title): what IT can look up before the upgrade moves them."""
    table = tables[entity.name]
    wanted = [move for move, n in moves.items() if move[0] != move[1] and n]
    if not wanted:
        return {}
    shown = ([table.c.code] if entity.numbering and "code" in table.c else []) + (
        [table.c[entity.title_field]] if entity.title_field and entity.title_field in table.c else [])

    def named(rows: Any) -> list[tuple[int, str]]:
        return [(r[0], " ".join(str(v) for v in r[1:] if v not in (None, "")) or f"#{r[0]}") for r in rows]

    try:
        new = case_expression(spec, entity, graded, tables, now, conn.dialect.name)
    except NotCompilable:
        ids: dict[tuple[Any, Any], list[int]] = {}
        for pk, old, grade, _why in _python_grades(conn, spec, entity, graded, tables, now):
            if (old, grade) in wanted and len(ids.setdefault((old, grade), [])) < limit:
                ids[(old, grade)].append(pk)
        labels = dict(named(conn.execute(sa.select(table.c.id, *shown).where(table.c.id.in_([i for v in ids.values() for i in v])))))
        return {move: [(i, labels[i]) for i in found] for move, found in ids.items()}
    column = table.c[graded.field]
    return {(old, grade): named(conn.execute(
        sa.select(table.c.id, *shown).where(column.is_not_distinct_from(old), new.is_not_distinct_from(grade))
        .order_by(table.c.id).limit(limit))) for old, grade in wanted}


def describe_moves(field_label: str, moves: Counter[tuple[Any, Any]]) -> tuple[str, str]:
    """'A: 120 → 168; B→A 48' in Chinese and English."""
    before: Counter[Any] = Counter()
    after: Counter[Any] = Counter()
    for (old, new), n in moves.items():
        before[old] += n
        after[new] += n
    grades = sorted({g for g in list(before) + list(after) if g is not None}, key=str)
    totals = "; ".join(f"{g}: {before[g]} → {after[g]}" for g in grades if before[g] != after[g])
    shifts = "; ".join(f"{old or '空'}→{new or '空'} {n}" for (old, new), n in sorted(moves.items(), key=lambda kv: (-kv[1], str(kv[0])))
                       if old != new)
    if not shifts:
        return f"分级 {field_label}:没有记录变化", f"grading {field_label}: no record changes"
    return f"分级 {field_label}:{totals};{shifts}", f"grading {field_label}: {totals}; {shifts}"
