"""People who log in: the first administrator and users created from the command line."""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.messages import localized, msg


def create_first_admin(app: Any, username: str, password: str | None) -> tuple[str, str, bool] | None:
    """Create an administrator when no user holds the admin role (demo accounts do not count).

    Returns (user, password, generated?) or None when an administrator exists already.
    """
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        role = sm.find_role(app.config["AUTH_ROLE_ADMIN"])
        if any(role in u.roles for u in sm.get_all_users()):
            return None
        if sm.find_user(username=username) is not None:
            raise RuntimeError(f"user {username!r} exists but is not an administrator; set CRM_ADMIN_USER to another name")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        user = sm.add_user(username, username, "-", f"{username}@localhost", role, password)  # no family name: shown as the login
        if not user:
            raise RuntimeError(f"could not create the administrator {username!r}")
        return username, password, generated


def login_stems(roles: Sequence[Any]) -> dict[str, str]:
    """Role name → the stem of logins that say the role, from its English label ("Sales manager"
    → ``sales_manager``, so ``sales_manager1``); a role whose label is not plain English, or whose
    stem another role took, gets ``role<position>-`` (``role3-1``), its place in the roles sheet."""
    stems: dict[str, str] = {}
    for position, role in enumerate(roles, start=1):
        label = (getattr(role, "label", "") or "").strip()
        words = re.findall(r"[a-z0-9]+", label.casefold()) if label.isascii() else []
        stem = "_".join(words)[:40]
        if not stem or not stem[0].isalpha() or stem in stems.values():
            stem = f"role{position}-"
        stems[role.name] = stem
    return stems


def add_user(app: Any, username: str, roles: list[str], password: str, email: str = "", first_name: str = "",
             last_name: str = "", departments: list[str] | None = None) -> Any:
    """Create a user with the given roles (names as in the roles sheet) in the given departments.

    Departments are FAB groups: ``team`` scope means "owned by someone in one of my departments".
    """
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        found = [sm.find_role(r) for r in roles]
        missing = [r for r, f in zip(roles, found, strict=True) if f is None]
        if missing:
            raise ValueError(f"unknown role(s): {', '.join(missing)}")
        if sm.find_user(username=username) is not None:
            raise ValueError(f"user {username!r} exists already")
        problem = password_problem(password)
        if problem:
            raise ValueError(problem)
        user = sm.add_user(username, first_name or username, last_name or "-", email or f"{username}@localhost", found, password)
        if not user:
            raise ValueError(f"could not create user {username!r} (name or email already taken?)")
        for name in departments or []:
            join_department(app, user, name)
        return user.id


def join_department(app: Any, user: Any, name: str) -> None:
    from flask_appbuilder.security.sqla.models import Group

    session = app.extensions["crm"].db.session
    group = session.query(Group).filter_by(name=name).one_or_none()
    if group is None:
        group = Group(name=name, label=name, description=str(msg("部门")))  # stored: in the bilingual form
        session.add(group)
    if group not in user.groups:
        user.groups.append(group)
    session.commit()


MIN_LENGTH = 12  # ASVS 2.1.1
RUNS = ("01234567890123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm")


@functools.cache
def common_passwords() -> frozenset[str]:
    """Breached passwords long enough to pass the length rule (``common_passwords.txt``), case-folded."""
    text = (Path(__file__).with_name("common_passwords.txt")).read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def password_problem(password: str) -> str | None:
    """The password policy (ASVS 2.1): at least 12 characters of any kind — no rule on which kinds
    (2.1.9), spaces and Chinese welcome — and not one of the passwords people use most (the common
    breached ones, a run such as ``123456789012``, or three characters repeated). None when it holds."""
    if len(password) < MIN_LENGTH:
        return msg("密码至少 12 个字符")
    folded = password.casefold()
    runs = RUNS + tuple(run[::-1] for run in RUNS)
    if folded in common_passwords() or len(set(folded)) <= 3 or any(folded in run for run in runs):
        return msg("这个密码太常见,很容易被猜中;请换一个(例如几个词组成的一句话)")
    return None


def password_validator(password: str) -> None:
    """FAB_PASSWORD_COMPLEXITY_VALIDATOR: raises PasswordComplexityValidationError."""
    from flask_appbuilder.exceptions import PasswordComplexityValidationError

    problem = password_problem(password)
    if problem:
        raise PasswordComplexityValidationError(localized(problem))


def login_attempt_key() -> str:
    """What a login attempt counts against: the client address and the account asked for (the
    form's or the JSON body's ``username``, a login or an e-mail: both name one account and share
    its allowance; without one, the signed-in person's: their own-password form). Colleagues behind
    one address each have their own allowance; one address guessing across accounts meets
    ``CRM_LOGIN_ADDRESS_LIMIT``."""
    from flask import current_app, request
    from flask_limiter.util import get_remote_address
    from flask_login import current_user

    name = request.form.get("username") if request.form else None
    if name is None and request.is_json:
        body = request.get_json(silent=True)
        name = body.get("username") if isinstance(body, dict) else None
    if name is None and current_user.is_authenticated:
        return f"{get_remote_address()}|#{current_user.id}"
    text = str(name or "").strip()[:150]
    sm = current_app.appbuilder.sm  # type: ignore[attr-defined]
    user = (sm.find_user(username=text) or (sm.find_user(email=text) if "@" in text else None)) if text else None
    return f"{get_remote_address()}|" + (f"#{user.id}" if user is not None else text.casefold())


def display_name(user: Any) -> str:
    """A person as Chinese users write names: family name first, no space (尹嘉); Latin names
    stay "first last"."""
    return person_name(getattr(user, "username", ""), getattr(user, "first_name", ""), getattr(user, "last_name", ""))


def person_name(username: str | None, first_name: str | None, last_name: str | None) -> str:
    """:func:`display_name` of a user's columns as a query returns them (no user object loaded)."""
    first, last = (first_name or "").strip(), (last_name or "").strip("- ").strip()
    if first == (username or "") and last == "Admin":  # the first administrator as earlier releases named it
        last = ""
    if any("\u4e00" <= ch <= "\u9fff" for ch in first + last):
        return f"{last}{first}"
    return f"{first} {last}".strip() or str(username or "")


def install_display_names() -> None:
    """Every screen, dropdown and filter shows people by :func:`display_name`."""
    from flask_appbuilder.security.sqla.models import User

    User.__repr__ = display_name  # type: ignore[method-assign, assignment]
    User.get_full_name = display_name  # type: ignore[method-assign, assignment]  # the top bar's user menu
