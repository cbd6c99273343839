"""Who sees which rows and fields, from the permissions sheet.

* Row scope (``permissions.scope``): ``own`` — records whose owner is me; ``team`` — owned by
  someone in one of my departments (FAB groups) or by me; ``all``. With several roles the widest
  wins. One SQL clause (:func:`scope_clause`) serves lists, record pages, related lists, search,
  the REST API, link dropdowns, exports and dashboards alike.
* Field secrecy (``permissions.hidden_fields``): fields a user's roles hide; a field is hidden only
  if every role of the user that may see the entity hides it.
* Read-only fields (``permissions.readonly_fields``): fields a role sees but may not write (a
  technician does not move the 叫修时间 their dispatch deadline runs from); a field is locked for an
  edit (an add) only if every role of the user that may edit (add) the entity locks (or hides) it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import current_app, g, has_request_context
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.sqla.models import assoc_user_group

from app.spec.model import Entity, Spec


def _roles(user: Any) -> set[str]:
    return {r.name for r in getattr(user, "roles", []) or []}


def user_scope(spec: Spec, entity: Entity, user: Any, admin_role: str) -> str:
    """'all', 'team', 'own' or 'none' for this user on this entity."""
    roles = _roles(user)
    if admin_role in roles:
        return "all"
    scopes = {p.scope for p in spec.permissions if p.entity == entity.name and p.role in roles}
    for scope in ("all", "team", "own"):
        if scope in scopes:
            return scope
    return "none"


def scope_clause(spec: Spec, entity: Entity, model: Any, user: Any, admin_role: str) -> Any:
    """A WHERE clause limiting ``model`` to what ``user`` may see, or None for no limit."""
    scope = user_scope(spec, entity, user, admin_role)
    if scope == "all" or not entity.owner_field and scope != "none":
        return None
    if scope == "none" or getattr(user, "id", None) is None:
        return sa.false()
    owner = getattr(model, f"{entity.owner_field}_id")
    if scope == "own":
        return owner == user.id
    return sa.or_(owner == user.id, owner.in_(_teammates(user.id)))


def hidden_fields(spec: Spec, entity: Entity, user: Any, admin_role: str) -> set[str]:
    roles = _roles(user)
    if admin_role in roles:
        return set()
    grants = [p for p in spec.permissions if p.entity == entity.name and p.role in roles]
    if not grants:
        return {f.name for f in entity.fields}
    hidden = set(grants[0].hidden_fields)
    for p in grants[1:]:
        hidden &= set(p.hidden_fields)
    return hidden


def locked_fields(spec: Spec, entity: Entity, user: Any, admin_role: str, right: str = "edit") -> set[str]:
    """Fields ``user`` sees but may not write when they ``right`` (``add`` or ``edit``) a record:
    only the roles holding that right count (hidden ones are withheld anyway, not listed)."""
    roles = _roles(user)
    if admin_role in roles:
        return set()
    grants = [p for p in spec.permissions if p.entity == entity.name and p.role in roles and right in p.rights]
    if not grants:
        return set()
    locked = set(grants[0].readonly_fields) | set(grants[0].hidden_fields)
    for p in grants[1:]:
        locked &= set(p.readonly_fields) | set(p.hidden_fields)
    return locked - hidden_fields(spec, entity, user, admin_role)


def current_user() -> Any:
    return getattr(g, "user", None) if has_request_context() else None


def _crm() -> Any:
    return current_app.extensions["crm"]


def _signed_in_fields(kind: str, entity_name: str, compute: Any) -> set[str]:
    """``compute(spec, entity, user, admin_role)`` for the signed-in user (nothing outside a
    request); asked for every cell of a list, so remembered for the request, per user and roles."""
    user = current_user()
    if user is None:
        return set()
    crm = _crm()
    key = (kind, entity_name, id(crm.spec), getattr(user, "id", None), frozenset(_roles(user)))
    memo: dict[Any, frozenset[str]] = g.__dict__.setdefault("_crm_fields", {})
    if key not in memo:
        entity = crm.spec.entity(entity_name)
        memo[key] = frozenset(compute(crm.spec, entity, user, crm.admin_role) if entity is not None else ())
    return set(memo[key])


def current_hidden(entity_name: str) -> set[str]:
    """Hidden fields of an entity for the signed-in user (nothing outside a request)."""
    return _signed_in_fields("hidden", entity_name, hidden_fields)


def current_locked(entity_name: str, right: str) -> set[str]:
    """Read-only fields of an entity for the signed-in user adding or editing (nothing outside a request)."""
    return _signed_in_fields(f"locked-{right}", entity_name, lambda spec, entity, user, admin_role: locked_fields(spec, entity, user, admin_role, right))


class ScopeFilter(BaseFilter):
    """FAB base filter applying the row scope of the signed-in user; its value is the entity name."""

    name = "Row scope"
    arg_name = "crm_scope"

    def apply(self, query: Any, value: Any) -> Any:
        clause = current_scope_clause(value, self.model)
        return query if clause is None else query.filter(clause)


def current_scope_clause(entity_name: str, model: Any) -> Any:
    """The signed-in user's row scope of ``entity_name`` as a WHERE clause over ``model``; None for
    no limit, and outside a request (CLI, tasks), where scope is decided by the caller."""
    user = current_user()
    if user is None:
        return None
    crm = _crm()
    return scope_clause(crm.spec, crm.spec.entity(entity_name), model, user, crm.admin_role)


def scoped_select(entity_name: str, model: Any) -> Any:
    """``SELECT model`` limited to the signed-in user's row scope of ``entity_name``."""
    clause = current_scope_clause(entity_name, model)
    return sa.select(model) if clause is None else sa.select(model).where(clause)


def visible(entity_name: str, model: Any, record_id: Any) -> bool:
    """Whether the signed-in user may see record ``record_id`` of ``entity_name`` (link checks)."""
    clause = None if record_id is None else current_scope_clause(entity_name, model)
    if clause is None:
        return True
    q = sa.select(model.id).where(model.id == record_id, clause)
    return _crm().db.session.execute(q).first() is not None


def told_of(spec: Spec, entity: Entity, owner_id: int | None, user: Any, admin_role: str,
            teammates: Callable[[int], set[int]]) -> bool:
    """Whether a member of a role named in a reminder, escalation or workflow notice is told of a
    record owned by ``owner_id``: their row scope reaches it (what :func:`scope_clause` lets them
    see), or it has no owner yet and their role works on the entity (someone must take it up).
    ``teammates(user id)`` are the ids of the users sharing a department with them."""
    scope = user_scope(spec, entity, user, admin_role)
    if scope == "none":
        return False
    if scope == "all" or not entity.owner_field or owner_id is None:
        return True
    return owner_id == user.id or (scope == "team" and owner_id in teammates(user.id))


def teammates_of(session: Any, user_id: int) -> set[int]:
    return set(session.execute(_teammates(user_id)).scalars())


def _teammates(user_id: int) -> sa.Select[Any]:
    """The ids of the users sharing a department with ``user_id`` (and theirs)."""
    mine = sa.select(assoc_user_group.c.group_id).where(assoc_user_group.c.user_id == user_id)
    return sa.select(assoc_user_group.c.user_id).where(assoc_user_group.c.group_id.in_(mine))
