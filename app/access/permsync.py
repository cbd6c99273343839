"""FAB's security tables brought to what the registered screens and the roles sheet ask for, in one
pass of set differences and bulk writes — and skipped when nothing they depend on changed.

What ends up in the tables is what Flask-AppBuilder's own ``FAB_UPDATE_PERMS`` start-up writes
(every exposed permission on every screen and menu entry, the administrator holding them all,
permissions a screen no longer has removed from every role) plus :mod:`.security`'s rule for the
roles of the sheet. FAB does it with a few statements per permission (~7,700 on a new database,
~600 when nothing changed); here it is five reads, the inserts and deletes that differ, and one
digest of the wanted state kept in ``crm_state``: a start-up whose screens and roles did not
change reads one row.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import Permission, PermissionView, Role, ViewMenu, assoc_permissionview_role

from app.access.security import SELF_SERVICE, desired_permissions
from app.record.tables import State
from app.web.pagecache import bump

log = logging.getLogger(__name__)
DIGEST_KEY = "permissions"


@dataclass(frozen=True)
class Wanted:
    """The security state the application asks for."""

    views: dict[str, frozenset[str]]  # view menu → exactly these permissions on it
    menus: frozenset[str]  # menu entries (menu_access)
    roles: dict[str, frozenset[tuple[str, str]]]  # role of the sheet → its (permission, view menu) pairs
    admin: str  # the administrator's role: every permission of views and menus

    def digest(self) -> str:
        shape = [sorted((k, sorted(v)) for k, v in self.views.items()), sorted(self.menus),
                 sorted((k, sorted(v)) for k, v in self.roles.items()), self.admin]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()


def wanted(appbuilder: Any, roles: Iterable[str], grants: dict[str, Any], exposed: dict[str, set[str]], menus: dict[str, str]) -> Wanted:
    """What the registered screens and menu, and the sheet's ``roles`` and ``grants``, ask for."""
    views: dict[str, frozenset[str]] = {}
    for view in appbuilder.baseviews:  # registered in order: as in FAB, the last view of a name decides
        if view.class_permission_name and view.base_permissions is not None:
            views[view.class_permission_name] = frozenset(view.base_permissions)
    entries = {c.name for c in appbuilder.menu.get_list()} | {i.name for c in appbuilder.menu.get_list() for i in c.childs if i.name != "-"}
    admin = appbuilder.sm.auth_role_admin
    return Wanted(views, frozenset(entries), {r: frozenset(desired_permissions(grants.get(r, {}), exposed, menus) | SELF_SERVICE)
                                              for r in roles if r != admin}, admin)


def sync_security(conn: sa.Connection, want: Wanted, force: bool = False) -> bool:
    """Bring the tables to ``want`` in ``conn``'s transaction; False when its digest says they are
    already there (``force`` looks anyway: hand edits of the tables are put right)."""
    state = State.__table__
    digest = want.digest()
    if not force and conn.execute(sa.select(state.c.value).where(state.c.key == DIGEST_KEY)).scalar() == digest:
        return False
    perm_ids = _ids(conn, Permission.__table__, {p for ps in want.views.values() for p in ps} | {"menu_access"}
                    | {p for pairs in want.roles.values() for p, _v in pairs if p == "menu_access"})
    menu_views = want.menus | {v for pairs in want.roles.values() for p, v in pairs if p == "menu_access"}
    view_ids = _ids(conn, ViewMenu.__table__, set(want.views) | menu_views)
    role_ids = _ids(conn, Role.__table__, set(want.roles) | {want.admin})
    pv, grant = PermissionView.__table__, assoc_permissionview_role

    # the permissions on each screen: exactly its own (one it no longer has leaves every role)
    pvs = {(r.permission_id, r.view_menu_id): r.id for r in conn.execute(sa.select(pv.c.id, pv.c.permission_id, pv.c.view_menu_id))}
    needed = {(perm_ids[p], view_ids[v]) for v, ps in want.views.items() for p in ps}
    needed |= {(perm_ids["menu_access"], view_ids[m]) for m in menu_views}
    screens = {view_ids[v] for v in want.views}
    gone = [i for (p, v), i in pvs.items() if v in screens and (p, v) not in needed]
    if gone:
        conn.execute(sa.delete(grant).where(grant.c.permission_view_id.in_(gone)))
        conn.execute(sa.delete(pv).where(pv.c.id.in_(gone)))
    missing = sorted(needed - pvs.keys())
    if missing:
        conn.execute(sa.insert(pv), [{"permission_id": p, "view_menu_id": v} for p, v in missing])
    pvs = {(r.permission_id, r.view_menu_id): r.id for r in conn.execute(sa.select(pv.c.id, pv.c.permission_id, pv.c.view_menu_id))}

    # the administrator holds every permission of screens and menus; each role of the sheet exactly its own
    held: dict[int, set[int]] = {}
    for r in conn.execute(sa.select(grant.c.role_id, grant.c.permission_view_id)):
        held.setdefault(r.role_id, set()).add(r.permission_view_id)
    add: list[dict[str, int]] = []
    drop: list[tuple[int, int]] = []
    admin = role_ids[want.admin]
    add += [{"role_id": admin, "permission_view_id": pvs[k]} for k in sorted(needed) if pvs[k] not in held.get(admin, set())]
    for role, pairs in want.roles.items():
        rid = role_ids[role]
        own = {pvs[(perm_ids[p], view_ids[v])] for p, v in pairs if p in perm_ids and v in view_ids and (perm_ids[p], view_ids[v]) in pvs}
        unknown = sorted((p, v) for p, v in pairs if not (p in perm_ids and v in view_ids and (perm_ids[p], view_ids[v]) in pvs))
        if unknown:
            log.debug("role %s: permissions no screen has: %s", role, unknown)
        have = held.get(rid, set())
        add += [{"role_id": rid, "permission_view_id": i} for i in sorted(own - have)]
        drop += [(rid, i) for i in sorted(have - own)]
    if add:
        conn.execute(sa.insert(grant), add)
    if drop:
        conn.execute(sa.delete(grant).where(sa.tuple_(grant.c.role_id, grant.c.permission_view_id).in_(drop)))
    _store(conn, digest)
    bump(conn)  # what web workers keep of grants follows from their next request
    return True


def _ids(conn: sa.Connection, table: sa.Table, names: set[str]) -> dict[str, int]:
    """``name → id`` of ``table`` (permissions, view menus, roles), adding the names it lacks."""
    have = {r.name: r.id for r in conn.execute(sa.select(table.c.id, table.c.name))}
    new = sorted(names - have.keys())
    if new:
        conn.execute(sa.insert(table), [{"name": n} for n in new])
        have = {r.name: r.id for r in conn.execute(sa.select(table.c.id, table.c.name))}
    return have


def _store(conn: sa.Connection, digest: str) -> None:
    state = State.__table__
    if conn.execute(sa.update(state).where(state.c.key == DIGEST_KEY).values(value=digest)).rowcount == 0:
        conn.execute(sa.insert(state).values(key=DIGEST_KEY, value=digest))
