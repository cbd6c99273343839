"""FAB's security manager with one permission look-up per request instead of one per check.

A list page asks ``has_access`` about forty times (each menu entry, each button); FAB answers
each with its own query (~1 ms each on PostgreSQL, half the page's time). Here the (permission,
view) pairs of a set of roles are read with one query and kept across requests for the security
version (``pagecache``: bumped with any change to users, roles or permissions, read once a
request), so every check is a set look-up and a changed grant counts from the next request on, in
every worker. The answers of ``has_access`` themselves are remembered for the request (a record
page asks the same questions once per related list), for the signed-in user only, and forgotten
when the signed-in user changes. The signed-in user is loaded with their roles and departments in
one query, not three, and only while their session or token carries their current credential
version (:mod:`app.access.sessions`).

Registered with ``FAB_SECURITY_MANAGER_CLASS = "app.access.permcache.CrmSecurityManager"``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, has_request_context
from flask_appbuilder.const import LOGMSG_WAR_SEC_NO_USER
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import Permission, PermissionView, Role, ViewMenu
from flask_appbuilder.security.views import RoleModelView as FabRoleModelView
from flask_appbuilder.security.views import UserDBModelView as FabUserDBModelView
from flask_jwt_extended import JWTManager
from flask_login import current_user
from sqlalchemy.orm import joinedload

from app.access.sessions import ResetMyPasswordView, end_sessions, log, session_is_current, token_claims, token_is_current
from app.web.actions import ScopedActions
from app.web.i18n import yes_no
from app.web.pagecache import security_version, shelf


class UserDBModelView(ScopedActions, FabUserDBModelView):
    """FAB's user screens (same name, so the same rights), 是否激活 as 是/否 rather than True/False;
    their actions (reset a password …) on an id that exists, else 404."""

    formatters_columns = {"active": yes_no}


class RoleModelView(ScopedActions, FabRoleModelView):
    """FAB's role screens (same name, so the same rights); copying roles names ids that exist, else 404."""


def _no_fab_user_hint(record: logging.LogRecord) -> bool:
    return record.getMessage() != LOGMSG_WAR_SEC_NO_USER


class CrmSecurityManager(SecurityManager):
    userdbmodelview = UserDBModelView
    rolemodelview = RoleModelView
    resetmypasswordview = ResetMyPasswordView

    @property
    def is_auth_limited(self) -> bool:
        """FAB's own login limit would count the form apart from the API: off, and
        ``app.factory._limit_logins`` sets one budget for both (``AUTH_RATE_LIMITED``)."""
        return False

    def create_db(self) -> None:
        """FAB's own tables and roles, without its warning "No user yet created, use flask fab
        command to do it.": here the first administrator comes from `crm up` (which makes it
        right after, and says so) or `crm user add`, never from `flask fab`."""
        manager_log = logging.getLogger("flask_appbuilder.security.manager")
        manager_log.addFilter(_no_fab_user_hint)
        try:
            super().create_db()
        finally:
            manager_log.removeFilter(_no_fab_user_hint)

    def create_jwt_manager(self, app: Flask) -> JWTManager:
        manager = super().create_jwt_manager(app)
        manager.additional_claims_loader(lambda identity: token_claims(self.session, identity))
        return manager

    def load_user(self, pk: int) -> Any:
        """A browser's user, while its session carries their current credential version."""
        return self._active_user(pk) if session_is_current(self.session, int(pk)) else None

    def load_user_jwt(self, _jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> Any:
        """A token's user (access or refresh), while it carries their current credential version."""
        user = self._active_user(jwt_data["sub"]) if token_is_current(self.session, jwt_data) else None
        if user is not None:
            g.user = user
        return user

    def validate_api_key(self, api_key_string: str) -> Any:
        """FAB's API keys are not a credential here (``FAB_API_KEY_ENABLED`` is refused at start-up):
        a key would outlive the logout, password and role changes that end sessions and tokens."""
        return None

    def on_user_logout(self, user: Any) -> None:
        """Logging out ends every session and token of the person, not only this browser's cookie."""
        end_sessions(self.session.connection(), user.id)
        self.session.commit()
        log.info("logout: user %s, every session and token of theirs ended", user.id)

    def _active_user(self, pk: int | str) -> Any:
        model = self.user_model
        options = [joinedload(model.roles)]
        if hasattr(model, "groups"):
            options.append(joinedload(model.groups).joinedload(self.group_model.roles))
        user = self.session.get(model, int(pk), options=options)
        if user and user.is_active:
            return user
        return None

    def _grants(self, role_ids: list[int]) -> set[tuple[str, str]]:
        rows = (self.session.query(Permission.name, ViewMenu.name).select_from(PermissionView)
                .join(Permission, PermissionView.permission_id == Permission.id)
                .join(ViewMenu, PermissionView.view_menu_id == ViewMenu.id)
                .join(PermissionView.role).filter(Role.id.in_(role_ids)).distinct())
        return {(p, v) for p, v in rows}

    def exist_permission_on_roles(self, view_name: str, permission_name: str, role_ids: list[int]) -> bool:
        if not has_request_context():
            return super().exist_permission_on_roles(view_name, permission_name, role_ids)
        key = tuple(sorted(role_ids))
        grants = shelf("grants").get(security_version(self.session), key, lambda: frozenset(self._grants(list(key))))
        return (permission_name, view_name) in grants

    def is_item_public(self, permission_name: str, view_name: str) -> bool:
        """FAB's answer (asked first by every REST call), from the public role's grants kept for
        the security version instead of a query a request."""
        if not has_request_context():
            return super().is_item_public(permission_name, view_name)

        def public() -> frozenset[tuple[str, str]]:
            return frozenset((p.permission.name, p.view_menu.name) for p in self.get_public_permissions())

        return (permission_name, view_name) in shelf("grants").get(security_version(self.session), "public", public)

    def has_access(self, permission_name: str, view_name: str) -> bool:
        if not has_request_context() or getattr(g, "_api_key_user", False):
            return super().has_access(permission_name, view_name)
        user = current_user._get_current_object()
        if not getattr(user, "is_authenticated", False):  # public, JWT: as FAB answers them
            return super().has_access(permission_name, view_name)
        memo = g.__dict__.get("_crm_access")
        if memo is None or memo[0] is not user:
            memo = g._crm_access = (user, dict[tuple[str, str], bool]())
        key = (permission_name, view_name)
        if key not in memo[1]:
            memo[1][key] = super().has_access(permission_name, view_name)
        return memo[1][key]
