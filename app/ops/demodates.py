"""Dates of demo rows that agree with one another and with today, read from the Spec alone.

A date or datetime field is one of four kinds, told by its name, labels and help:
``birth`` (a birthday), ``due`` (a deadline, an expiry, a due date), ``plan`` (a planned or next
moment) and ``past`` — everything else: a date says when something happened unless its words say
it is due or planned (last contact, received, done, signed, closed …). A row is about one moment,
its *start* (the record's creation, never after now); its past dates follow the start and stop at
now (an event still ahead of now has not happened: left blank when the field allows it); its due
and planned dates follow the start and may lie ahead. Orderings the workbook's validations state
(``due_date >= meeting_date``) are kept by drawing the later field from the earlier one.
"""

from __future__ import annotations

import ast
import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from app.record.rules import EntityRules
from app.spec.model import Entity, Field, Spec

# words of a moment that has happened, whatever else its label says (到期通知寄出日期: the notice was sent)
PAST_HINTS = ("寄出", "发出", "完成", "受理", "签订", "结案", "最近", "上次", "首次", "创建", "告知", "sent_", "done", "received",
              "signed", "closed", "last_", "first_", "created", "informed")
BIRTH_HINTS = ("生日", "出生", "birthday", "birth_date", "date_of_birth")
DUE_HINTS = ("期限", "到期", "截止", "应还", "应交", "有效期", "due", "deadline", "expir", "end_date", "valid_until")
PLAN_HINTS = ("计划", "预约", "预计", "下次", "planned", "plan_", "scheduled", "next_", "expected")
# how far ahead of its start a due or planned date lies, by the words of its field (days)
AHEAD_SPANS = (
    (("到期", "有效期", "expir", "end_date", "valid_until"), (180, 1095)),
    (("审核", "review", "复查", "年检"), (30, 180)),
    (("下次", "next_"), (3, 30)),
    (("期限", "截止", "deadline", "due"), (1, 15)),
)
RECENT_HINTS = ("最近", "最后", "上次", "last_", "latest")  # the latest of its kind: close to now


def _words(f: Field) -> str:
    return f"{f.name} {f.label} {f.label_en} {f.help}".casefold()


def kind(f: Field) -> str:
    """``birth``, ``due``, ``plan`` or ``past`` (see the module's docstring)."""
    words = f"{f.name} {f.label} {f.label_en}".casefold()  # help is prose: it may mention a deadline of another field
    if any(h in words for h in BIRTH_HINTS):
        return "birth"
    if any(h in words for h in PAST_HINTS):
        return "past"
    if any(h in words for h in DUE_HINTS):
        return "due"
    if any(h in words for h in PLAN_HINTS):
        return "plan"
    return "past"


def _ahead_span(f: Field) -> tuple[int, int]:
    words = _words(f)
    for hints, span in AHEAD_SPANS:
        if any(h in words for h in hints):
            return span
    return (0, 14)


def orderings(e: Entity, rules: EntityRules) -> dict[str, set[str]]:
    """Field → the date fields the validations say it may not precede (``a >= b``: a after b)."""
    moments = {f.name for f in e.fields if f.type in ("date", "datetime")}
    after: dict[str, set[str]] = {}
    for expr, _message, _target in rules.validations:
        for node in ast.walk(expr.tree):
            if not isinstance(node, ast.Compare) or len(node.ops) != 1:
                continue
            left, right, op = node.left, node.comparators[0], node.ops[0]
            if not (isinstance(left, ast.Name) and isinstance(right, ast.Name) and {left.id, right.id} <= moments):
                continue
            if isinstance(op, ast.GtE | ast.Gt):
                after.setdefault(left.id, set()).add(right.id)
            elif isinstance(op, ast.LtE | ast.Lt):
                after.setdefault(right.id, set()).add(left.id)
    return after


Evidence = dict[str, tuple[str, frozenset[Any] | None]]  # date → (field, the values it goes with; None: a false flag)


def evidence(e: Entity, rules: EntityRules) -> Evidence:
    """Date field → the state the row must be in for the date to be there, from rules that say
    "in that state, this date": ``status != 'done' or done_on`` (kept when done) and
    ``active or left_on`` (kept when not active). A planned task has no done date yet."""
    out: Evidence = {}
    for expr, _message, _target in rules.validations:
        tree = expr.tree
        if not (isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.Or) and len(tree.values) == 2):
            continue
        test, demanded = tree.values
        f = e.field(demanded.id) if isinstance(demanded, ast.Name) else None
        if f is None or f.type not in ("date", "datetime") or f.required:
            continue
        if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.NotEq)
                and isinstance(test.left, ast.Name) and isinstance(test.comparators[0], ast.Constant)):
            out[f.name] = (test.left.id, frozenset([test.comparators[0].value]))
        elif isinstance(test, ast.Name) and (flag := e.field(test.id)) is not None and flag.type == "boolean":
            out[f.name] = (flag.name, None)
    return out


def reached(spec: Spec, e: Entity, rules: EntityRules) -> Evidence:
    """Date field → the workflow states in which it has happened: a moment named like a state
    (``closed_at`` and 已结案 ``closed``, 派工时间 and 已派工) is there from that state on, along
    the workflow's transitions, not counting steps back (a call still registered has no dispatch
    time, a complaint under investigation no closing time)."""
    out: Evidence = {}
    for state_field in rules.state_fields:
        f = e.field(state_field)
        options = spec.choices.get(f.choices, ()) if f is not None else ()
        steps: dict[Any, set[Any]] = {}
        for t in spec.workflows:
            if t.entity == e.name and t.state_field == state_field:
                steps.setdefault(t.source, set()).add(t.target)
        for g in e.fields:
            if g.type not in ("date", "datetime") or g.required or kind(g) != "past":
                continue
            words = set(g.name.split("_")) - {"at", "on", "date", "time"}
            stem = g.label.removesuffix("时间").removesuffix("日期")
            state = next((c.value for c in options if c.value in words or (len(stem) >= 2 and stem in c.label)), None)
            if state is not None:
                depth = _depths(steps, rules.state_fields[state_field])
                later = {s for s, d in _depths(steps, state).items() if depth.get(s, 0) >= depth.get(state, 0)}
                out[g.name] = (state_field, frozenset(later))  # not the states a step back returns to (reopened)
    return out


def _depths(steps: dict[Any, set[Any]], first: Any) -> dict[Any, int]:
    """State → the fewest steps it takes from ``first`` (the states reachable from it)."""
    depth, todo = {first: 0}, [first]
    while todo:
        state = todo.pop(0)
        for nxt in steps.get(state, ()):
            if nxt not in depth:
                depth[nxt] = depth[state] + 1
                todo.append(nxt)
    return depth


def _sorted(fields: list[Field], after: dict[str, set[str]]) -> list[Field]:
    """Fields with every field they follow before them (a cycle is broken where it closes)."""
    by_name = {f.name: f for f in fields}
    done: list[Field] = []
    seen: set[str] = set()

    def visit(name: str, path: frozenset[str]) -> None:
        if name in seen or name in path or name not in by_name:
            return
        for earlier in sorted(after.get(name, ())):
            visit(earlier, path | {name})
        seen.add(name)
        done.append(by_name[name])

    for f in fields:
        visit(f.name, frozenset())
    return done


class RowDates:
    """Draws the dates of one entity's rows (see the module's docstring)."""

    def __init__(self, spec: Spec, e: Entity, rules: EntityRules, rng: random.Random, now: dt.datetime):
        self.rng, self.now = rng, now
        moments = [f for f in e.fields if f.type in ("date", "datetime")]
        self.after = orderings(e, rules)
        self.fields = _sorted(moments, self.after)
        self.kinds = {f.name: kind(f) for f in moments}
        self.spans = {f.name: _ahead_span(f) for f in moments}
        self.evidence = {**reached(spec, e, rules), **evidence(e, rules)}
        # a record's past moments follow one another in the sheet's order (reported → dispatched →
        # closed → returned; met → minutes sent), hours apart for times, days for dates
        self.chain = [f.name for f in moments if self.kinds[f.name] == "past"]

    def start(self, recent: bool) -> dt.datetime:
        """A row's start: within the last two years, most rows in the last months (an office's
        records grow); within the last three weeks for a row still in its first state."""
        days = self.rng.uniform(0, 21) if recent else self.rng.expovariate(1 / 200) % 720
        return (self.now - dt.timedelta(days=days)).replace(second=0, microsecond=0)

    def fill(self, values: dict[str, Any], start: dt.datetime, required: Callable[[str], bool]) -> None:
        """Set every date and datetime of ``values`` (by field name) from the row's ``start``."""
        previous = start  # the row's latest past moment so far
        halted = False  # a moment its state has not reached yet: none after it has happened either
        for f in self.fields:
            must = required(f.name)
            if halted and f.name in self.chain and not must:
                when = None
            else:
                when = self._draw(f, values, start, previous, must)
            if when is not None and f.name in self.chain:
                previous = _moment(when)
            halted = halted or (when is None and f.name in self.evidence and f.name in self.chain)
            if when is None:
                values[f.name] = None
            elif f.type == "datetime":
                values[f.name] = _moment(when).replace(second=0, microsecond=0)
            else:
                values[f.name] = when.date() if isinstance(when, dt.datetime) else when

    def _draw(self, f: Field, values: dict[str, Any], start: dt.datetime, previous: dt.datetime,
              required: bool) -> dt.datetime | dt.date | None:
        rng, k = self.rng, self.kinds[f.name]
        if f.name in self.evidence:
            held_by, states = self.evidence[f.name]
            if not (not values.get(held_by) if states is None else values.get(held_by) in states):
                return None  # the row is not in the state this date records
        if k == "birth":
            return dt.date(rng.randint(1960, 2000), rng.randint(1, 12), rng.randint(1, 28))
        base = max([start] + [_moment(values[b]) for b in self.after.get(f.name, ()) if values.get(b) is not None])
        if k != "past":
            lo, hi = self.spans[f.name]
            when = base + dt.timedelta(days=rng.randint(lo, hi), minutes=rng.randint(0, 8 * 60))
            if f.type == "date" and lo > 0 and when.date() <= base.date():
                when = base + dt.timedelta(days=lo)
            return when
        if not required and f.name not in self.evidence and rng.random() < 0.08:
            return None  # not every past event is on record (but the one a state stands for is)
        room = max(0.0, (self.now - max(base, previous)).total_seconds() / 86400)
        if any(h in _words(f) for h in RECENT_HINTS):
            when = max(base, previous) + dt.timedelta(days=room * rng.uniform(0.6, 1.0))
        elif f.name == self.chain[0]:
            when = base + dt.timedelta(minutes=rng.randint(0, 30))
        elif f.type == "datetime":
            when = max(base, previous) + dt.timedelta(minutes=rng.randint(20, 300))
        else:
            when = max(base, previous) + dt.timedelta(days=min(room, rng.uniform(0, 6)))
        if when > self.now:  # not happened yet
            return max(base, self.now) if required else None
        return when


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time(9, 0))
