"""The outbox (DESIGN §4): everything that happens later is first written as a row with a unique
key, then sent by a task. Celery gives at-least-once; exactly-once comes from here:

* ``enqueue`` inserts if absent by ``key`` (``ON CONFLICT DO NOTHING`` on SQLite/PostgreSQL), so a
  re-run scheduling pass or a duplicated task never writes a message twice;
* ``deliver_due`` claims rows with a guarded status change (``UPDATE … SET status='sending'
  WHERE id=? AND status='pending'``, rowcount 1), so two workers never send the same row;
* an e-mail is marked sent *before* its final SMTP dot (see ``channels``), so a crash either
  leaves an unfinished SMTP transaction (the row returns to ``pending`` after the lease) or a
  message that is already on its way (mail servers such as Postfix and Exim queue a message once
  its dot is in; SMTP has no way to be exactly-once with a server that would drop a message whose
  client vanished before the reply, RFC 1047 — this choice never sends twice). What remains is the
  gap between the commit that marks the row sent and the write of its dot, a few microseconds: a
  crash exactly there loses that one message (it is marked sent); any other crash point loses and
  duplicates nothing. Mail servers make the opposite choice and send twice in their gap. In-app and
  SMS rows are written in the same transaction that marks them sent;
* failures (SMTP down, refused) go back to ``pending`` with exponential backoff; after
  ``MAX_ATTEMPTS`` the row is ``failed`` and kept with its last error — never dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.messaging.channels import RecordingSms, SmsSender, SmtpSender, SmtpSettings, build_email
from app.record.tables import Notification, OutboxMessage

log = logging.getLogger(__name__)

__all__ = ["OutboxMessage", "Notification", "enqueue", "deliver_due", "Channels", "Delivery", "backoff"]

OUTBOX = OutboxMessage.__table__
NOTIFICATION = Notification.__table__
MAX_ATTEMPTS = 8
BASE_BACKOFF = dt.timedelta(minutes=1)
MAX_BACKOFF = dt.timedelta(hours=6)
DEFAULT_LEASE = dt.timedelta(minutes=5)
CLAIM_BATCH = 50


def backoff(attempts: int) -> dt.timedelta:
    """1, 2, 4, … minutes after the n-th failed attempt, at most 6 hours."""
    return min(MAX_BACKOFF, BASE_BACKOFF * (2 ** max(0, attempts - 1)))


# -- writing -------------------------------------------------------------------------------------

def enqueue(session: Session | sa.Connection, messages: Iterable[Mapping[str, Any]]) -> int:
    """Insert the messages whose key is not in the outbox yet; returns how many were new.

    Each mapping carries the columns of ``crm_outbox`` (at least key, source, entity, record_id,
    occurrence, channel, next_attempt_at). Does not commit."""
    rows = {m["key"]: dict(m) for m in messages}
    if not rows:
        return 0
    existing = existing_keys(session, list(rows))
    new = [r for k, r in rows.items() if k not in existing]
    columns = [c.name for c in OUTBOX.columns if c.name != "id"]
    new = [{c: r.get(c) for c in columns} for r in new]
    for r in new:
        r["status"] = r["status"] or "pending"
        r["attempts"] = r["attempts"] or 0
        r["step"] = r["step"] or 0
        r["created_on"] = r["created_on"] or r["next_attempt_at"]
    for start in range(0, len(new), 500):
        _insert_absent(session, new[start:start + 500])
    return len(new)


def existing_keys(session: Session | sa.Connection, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        found.update(session.execute(sa.select(OUTBOX.c.key).where(OUTBOX.c.key.in_(chunk))).scalars())
    return found


def _insert_absent(session: Session | sa.Connection, rows: list[dict[str, Any]]) -> None:
    dialect = session.dialect.name if isinstance(session, sa.Connection) else session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        session.execute(insert(OUTBOX).on_conflict_do_nothing(index_elements=["key"]), rows)
        return
    for row in rows:  # other databases: one savepoint per row, a duplicate key is skipped
        try:
            with session.begin_nested():
                session.execute(sa.insert(OUTBOX), row)
        except sa.exc.IntegrityError:
            continue


# -- sending -------------------------------------------------------------------------------------

@dataclass
class Channels:
    """The ways out; ``smtp`` None keeps e-mail pending in the outbox (no server configured)."""

    smtp: SmtpSettings | None = None
    sms: SmsSender = field(default_factory=RecordingSms)
    lease: dt.timedelta = DEFAULT_LEASE

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Channels:
        seconds = config.get("CRM_OUTBOX_LEASE_SECONDS") or os.environ.get("CRM_OUTBOX_LEASE_SECONDS")
        lease = dt.timedelta(seconds=float(seconds)) if seconds else DEFAULT_LEASE
        return cls(SmtpSettings.from_config(config), RecordingSms(), lease)

    @property
    def active(self) -> tuple[str, ...]:
        return ("inapp", "sms", "email") if self.smtp is not None else ("inapp", "sms")


@dataclass
class Delivery:
    """What one ``deliver_due`` call did."""

    sent: int = 0
    recorded: int = 0
    retry: int = 0
    failed: int = 0
    released: int = 0  # stale 'sending' rows given back after the lease (a worker died)

    @property
    def handled(self) -> int:
        return self.sent + self.recorded + self.retry + self.failed


def deliver_due(session: Session, limit: int = 100, now: dt.datetime | None = None, channels: Channels | None = None) -> Delivery:
    """Send up to ``limit`` due messages; commits as it goes (one claim per batch, one commit per
    message sent)."""
    if channels is None:
        from flask import current_app

        channels = Channels.from_config(current_app.config)
    now = now or dt.datetime.now()
    started = time.monotonic()
    result = Delivery(released=release_stale(session, now, channels.lease))
    smtp = SmtpSender(channels.smtp) if channels.smtp is not None else None
    try:
        while result.handled < limit:
            batch = claim(session, now, min(CLAIM_BATCH, limit - result.handled), channels.active)
            if not batch:
                break
            for row in batch:
                # the lease runs from each message, not from the batch's claim: a slow server
                # keeps a batch longer than the lease, and another worker may have taken the rest
                if not _renew(session, row.id, now, now + dt.timedelta(seconds=time.monotonic() - started)):
                    continue
                try:
                    _deliver_one(session, row, now, channels, smtp, result)
                except Exception as exc:  # noqa: BLE001 - a line break in a subject, a Chinese address: it alone fails, for good
                    session.rollback()
                    log.warning("outbox: message %s cannot be sent: %s", row.id, exc)
                    _fail(session, row, now, f"{type(exc).__name__}: {exc}", result, permanent=True)
    finally:
        if smtp is not None:
            smtp.close()
    return result


def _renew(session: Session, row_id: int, claimed: dt.datetime, stamp: dt.datetime) -> bool:
    """Whether this run still holds ``row_id`` (claimed at ``claimed``); its lease then starts again at ``stamp``."""
    mine = (OUTBOX.c.id == row_id) & (OUTBOX.c.status == "sending") & (OUTBOX.c.claimed_at == claimed)
    held = session.execute(sa.update(OUTBOX).where(mine).values(claimed_at=stamp)).rowcount == 1  # type: ignore[attr-defined]  # an UPDATE's CursorResult
    session.commit()
    return held


def release_stale(session: Session, now: dt.datetime, lease: dt.timedelta) -> int:
    """Rows left in ``sending`` by a worker that died before the SMTP commit point go back."""
    stale = (OUTBOX.c.status == "sending") & (OUTBOX.c.claimed_at < now - lease)
    n = session.execute(sa.update(OUTBOX).where(stale).values(status="pending", claimed_at=None)).rowcount  # type: ignore[attr-defined]
    session.commit()
    return int(n or 0)


def claim(session: Session, now: dt.datetime, limit: int, channels: tuple[str, ...]) -> list[Any]:
    """Due pending rows this worker now owns (status 'sending'); committed before any is sent."""
    due = (OUTBOX.c.status == "pending") & (OUTBOX.c.next_attempt_at <= now) & OUTBOX.c.channel.in_(channels)
    query = sa.select(OUTBOX).where(due).order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    candidates = session.execute(query).all()
    mine = []
    for row in candidates:
        guarded = sa.update(OUTBOX).where(OUTBOX.c.id == row.id, OUTBOX.c.status == "pending")
        if session.execute(guarded.values(status="sending", claimed_at=now, attempts=OUTBOX.c.attempts + 1)).rowcount == 1:  # type: ignore[attr-defined]
            mine.append(row)
    session.commit()
    return mine


def _deliver_one(session: Session, row: Any, now: dt.datetime, channels: Channels, smtp: SmtpSender | None, result: Delivery) -> None:
    if row.channel == "inapp":
        _deliver_inapp(session, row, now, result)
    elif row.channel == "sms":
        status = channels.sms.send(row.recipient_address or "", f"{row.subject or ''} {row.body or ''}".strip())
        _finish(session, row.id, status, now, None if status == "sent" else RecordingSms.label)
        result.sent += status == "sent"
        result.recorded += status != "sent"
    elif row.channel == "email" and smtp is not None:
        _deliver_email(session, row, now, smtp, result)
    else:
        _fail(session, row, now, f"unknown channel {row.channel!r}", result, permanent=True)


def _deliver_inapp(session: Session, row: Any, now: dt.datetime, result: Delivery) -> None:
    if row.recipient_user_id is None:
        _fail(session, row, now, "in-app message without a user", result, permanent=True)
        return
    if getattr(row, "digest", None):  # one entry a day per kind, gathering this one (see ``digest``)
        from app.messaging.digest import add_to_digest

        add_to_digest(session, row, now)
    else:
        session.execute(sa.insert(NOTIFICATION).values(user_id=row.recipient_user_id, title=row.subject or "", body=row.body,
                                                       link=row.link, outbox_key=row.key, created_on=now))
    _finish(session, row.id, "sent", now, None)  # same transaction as the notification
    result.sent += 1


def _deliver_email(session: Session, row: Any, now: dt.datetime, smtp: SmtpSender, result: Delivery) -> None:
    if not row.recipient_address:
        _fail(session, row, now, "no e-mail address", result, permanent=True)
        return
    committed = False

    def commit_point() -> None:
        nonlocal committed
        _finish(session, row.id, "sent", now, None)
        committed = True

    try:
        smtp.send(build_email(smtp.settings, row.key, row.recipient_address, row.subject or "", row.body or ""), commit_point)
        result.sent += 1
    except (smtplib.SMTPException, OSError) as exc:
        session.rollback()
        permanent = isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600
        if isinstance(exc, smtplib.SMTPRecipientsRefused):  # 550 no such user: trying again changes nothing
            permanent = all(500 <= int(code) < 600 for code, _msg in exc.recipients.values())
        refused = isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused)
        if committed and not refused:  # the dot went out and the reply was lost: outcome unknown
            _note(session, row.id, f"sent; server reply lost: {exc}")
            result.sent += 1
            return
        _fail(session, row, now, f"{type(exc).__name__}: {exc}", result, permanent=permanent)


def _finish(session: Session, row_id: int, status: str, now: dt.datetime, note: str | None) -> None:
    session.execute(sa.update(OUTBOX).where(OUTBOX.c.id == row_id, OUTBOX.c.status == "sending")
                    .values(status=status, sent_on=now, last_error=note, claimed_at=None))
    session.commit()


def _note(session: Session, row_id: int, text: str) -> None:
    session.execute(sa.update(OUTBOX).where(OUTBOX.c.id == row_id).values(last_error=text))
    session.commit()


def _fail(session: Session, row: Any, now: dt.datetime, error: str, result: Delivery, permanent: bool = False) -> None:
    """Back to pending with backoff, or failed for good (kept, with the reason)."""
    attempts = int(row.attempts) + 1  # the claim counted this attempt
    final = permanent or attempts >= MAX_ATTEMPTS
    values: dict[str, Any] = {"status": "failed" if final else "pending", "last_error": error[:2000], "claimed_at": None,
                              "attempts": attempts}
    if not final:
        values["next_attempt_at"] = now + backoff(attempts)
    session.execute(sa.update(OUTBOX).where(OUTBOX.c.id == row.id).values(**values))
    session.commit()
    result.failed += final
    result.retry += not final


def counts(session: Session | sa.Connection) -> dict[str, int]:
    """Rows by status, for the CLI and tests."""
    q = sa.select(OUTBOX.c.status, sa.func.count()).group_by(OUTBOX.c.status)
    return {status: int(n) for status, n in session.execute(q)}
