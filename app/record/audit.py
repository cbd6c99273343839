"""The audit trail: every create, update and delete of a record — from a screen, the API, an
import, a task or a workflow action — with who, when, from where and old → new per field; and
every read of a confidential record. Append-only: no screen or API writes or edits it. Read back
by record (:func:`history`) or searched (:func:`search`, :func:`stream`) and exported as .xlsx."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, request
from flask_appbuilder import Model
from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from sqlalchemy import Column, DateTime, Index, Integer, String, Text, event
from sqlalchemy.orm import Session

from app.access import crypto
from app.io.excel import neutralise, sheet_title
from app.record.models import CrmRecord, current_user_id
from app.web.i18n import pick


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
    step = Column(String(255))  # the workflow step whose effects made this change (its record and action), if any
    __table_args__ = (Index("ix_crm_audit_record", "entity", "record_id"),)


_JSON = (str, int, float, bool)
# what a row says of itself (its time, author and version): never one of a record's changes
BOOKKEEPING = frozenset({"changed_on", "changed_by_fk", "version"})
CREATION = frozenset({"id", "created_on", "created_by_fk"})


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, _JSON):  # asked first: most values are (an import writes 100k rows)
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "id") and hasattr(value, "__table__"):
        return value.id
    return str(value)


def _where() -> str | None:
    return request.remote_addr if has_request_context() else "cli/task"


def seal(value: Any) -> Any:
    """A confidential (encrypted) field's value as it goes into the trail: encrypted like the field."""
    return None if value is None else crypto.encrypt(str(value))


def _opened(value: Any) -> Any:
    if not crypto.is_encrypted(value):
        return value
    try:
        return crypto.decrypt(value)
    except ValueError:
        return pick("(无法解密:密钥不符)", "(cannot be decrypted with the configured key)")


def _open_changes(text: str | None) -> dict[str, Any]:
    """An audit row's changes as stored, with confidential values decrypted for the reader (who
    sees them only where the field is not hidden from their role)."""
    changes = json.loads(text or "{}")
    if "enc1:" not in (text or ""):
        return changes
    return {name: [_opened(v) for v in pair] if isinstance(pair, list) else _opened(pair) for name, pair in changes.items()}


def reseal(text: str | None) -> str | None:
    """An audit row's changes with every confidential value encrypted again under the current key
    (``crm rotate-key``); None when the row holds none."""
    if not text or crypto.PREFIX not in text:
        return None
    changes = json.loads(text)

    def again(v: Any) -> Any:
        return crypto.encrypt(crypto.decrypt(v)) if crypto.is_encrypted(v) else v

    return json.dumps({name: [again(v) for v in pair] if isinstance(pair, list) else again(pair) for name, pair in changes.items()},
                      ensure_ascii=False)


def secret_columns(table: sa.Table) -> frozenset[str]:
    """The columns of ``table`` whose values the trail keeps encrypted: the trail is no weaker than the field."""
    return frozenset(c.name for c in table.columns if isinstance(c.type, crypto.EncryptedText))


def trail_changes(pairs: Mapping[str, tuple[Any, Any]], secret: Container[str]) -> dict[str, list[Any]]:
    """``{column: (old, new)}`` as the trail keeps them: plain JSON values (a moment or a date in ISO
    form, a record as its id, a number as its text) and the ``secret`` columns' values sealed."""
    out: dict[str, list[Any]] = {}
    for name, (old, new) in pairs.items():
        pair = [_plain(old), _plain(new)]
        out[name] = [seal(v) for v in pair] if name in secret else pair
    return out


def created_changes(values: Mapping[str, Any], secret: Container[str]) -> dict[str, list[Any]]:
    """What the trail says of a new record: every value it was given, from nothing (its id, its
    creation stamp and the row's bookkeeping aside)."""
    return trail_changes({name: (None, value) for name, value in values.items()
                          if value is not None and name not in CREATION and name not in BOOKKEEPING}, secret)


def audit_row(entity: str, record_id: int, action: str, changes: dict[str, Any], version: int | None, user_id: int | None,
              where: str | None, at: dt.datetime, step: str | None = None) -> dict[str, Any]:
    """One row of the trail, as every path writes it (the ORM's flush, the importer's batches,
    :func:`record_many`): ``where`` is the request's address, ``cli/task`` or ``import``."""
    return {"entity": entity, "record_id": record_id, "action": action, "version": version, "user_id": user_id,
            "remote_addr": where, "at": at, "changes": json.dumps(changes, ensure_ascii=False, default=str), "step": step}


def _changes(obj: Any, action: str) -> dict[str, list[Any]]:
    state = sa.inspect(obj)
    columns = [c for c in state.mapper.column_attrs if c.key not in BOOKKEEPING]
    secret = secret_columns(state.mapper.local_table)
    if action == "create":
        return created_changes({c.key: getattr(obj, c.key, None) for c in columns if c.key not in CREATION}, secret)
    pairs: dict[str, tuple[Any, Any]] = {}
    for col in columns:
        name = col.key
        hist = state.attrs[name].history
        if action == "delete":
            value = hist.unchanged[0] if hist.unchanged else (hist.deleted[0] if hist.deleted else None)
            if value is not None:
                pairs[name] = (value, None)
        elif hist.has_changes():
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            if old != new:
                pairs[name] = (old, new)
    return trail_changes(pairs, secret)


def _after_flush(session: Session, _ctx: Any) -> None:
    rows = []
    now = dt.datetime.now()
    user, where = current_user_id(), _where()
    step = session.info.get("crm_step")  # app.record.effects: a step's effects being saved
    for action, objs in (("create", session.new), ("update", session.dirty), ("delete", session.deleted)):
        for obj in objs:
            if not isinstance(obj, CrmRecord) or (action == "update" and not session.is_modified(obj)):
                continue
            changes = _changes(obj, action)
            if action == "update" and not changes:
                continue
            rows.append(audit_row(obj.__entity__, obj.id, action, changes, getattr(obj, "version", None),  # type: ignore[attr-defined]  # every model has its id
                                  user, where, now, step))
    if rows:
        session.connection().execute(AuditRow.__table__.insert(), rows)


def install_audit() -> None:
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


def record(session: Any, entity: str, record_id: int, action: str, changes: dict[str, Any] | None = None,
           version: int | None = None) -> None:
    """Write one audit row outside the ORM flush (reads of confidential records, bulk actions);
    ``version``: the record's version the change made (what :func:`changes_since` goes by)."""
    record_many(session, entity, [record_id], action, changes, version=version)


class ReadNotRecorded(Exception):
    """A confidential record whose read could not be put on record (the database busy with another
    writer past its busy timeout, or failing): it is not shown — never a read without its row."""


def record_read(session: Any, entity: str, record_id: int) -> None:
    """Put a read of a confidential record on record and commit it, before anything of the record
    leaves the server; :class:`ReadNotRecorded` (nothing written, the transaction rolled back) if
    the database would not take the row."""
    try:
        record(session, entity, record_id, "read")
        session.commit()
    except sa.exc.OperationalError as exc:
        session.rollback()
        raise ReadNotRecorded(entity, record_id) from exc


def record_many(session: Any, entity: str, record_ids: Iterable[int], action: str, changes: dict[str, Any] | None = None,
                user_id: int | None = None, version: int | None = None) -> int:
    """:func:`record` for many records at once (an export of confidential records): one statement a
    thousand; by ``user_id`` when given (a command's user), else by the acting user."""
    who = user_id if user_id is not None else current_user_id()
    base = audit_row(entity, 0, action, changes or {}, version, who, _where(), dt.datetime.now())
    ids, n = list(record_ids), 0
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        session.execute(AuditRow.__table__.insert(), [{**base, "record_id": pk} for pk in chunk])
        n += len(chunk)
    return n


def history(session: Any, entity: str, record_id: int) -> list[dict[str, Any]]:
    t = AuditRow.__table__
    rows = session.execute(sa.select(t).where(t.c.entity == entity, t.c.record_id == record_id).order_by(t.c.at, t.c.id)).mappings()
    return [dict(r) | {"changes": _open_changes(r["changes"])} for r in rows]


def changes_since(session: Any, entity: str, record_id: int, version: int) -> list[dict[str, Any]]:
    """Updates made after ``version`` of a record (to show someone whose save was refused)."""
    rows = history(session, entity, record_id)
    created = max((i for i, h in enumerate(rows) if h["action"] == "create"), default=0)
    return [h for h in rows[created:] if h["action"] == "update" and (h["version"] or 0) > version]


# -- reading the trail: search, presentation, export ------------------------------------------
ACTIONS = {"create": ("新增", "Created"), "update": ("修改", "Updated"), "delete": ("删除", "Deleted"), "read": ("查看", "Read")}
WITHHELD = ("(无权查看)", "(hidden)")
EXPORT_HEADERS = ("时间", "用户", "来源", "实体", "记录编号", "操作", "版本", "字段", "原值", "新值")


@dataclass(frozen=True)
class AuditQuery:
    """Which audit rows to list: every criterion is optional; ``until`` is an inclusive day."""

    entity: str | None = None
    record_id: int | None = None
    user_id: int | None = None
    action: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    visible: Any = field(default=None, compare=False)  # SQL over crm_audit: the rows the viewer's row scope allows


def _select(query: AuditQuery) -> Any:
    from flask_appbuilder.security.sqla.models import User

    t, u = AuditRow.__table__, User.__table__
    stmt = sa.select(t, u.c.username, u.c.first_name, u.c.last_name).select_from(t.outerjoin(u, u.c.id == t.c.user_id))
    if query.entity:
        stmt = stmt.where(t.c.entity == query.entity)
    if query.record_id is not None:
        stmt = stmt.where(t.c.record_id == query.record_id)
    if query.user_id is not None:
        stmt = stmt.where(t.c.user_id == query.user_id)
    if query.action:
        stmt = stmt.where(t.c.action == query.action)
    if query.since:
        stmt = stmt.where(t.c.at >= dt.datetime.combine(query.since, dt.time.min))
    if query.until:
        stmt = stmt.where(t.c.at < dt.datetime.combine(query.until + dt.timedelta(days=1), dt.time.min))
    if query.visible is not None:
        stmt = stmt.where(query.visible)
    return stmt


def _row(r: Any) -> dict[str, Any]:
    from app.access.accounts import person_name

    row = dict(r)
    login, first, last = row.pop("username"), row.pop("first_name"), row.pop("last_name")
    row["user"] = person_name(login, first, last) if login else ("" if row["user_id"] is None else f"#{row['user_id']}")
    row["changes"] = _open_changes(row["changes"])
    return row


def count(session: Any, query: AuditQuery) -> int:
    return int(session.execute(sa.select(sa.func.count()).select_from(_select(query).subquery())).scalar_one())


def search(session: Any, query: AuditQuery, page: int = 0, page_size: int = 50) -> list[dict[str, Any]]:
    """One page of matching rows, newest first, each with the user's display name."""
    t = AuditRow.__table__
    stmt = _select(query).order_by(t.c.at.desc(), t.c.id.desc()).offset(page * page_size).limit(page_size)
    return [_row(r) for r in session.execute(stmt).mappings()]


def stream(session: Any, query: AuditQuery, chunk: int = 2000) -> Iterator[dict[str, Any]]:
    """Every matching row, newest first, read in chunks (exports)."""
    t = AuditRow.__table__
    stmt = _select(query).order_by(t.c.at.desc(), t.c.id.desc()).execution_options(yield_per=chunk)
    for r in session.execute(stmt).mappings():
        yield _row(r)


def action_label(action: str) -> str:
    zh, en = ACTIONS.get(action, (action, action))
    return pick(zh, en)


def field_of(key: str) -> str:
    """The field an audit row's key is about (a link's column ``customer_id`` is the field ``customer``)."""
    return key[:-3] if key.endswith("_id") else key


def visible_changes(changes: dict[str, Any], hidden: set[str] | None, labels: dict[str, str],
                    present: Callable[[str, Any], Any] | None = None) -> list[tuple[str, Any, Any]]:
    """(field label, old, new) of one audit row; values of fields hidden from the viewer withheld,
    the others as ``present(field, value)`` shows them (a choice's label, a linked record's title).
    A field that went from empty to empty (a form sending '' for nothing) is not a change.

    ``hidden`` None means every value is withheld (a viewer with no grant on the entity)."""
    out = []
    for name, pair in changes.items():
        old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
        if old in (None, "") and new in (None, ""):
            continue
        field = field_of(name)
        if hidden is None or field in hidden:
            old = new = pick(*WITHHELD)
        elif present is not None:
            old, new = present(field, old), present(field, new)
        out.append((str(labels.get(field, field)), old, new))
    return out


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return neutralise(str(value))


def export_xlsx(rows: Iterable[dict[str, Any]], target: Any, describe: Any, title: str = "审计日志") -> int:
    """Audit rows as an .xlsx (one line per changed field); ``describe(row)`` gives the entity's
    label and the row's visible changes. Text that a spreadsheet would run as a formula stays text."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet_title(title, "审计日志"))
    for i, width in enumerate((19, 14, 15, 14, 10, 8, 6, 18, 30, 30), start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"
    ws.append(list(EXPORT_HEADERS))
    n = 0
    for row in rows:
        entity_label, changes = describe(row)
        head = [row["at"], _cell(row["user"]), _cell(row.get("where_label", row["remote_addr"])), _cell(entity_label), row["record_id"],
                _cell(action_label(row["action"])), row["version"]]
        for label, old, new in changes or [("", None, None)]:
            ws.append([*head, _cell(label), _cell(old), _cell(new)])
        n += 1
    wb.save(target)
    return n
