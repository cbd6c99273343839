"""The working calendar's fast arithmetic (week arithmetic plus the exceptions, a binary search
for far dates) agrees with counting day by day, whatever the week, holidays and 调休 days."""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.spec.workcal import WEEKDAYS, WorkCalendar

DAY = dt.timedelta(days=1)
dates = st.dates(dt.date(2025, 1, 1), dt.date(2028, 12, 31))
calendars = st.builds(
    lambda days, holidays, extra: WorkCalendar(tuple(days), holidays=tuple(d.isoformat() for d in holidays),
                                               extra_working_days=tuple(d.isoformat() for d in extra)),
    st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
    st.lists(dates, max_size=12), st.lists(dates, max_size=6))


def counted(cal: WorkCalendar, start: dt.date, end: dt.date) -> int:
    n, day = 0, start + DAY
    while day <= end:
        n += cal.is_working_day(day)
        day += DAY
    return n


def stepped(cal: WorkCalendar, start: dt.datetime, days: int) -> dt.datetime:
    current = start
    while days:
        current += DAY
        days -= cal.is_working_day(current.date())
    return current


@settings(max_examples=300, deadline=None)
@given(calendars, dates, st.integers(0, 900))
def test_working_days_between_counts_like_a_clerk(cal: WorkCalendar, start: dt.date, span: int) -> None:
    end = start + dt.timedelta(days=span)
    assert cal.working_days_between(start, end) == counted(cal, start, end)
    assert cal.working_days_between(end, start) == 0 or span == 0


@settings(max_examples=300, deadline=None)
@given(calendars, dates, st.integers(1, 400), st.times())
# one working weekday, two of its days holidays: each holiday costs a whole week (found by CI)
@example(WorkCalendar(("thu",), holidays=("2025-12-04", "2026-01-01")), dt.date(2025, 2, 13), 45, dt.time())
def test_far_working_days_land_where_stepping_lands(cal: WorkCalendar, start: dt.date, days: int, at: dt.time) -> None:
    moment = dt.datetime.combine(start, at)
    assert cal.add_working_days(moment, days) == stepped(cal, moment, days)


@settings(max_examples=200, deadline=None)
@given(calendars, st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2026, 12, 31)), st.integers(0, 60 * 24 * 120))
def test_working_hours_between_matches_hour_by_hour(cal: WorkCalendar, start: dt.datetime, minutes: int) -> None:
    end = start + dt.timedelta(minutes=minutes)
    slow = dt.timedelta()
    day = start.date()
    while day <= end.date():
        if cal.is_working_day(day):
            for a, b in (("09:00", "12:00"), ("13:00", "18:00")):
                lo = max(start, dt.datetime.combine(day, dt.time.fromisoformat(a)))
                hi = min(end, dt.datetime.combine(day, dt.time.fromisoformat(b)))
                slow += max(hi - lo, dt.timedelta())
        day += DAY
    assert abs(cal.working_hours_between(start, end) - slow.total_seconds() / 3600) < 1e-9


def test_china_2026_national_day() -> None:
    """国庆: 1–7 October off, Sunday 27 September and Saturday 10 October worked (调休)."""
    cal = WorkCalendar(holidays=tuple(f"2026-10-0{d}" for d in range(1, 8)), extra_working_days=("2026-09-27", "2026-10-10"))
    assert cal.working_days_between(dt.date(2026, 9, 25), dt.date(2026, 10, 12)) == 8  # Sep 27–30, Oct 8, 9, 10, 12
    assert cal.add_working_days(dt.datetime(2026, 9, 1, 9), 30) == stepped(cal, dt.datetime(2026, 9, 1, 9), 30)
