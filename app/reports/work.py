"""A person's own work, read from the workbook (the home page's first half and the top bar's count).

Four kinds, each a count of records with a key that the entity's list turns back into the very
same SQL (``?_work=<key>``), so a count's link opens exactly the records counted:

* ``due`` — records the person owns that a reminder to ``owner`` watches (a ``schedules`` row with
  ``when`` on a date field, its condition true), overdue or due today. The date is the deadline;
  when every such reminder comes after it (``meeting_date + 2 working days``), the deadline is the
  date moved by the shortest of them.
* ``step`` — workflow steps the person's roles may take now on others' records (approvals): records
  in their row scope standing in the step's ``from`` state, not owned by them (those are their open
  records); administrators only where a workflow names their role.
* ``open`` — records of an entity with a workflow that the person owns, not in a final state (one
  with no step forward: closed may be reopened, but that is going back).
* ``grade`` — the person's own records by each graded field's value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_appbuilder import Model

from app.access.scope import hidden_fields, scope_clause, user_scope
from app.messaging.digest import digest_words
from app.messaging.jobs import shift
from app.spec.expr import parse
from app.spec.model import Entity
from app.spec.sqlexpr import NotCompilable, compile_condition
from app.spec.when import Duration, parse_when
from app.web.i18n import pick

BASE_DATES = ("created_on", "changed_on")
KINDS = ("overdue", "today", "step", "open", "grade")


@dataclass(frozen=True)
class WorkItem:
    key: str  # what ?_work= carries
    kind: str  # one of KINDS
    entity: str
    label: str
    detail: str  # the words under the count: the field, the state, the actions
    count: int


@dataclass(frozen=True)
class _Due:
    entity: Entity
    field: str
    conditions: tuple[str, ...]
    after: Duration | None  # the deadline is the date moved by this (None: the date itself)
    words: str = ""  # what the latest of its reminders says ("跟进计划已逾期"), for the overdue count


class Work:
    """The work of ``user`` at ``now`` over the app's database."""

    def __init__(self, crm: Any, user: Any, now: dt.datetime | None = None):
        self.crm, self.spec, self.user = crm, crm.spec, user
        self.session = crm.db.session
        self.now = now or dt.datetime.now()
        self.today = dt.datetime.combine(self.now.date(), dt.time())
        self.tables = dict(Model.metadata.tables)
        self.models = crm.generated.models.MODELS
        self.dialect = self.session.get_bind().dialect.name
        self.roles = {r.name for r in getattr(user, "roles", []) or []}

    # -- what there is --------------------------------------------------------------------------
    def items(self, kinds: tuple[str, ...] = KINDS) -> list[WorkItem]:
        """Every non-empty count of the person's work, in the order of KINDS and the workbook."""
        out = []
        for key, kind, entity, label, detail in self._definitions(kinds):
            clause = self.clause(key)
            if clause is None:
                continue
            n = self.session.execute(sa.select(sa.func.count()).select_from(self.tables[entity.name]).where(clause)).scalar_one()
            if n:
                out.append(WorkItem(key, kind, entity.name, label, detail, int(n)))
        return out

    def needs_me(self) -> int:
        """Records waiting for a step of the person's (the top bar adds unread digests)."""
        return sum(i.count for i in self.items(("step",)))

    def _definitions(self, kinds: tuple[str, ...]) -> Iterator[tuple[str, str, Entity, str, str]]:
        for due in self._dues():
            e, f = due.entity, due.entity.field(due.field)
            words = pick(f.label, f.label_en or f.name) if f else pick("创建时间", "created")
            for kind in ("overdue", "today"):
                if kind in kinds:
                    yield f"{kind}:{e.name}:{due.field}", kind, e, pick(e.label, e.label_en or e.name), \
                        (due.words or words) if kind == "overdue" else words
        if "step" in kinds:
            for e, state_field, state, actions in self._steps():
                yield f"step:{e.name}:{state_field}:{state}", "step", e, pick(e.label, e.label_en or e.name), \
                    f"{self._state_label(e, state_field, state)} · {'、'.join(actions)}"
        if "open" in kinds:
            for e, state_field in self._open():
                yield f"open:{e.name}:{state_field}", "open", e, pick(e.label, e.label_en or e.name), pick("未结", "open")
        if "grade" in kinds:
            for e, field_name in self._graded():
                f = e.field(field_name)
                choices = self.spec.choices.get(f.choices, ()) if f is not None and f.choices else ()
                values = [c.value for c in choices] or sorted({r.grade for r in self.spec.grading
                                                              if r.entity == e.name and r.field == field_name})
                for value in values:
                    label = next((pick(c.label, c.label_en) for c in choices if c.value == value), value)
                    yield f"grade:{e.name}:{field_name}:{value}", "grade", e, pick(e.label, e.label_en or e.name), \
                        f"{pick(f.label, f.label_en) if f else field_name} {label}"

    # -- the SQL of one key ----------------------------------------------------------------------
    def clause(self, key: str) -> Any:
        """The WHERE clause of a work key for this person (None: no such work for them). Row scope
        included, so the count never holds a record the list would not show."""
        parts = key.split(":")
        entity = self.spec.entity(parts[1]) if len(parts) >= 3 else None
        if entity is None or (parts[0] not in KINDS) or not self._may_list(entity):
            return None
        table = self.tables[entity.name]
        scope = scope_clause(self.spec, entity, self.models[entity.name], self.user, self.crm.admin_role)
        where = [scope] if scope is not None else []
        kind = parts[0]
        if kind in ("overdue", "today"):
            due = next((d for d in self._dues() if d.entity.name == entity.name and d.field == parts[2]), None)
            clause = self._due_clause(due, kind) if due is not None else None
        elif kind == "step" and len(parts) == 4:
            ok = any(e.name == entity.name and sf == parts[2] and s == parts[3] for e, sf, s, _a in self._steps())
            clause = sa.and_(table.c[self._column(entity, parts[2])] == parts[3], *self._not_mine(entity)) if ok else None
        elif kind == "open":
            clause = self._open_clause(entity, parts[2])
        elif kind == "grade" and len(parts) == 4:
            ok = (entity, parts[2]) in self._graded()
            clause = sa.and_(self._mine(entity), table.c[self._column(entity, parts[2])] == parts[3]) if ok else None
        else:
            clause = None
        return None if clause is None else sa.and_(clause, *where)

    def _due_clause(self, due: _Due, kind: str) -> Any:
        table = self.tables[due.entity.name]
        column = table.c[self._column(due.entity, due.field)]
        tests = []
        for text in due.conditions:
            if not text:
                tests.append(sa.true())
                continue
            try:
                tests.append(compile_condition(parse(text), self.spec, due.entity, table, self.tables, self.now, self.dialect))
            except NotCompilable:
                continue  # a condition only Python can test (working hours since …) is not counted here
        if not tests:
            return None
        start, end = self._deadline_window(due, kind)
        is_date = isinstance(column.type, sa.Date) and not isinstance(column.type, sa.DateTime)
        bounds = [column.is_not(None)]
        if start is not None:
            bounds.append(column >= (start.date() if is_date else start))
        bounds.append(column < (end.date() if is_date else end))
        return sa.and_(self._mine(due.entity), sa.or_(*tests), *bounds)

    def _deadline_window(self, due: _Due, kind: str) -> tuple[dt.datetime | None, dt.datetime]:
        """[start, end) of the dates whose deadline falls before today (overdue) or within it."""
        tomorrow = self.today + dt.timedelta(days=1)
        if due.after is None:
            return (None, self.today) if kind == "overdue" else (self.today, tomorrow)
        # the last day whose date + ``after`` is before today / before tomorrow (shift only grows)
        def last_before(limit: dt.datetime) -> dt.datetime:
            day = limit
            for _ in range(400):
                if shift(day, due.after, self.spec.calendar) < limit:  # type: ignore[arg-type]
                    return day + dt.timedelta(days=1)
                day -= dt.timedelta(days=1)
            return day

        overdue_end = last_before(self.today)
        return (None, overdue_end) if kind == "overdue" else (overdue_end, last_before(tomorrow))

    def _open_clause(self, entity: Entity, state_field: str) -> Any:
        if (entity, state_field) not in self._open():
            return None
        final = self._final_states(entity, state_field)
        column = self.tables[entity.name].c[self._column(entity, state_field)]
        return sa.and_(self._mine(entity), sa.or_(column.is_(None), column.not_in(final)) if final else sa.true())

    # -- read from the workbook ------------------------------------------------------------------
    def _dues(self) -> list[_Due]:
        """Reminders to ``owner`` on a date of the record, one per (entity, date field)."""
        found: dict[tuple[str, str], list[tuple[str, Duration | None, str]]] = {}
        subjects = {t.name: t.subject for t in self.spec.templates}
        entities: dict[str, Entity] = {}
        for s in self.spec.schedules:
            e = self.spec.entity(s.entity)
            when = parse_when(s.when)
            if e is None or when is None or when.every or when.yearly or not when.field or "." in when.field:
                continue
            if "owner" not in s.recipients or not e.owner_field:
                continue
            f = e.field(when.field)
            # a date of the record, or its creation (a new record not yet worked on); not its last
            # change, which says nothing about when the work is due
            if f is None and when.field != "created_on" or f is not None and f.type not in ("date", "datetime"):
                continue
            entities[e.name] = e
            found.setdefault((e.name, when.field), []).append((s.condition, when.offset, subjects.get(s.template, "")))
        out = []
        for (name, field_name), rows in found.items():
            offsets = [o for _c, o, _w in rows]
            after = None
            if all(o is not None and o.amount > 0 and o.unit != "months" for o in offsets):
                after = min(offsets, key=lambda o: _approx_days(o))  # type: ignore[arg-type]
            _c, last_offset, latest = max(rows, key=lambda r: _approx_days(r[1]) if r[1] is not None else 0)
            # the words of a reminder sent after the date ("跟进计划已逾期"), not of a heads-up before it
            # ("保养合同一个月后到期" would misname a contract already past its end)
            words = digest_words(latest) if latest and last_offset is not None and last_offset.amount > 0 else ""
            out.append(_Due(entities[name], field_name, tuple(dict.fromkeys(c for c, _o, _w in rows)), after, words))
        return out

    def _steps(self) -> list[tuple[Entity, str, str, list[str]]]:
        """(entity, state field, from state, the actions) of the steps the person's roles may take."""
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for t in self.spec.workflows:
            if self.roles & set(t.roles):
                actions = grouped.setdefault((t.entity, t.state_field, t.source), [])
                name = pick(t.action, t.action_en or t.action)
                if name not in actions:
                    actions.append(name)
        out = []
        for (entity_name, state_field, state), actions in grouped.items():
            e = self.spec.entity(entity_name)
            if e is not None and self._may_list(e) and state_field not in self._hidden(e):
                out.append((e, state_field, state, actions))
        return out

    def _open(self) -> list[tuple[Entity, str]]:
        seen: list[tuple[Entity, str]] = []
        for t in self.spec.workflows:
            e = self.spec.entity(t.entity)
            if e is not None and e.owner_field and (e, t.state_field) not in seen and self._may_list(e):
                seen.append((e, t.state_field))
        return seen

    def _final_states(self, entity: Entity, state_field: str) -> list[str]:
        """States with no step forward (a step back to an earlier state — reopen — does not count);
        the order is the workflow's, as the sheet lists its steps."""
        order: list[str] = []
        steps = [t for t in self.spec.workflows if t.entity == entity.name and t.state_field == state_field]
        for t in steps:
            for s in (t.source, t.target):
                if s not in order:
                    order.append(s)
        forward = {t.source for t in steps if order.index(t.target) > order.index(t.source)}
        return [s for s in order if s not in forward]

    def _graded(self) -> list[tuple[Entity, str]]:
        out: list[tuple[Entity, str]] = []
        for r in self.spec.grading:
            e = self.spec.entity(r.entity)
            if e is not None and e.owner_field and (e, r.field) not in out and self._may_list(e) and r.field not in self._hidden(e):
                out.append((e, r.field))
        return out

    # -- helpers ------------------------------------------------------------------------------------
    def _may_list(self, entity: Entity) -> bool:
        return user_scope(self.spec, entity, self.user, self.crm.admin_role) != "none"

    def _hidden(self, entity: Entity) -> set[str]:
        return hidden_fields(self.spec, entity, self.user, self.crm.admin_role)

    def _not_mine(self, entity: Entity) -> list[Any]:
        """Steps waiting for the person are on others' records: their own are their open records."""
        if not entity.owner_field:
            return []
        column = self.tables[entity.name].c[f"{entity.owner_field}_id"]
        return [sa.or_(column.is_(None), column != getattr(self.user, "id", None))]

    def _mine(self, entity: Entity) -> Any:
        return self.tables[entity.name].c[f"{entity.owner_field}_id"] == getattr(self.user, "id", None)

    @staticmethod
    def _column(entity: Entity, name: str) -> str:
        f = entity.field(name)
        return f.column if f is not None else name

    def _state_label(self, entity: Entity, state_field: str, state: str) -> str:
        f = entity.field(state_field)
        choice = next((c for c in self.spec.choices.get(f.choices, ()) if c.value == state), None) if f and f.choices else None
        return pick(choice.label, choice.label_en) if choice is not None else state


def _approx_days(d: Duration) -> float:
    per = {"minutes": 1 / 1440, "hours": 1 / 24, "days": 1, "weeks": 7}.get(d.unit, 30)
    return d.amount * per * (7 / 5 if d.working else 1)
