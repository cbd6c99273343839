"""Ownership (``entities.owner_field``, seed 002): the recorder owns a new record when they are one
of the people who work records of their own (业务员原则上负责自己收集的客户资料); a manager
reassigns; balanced assignment gives records without an active owner to the active people who
work records of their own, fewest first (无直接负责人的…由经理决定在现有业务员中进行分配)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import Role, User

from app.access.scope import scope_clause, teammates_of, user_scope
from app.record import audit
from app.record.computed import graph, propagate
from app.spec.model import Entity, Spec


def own_roles(spec: Spec, entity: Entity) -> set[str]:
    """The roles that work their own records of this entity (scope ``own``)."""
    return {p.role for p in spec.permissions if p.entity == entity.name and p.scope == "own"}


def default_owner(spec: Spec, entity: Entity, user: Any) -> int | None:
    """Who a new record belongs to when nobody is named: its recorder, if they hold a role that
    works its own records of the entity (or no role does, or the workbook requires an owner).
    Someone else — a service clerk registering a call that a technician will own, a manager, IT —
    leaves it to be given out."""
    uid = getattr(user, "id", None)
    if uid is None:
        return None
    roles = own_roles(spec, entity)
    owner = entity.field(entity.owner_field)
    if not roles or (owner is not None and owner.required):
        return uid
    return uid if roles & {r.name for r in getattr(user, "roles", []) or []} else None


def can_reassign(spec: Spec, entity: Entity, user: Any, admin_role: str) -> bool:
    """Managers: a role with edit right and team/all scope on the entity (or the admin role)."""
    roles = {r.name for r in getattr(user, "roles", []) or []}
    if admin_role in roles:
        return True
    return any(p.entity == entity.name and p.role in roles and "edit" in p.rights and p.scope in ("team", "all")
               for p in spec.permissions)


def assignees(session: Any, spec: Spec, entity: Entity) -> list[Any]:
    """Active users holding a role that works its own records of this entity (scope ``own``)."""
    roles = own_roles(spec, entity)
    if not roles:
        return []
    # one query (the roles are matched in SQL, not loaded user by user: a record page stays cheap)
    holders = sa.select(User.id).join(User.roles).where(Role.name.in_(sorted(roles)))
    return list(session.execute(sa.select(User).where(User.active.is_(True), User.id.in_(holders))
                                .order_by(User.username)).scalars())


def candidates(session: Any, spec: Spec, entity: Entity, by: Any = None, admin_role: str = "") -> list[Any]:
    """Whom a record of ``entity`` may be given to: its :func:`assignees`, or every active user
    when no role works its own records; given by ``by``, only those within their row scope."""
    people = assignees(session, spec, entity) or list(session.execute(
        sa.select(User).where(User.active.is_(True)).order_by(User.username)).scalars())
    return _within_reach(session, spec, entity, people, by, admin_role)


def _within_reach(session: Any, spec: Spec, entity: Entity, people: list[Any], by: Any, admin_role: str) -> list[Any]:
    """``people`` whose records ``by`` would still see (a team-scoped manager: the people of his
    departments, as a record given elsewhere would leave his sight); everyone when ``by`` is None."""
    if by is None:
        return people
    scope = user_scope(spec, entity, by, admin_role)
    if scope == "all" or not entity.owner_field:
        return people
    if scope == "none":
        return []
    reach = {by.id} | (teammates_of(session, by.id) if scope == "team" else set())
    return [u for u in people if u.id in reach]


def may_own(session: Any, spec: Spec, entity: Entity, user_id: int, by: Any = None, admin_role: str = "") -> bool:
    return any(u.id == user_id for u in candidates(session, spec, entity, by, admin_role))


def balance(session: Any, spec: Spec, entity: Entity, model: Any, by: Any = None, admin_role: str = "") -> dict[int, int]:
    """Give every record without an active owner to the least-loaded assignee; returns user id →
    count given. Done ``by`` a manager: the records and the people within their row scope (a
    team's manager balances his departments' records among his departments' people)."""
    column = getattr(model, f"{entity.owner_field}_id")
    people = _within_reach(session, spec, entity, assignees(session, spec, entity), by, admin_role)
    if not people:
        return {}
    ids = [u.id for u in people]
    load: Counter[int] = Counter({i: 0 for i in ids})
    for owner, n in session.execute(sa.select(column, sa.func.count()).where(column.in_(ids)).group_by(column)):
        load[owner] = n
    active = sa.select(User.id).where(User.active.is_(True))
    wanted = sa.select(model.id, model.version).where(sa.or_(column.is_(None), column.not_in(active)))
    seen = scope_clause(spec, entity, model, by, admin_role) if by is not None else None
    orphans = session.execute((wanted if seen is None else wanted.where(seen)).order_by(model.id)).all()
    given: Counter[int] = Counter()
    moved: set[int] = set()
    for record_id, version in orphans:
        owner = min(ids, key=lambda i: (load[i], i))
        # the version read, checked and moved on by the UPDATE itself: an editor who read the record
        # before is told it changed, not overwritten; a record saved (or given an owner) since is left
        done = session.execute(sa.update(model).where(model.id == record_id, model.version == version)
                               .values({column.key: owner, "version": version + 1}))
        if done.rowcount != 1:
            continue
        audit.record(session, entity.name, record_id, "update", {column.key: [None, owner], "reason": "balanced assignment"},
                     version=version + 1)
        load[owner] += 1
        given[owner] += 1
        moved.add(record_id)
    if moved and graph(spec).watched(entity.name):  # an UPDATE beside the flush: what the records feed, recomputed here
        from flask_appbuilder import Model

        propagate(session.connection(), spec, dict(Model.metadata.tables), {entity.name: moved})
    session.commit()
    return dict(given)
