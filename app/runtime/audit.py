"""The audit trail: every create, update and delete of a record — from a screen, the API, an
import, a task or a workflow action — with who, when, from where and old → new per field; and
every read of a confidential record. Append-only: no screen or API writes or edits it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, request
from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, Index, Integer, String, Text, event
from sqlalchemy.orm import Session

from .models import CrmRecord, current_user_id


class AuditRow(Model):
    __tablename__ = "crm_audit"
    id = Column(Integer, primary_key=True)
    entity = Column(String(64), nullable=False)
    record_id = Column(Integer, nullable=False)
    action = Column(String(16), nullable=False)  # create / update / delete / read
    version = Column(Integer)
    user_id = Column(Integer)
    remote_addr = Column(String(64))
    at = Column(DateTime, nullable=False)
    changes = Column(Text)  # JSON {field: [old, new]}
    __table_args__ = (Index("ix_crm_audit_record", "entity", "record_id"),)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "id") and hasattr(value, "__table__"):
        return value.id
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _where() -> str | None:
    return request.remote_addr if has_request_context() else "cli/task"


def _changes(obj: Any, action: str) -> dict[str, list[Any]]:
    state = sa.inspect(obj)
    out: dict[str, list[Any]] = {}
    for col in state.mapper.column_attrs:
        name = col.key
        if name in ("changed_on", "changed_by_fk", "version"):
            continue
        hist = state.attrs[name].history
        if action == "create":
            value = getattr(obj, name, None)
            if value is not None and name not in ("id", "created_on", "created_by_fk"):
                out[name] = [None, _plain(value)]
        elif action == "delete":
            value = hist.unchanged[0] if hist.unchanged else (hist.deleted[0] if hist.deleted else None)
            if value is not None:
                out[name] = [_plain(value), None]
        elif hist.has_changes():
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            if old != new:
                out[name] = [_plain(old), _plain(new)]
    return out


def _after_flush(session: Session, _ctx: Any) -> None:
    rows = []
    now = dt.datetime.now()
    user, where = current_user_id(), _where()
    for action, objs in (("create", session.new), ("update", session.dirty), ("delete", session.deleted)):
        for obj in objs:
            if not isinstance(obj, CrmRecord) or (action == "update" and not session.is_modified(obj)):
                continue
            changes = _changes(obj, action)
            if action == "update" and not changes:
                continue
            rows.append({"entity": obj.__entity__, "record_id": obj.id, "action": action, "version": getattr(obj, "version", None),
                         "user_id": user, "remote_addr": where, "at": now,
                         "changes": json.dumps(changes, ensure_ascii=False, default=str)})
    if rows:
        session.connection().execute(AuditRow.__table__.insert(), rows)


def install_audit() -> None:
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


def record(session: Any, entity: str, record_id: int, action: str, changes: dict[str, Any] | None = None) -> None:
    """Write one audit row outside the ORM flush (reads of confidential records, bulk actions)."""
    session.execute(AuditRow.__table__.insert().values(
        entity=entity, record_id=record_id, action=action, user_id=current_user_id(), remote_addr=_where(),
        at=dt.datetime.now(), changes=json.dumps(changes or {}, ensure_ascii=False, default=str)))


def history(session: Any, entity: str, record_id: int) -> list[dict[str, Any]]:
    t = AuditRow.__table__
    rows = session.execute(sa.select(t).where(t.c.entity == entity, t.c.record_id == record_id).order_by(t.c.at, t.c.id)).mappings()
    return [dict(r) | {"changes": json.loads(r["changes"] or "{}")} for r in rows]


def changes_since(session: Any, entity: str, record_id: int, version: int) -> list[dict[str, Any]]:
    """Updates made after ``version`` of a record (to show someone whose save was refused)."""
    rows = history(session, entity, record_id)
    created = max((i for i, h in enumerate(rows) if h["action"] == "create"), default=0)
    return [h for h in rows[created:] if h["action"] == "update" and (h["version"] or 0) > version]
