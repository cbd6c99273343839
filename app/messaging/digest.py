"""Digests: a person's in-app reminders of one kind (schedule and escalation step) written on one
day become ONE inbox entry — "跟进计划已逾期 12 条" — whose 查看 lists exactly those records.

Delivery keeps the outbox's exactly-once design: the outbox row is claimed once (``outbox.claim``),
and in the transaction that marks it sent its reminder is added to the day's digest:

* the digest is a ``crm_notification`` under a unique ``digest_key`` (person.source.step.day),
  inserted if absent (``ON CONFLICT DO NOTHING``), so two workers delivering at once make one;
* the reminder is a ``crm_notification_item`` under the outbox row's unique key, so it is counted
  once however often delivery is retried;
* the entry's title is recounted from its items and it is marked unread again: a reminder that
  arrives after the digest was read reopens it, with the new count.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.record.tables import Notification, NotificationItem

NOTES = Notification.__table__
ITEMS = NotificationItem.__table__


def digest_words(subject: str) -> str:
    """The words naming a reminder's kind, from its template's subject: the part before the first
    colon when a placeholder follows it ("跟进计划已逾期:{{ record.subject }}"), else the subject."""
    for colon in (":", ":"):
        head, sep, tail = subject.partition(colon)
        if sep and head.strip() and "{{" in tail:
            return head.strip()[:120]
    return subject.replace("{{", "").replace("}}", "").strip()[:120]


def digest_title(words: str, n: int, language: str = "zh") -> str:
    """The entry's title in the office's language (the workbook's words are in it too)."""
    from app.messages import msg

    return msg("%(kind)s %(n)s 条", kind=words, n=n).render(language)


def _language() -> str:
    from flask import current_app, has_app_context

    if has_app_context() and "crm" in current_app.extensions:
        return str(current_app.extensions["crm"].spec.settings.language or "zh")
    return "zh"


def item_title(words: str, subject: str) -> str:
    """What a reminder is about, without the kind's words its subject starts with."""
    for colon in (":", ":"):
        if subject.startswith(words + colon):
            return subject[len(words) + 1:].strip()
    return subject


def digest_key(user_id: int, source: str, step: int, day: dt.date) -> str:
    return f"{user_id}.{day:%Y%m%d}.{step}.{source}"[:255]


def add_to_digest(session: Session, row: Any, now: dt.datetime) -> int:
    """Gather outbox ``row`` (an in-app reminder with ``digest`` words) into its recipient's digest
    of the day; returns the digest's id. Does not commit (the caller marks the row sent in the same
    transaction)."""
    day = (row.created_on or now).date()
    key = digest_key(row.recipient_user_id, row.source, row.step or 0, day)
    _insert_absent(session, NOTES, {"user_id": row.recipient_user_id, "title": row.digest, "digest_key": key, "entity": row.entity,
                                    "created_on": now}, "digest_key")
    note_id = session.execute(sa.select(NOTES.c.id).where(NOTES.c.digest_key == key)).scalar_one()
    _insert_absent(session, ITEMS, {"notification_id": note_id, "outbox_key": row.key, "record_id": row.record_id,
                                    "title": item_title(row.digest, row.subject or ""), "created_on": now}, "outbox_key")
    n = session.execute(sa.select(sa.func.count(sa.distinct(ITEMS.c.record_id))).where(ITEMS.c.notification_id == note_id)).scalar_one()
    # recounted and unread again: the entry now says what is new
    session.execute(sa.update(NOTES).where(NOTES.c.id == note_id).values(title=digest_title(row.digest, int(n), _language()), read_at=None,
                                                                         created_on=now))
    return int(note_id)


def _insert_absent(session: Session, table: sa.Table, row: dict[str, Any], key: str) -> None:
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        session.execute(insert(table).on_conflict_do_nothing(index_elements=[key]), row)
        return
    try:
        with session.begin_nested():
            session.execute(sa.insert(table), row)
    except sa.exc.IntegrityError:
        pass


def digest_records(session: Session, note_id: int, user_id: int | None) -> Any:
    """SQL: the record ids a digest of ``user_id`` gathers (none when the digest is another's)."""
    mine = sa.select(NOTES.c.id).where(NOTES.c.id == note_id, NOTES.c.user_id == user_id)
    return sa.select(ITEMS.c.record_id).where(ITEMS.c.notification_id.in_(mine))


def digest_examples(session: Session, note_ids: list[int], per: int = 3) -> dict[int, list[str]]:
    """The first few titles of each digest (shown under its title in the inbox)."""
    out: dict[int, list[str]] = {}
    if not note_ids:
        return out
    q = sa.select(ITEMS.c.notification_id, ITEMS.c.title).where(ITEMS.c.notification_id.in_(note_ids)).order_by(ITEMS.c.id)
    for nid, title in session.execute(q):
        seen = out.setdefault(int(nid), [])
        if len(seen) < per and title and title not in seen:
            seen.append(title)
    return out
