"""The save lifecycle's part of computed fields: every ORM flush (forms, API, workflow steps and
their effects, regrade, reassignment) recomputes, in its own transaction, the formulas, lookups and
roll-ups its rows feed (:func:`app.record.computed.propagate`).

Before the flush, a record's own formulas are worked out in memory (the grading and rules of the
same save read them) and the parents a child is leaving (moved or deleted) are noted; after it, the
rows written and those parents are recomputed in SQL; once the flush is done, the computed
attributes of the records held in the session are expired, so they are read again as stored.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.record.computed import graph, propagate, python_value
from app.record.grading import graded_fields
from app.record.models import CrmRecord
from app.spec.model import Spec

_SPECS: dict[str, Spec] = {}
LEFT = "crm_computed_left"  # session.info: entity → ids of parents a child left in this flush
MOVED = "crm_computed_moved"  # session.info: entities whose computed values moved


def install_recompute(spec: Spec) -> None:
    for e in spec.entities:
        _SPECS[e.name] = spec
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "after_flush_postexec", _after_postexec)


def _spec_of(obj: Any) -> Spec | None:
    return _SPECS.get(obj.__entity__) if isinstance(obj, CrmRecord) else None


def fill_formulas(obj: Any, spec: Spec) -> None:
    """A record's own formulas (not its roll-ups) worked out in memory before the save's grading
    and rules run (called by the rules' flush hook, after the defaults are filled in)."""
    for c in graph(spec).fields.get(obj.__entity__, []):
        if not c.analysis.rollups:
            value = python_value(c, obj, spec.calendar)
            if getattr(obj, c.field.column, None) != value:
                setattr(obj, c.field.column, value)


def _before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    left: dict[str, set[int]] = session.info.setdefault(LEFT, {})
    for obj in list(session.dirty) + list(session.deleted):
        spec = _spec_of(obj)
        if spec is None:
            continue
        state = sa.inspect(obj)
        for parent, column in graph(spec).parents.get(obj.__entity__, ()):
            attr = state.attrs.get(column)
            before = list(attr.history.deleted) if attr is not None else []
            ids = {getattr(obj, column, None), *before}  # still the old parent if only the relationship was set
            left.setdefault(parent, set()).update(i for i in ids if isinstance(i, int))


def _after_flush(session: Session, _ctx: Any) -> None:
    left = session.info.pop(LEFT, {})
    written: dict[str, set[int]] = {}
    spec: Spec | None = None
    for obj in list(session.new) + [o for o in session.dirty if session.is_modified(o)]:
        s = _spec_of(obj)
        if s is None or not graph(s).watched(obj.__entity__):
            continue
        spec = s
        written.setdefault(obj.__entity__, set()).add(obj.id)
    for obj in session.deleted:
        spec = spec or _spec_of(obj)
    if spec is None or not (written or left):
        return
    moved = propagate(session.connection(), spec, dict(Model.metadata.tables), dict(written), dict(left))
    session.info.setdefault(MOVED, set()).update(set(moved) | set(written))


def _after_postexec(session: Session, _ctx: Any) -> None:
    entities = session.info.pop(MOVED, set())
    if not entities:
        return
    for obj in list(session.identity_map.values()):
        spec = _spec_of(obj)
        name = getattr(obj, "__entity__", "")
        if spec is None or name not in entities:
            continue
        entity = spec.entity(name)
        graded = [x for g in graded_fields(spec, entity) for x in (g.field, g.reason_field) if x] if entity is not None else []
        columns = [c.field.column for c in graph(spec).fields.get(name, [])] + graded  # a roll-up may regrade its record
        if columns and obj not in session.deleted:
            session.expire(obj, columns)
