"""Optimistic locking on every path that saves a record.

Every record has a ``version`` (``version_id_col`` of :class:`app.record.models.CrmRecord`): the
ORM's UPDATE (and DELETE) of a record is ``… SET version = :read + 1 WHERE id = :id AND version =
:read``, so of several saves based on one version exactly one finds its row. A save is based on
the version its editor read (:func:`based_on`: a form's or a client's, not whatever the server
happens to have loaded by the time it writes); the others find no row, which SQLAlchemy reports as
``StaleDataError`` and :func:`refused` turns into :class:`StaleRecord` — a conflict the screens and
the API answer with what changed since (``audit.changes_since``), never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from app.messages import msg


class StaleRecord(Exception):
    """A save found its record at another version than the one it was based on (``read``), or
    gone: someone else's save came first, and nothing of this one was written."""

    def __init__(self, entity: str, record_id: int | None, read: int | None):
        self.entity, self.record_id, self.read = entity, record_id, read
        super().__init__(entity, record_id, read)

    def __str__(self) -> str:
        return msg("此记录已被他人修改").localized()


def read_version(obj: Any) -> int | None:
    """The version a save of ``obj`` is based on: the one its UPDATE will ask the row to have."""
    state = sa.inspect(obj)
    return state.committed_state.get("version", state.dict.get("version"))


def based_on(obj: Any, version: int) -> None:
    """Base the next save of ``obj`` on ``version`` (what its editor read): its UPDATE asks the row
    to be at that version and moves it one on, whatever the server loaded in between."""
    set_committed_value(obj, "version", version)


def is_stale(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it wraps) is a save that found its row at another version."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, StaleDataError | StaleRecord):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def refused(session: Any, obj: Any) -> Iterator[None]:
    """Around a save of ``obj``: a save that lost to another (``StaleDataError``, also wrapped in
    FAB's ``DatabaseException``) is rolled back and raised as :class:`StaleRecord`."""
    entity, record_id, read = getattr(obj, "__entity__", ""), sa.inspect(obj).identity, read_version(obj)
    try:
        yield
    except Exception as exc:
        if not is_stale(exc):
            raise
        session.rollback()
        raise StaleRecord(entity, record_id[0] if record_id else None, read) from None
