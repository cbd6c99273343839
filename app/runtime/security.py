"""Roles and permissions from the sheets, synchronised into FAB's security tables.

Re-running converges: a role of the sheet gets exactly the grants the sheet gives it (plus what
every signed-in user needs); grants the sheet no longer gives are removed. Roles not in the sheet
(created by an administrator in the UI) are left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

log = logging.getLogger(__name__)

# What every signed-in user may do regardless of role: see and change their own account.
SELF_SERVICE = {
    ("can_userinfo", "UserDBModelView"),
    ("resetmypassword", "UserDBModelView"),
    ("can_this_form_get", "ResetMyPasswordView"),
    ("can_this_form_post", "ResetMyPasswordView"),
    ("can_index", "InboxView"),
    ("can_read", "InboxView"),
    ("menu_access", "inbox"),
    ("can_index", "DashboardView"),  # which panels a person sees is decided by the reports sheet's roles
    ("menu_access", "dashboard"),
}


def menu_item(entity: str) -> str:
    """The menu entry's permission name, distinct from the entity's own view menu."""
    return f"{entity}.menu"


def desired_permissions(grants: dict[str, Any], exposed: dict[str, set[str]], menus: dict[str, str]) -> set[tuple[str, str]]:
    """(permission, view menu) pairs one role should hold, given its grants from the sheet.

    ``exposed`` maps entity → permission names its screen and API really have, so a right the
    sheet grants but no screen offers yet creates nothing.
    """
    wanted: set[tuple[str, str]] = set()
    for entity, (rights, _scope, _hidden) in grants.items():
        for right in rights:
            name = f"can_{right}"
            if name in exposed.get(entity, set()):
                wanted.add((name, entity))
        if "show" in rights and "can_download" in exposed.get(entity, set()):
            wanted.add(("can_download", entity))
        if "list" in rights:
            wanted.add(("menu_access", menu_item(entity)))
            wanted.add(("menu_access", menus[entity]))
    return wanted


def sync_roles(appbuilder: Any, roles: dict[str, Any], grants: dict[str, Any], exposed: dict[str, set[str]], menus: dict[str, str]) -> None:
    sm = appbuilder.sm
    for role_name in roles:
        role = sm.find_role(role_name) or sm.add_role(role_name)
        if role_name == current_app.config.get("AUTH_ROLE_ADMIN"):
            continue  # FAB keeps the admin role complete
        wanted = desired_permissions(grants.get(role_name, {}), exposed, menus) | SELF_SERVICE
        current = {(pv.permission.name, pv.view_menu.name): pv for pv in role.permissions}
        for perm, view in sorted(wanted - current.keys()):
            pv = sm.find_permission_view_menu(perm, view)
            if pv is None:
                if perm in ("menu_access",):
                    pv = sm.add_permission_view_menu(perm, view)
                else:
                    log.debug("permission %s on %s does not exist", perm, view)
                    continue
            sm.add_permission_role(role, pv)
        for key in sorted(current.keys() - wanted):
            sm.del_permission_role(role, current[key])
