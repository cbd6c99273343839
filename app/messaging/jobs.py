"""What is due and when, read off the sheets: each schedule (and each survey's invitation) as a job
with its entity, parsed ``when`` and condition, and the calendar arithmetic that turns an anchor
date into a due moment (months, working days and hours)."""

from __future__ import annotations

import calendar as _calendar
import dataclasses
import datetime as dt
import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from app.spec.expr import Expr, ExprError, parse
from app.spec.model import Entity, Schedule, Spec, SurveyQuestion
from app.spec.when import Duration, When, parse_when
from app.spec.workcal import WorkCalendar

log = logging.getLogger(__name__)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    total = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(total, 12)
    day = min(moment.day, _calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def shift(moment: dt.datetime, d: Duration, cal: WorkCalendar) -> dt.datetime:
    """``moment`` moved by the (signed) duration; working units on the calendar."""
    if d.unit == "months":
        return add_months(moment, int(d.amount))
    if d.working and d.unit in ("hours", "minutes"):
        hours = d.amount if d.unit == "hours" else d.amount / 60
        if hours < 0:
            raise ValueError("working hours before a moment are not supported")
        return cal.add_working_hours(moment, hours)
    if d.working:
        days = d.amount * (len(cal.working_days) if d.unit == "weeks" else 1)
        return cal.add_working_days(moment, days)
    return moment + dt.timedelta(**{d.unit: d.amount})


def lower_bound(d: Duration) -> dt.timedelta | None:
    """A calendar span the shift is at least as long as (for SQL pre-filtering), if known."""
    if d.amount < 0 and d.working:
        return None
    if d.unit == "months":
        return dt.timedelta(days=28 * d.amount) if d.amount >= 0 else dt.timedelta(days=31 * d.amount)
    return dt.timedelta(**{d.unit: d.amount})


def upper_bound(d: Duration, cal: WorkCalendar) -> dt.timedelta:
    """A calendar span the shift is at most as long as (for SQL pre-filtering). On the working
    calendar: each working day needed lies within a week of the last, and each holiday can take
    one of them away — loose, but never too short."""
    if d.amount < 0 or (d.amount == 0 and not d.working):  # never later than the moment (working: a step back)
        return dt.timedelta() if d.working or d.unit == "months" else dt.timedelta(**{d.unit: d.amount})
    if d.unit == "months":
        return dt.timedelta(days=31 * d.amount)
    if not d.working:
        return dt.timedelta(**{d.unit: d.amount})
    if d.unit in ("hours", "minutes"):
        hours = d.amount if d.unit == "hours" else d.amount / 60
        per_day = sum((_minutes(b) - _minutes(a)) / 60 for a, b in cal.working_hours) or 24
        days = math.ceil(hours / per_day) + 1
    else:
        days = math.ceil(d.amount * (len(cal.working_days) if d.unit == "weeks" else 1))
    return dt.timedelta(days=7 * (days + len(cal.holidays) + 1))


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


@dataclass(frozen=True)
class Job:
    """A schedule row, or the invitation pass of a survey, ready to run."""

    source: str  # outbox source: the schedule name, or survey:<name>
    schedule: Schedule
    entity: Entity
    when: When
    condition: Expr | None
    survey: str = ""  # set when the message carries a survey link
    next_working_day: bool = False  # survey invitations: the next working day after the anchor


def jobs_for(spec: Spec) -> list[Job]:
    jobs = []
    for s in spec.schedules:
        job = _job(spec, s, s.name)
        if job is not None:
            jobs.append(job)
    jobs.extend(survey_jobs(spec, jobs))
    return jobs


def _job(spec: Spec, s: Schedule, source: str, survey: str = "", next_day: bool = False) -> Job | None:
    entity = spec.entity(s.entity)
    when = parse_when(s.when)
    if entity is None or when is None:
        log.warning("schedule %s skipped: unknown entity or unreadable when %r", s.name, s.when)
        return None
    try:
        condition = parse(s.condition) if s.condition.strip() else None
    except ExprError as exc:
        log.warning("schedule %s skipped: condition %r: %s", s.name, s.condition, exc)
        return None
    return Job(source, s, entity, when, condition, survey, next_day)


@dataclass(frozen=True)
class Survey:
    name: str
    entity: str
    condition: str  # the trigger without its entity prefix
    questions: tuple[SurveyQuestion, ...]


def surveys_of(spec: Spec) -> dict[str, Survey]:
    """Each survey of the sheet with its trigger entity (``entity.field == …``) and questions."""
    grouped: dict[str, list[SurveyQuestion]] = defaultdict(list)
    for q in spec.surveys:
        grouped[q.survey].append(q)
    out = {}
    for name, questions in grouped.items():
        trigger = next((q.trigger for q in questions if q.trigger), "")
        entity, condition = _split_trigger(spec, trigger)
        if entity:
            out[name] = Survey(name, entity, condition, tuple(sorted(questions, key=lambda q: q.order)))
    return out


def _split_trigger(spec: Spec, trigger: str) -> tuple[str, str]:
    m = re.match(r"\s*([a-z][a-z0-9_]*)\.", trigger or "")
    if not m or spec.entity(m.group(1)) is None:
        return "", ""
    entity = m.group(1)
    return entity, re.sub(rf"\b{entity}\.", "", trigger).strip()


def survey_jobs(spec: Spec, jobs: list[Any]) -> list[Any]:
    """Mark the carrier schedule of each survey (see module docstring), or add the survey's own
    invitation job. Mutates ``jobs`` in place and returns the jobs to add."""
    extra = []
    for survey in surveys_of(spec).values():
        carrier = next((i for i, j in enumerate(jobs) if j.entity.name == survey.entity and "survey" in j.schedule.template.lower()), None)
        if carrier is not None:
            jobs[carrier] = dataclasses.replace(jobs[carrier], survey=survey.name)
            continue
        s = Schedule(name=f"survey:{survey.name}", entity=survey.entity, when=_anchor(spec, survey), condition=survey.condition,
                     recipients=("owner",), template="", channel="inapp")
        job = _job(spec, s, s.name, survey=survey.name, next_day=True)
        if job is not None:
            extra.append(job)
    return extra


def _anchor(spec: Spec, survey: Survey) -> str:
    entity = spec.entity(survey.entity)
    assert entity is not None
    for value in re.findall(r"'([a-z][a-z0-9_]*)'", survey.condition):
        for suffix in ("_at", "_on"):
            f = entity.field(value + suffix)
            if f is not None and f.type in ("date", "datetime"):
                return f.name
    return "changed_on"


def survey_sources(spec: Spec) -> dict[str, str]:
    """survey name → the outbox source its invitations are written under."""
    return {j.survey: j.source for j in jobs_for(spec) if j.survey}

