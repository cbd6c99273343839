"""Document numbers from ``entities.numbering`` (``KS-{YYYY}{MM}-{####}``), unique under concurrency.

One counter row per rule and period in ``crm_sequence``, advanced with a single atomic upsert in
the same transaction as the record: concurrent writers queue on the counter row (PostgreSQL row
lock, SQLite's single writer), so no number is given twice and a rolled-back insert gives its
number back.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import abc
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.record.tables import Sequence
from app.spec.model import Entity

TOKEN = re.compile(r"\{([^{}]+)\}")


def period_key(pattern: str, when: dt.datetime) -> str:
    """The part of the pattern that resets the counter: the date tokens it contains."""
    parts = [t for t in TOKEN.findall(pattern) if not t.startswith("#")]
    return "".join(_date_token(t, when) for t in parts)


def _date_token(token: str, when: dt.datetime) -> str:
    return {"YYYY": f"{when.year:04d}", "YY": f"{when.year % 100:02d}", "MM": f"{when.month:02d}", "DD": f"{when.day:02d}"}[token]


def format_number(pattern: str, when: dt.datetime, n: int) -> str:
    def token(m: re.Match[str]) -> str:
        t = m.group(1)
        return f"{n:0{len(t)}d}" if t.startswith("#") else _date_token(t, when)

    return TOKEN.sub(token, pattern)


def next_value(conn: sa.Connection, key: str, count: int = 1) -> int:
    """Advance the counter ``key`` by ``count`` and return its new value (atomic, in ``conn``'s
    transaction); the numbers ``value - count + 1 … value`` now belong to the caller."""
    table = Sequence.__table__
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        ins = (postgresql if dialect == "postgresql" else sqlite).insert(table).values(key=key, value=count)
        stmt = ins.on_conflict_do_update(index_elements=[table.c.key], set_={"value": table.c.value + count}).returning(table.c.value)
        return int(conn.execute(stmt).scalar_one())
    updated = conn.execute(sa.update(table).where(table.c.key == key).values(value=table.c.value + count))
    if updated.rowcount == 0:
        conn.execute(sa.insert(table).values(key=key, value=count))
        return count
    return int(conn.execute(sa.select(table.c.value).where(table.c.key == key)).scalar_one())


def allocate(conn: sa.Connection, entity: str, pattern: str, when: dt.datetime | None = None, count: int = 1) -> list[str]:
    """``count`` consecutive numbers of ``entity`` for the period of ``when``."""
    when = when or dt.datetime.now()
    last = next_value(conn, f"{entity}:{period_key(pattern, when)}", count)
    return [format_number(pattern, when, n) for n in range(last - count + 1, last + 1)]


def number_new(conn: sa.Connection, entity: Entity, codes: abc.Sequence[Any], when: dt.datetime | None = None) -> list[Any]:
    """The numbers of new records of ``entity`` that came with ``codes``, in order: a number given
    is kept, each blank one takes the next of the entity's pattern for the period of ``when`` (one
    step of the counter for them all). A save through the ORM numbers one record this way, an
    import a batch."""
    numbers = list(codes)
    blank = [i for i, code in enumerate(numbers) if not code]
    if entity.numbering and blank:
        for i, code in zip(blank, allocate(conn, entity.name, entity.numbering, when, len(blank)), strict=True):
            numbers[i] = code
    return numbers
