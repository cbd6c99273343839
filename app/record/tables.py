"""The runtime's own tables (``crm_*``): numbering counters, grade history, workflow history.

They are the same for every workbook, so they are declared here, created with FAB's tables
before the generated migrations run, and never named after an entity.
"""

from __future__ import annotations

import datetime as dt

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint

from app.record.models import now


class Sequence(Model):
    """One counter per numbering rule and period (e.g. ``ticket:202611``)."""

    __tablename__ = "crm_sequence"
    key = Column(String(120), primary_key=True)
    value = Column(Integer, nullable=False, default=0)


class GradeChange(Model):
    """Append-only: a record's grade changed (when, from, to, which rule, the values it saw)."""

    __tablename__ = "crm_grade_change"
    id = Column(Integer, primary_key=True)
    entity = Column(String(64), nullable=False)
    record_id = Column(Integer, nullable=False)
    field = Column(String(64), nullable=False)
    old_value = Column(String(64))
    new_value = Column(String(64))
    rule = Column(String(40))  # the grading row, e.g. grading!C4, or "bulk" for a regrade
    explanation = Column(Text)
    changed_on = Column(DateTime, nullable=False, default=now)
    __table_args__ = (Index("ix_crm_grade_change_record", "entity", "record_id"),)


class Transition(Model):
    """Append-only workflow history: who moved which record from which state to which, and why."""

    __tablename__ = "crm_transition"
    id = Column(Integer, primary_key=True)
    entity = Column(String(64), nullable=False)
    record_id = Column(Integer, nullable=False)
    field = Column(String(64), nullable=False)
    from_state = Column(String(64))
    to_state = Column(String(64), nullable=False)
    action = Column(String(120), nullable=False)
    comment = Column(Text)
    user_id = Column(Integer, ForeignKey("ab_user.id"))
    at = Column(DateTime, nullable=False, default=lambda: dt.datetime.now())
    effects = Column(Text)  # JSON: what the step's effects did to other records (app.record.effects), for the history
    __table_args__ = (Index("ix_crm_transition_record", "entity", "record_id"),)


class OutboxMessage(Model):
    """A message to send later (issue 5): written once per (schedule or survey, record, occurrence,
    step, recipient) under a unique ``key``, then claimed and sent by ``outbox.deliver_due``.

    status: pending → sending → sent; failed after too many attempts; skipped (no recipient);
    recorded (SMS: recorded, not sent)."""

    __tablename__ = "crm_outbox"
    id = Column(Integer, primary_key=True)
    key = Column(String(255), nullable=False, unique=True)
    source = Column(String(120), nullable=False)  # schedule name, or survey:<name>
    entity = Column(String(64), nullable=False)
    record_id = Column(Integer, nullable=False)
    occurrence = Column(String(40), nullable=False)  # the due moment / period / year it belongs to
    # what keeps this occurrence current, for the pass to skip done records in SQL: the anchor
    # field's value as the database renders it (a due-moment schedule), or the end of the period
    # (a recurring one); empty for messages written by older versions (checked in Python)
    anchor = Column(String(64))
    step = Column(Integer, nullable=False, default=0)  # 0 the reminder, k its k-th escalation step
    # in-app reminders that digest: the words naming their kind ("跟进计划已逾期"), the title of the
    # day's one inbox entry; empty: a message of its own
    digest = Column(String(120))
    channel = Column(String(16), nullable=False)
    recipient_user_id = Column(Integer, ForeignKey("ab_user.id"))
    recipient_address = Column(String(254))
    subject = Column(Text)
    body = Column(Text)
    link = Column(Text)
    status = Column(String(16), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime, nullable=False)
    claimed_at = Column(DateTime)
    last_error = Column(Text)
    created_on = Column(DateTime, nullable=False, default=now)
    sent_on = Column(DateTime)
    __table_args__ = (
        Index("ix_crm_outbox_due", "status", "next_attempt_at"),
        Index("ix_crm_outbox_source", "source", "step", "record_id"),
    )


class Notification(Model):
    """An in-app message for one user (the bell): delivered by the outbox or by a survey follow-up."""

    __tablename__ = "crm_notification"
    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id"), nullable=False)
    title = Column(Text, nullable=False)
    body = Column(Text)
    link = Column(Text)
    outbox_key = Column(String(255))
    created_on = Column(DateTime, nullable=False, default=now)
    read_at = Column(DateTime)
    # a digest: one entry per (person, schedule, step, day) gathering that day's reminders
    # (``crm_notification_item``); unique, so two workers delivering at once still make one
    digest_key = Column(String(255))
    entity = Column(String(64))  # a digest's records are of this entity
    __table_args__ = (Index("ix_crm_notification_user", "user_id", "read_at"),
                      Index("ux_crm_notification_digest", "digest_key", unique=True))


class NotificationItem(Model):
    """One reminder gathered into a digest notification: its outbox row (unique: delivered once)
    and the record it is about, which the digest's 查看 lists."""

    __tablename__ = "crm_notification_item"
    id = Column(Integer, primary_key=True)
    notification_id = Column(Integer, ForeignKey("crm_notification.id", ondelete="CASCADE"), nullable=False)
    outbox_key = Column(String(255), nullable=False, unique=True)
    record_id = Column(Integer, nullable=False)
    title = Column(Text)
    created_on = Column(DateTime, nullable=False, default=now)
    __table_args__ = (Index("ix_crm_notification_item_note", "notification_id", "record_id"),)


class SurveyAnswer(Model):
    """One answer to one survey question about one record; unique per question, so a link is
    single-use even when two submissions race."""

    __tablename__ = "crm_survey_answer"
    id = Column(Integer, primary_key=True)
    survey = Column(String(120), nullable=False)
    entity = Column(String(64), nullable=False)
    record_id = Column(Integer, nullable=False)
    question_order = Column(Integer, nullable=False)
    value = Column(Integer, nullable=False)
    submitted_at = Column(DateTime, nullable=False, default=now)
    __table_args__ = (UniqueConstraint("survey", "entity", "record_id", "question_order", name="uq_crm_survey_answer_question"),)


class ImportJob(Model):
    """An import started from the screens (issue 7): the uploaded file, who started it (their scope
    and rights apply), the column mapping, live progress and the outcome with its error workbook —
    in the database, so any web worker answers the progress bar and serves the report.

    status: mapping (waiting for the user's column mapping) → queued → checking → writing → done,
    or failed (the file cannot be imported); ``claim`` guards against two workers running one job."""

    __tablename__ = "crm_import_job"
    id = Column(Integer, primary_key=True)
    token = Column(String(32), nullable=False, unique=True)  # in URLs instead of the guessable id
    entity = Column(String(64), nullable=False)
    user_id = Column(Integer, ForeignKey("ab_user.id"), nullable=False)
    filename = Column(String(255), nullable=False)
    options = Column(Text, nullable=False)  # JSON: mode, key, skip_bad_rows, dry_run, mapping
    upload = Column(LargeBinary)  # the file, dropped when the job ends
    status = Column(String(16), nullable=False)
    claim = Column(String(32))
    total = Column(Integer)
    done = Column(Integer, nullable=False, default=0)
    result = Column(Text)  # JSON: counts, notes, the first row errors, or the file's problems
    report = Column(LargeBinary)  # the error workbook
    created_on = Column(DateTime, nullable=False, default=now)
    started_at = Column(DateTime)
    heartbeat_at = Column(DateTime)
    finished_at = Column(DateTime)
    __table_args__ = (Index("ix_crm_import_job_user", "user_id", "created_on"),)


class CacheVersion(Model):
    """Versions of what the web workers keep across requests (``pagecache``): ``security`` is
    bumped in the same transaction as any change to users, roles, permissions or departments."""

    __tablename__ = "crm_cache_version"
    key = Column(String(40), primary_key=True)
    version = Column(Integer, nullable=False, default=0)


class CredentialVersion(Model):
    """A user's credential version (``app.access.sessions``): put into the session and the tokens
    at login and compared on each request; moved on by logout, a password, role or active change
    and deletion, which ends every session and token issued before. No row: version 0."""

    __tablename__ = "crm_credential_version"
    user_id = Column(Integer, primary_key=True, autoincrement=False)  # ab_user.id; kept when the user goes
    version = Column(Integer, nullable=False, default=0)


CRM_TABLES = [Sequence.__table__, CacheVersion.__table__, GradeChange.__table__, Transition.__table__, OutboxMessage.__table__, Notification.__table__,
              SurveyAnswer.__table__, ImportJob.__table__, CredentialVersion.__table__]


class AppliedSpec(Model):
    """Append-only: the spec a database was upgraded to and the revision it then had, written in
    the upgrade's own transaction. ``crm plan`` and ``crm upgrade`` compare the workbook with the
    newest row, whatever ``crm generate`` wrote into the generated folder meanwhile."""

    __tablename__ = "crm_applied_spec"
    id = Column(Integer, primary_key=True)
    revision = Column(String(32))
    spec = Column(Text, nullable=False)  # Spec.to_json()
    applied_on = Column(DateTime, nullable=False, default=now)


class State(Model):
    """What the runtime keeps about a database besides its data, by key (e.g. the digest of the
    permissions last synchronised into FAB's security tables)."""

    __tablename__ = "crm_state"
    key = Column(String(40), primary_key=True)
    value = Column(Text)
