"""FAB's security tables brought to what the registered screens and the roles sheet ask for, in one
pass of set differences and bulk writes — and skipped when nothing they depend on changed.

What ends up in the tables is what Flask-AppBuilder's own ``FAB_UPDATE_PERMS`` start-up writes
(every exposed permission on every screen and menu entry, the administrator holding them all,
permissions a screen no longer has removed from every role) plus :mod:`.security`'s rule for the
roles of the sheet. FAB does it with a few statements per permission (~7,700 on a new database,
~600 when nothing changed); here it is five reads, the inserts and deletes that differ, and one
digest of the wanted state kept in ``crm_state``: a start-up whose screens and roles did not
change reads one row.

Knowing the wanted state takes the generated screens built (an app, ~0.7 s, in a child process
for ``crm upgrade``). It follows from the code and a few parts of the workbook only
(:func:`rights_source`), so the wanted state is kept beside what it came from, and an upgrade that
changed none of them (a field added, a threshold moved) syncs against the kept one, forced as ever.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask_appbuilder
import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import Permission, PermissionView, Role, ViewMenu, assoc_permissionview_role

from app.access.security import SELF_SERVICE, desired_permissions
from app.record.tables import State
from app.spec.model import Spec
from app.web.pagecache import bump

log = logging.getLogger(__name__)
DIGEST_KEY = "permissions"
SOURCE_KEY = "permissions_source"  # what the kept wanted state was worked out from (rights_source)
WANTED_KEY = "permissions_wanted"  # that state, as JSON


@dataclass(frozen=True)
class Wanted:
    """The security state the application asks for."""

    views: dict[str, frozenset[str]]  # view menu → exactly these permissions on it
    menus: frozenset[str]  # menu entries (menu_access)
    roles: dict[str, frozenset[tuple[str, str]]]  # role of the sheet → its (permission, view menu) pairs
    admin: str  # the administrator's role: every permission of views and menus

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps([sorted((k, sorted(v)) for k, v in self.views.items()), sorted(self.menus),
                           sorted((k, sorted(v)) for k, v in self.roles.items()), self.admin])

    @classmethod
    def from_json(cls, text: str) -> Wanted:
        views, menus, roles, admin = json.loads(text)
        return cls({k: frozenset(v) for k, v in views}, frozenset(menus),
                   {k: frozenset((p, m) for p, m in v) for k, v in roles}, admin)


def rights_source(spec: Spec) -> str:
    """A digest of all the wanted state is worked out from: the hand-written code and its settings
    (which screens exist, what permissions they expose; :func:`code_fingerprint`) and the parts of
    the workbook that name screens, menus, roles and grants. Fields, rules, forms, workflows,
    schedules, surveys, templates and reports do not add or remove a screen or a permission
    (tests/test_permission_matrix.py builds the app for workbooks differing in each and compares)."""
    shape = {
        "entities": [(e.name, e.class_name, e.menu or spec.settings.app_name, e.menu_en, e.label, e.label_en) for e in spec.entities],
        "roles": [dataclasses.astuple(r) for r in spec.roles],
        "permissions": [dataclasses.astuple(p) for p in spec.permissions],
        "admin": spec.admin_role,
        "code": code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(shape, ensure_ascii=False, default=list).encode()).hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """The hand-written Python of ``app`` and ``config`` (a generated package left out) and the
    Flask-AppBuilder release: another checkout sharing the database, or this one updated, works the
    wanted state out afresh."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256(flask_appbuilder.__version__.encode())
    for path in sorted([*(root / "app").rglob("*.py"), *(root / "config").glob("*.py")]):
        if "generated" in path.relative_to(root).parts:
            continue
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def remember(conn: sa.Connection, want: Wanted, source: str) -> None:
    """Keep ``want`` as what ``source`` asks for (:func:`recall`)."""
    _store(conn, want.to_json(), WANTED_KEY)
    _store(conn, source, SOURCE_KEY)


def recall(conn: sa.Connection, source: str) -> Wanted | None:
    """The wanted state kept for ``source``; None when none is kept for it."""
    state = State.__table__
    kept: dict[str, str] = {r.key: r.value for r in conn.execute(sa.select(state.c.key, state.c.value).where(state.c.key.in_([SOURCE_KEY, WANTED_KEY])))}
    if kept.get(SOURCE_KEY) != source or not kept.get(WANTED_KEY):
        return None
    return Wanted.from_json(kept[WANTED_KEY])


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


def _store(conn: sa.Connection, value: str, key: str = DIGEST_KEY) -> None:
    state = State.__table__
    if conn.execute(sa.update(state).where(state.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(sa.insert(state).values(key=key, value=value))
