"""A unique value another record already holds, said in the same words on every path (the forms,
the REST API, the import) and never telling more than the person may know.

When the record holding it is one the person may see, the value "already exists"; when it is out of
their sight, the value only "cannot be used" — the words an import gives a key it may not use —
so a unique field is no oracle for records of another team (issue 30, item 9).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from app.access.scope import scope_clause
from app.messages import Message, msg
from app.spec.model import Entity, Spec


def taken(value: Any, visible: bool) -> Message:
    """The words for ``value`` held by another record, ``visible`` to the person or not."""
    return msg("'%(value)s' 已存在", value=value) if visible else msg("'%(value)s' 不能使用,请换一个值", value=value)


def clashes(session: Any, spec: Spec, entity: Entity, model: Any, values: Mapping[str, Any], own_id: int | None,
            user: Any, admin_role: str) -> dict[str, Message]:
    """Field name → :func:`taken` for each unique field of ``entity`` whose value in ``values``
    a record other than ``own_id`` holds (one indexed look-up per unique field given)."""
    table = model.__table__
    clause = None
    found: dict[str, Message] = {}
    for f in entity.fields:
        value = values.get(f.name)
        if not f.unique or value is None or value == "":
            continue
        query = sa.select(table.c.id).where(table.c[f.column] == value)
        if own_id is not None:
            query = query.where(table.c.id != own_id)
        holder = session.execute(query.limit(1)).scalar()
        if holder is None:
            continue
        if clause is None:
            clause = scope_clause(spec, entity, model, user, admin_role)
            clause = sa.true() if clause is None else clause
        visible = session.execute(sa.select(model.id).where(model.id == holder, clause)).scalar() is not None
        found[f.name] = taken(value, visible)
    return found
