"""One scheduling pass (``tick``): which reminders, escalations and survey invitations are due
now, written to the outbox under unique keys — so running the pass again, twice at once, or after
a crash never writes a message twice. Sending is ``outbox.deliver_due``'s job.

Per schedule row of the workbook:

* ``field ± N unit`` — due at the record's ``field`` (a date counts from 00:00) moved by N units;
  ``working`` units are counted on the settings' working calendar. One occurrence per due moment
  (if the anchor moves, e.g. a new deadline, that is a new occurrence).
* ``yearly field ± N unit`` — anniversaries (birthdays): due each year on the field's month/day;
  an occurrence older than ``YEARLY_GRACE`` is not sent late (no birthday card in November).
* ``every N unit`` — recurring: period k (k ≥ 1) of the record's life since ``created_on``; at most
  one message per period while the condition holds. ``every N working days`` counts periods on the
  working calendar.
* ``catch_up_days`` (settings) — a ``field ± N unit`` occurrence (or a survey invitation) due
  longer ago is not sent late: a first start on imported history, or a beat stopped for weeks,
  must not send greetings for past holidays or notices of contracts long expired.
* ``escalate_after`` + ``escalate_to`` — when the condition still holds that long after the reminder
  was written, the role is told (step 1, a distinct key).

Record selection is done in SQL as far as it goes: the anchor is not null, the anchor is old
enough for the due moment to have passed, the condition compiled to SQL (``sqlexpr``), an
anniversary's month-day near today, and no outbox row already told about this occurrence (each
message keeps the anchor's value, or for a recurring schedule its period's end, in ``anchor``) —
so a steady-state pass reads only what may be new. The due moment and the condition are then
checked exactly in Python, and only records without an outbox row for this occurrence are loaded
as objects and rendered.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as dt
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask_appbuilder import Model
from sqlalchemy.orm import Session

from app.messaging.channels import RecordView, render
from app.messaging.digest import digest_words
from app.messaging.jobs import Job, add_months, jobs_for, lower_bound, shift, upper_bound
from app.messaging.links import Links, Recipients
from app.messaging.outbox import OUTBOX, enqueue
from app.record.computed import refresh_time_dependent
from app.spec.expr import as_datetime, record_lookup
from app.spec.model import Entity, Spec
from app.spec.sqlexpr import NotCompilable, compile_condition
from app.spec.when import Duration, When, parse_ladder

log = logging.getLogger(__name__)
YEARLY_GRACE = dt.timedelta(days=1)
LOAD_CHUNK = 500


# -- time arithmetic ------------------------------------------------------------------------------

as_moment = as_datetime  # a field value as a naive local datetime (a date counts from 00:00)


# -- what to run ----------------------------------------------------------------------------------


# -- the pass -------------------------------------------------------------------------------------

@dataclass
class TickResult:
    enqueued: int = 0
    escalated: int = 0
    skipped: int = 0  # occurrences with no one to tell (kept in the outbox as 'skipped')
    by_source: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"enqueued": self.enqueued, "escalated": self.escalated, "skipped": self.skipped,
                "by_source": {k: v for k, v in self.by_source.items() if v}}


def tick(app: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    """One scheduling pass at ``now`` (default: the clock); returns counts. Commits."""
    now = (now or dt.datetime.now()).replace(microsecond=0)
    with app.app_context():
        crm = app.extensions["crm"]
        session: Session = crm.db.session
        runner = _Pass(app, crm.spec, session, now)
        result = TickResult()
        # formulas that move with the clock first: the schedules' conditions read them as stored
        refresh_time_dependent(session.connection(), crm.spec, dict(Model.metadata.tables), now)
        for job in jobs_for(crm.spec):
            n, esc, skipped = runner.run(job)
            result.enqueued += n
            result.escalated += esc
            result.skipped += skipped
            result.by_source[job.source] = n + esc
        session.commit()  # one commit per pass (SQLite commits cost an fsync each); re-running is idempotent
        return result.as_dict()


class _Pass:
    def __init__(self, app: Any, spec: Spec, session: Session, now: dt.datetime):
        self.app, self.spec, self.session, self.now = app, spec, session, now
        self.cal = spec.calendar
        self.tables = dict(Model.metadata.tables)
        self.models = app.extensions["crm"].generated.models.MODELS
        self.dialect = session.get_bind().dialect.name
        self.recipients = Recipients(spec, session)
        self.links = Links(app)
        self.oldest = now - dt.timedelta(days=spec.settings.catch_up_days)  # due earlier: too late to send

    def run(self, job: Job) -> tuple[int, int, int]:
        due = self._due_occurrences(job)
        done = self._done(job.source, 0, list(due))
        if job.survey:  # one invitation per record: a corrected closing time does not ask again
            invited = {rid for rid, _occ in done}
            todo = {rid: occ for rid, occ in due.items() if rid not in invited}
        else:
            todo = {rid: occ for rid, occ in due.items() if (rid, occ[0]) not in done}
        messages: list[dict[str, Any]] = []
        for obj in self._load(job.entity, list(todo)):
            if job.condition is None or job.condition.test(record_lookup(obj), self.now, self.cal):
                occurrence, moment, anchor = todo[obj.id]
                for m in self._messages(job, obj, occurrence, moment, 0, job.schedule.recipients):
                    messages.append({**m, "anchor": anchor})
        skipped = sum(1 for m in messages if m["status"] == "skipped")
        n = enqueue(self.session, messages)
        return n - min(n, skipped), self._escalate(job), min(n, skipped)

    # -- selecting ------------------------------------------------------------------------------
    def _due_occurrences(self, job: Job) -> dict[int, tuple[str, dt.datetime, str | None]]:
        """record id → (occurrence, due moment, anchor) for candidates whose moment has come."""
        out: dict[int, tuple[str, dt.datetime, str | None]] = {}
        for rid, anchor, created, anchor_text in self._candidates(job):
            occ = self._occurrence(job, as_moment(anchor), as_moment(created))
            if occ is not None and (occ[1] >= self.oldest or job.when.every or job.when.yearly):
                if job.when.every is not None:
                    anchor_text = _stamp(self._period_end(job.when.every, as_moment(created), occ))  # type: ignore[arg-type]
                out[rid] = (*occ, anchor_text)
        return out

    def _candidates(self, job: Job) -> Iterator[Any]:
        """(id, anchor, created_on, anchor as text) of the records that may be due: anchor set and
        old enough, the condition (compiled to SQL where it can be), not yet told about this
        anchor's occurrence (or this period), and for anniversaries, around today's month/day."""
        table = self.tables[job.entity.name]
        when = job.when
        anchor = table.c.created_on if when.every else table.c[self._anchor_column(job)]
        anchor_text = sa.cast(anchor, sa.String)
        where = [anchor.is_not(None)]
        bound = self._bound(job)
        is_date = isinstance(anchor.type, sa.Date) and not isinstance(anchor.type, sa.DateTime)
        if bound is not None:
            where.append(anchor <= (bound.date() if is_date else bound))
        earliest = self._earliest(job)
        if earliest is not None:
            where.append(anchor >= (earliest.date() if is_date else earliest))
        if job.condition is not None:
            try:
                where.append(compile_condition(job.condition, self.spec, job.entity, table, self.tables, self.now, self.dialect))
            except NotCompilable:
                pass  # checked in Python below
        narrowed = self._not_yet_told(job, table, anchor, anchor_text)
        if narrowed is not None:
            where.append(narrowed)
        yield from self.session.execute(sa.select(table.c.id, anchor, table.c.created_on, anchor_text).where(*where))

    def _not_yet_told(self, job: Job, table: sa.Table, anchor: Any, anchor_text: Any) -> Any:
        """SQL leaving out records that cannot be due now for lack of news: an anniversary far from
        today, or an outbox row already told about this anchor (this period). Only narrows: the
        exact test is the Python one, so None (no narrowing) gives the same result, slower."""
        if job.when.yearly:
            return self._anniversary_window(job.when, anchor)
        told = OUTBOX.alias("told")
        current = told.c.anchor > _stamp(self.now) if job.when.every else told.c.anchor == anchor_text
        return ~sa.exists().where(told.c.source == job.source, told.c.step == 0, told.c.record_id == table.c.id, current)

    def _anniversary_window(self, when: When, anchor: Any) -> Any:
        """SQL: the anchor's month-day is one whose anniversary can be due now (a few days' span
        around today, moved by the offset) — the exact test stays in Python."""
        month_day = {"sqlite": lambda c: sa.func.strftime("%m-%d", c), "postgresql": lambda c: sa.func.to_char(c, "MM-DD"),
                     "mysql": lambda c: sa.func.date_format(c, "%m-%d"), "mariadb": lambda c: sa.func.date_format(c, "%m-%d")}.get(self.dialect)
        if month_day is None:
            return None
        days: set[str] = set()
        today = dt.datetime.combine(self.now.date(), dt.time())
        for delta in range(-400, 401):
            base = today + dt.timedelta(days=delta)
            end_of_day = base + dt.timedelta(days=1, microseconds=-1)
            try:  # the due moment only moves forward with the anchor's time of day: check both ends of the day
                first = shift(base, when.offset, self.cal) if when.offset is not None else base
                last = shift(end_of_day, when.offset, self.cal) if when.offset is not None else end_of_day
            except ValueError:
                return None
            if first <= self.now and last >= self.now - YEARLY_GRACE:
                days.add(base.strftime("%m-%d"))
                if base.month == 2 and base.day == 28:
                    days.add("02-29")  # 29 February is kept on the 28th in other years
        return month_day(anchor).in_(sorted(days)) if days else sa.false()

    def _anchor_column(self, job: Job) -> str:
        f = job.entity.field(job.when.field)
        return f.column if f is not None else job.when.field  # created_on / changed_on

    def _bound(self, job: Job) -> dt.datetime | None:
        when = job.when
        if when.every is not None:
            span = lower_bound(when.every)
            return None if span is None else self.now - span
        if when.yearly:
            return None
        if job.next_working_day:
            return self.now - dt.timedelta(days=1)
        span = lower_bound(when.offset) if when.offset is not None else dt.timedelta()
        return None if span is None else self.now - span

    def _earliest(self, job: Job) -> dt.datetime | None:
        """The earliest anchor whose due moment can still be on time (not before ``oldest``):
        recurring periods and anniversaries have their own limits."""
        when = job.when
        if when.every is not None or when.yearly:
            return None
        offset = Duration(1, "days", working=True) if job.next_working_day else when.offset
        return self.oldest - (upper_bound(offset, self.cal) if offset is not None else dt.timedelta())

    def _occurrence(self, job: Job, anchor: dt.datetime | None, created: dt.datetime | None) -> tuple[str, dt.datetime] | None:
        when = job.when
        if when.every is not None:
            return self._period(when.every, created) if created is not None else None
        if anchor is None:
            return None
        if when.yearly:
            return self._anniversary(when, anchor)
        if job.next_working_day:
            due = self.cal.next_working_day(anchor)
        else:
            try:
                due = shift(anchor, when.offset, self.cal) if when.offset is not None else anchor
            except ValueError:
                return None
        return (due.strftime("%Y%m%dT%H%M"), due) if due <= self.now else None

    def _period(self, every: Duration, created: dt.datetime) -> tuple[str, dt.datetime] | None:
        if every.unit == "months":  # counted from the creation day each time (31 Jan, 28 Feb, 31 Mar …)
            months = (self.now.year - created.year) * 12 + self.now.month - created.month
            if add_months(created, months) > self.now:
                months -= 1
            k = max(months, 0) // max(int(every.amount), 1)
            start = add_months(created, k * int(every.amount))
        elif every.working:
            k, start = self._working_period(every, created)
        else:
            length = dt.timedelta(**{every.unit: every.amount})
            k = int((self.now - created) / length) if length else 0
            start = created + k * length
        return (f"P{k}", start) if k >= 1 else None

    def _working_period(self, every: Duration, created: dt.datetime) -> tuple[int, dt.datetime]:
        """Period k of ``every N working days/weeks/hours`` since ``created``, and its start."""
        cal = self.cal
        if every.unit in ("hours", "minutes"):
            hours = every.amount if every.unit == "hours" else every.amount / 60
            k = int(cal.working_hours_between(created, self.now) // hours) if hours > 0 else 0
            return k, cal.add_working_hours(created, k * hours)
        days = every.amount * (len(cal.working_days) if every.unit == "weeks" else 1)
        passed = cal.working_days_between(created.date(), self.now.date())
        if passed and cal.is_working_day(self.now.date()) and created.time() > self.now.time():
            passed -= 1  # today's working day counts from the creation's time of day
        k = int(passed // days) if days > 0 else 0
        return k, cal.add_working_days(created, k * days)

    def _period_end(self, every: Duration, created: dt.datetime, occ: tuple[str, dt.datetime]) -> dt.datetime:
        """The end of period ``occ``: its start moved by one period (months from the creation day, as
        the start is, so a 31st stays a 31st)."""
        if every.unit == "months":
            return add_months(created, (int(occ[0][1:]) + 1) * int(every.amount))
        return shift(occ[1], every, self.cal)

    def _anniversary(self, when: When, anchor: dt.datetime) -> tuple[str, dt.datetime] | None:
        for year in (self.now.year + 1, self.now.year, self.now.year - 1):
            day = min(anchor.day, _calendar.monthrange(year, anchor.month)[1])  # 29 Feb → 28 Feb
            base = anchor.replace(year=year, day=day)
            try:
                due = shift(base, when.offset, self.cal) if when.offset is not None else base
            except ValueError:
                return None
            if due <= self.now:
                return (f"Y{year}", due) if self.now - due <= YEARLY_GRACE else None
        return None

    def _done(self, source: str, step: int, ids: list[int]) -> set[tuple[int, str]]:
        """(record, occurrence) already in the outbox for these records."""
        found: set[tuple[int, str]] = set()
        for start in range(0, len(ids), LOAD_CHUNK):
            q = (sa.select(OUTBOX.c.record_id, OUTBOX.c.occurrence).distinct()
                 .where(OUTBOX.c.source == source, OUTBOX.c.step == step, OUTBOX.c.record_id.in_(ids[start:start + LOAD_CHUNK])))
            found.update((int(r), str(o)) for r, o in self.session.execute(q))
        return found

    def _load(self, entity: Entity, ids: list[int]) -> Iterator[Any]:
        model = self.models[entity.name]
        for start in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[start:start + LOAD_CHUNK]
            yield from self.session.execute(sa.select(model).where(model.id.in_(chunk))).scalars()

    # -- escalating -----------------------------------------------------------------------------
    def _escalate(self, job: Job) -> int:
        """The escalation ladder: step k tells its role when step k-1 (the reminder for k = 1)
        was written its delay ago and the condition still holds for the same occurrence."""
        s = job.schedule
        ladder = parse_ladder(s.escalate_after, s.escalate_to) if s.escalate_after and s.escalate_to else None
        return sum(self._escalate_step(job, step, after, role) for step, (after, role) in enumerate(ladder or (), start=1))

    def _escalate_step(self, job: Job, step: int, after: Duration, role: str) -> int:
        told = OUTBOX.alias("told")
        escalated = OUTBOX.alias("escalated")
        where = [told.c.source == job.source, told.c.step == step - 1,
                 ~sa.exists().where(escalated.c.source == job.source, escalated.c.step == step,
                                    escalated.c.record_id == told.c.record_id, escalated.c.occurrence == told.c.occurrence)]
        span = lower_bound(after)
        if span is not None:
            where.append(told.c.created_on <= self.now - span)  # told long enough ago (the exact test below)
        live = self._still_current(job, told)
        if live is not None:
            where.append(live)
        q = (sa.select(told.c.record_id, told.c.occurrence, sa.func.min(told.c.created_on), sa.func.max(told.c.anchor))
             .where(*where).group_by(told.c.record_id, told.c.occurrence))
        ripe: dict[int, set[str]] = {}
        anchors: dict[tuple[int, str], str | None] = {}
        for rid, occ, first, anchor in self.session.execute(q):
            if shift(as_moment(first), after, self.cal) <= self.now:  # type: ignore[arg-type]
                ripe.setdefault(int(rid), set()).add(str(occ))
                anchors[int(rid), str(occ)] = anchor
        messages: list[dict[str, Any]] = []
        for obj in self._load(job.entity, list(ripe)):
            if job.condition is not None and not job.condition.test(record_lookup(obj), self.now, self.cal):
                continue
            current = self._occurrence(job, as_moment(self._anchor_value(job, obj)), as_moment(obj.created_on))
            if current is None or current[0] not in ripe[obj.id]:
                continue  # only the current occurrence escalates: a moved anchor or a past period is history
            for m in self._messages(job, obj, current[0], self.now, step, (role,)):
                messages.append({**m, "anchor": anchors[obj.id, current[0]]})  # the next step narrows on it too
        return enqueue(self.session, messages)

    def _still_current(self, job: Job, told: Any) -> Any:
        """SQL keeping the outbox rows that may belong to the current occurrence: the period has not
        ended, or the record's anchor still has the value the row was written for (rows of older
        versions, without anchor, are kept for the exact test). Keeps history out of every pass."""
        if job.when.yearly:
            return None
        if job.when.every:
            return sa.or_(told.c.anchor.is_(None), told.c.anchor > _stamp(self.now))
        table = self.tables[job.entity.name]
        anchor_text = sa.cast(table.c[self._anchor_column(job)], sa.String)
        return sa.or_(told.c.anchor.is_(None), sa.exists().where(table.c.id == told.c.record_id, anchor_text == told.c.anchor))

    def _anchor_value(self, job: Job, obj: Any) -> Any:
        return getattr(obj, job.when.field, None) if job.when.field else obj.created_on

    # -- writing --------------------------------------------------------------------------------
    def _messages(self, job: Job, obj: Any, occurrence: str, due: dt.datetime, step: int,
                  recipients: tuple[str, ...]) -> list[dict[str, Any]]:
        s = job.schedule
        channel = s.channel or "inapp"
        link = self.links.survey(job.survey, job.entity.name, obj.id) if job.survey else self.links.record(job.entity.name, obj.id)
        template = next((t for t in self.spec.templates if t.name == s.template), None)
        base = {"source": job.source, "entity": job.entity.name, "record_id": obj.id, "occurrence": occurrence, "step": step,
                "channel": channel, "link": link, "next_attempt_at": self.now, "created_on": self.now}
        digest = digest_words(template.subject if template else _default_text(job, step)[0]) \
            if s.digest and channel == "inapp" and not job.survey else None
        # an in-app message is read where its 查看 opens the record: no raw address in its text
        context = {"record": RecordView(self.spec, job.entity, obj), "due": _fmt(due), "link": "" if channel == "inapp" else link,
                   "app_name": self.spec.settings.app_name,
                   "now": _fmt(self.now), "survey": job.survey, "escalation": step > 0, "step": step}
        out = []
        for r in self.recipients.resolve(job.entity, obj, recipients, channel):
            subject, body = render(template, {**context, "recipient": r.name}, *_default_text(job, step))
            if step:
                subject = f"[升级 Escalation{'' if step == 1 else f' {step}'}] {subject}"
            out.append({**base, "key": message_key(job.source, obj.id, occurrence, step, r.token), "subject": subject, "body": body.strip(),
                        "digest": digest if r.user_id is not None else None,
                        "recipient_user_id": r.user_id, "recipient_address": r.address,
                        "status": "skipped" if r.problem else "pending", "last_error": r.problem or None})
        if not out:
            out.append({**base, "key": message_key(job.source, obj.id, occurrence, step, "none"), "status": "skipped",
                        "last_error": f"no recipient among {', '.join(recipients)}"})
        return out


def _stamp(moment: dt.datetime) -> str:
    """A moment as sortable text (the ``anchor`` of a recurring schedule's message: its period's end)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _fmt(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d") if moment.time() == dt.time() else moment.strftime("%Y-%m-%d %H:%M")


def _default_text(job: Job, step: int) -> tuple[str, str]:
    if job.survey:
        return "满意度调查 Survey: {{ record }}", "{{ recipient }}:\n{{ link }}"
    return job.schedule.name + ": {{ record }}", "{{ recipient }} {{ record }} {{ due }} {{ link }}"


_SAFE = re.compile(r"^[A-Za-z0-9_.:-]+$")


def message_key(source: str, record_id: int, occurrence: str, step: int, recipient: str) -> str:
    """Unique per (source, record, occurrence, step, recipient); ASCII (it is the Message-ID)."""
    part = source if _SAFE.match(source) else "s" + hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()[:12]  # noqa: S324 - a name, not a secret
    return f"{part}.{record_id}.{occurrence}.{step}.{recipient}"[:255]


# -- recipients -----------------------------------------------------------------------------------


