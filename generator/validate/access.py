"""Who may do what: the roles sheet and the permissions sheet (rights, row scope, fields hidden or
read-only for a role), refusing a grant its role could never use."""

from __future__ import annotations

import re

from app.spec.model import RIGHTS, SCOPES, Entity, Permission, Role, split_names

from ..problems import did_you_mean, hint, msg
from ..read import Cell
from .context import Context, entity_ctx
from .fields import unfillable
from .reader import LIST_SEPARATORS

PUBLIC_ROLE = "Public"  # Flask-AppBuilder's role of everyone not signed in (AUTH_ROLE_PUBLIC)


def build_roles(v: Context) -> list[Role]:
    roles: dict[str, Role] = {}
    refs: dict[str, str] = {}
    for _row, c in v.rows("roles"):
        name = c("role").text
        if not name:
            v.p.add(c("role").ref, msg("required", what="角色名", what_en="role name"))
            continue
        if len(name) > 64 or any(ch in name for ch in "\r\n\t"):
            v.p.add(c("role").ref, msg("identifier_long", value=name[:20], limit=64))
            continue
        if name in roles:
            v.p.add(c("role").ref, msg("duplicate", what="角色", what_en="role", value=name, first=refs[name]))
            continue
        if name == PUBLIC_ROLE:  # Flask-AppBuilder gives this role's rights to everyone not signed in
            v.p.add(c("role").ref, msg("public_role", value=name), hint("rename"))
            continue
        if split_names(name) != (name,):  # a list cell (roles, recipients) could never name it
            v.p.add(c("role").ref, msg("role_separator", value=name), hint("rename"))
            continue
        refs[name] = c("role").ref
        roles[name] = Role(name, c("label").text, c("description").text, v.r.boolean(c("admin")),
                           v.r.boolean(c("see_rules")))
    return list(roles.values())


def build_permissions(v: Context, emap: dict[str, Entity], role_names: set[str]) -> tuple[Permission, ...]:
    perms = []
    seen: dict[tuple[str, str], str] = {}
    for _row, c in v.rows("permissions"):
        role = c("role").text
        if not role:
            v.p.add(c("role").ref, msg("required", what="角色", what_en="role"))
        elif role not in role_names:
            v.p.add(c("role").ref, msg("unknown_role", value=role), did_you_mean(role, role_names))
            role = ""
        e = v.entity_of(c("entity"), emap)
        if e is None or not role:
            continue
        if (role, e.name) in seen:
            v.p.add(
                c("entity").ref,
                msg("duplicate", what="权限", what_en="permission", value=f"{role}/{e.name}", first=seen[(role, e.name)]),
            )
            continue
        seen[(role, e.name)] = c("entity").ref
        rights = tuple(r for r in RIGHTS if v.r.boolean(c(r)))
        scope = v.r.one_of(c("scope"), SCOPES, "scope_value", "all") or "all"
        if scope != "all" and not e.owner_field:
            v.p.add(
                c("scope").ref, msg("owner_scope", entity=e.name, value=scope), hint("one_of", values="all"), entity_ctx(e.name)
            )
        hidden = []
        for name in (h.strip() for h in re.split(LIST_SEPARATORS, c("hidden_fields").text)):
            f = v.field_of(Cell(name, c("hidden_fields").ref), e) if name else None
            if f is None:
                continue
            if "add" in rights and unfillable(f, e):  # the role adds records but could never fill it
                v.p.add(c("hidden_fields").ref, msg("hidden_required", role=role, entity=e.name, value=f.name),
                        hint("hidden_required"), entity_ctx(e.name, f.name))
                continue
            hidden.append(name)
        locked = []
        for name in (h.strip() for h in re.split(LIST_SEPARATORS, c("readonly_fields").text)):
            f = v.field_of(Cell(name, c("readonly_fields").ref), e) if name else None
            if f is None:
                continue
            if "add" in rights and unfillable(f, e) and not f.readonly:
                # the role adds records but could never fill this required field
                v.p.add(c("readonly_fields").ref, msg("locked_required", role=role, entity=e.name, value=f.name),
                        hint("locked_required"), entity_ctx(e.name, f.name))
                continue
            locked.append(f.name)
        perms.append(Permission(role, e.name, rights, scope, tuple(hidden), tuple(locked)))
    return tuple(perms)
