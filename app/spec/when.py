"""Time rules of the schedules sheet: ``end_date - 30 days``, ``created_on + 6 working hours``,
``every 7 days``, ``yearly birthday - 3 days``; and durations such as ``2 working hours``."""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {
    "minute": "minutes",
    "minutes": "minutes",
    "分钟": "minutes",
    "hour": "hours",
    "hours": "hours",
    "小时": "hours",
    "day": "days",
    "days": "days",
    "天": "days",
    "日": "days",
    "week": "weeks",
    "weeks": "weeks",
    "周": "weeks",
    "month": "months",
    "months": "months",
    "个月": "months",
    "月": "months",
}
_UNIT = "|".join(sorted((re.escape(u) for u in UNITS), key=len, reverse=True))
_DURATION = re.compile(rf"^\s*(\d+(?:\.\d+)?)\s*(working\s+|工作)?\s*({_UNIT})\s*$", re.I)
_EVERY = re.compile(rf"^\s*(?:every|每)\s*(\d+)?\s*(working\s+|工作)?\s*({_UNIT})\s*$", re.I)
_ANCHOR = re.compile(
    rf"^\s*(yearly\s+|每年\s*)?([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*(working\s+|工作)?\s*({_UNIT}))?\s*$",
    re.I,
)


MAX_YEARS = 100  # a longer duration is a typo, and its dates are past what the calendar holds
_DAYS = {"minutes": 1 / 1440, "hours": 1 / 24, "days": 1, "weeks": 7, "months": 31}


@dataclass(frozen=True)
class Duration:
    amount: float
    unit: str  # minutes/hours/days/weeks/months
    working: bool = False

    @property
    def too_long(self) -> bool:
        """Longer than ``MAX_YEARS`` however sparse the working days (a working day may take a week)."""
        return abs(self.amount) * _DAYS[self.unit] * (7 if self.working else 1) > MAX_YEARS * 366


@dataclass(frozen=True)
class When:
    """Either ``every`` (a recurring job) or ``field`` ± ``offset`` (a due moment per record)."""

    every: Duration | None = None
    field: str = ""
    offset: Duration | None = None  # signed amount
    yearly: bool = False


def parse_duration(text: str) -> Duration | None:
    m = _DURATION.match(text or "")
    if not m:
        return None
    return Duration(float(m.group(1)), UNITS[m.group(3).lower()], bool(m.group(2)))


LADDER_SEPARATOR = re.compile(r"\s*[;\uff1b,\uff0c\u3001\u2192>]\s*")  # ; ， 、 → as escapes


def ladder_parts(text: str) -> list[str]:
    """The rungs of an escalation cell: ``2 working hours; 1 working day`` or ``主管 → 总经理``."""
    return [p for p in LADDER_SEPARATOR.split((text or "").strip()) if p]


def parse_ladder(after: str, to: str) -> list[tuple[Duration, str]] | None:
    """(delay, role) per escalation step, each delay counted from the step before (the first from
    the reminder); None when the cells do not make a ladder (``crm check`` says why)."""
    delays, roles = ladder_parts(after), ladder_parts(to)
    if len(delays) != len(roles):
        return None
    steps = [(parse_duration(d), r) for d, r in zip(delays, roles, strict=True)]
    if any(d is None for d, _ in steps):
        return None
    return [(d, r) for d, r in steps if d is not None]


def parse_when(text: str) -> When | None:
    m = _EVERY.match(text or "")
    if m:
        return When(every=Duration(float(m.group(1) or 1), UNITS[m.group(3).lower()], bool(m.group(2))))
    m = _ANCHOR.match(text or "")
    if not m:
        return None
    offset = None
    if m.group(3):
        amount = float(m.group(4)) * (-1 if m.group(3) == "-" else 1)
        offset = Duration(amount, UNITS[m.group(6).lower()], bool(m.group(5)))
    return When(field=m.group(2), offset=offset, yearly=bool(m.group(1)))
