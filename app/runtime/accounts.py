"""People who log in: the first administrator and users created from the command line."""

from __future__ import annotations

import secrets
from typing import Any


def create_first_admin(app: Any, username: str, password: str | None) -> tuple[str, str, bool] | None:
    """Create an administrator when no user exists. Returns (user, password, generated?) or None."""
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        if sm.count_users() > 0:
            return None
        generated = not password
        password = password or secrets.token_urlsafe(12)
        role = sm.find_role(app.config["AUTH_ROLE_ADMIN"])
        user = sm.add_user(username, username, "Admin", f"{username}@localhost", role, password)
        if not user:
            raise RuntimeError(f"could not create the administrator {username!r}")
        return username, password, generated


def add_user(app: Any, username: str, roles: list[str], password: str, email: str = "", first_name: str = "", last_name: str = "") -> Any:
    """Create a user with the given roles (names as in the roles sheet)."""
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        found = [sm.find_role(r) for r in roles]
        missing = [r for r, f in zip(roles, found, strict=True) if f is None]
        if missing:
            raise ValueError(f"unknown role(s): {', '.join(missing)}")
        user = sm.add_user(username, first_name or username, last_name or "-", email or f"{username}@localhost", found, password)
        if not user:
            raise ValueError(f"could not create user {username!r} (name or email already taken?)")
        return user.id
