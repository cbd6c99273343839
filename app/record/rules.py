"""Business rules applied on every save, whatever the path (screen, API, import, task):
numbering, ownership (the recorder owns), grading, cross-field validations and the workflow guard
(a state changes only through a transition). Hooked into SQLAlchemy's flush, so no path skips it.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.access.ownership import default_owner
from app.access.scope import visible
from app.messages import msg
from app.record import numbering
from app.record.convert import convert, same_value
from app.record.grading import grade_change_row, grade_record
from app.record.models import CrmRecord, acting_user
from app.record.recompute import fill_formulas, install_recompute
from app.record.tables import GradeChange
from app.spec.expr import Expr, names_in, parse, record_lookup
from app.spec.model import Entity, Field, Spec

STATE_KEY = "_crm_transition"  # set on an object by the workflow engine while it changes state


class RuleViolation(sa.exc.SQLAlchemyError):
    """A record breaks a rule of the workbook. ``errors`` maps field name → messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(m for msgs in errors.values() for m in msgs))

    def __str__(self) -> str:
        return "; ".join(m for msgs in self.errors.values() for m in msgs)


@dataclass(frozen=True)
class Narrowing:
    """A link offered narrowed by another field, from a validation ``not contact or
    contact.customer == customer`` (``Expr.ties``): ``link`` (contact) only among the records whose
    ``through`` (their customer, column ``column``) is this record's ``other`` (customer)."""

    link: str
    through: str
    column: str
    other: str


def _narrowings(spec: Spec, entity: Entity, conditions: list[Expr]) -> dict[str, Narrowing]:
    """Every link of ``entity`` that one of its validation ``conditions`` ties to another of its links."""
    out: dict[str, Narrowing] = {}
    for tie in (c.ties for c in conditions):
        if tie is None:
            continue
        link, other = entity.field(tie[0]), entity.field(tie[2])
        target = spec.entity(link.link) if link is not None and link.type == "link" else None
        through = target.field(tie[1]) if target is not None else None
        if other is not None and other.type == "link" and through is not None and through.type == "link" and through.link == other.link:
            out.setdefault(link.name, Narrowing(link.name, through.name, through.column, other.name))  # type: ignore[union-attr]
    return out


@dataclass
class EntityRules:
    entity: Entity
    validations: list[tuple[Expr, str, str]] = field(default_factory=list)  # (condition, message, field)
    state_fields: dict[str, str] = field(default_factory=dict)  # state field → initial state
    narrowed: dict[str, Narrowing] = field(default_factory=dict)  # link → its tie to another (a contact to its customer)


_REGISTRY: dict[str, tuple[Spec, EntityRules]] = {}


def rules_for(spec: Spec, entity: Entity) -> EntityRules:
    r = EntityRules(entity)
    for v in spec.validations:
        if v.entity == entity.name:
            expr = parse(v.condition)
            r.validations.append((expr, v.message, _shown_on(expr, entity)))
    for t in spec.workflows:
        if t.entity == entity.name and t.state_field not in r.state_fields:
            f = entity.field(t.state_field)
            r.state_fields[t.state_field] = (f.default if f is not None and f.default else t.source)
    r.narrowed = _narrowings(spec, entity, [expr for expr, _m, _t in r.validations])
    return r


def _shown_on(expr: Expr, entity: Entity) -> str:
    """The field a rule's message is shown on: in ``A or B …`` ("unless A, B … must hold") the
    first field after A, what is asked for (``not first_contacted_on or not last_contact_on or
    last_contact_on >= first_contacted_on``: 最近联系日期; ``active or left_on``: 离任日期);
    otherwise the first field named."""
    tree = expr.tree
    demanded = tree.values[1] if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.Or) else tree
    for node in (demanded, tree):
        names = [n.split(".")[0] for n in names_in(node)]
        found = next((n for n in names if entity.field(n) is not None), "")
        if found:
            return found
    return ""


def validate_values(spec: Spec, rules: EntityRules, lookup: Any, now: dt.datetime | None = None,
                    changed: Callable[[str], bool] | None = None) -> dict[str, list[str]]:
    """Messages of the validation rules that do not hold, by the field they are shown on;
    ``changed(field)``: whether the save being checked changes that field of a stored record."""
    errors: dict[str, list[str]] = {}
    for expr, message, target in rules.validations:
        if not expr.test(lookup, now, spec.calendar, changed):
            moved = [n for n in expr.changed_names if changed is not None and changed(n)]  # a lock: said on what was changed
            for name in moved or [target or "_schema"]:
                errors.setdefault(name, []).append(message)
    return errors


def record_errors(spec: Spec, entity: Entity, obj: Any) -> dict[str, list[str]]:
    """The validation messages a stored record being changed in memory would get on save (the
    flush says the same; asked first, a step's dialog can point at the field before anything is written)."""
    rules = _REGISTRY[entity.name][1] if entity.name in _REGISTRY else rules_for(spec, entity)
    return validate_values(spec, rules, record_lookup(obj), changed=_saving(obj, entity))


def install_rules(spec: Spec) -> None:
    """Register the entities of ``spec`` and hook the save-time rules (once per process)."""
    for e in spec.entities:
        _REGISTRY[e.name] = (spec, rules_for(spec, e))
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "after_flush", _after_flush)
    install_recompute(spec)


def _changed(obj: Any, name: str) -> bool:
    attr = sa.inspect(obj).attrs.get(name)
    return attr is not None and attr.history.has_changes()


def _differs(obj: Any, name: str) -> bool:
    """Whether an attribute's change is one a person would see (``convert.same_value``)."""
    attr = sa.inspect(obj).attrs.get(name)
    if attr is None:
        return False
    history = attr.history
    if not history.has_changes():
        return False
    if not history.deleted:  # the value before was never read: a change, to be safe
        return True
    return not same_value(history.deleted[0], history.added[0] if history.added else None)


def _saving(obj: Any, entity: Entity) -> Callable[[str], bool]:
    """``changed(field)`` of a stored record being saved: its column (a link: its id or the
    record it points to) differs from what was read."""

    def changed(name: str) -> bool:
        f = entity.field(name)
        if f is None:
            return False
        return _differs(obj, f.column) or (f.column != f.name and _differs(obj, f.name))

    return changed


def _before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    pending: list[tuple[Any, list[Any]]] = session.info.setdefault("crm_grade_changes", [])
    errors: dict[str, list[str]] = {}
    for obj in list(session.new) + [o for o in session.dirty if session.is_modified(o)]:
        if not isinstance(obj, CrmRecord) or obj.__entity__ not in _REGISTRY:
            continue
        spec, rules = _REGISTRY[obj.__entity__]
        entity = rules.entity
        is_new = obj in session.new
        if is_new:
            _on_create(session, obj, spec, entity, rules)
        else:
            for state in rules.state_fields:
                if _changed(obj, state) and not getattr(obj, STATE_KEY, False):
                    label = (entity.field(state).label if entity.field(state) else state)  # type: ignore[union-attr]
                    errors.setdefault(state, []).append(msg("%(label)s只能通过流程按钮修改", label=label, state=state))
        _fill_from_links(obj, entity, rules)
        fill_formulas(obj, spec)
        for f in entity.fields:
            if f.type == "link" and (is_new or _changed(obj, f.column) or _changed(obj, f.name)):
                related = getattr(obj, f.name, None)
                target = getattr(related, "id", None) if related is not None else getattr(obj, f.column, None)
                if target is not None and not visible(f.link, _model(f.link), target):
                    errors.setdefault(f.name, []).append(
                        msg("%(label)s:不能关联到您无权查看的记录", label=f.label))
        changes = grade_record(obj, spec, entity)
        if changes:
            pending.append((obj, changes))
        for name, msgs in validate_values(spec, rules, record_lookup(obj), changed=None if is_new else _saving(obj, entity)).items():
            known = errors.setdefault(name, [])
            known.extend(m for m in msgs if m not in known)
    if errors:
        session.info.pop("crm_grade_changes", None)
        raise RuleViolation(errors)


def _model(entity: str) -> Any:
    return current_app.extensions["crm"].generated.models.MODELS[entity]


def _on_create(session: Session, obj: Any, spec: Spec, entity: Entity, rules: EntityRules) -> None:
    _fill_defaults(obj, entity)
    if entity.owner_field and getattr(obj, f"{entity.owner_field}_id", None) is None and getattr(obj, entity.owner_field, None) is None:
        setattr(obj, f"{entity.owner_field}_id", default_owner(spec, entity, acting_user()))
    for state, initial in rules.state_fields.items():
        if getattr(obj, state, None) in (None, ""):
            setattr(obj, state, initial)
        elif getattr(obj, state) != initial and not getattr(obj, STATE_KEY, False):
            raise RuleViolation({state: [msg("新记录的状态必须是 %(state)s", state=initial)]})
    if entity.numbering:
        obj.code = numbering.number_new(session.connection(), entity, [getattr(obj, "code", None)])[0]


def _fill_from_links(obj: Any, entity: Entity, rules: EntityRules) -> None:
    """A link tied to another, chosen while that other is blank, fills it: a meeting's minutes
    given their visit request are the visited customer's, as the rule demands anyway."""
    for n in rules.narrowed.values():
        link, other = entity.field(n.link), entity.field(n.other)
        if link is None or other is None or getattr(obj, other.name, None) is not None or getattr(obj, other.column, None) is not None:
            continue
        chosen = getattr(obj, link.name, None)
        if chosen is None and getattr(obj, link.column, None) is not None:
            chosen = sa.orm.object_session(obj).get(_model(link.link), getattr(obj, link.column))  # type: ignore[union-attr]
        if chosen is not None and getattr(chosen, n.through, None) is not None:
            setattr(obj, other.name, getattr(chosen, n.through))


def defaulted_fields(entity: Entity) -> list[Field]:
    """The fields of ``entity`` that a new record given no value for them takes a default in."""
    return [f for f in entity.fields if f.default is not None and not f.is_relation]


def default_value(f: Field, now: dt.datetime) -> Any:
    """``f``'s default as a new record takes it, whatever the path that saves it: the workbook's
    value in the field's type; ``today``/``now`` the moment of the save."""
    if f.default in ("today", "now"):
        return now.date() if f.type == "date" else now
    return convert(f.default, f.type)


def computed_default(spec: Spec, f: Field, lookup: Callable[[str], Any], now: dt.datetime) -> Any:
    """A default written as an expression of the record's other fields (``received_on + 30 days``,
    ``working_days(received_on, 3)``) worked out for a new record; None while its inputs are blank."""
    try:
        value = parse(f.default_formula).evaluate(lookup, now, spec.calendar)
    except (TypeError, ValueError, ArithmeticError, OverflowError):
        return None
    if value is None:
        return None
    if f.type == "date" and isinstance(value, dt.datetime):
        return value.date()
    if f.type == "datetime" and not isinstance(value, dt.datetime) and isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if f.type == "integer" and isinstance(value, int | float):
        return int(round(value))
    return value


def fill_computed_defaults(spec: Spec, entity: Entity, get: Callable[[str], Any], put: Callable[[Field, Any], None],
                           now: dt.datetime) -> None:
    """Fill every blank field whose default is an expression, as often as one feeds another."""
    todo = [f for f in entity.fields if f.default_formula]
    for _ in range(len(todo)):
        progressed = False
        for f in list(todo):
            if get(f.name) not in (None, ""):
                todo.remove(f)
                continue
            value = computed_default(spec, f, get, now)
            if value is not None:
                put(f, value)
                todo.remove(f)
                progressed = True
        if not progressed:
            return


def _fill_defaults(obj: Any, entity: Entity) -> None:
    """The workbook's defaults of the fields a new record was given no value for, set now rather
    than by the INSERT: the rules and the grading about to run must see them (an API client that
    leaves out a yes/no field whose default is yes is not saying no). A value set on purpose, even
    empty, is kept."""
    state = sa.inspect(obj)
    now = dt.datetime.now()
    for f in defaulted_fields(entity):
        attr = state.attrs.get(f.column)
        if attr is None or attr.history.added or getattr(obj, f.column) is not None:
            continue
        value = default_value(f, now)
        if value is not None:
            setattr(obj, f.column, value)
    spec = _REGISTRY[entity.name][0] if entity.name in _REGISTRY else None
    if spec is not None:
        fill_computed_defaults(spec, entity, record_lookup(obj), lambda f, value: setattr(obj, f.column, value), now)


def _after_flush(session: Session, _ctx: Any) -> None:
    pending = session.info.pop("crm_grade_changes", [])
    now = dt.datetime.now()
    rows = [grade_change_row(obj.__entity__, obj.id, fname, old, new, rule.ref, why, now)
            for obj, changes in pending for fname, old, new, rule, why in changes]
    if rows:
        session.connection().execute(GradeChange.__table__.insert(), rows)
