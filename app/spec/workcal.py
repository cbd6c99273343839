"""The working calendar of the settings sheet: working days, working hours, holidays and the
weekend days that are worked instead (调休). "6 working hours" and "2 working days" are counted
on it. Pure functions over naive local datetimes."""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from functools import cached_property

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WorkCalendar:
    working_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    working_hours: tuple[tuple[str, str], ...] = (("09:00", "12:00"), ("13:00", "18:00"))
    holidays: tuple[str, ...] = ()
    extra_working_days: tuple[str, ...] = ()

    @cached_property
    def _spans(self) -> list[tuple[dt.time, dt.time]]:
        return [(dt.time.fromisoformat(a), dt.time.fromisoformat(b)) for a, b in self.working_hours]

    @cached_property
    def _holidays(self) -> frozenset[dt.date]:
        return frozenset(dt.date.fromisoformat(d) for d in self.holidays)

    @cached_property
    def _extra(self) -> frozenset[dt.date]:
        return frozenset(dt.date.fromisoformat(d) for d in self.extra_working_days)

    def is_working_day(self, day: dt.date) -> bool:
        if day in self._extra:
            return True
        if day in self._holidays:
            return False
        return WEEKDAYS[day.weekday()] in self.working_days

    @cached_property
    def _weekdays(self) -> tuple[bool, ...]:
        return tuple(name in self.working_days for name in WEEKDAYS)

    @cached_property
    def _exceptions(self) -> tuple[list[dt.date], list[int]]:
        """Dates where the calendar differs from the weekly pattern (sorted), and ±1 for each."""
        days = sorted(d for d in {*self._holidays, *self._extra} if self.is_working_day(d) != self._weekdays[d.weekday()])
        return days, [1 if self.is_working_day(d) else -1 for d in days]

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """How many working days d with start < d <= end (0 when end is not after start)."""
        if end <= start:
            return 0
        span = (end - start).days
        weeks, rest = divmod(span, 7)
        count = weeks * sum(self._weekdays)
        first = start.weekday()
        count += sum(1 for i in range(1, rest + 1) if self._weekdays[(first + i) % 7])
        days, changes = self._exceptions
        return count + sum(changes[bisect.bisect_right(days, start):bisect.bisect_right(days, end)])

    def add_working_days(self, start: dt.datetime, days: float) -> dt.datetime:
        """``start`` moved by whole working days (negative goes back), keeping the time of day."""
        remaining = abs(int(days))
        if days > 0 and remaining > 14 and any(self._weekdays):
            # far ahead: the first day with that many working days after the start (binary search);
            # every week has a working weekday and each holiday takes away at most one, so this
            # many weeks always hold enough (a holiday can cost a whole week when one weekday works)
            lo, hi = 1, (remaining + len(self._holidays) + 1) * 7
            while lo < hi:
                mid = (lo + hi) // 2
                if self.working_days_between(start.date(), start.date() + dt.timedelta(days=mid)) >= remaining:
                    hi = mid
                else:
                    lo = mid + 1
            return start + dt.timedelta(days=lo)
        step = 1 if days >= 0 else -1
        current = start
        guard = 0
        while remaining:
            current += dt.timedelta(days=step)
            guard += 1
            if self.is_working_day(current.date()):
                remaining -= 1
            if guard > 3660:
                raise ValueError("no working days in the calendar")
        return current

    def add_working_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The moment when ``hours`` of working time have passed after ``start``."""
        if hours < 0:
            raise ValueError("working hours go forward only")
        remaining = dt.timedelta(hours=hours)
        day = start.date()
        cursor = start
        for _ in range(3660):
            if self.is_working_day(day):
                for a, b in self._spans:
                    begin = max(cursor, dt.datetime.combine(day, a))
                    end = dt.datetime.combine(day, b)
                    if begin >= end:
                        continue
                    if end - begin >= remaining:
                        return begin + remaining
                    remaining -= end - begin
            day += dt.timedelta(days=1)
            cursor = dt.datetime.combine(day, dt.time())
        raise ValueError("no working hours in the calendar")

    @cached_property
    def _hours_per_day(self) -> dt.timedelta:
        return sum((dt.datetime.combine(dt.date.min, b) - dt.datetime.combine(dt.date.min, a) for a, b in self._spans), dt.timedelta())

    def working_hours_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Working hours from ``start`` to ``end`` (0 if end is not after start)."""
        if end <= start:
            return 0.0
        if start.date() == end.date():
            return self._hours_on(start.date(), start, end).total_seconds() / 3600
        total = self._hours_on(start.date(), start, end) + self._hours_on(end.date(), start, end)
        whole = self.working_days_between(start.date(), end.date() - dt.timedelta(days=1))  # the days strictly between
        return (total + whole * self._hours_per_day).total_seconds() / 3600

    def _hours_on(self, day: dt.date, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        total = dt.timedelta()
        if self.is_working_day(day):
            for a, b in self._spans:
                begin = max(start, dt.datetime.combine(day, a))
                finish = min(end, dt.datetime.combine(day, b))
                if finish > begin:
                    total += finish - begin
        return total

    def next_working_day(self, moment: dt.datetime) -> dt.datetime:
        """The start of the first working span on the next working day after ``moment``."""
        nxt = self.add_working_days(moment, 1)
        first = self._spans[0][0] if self._spans else dt.time(9)
        return dt.datetime.combine(nxt.date(), first)
