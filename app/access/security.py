"""Roles and permissions from the sheets: what each role of the sheet should hold in FAB's
security tables (written by :mod:`.permsync`).

Re-running converges: a role of the sheet gets exactly the grants the sheet gives it (plus what
every signed-in user needs); grants the sheet no longer gives are removed. Roles not in the sheet
(created by an administrator in the UI) are left alone.
"""

from __future__ import annotations

from typing import Any

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
