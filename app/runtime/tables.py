"""The runtime's own tables (``crm_*``): numbering counters, grade history, workflow history.

They are the same for every workbook, so they are declared here, created with FAB's tables
before the generated migrations run, and never named after an entity.
"""

from __future__ import annotations

import datetime as dt

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Text

from .models import now


class Sequence(Model):
    """One counter per numbering rule and period (e.g. ``complaint:202611``)."""

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
    __table_args__ = (Index("ix_crm_transition_record", "entity", "record_id"),)


CRM_TABLES = [Sequence.__table__, GradeChange.__table__, Transition.__table__]
