"""Sessions that end.

Flask's session is a signed cookie and a JWT a signed token: the server keeps neither, so a copied
cookie outlived its logout and a token outlived a password change. Each user now has a credential
version (``crm_credential_version``), written into the session at login (``SESSION_KEY``) and into
every access and refresh token (claim ``cv``); a session or token that does not carry the user's
current version is refused (the cookie signs no one in, the token gets 401). A session or token
issued before this check existed carries none and is refused too: everyone signs in once more.

The version moves on — ending every session and token of that user, in every worker, from their
next request — at logout, and in the same transaction as any change of the user's password (their
own or an administrator's reset), roles or active flag, or their deletion: a flush hook, whatever
the path (screen, API, command). Someone changing their own password keeps the session they did
it in (re-issued with the new version) while all others end; the form asks for the current password.

A sign-in also ends by itself after ``CRM_SESSION_HOURS`` (12: ASVS 3.3.2 level 2), in use or
not: the session carries when it signed in (``SIGNED_IN_AT``), and the refresh token lives as long
(``JWT_REFRESH_TOKEN_EXPIRES``; an access token 15 minutes).

Each of these is logged on ``crm.security`` (INFO: a sign-in or a token issued, with its address, a logout, the
credentials of a person ended by a change), beside FAB's own lines for failed sign-ins and refused
rights (ASVS 7.2.1, 7.2.2).

Checked on every request at no extra query: the signed-in users' versions are kept per worker for
the ``sessions`` version of :mod:`app.web.pagecache`, which is read with the security version in
one statement and moves with every credential version.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, flash, g, has_request_context, request, session
from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.security.sqla.models import User
from flask_appbuilder.security.views import ResetMyPasswordView as FabResetMyPasswordView
from flask_appbuilder.validators import PasswordComplexityValidator
from flask_babel import lazy_gettext
from flask_login import user_logged_in
from sqlalchemy import event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash
from wtforms import Field, Form, PasswordField
from wtforms.validators import DataRequired, EqualTo, ValidationError

from app.messages import msg
from app.record.tables import CredentialVersion
from app.web.i18n import L
from app.web.pagecache import SESSIONS, bump, sessions_version, shelf

SESSION_KEY = "_crm_cv"
SIGNED_IN_AT = "_crm_at"  # the time of the sign-in (seconds since the epoch)
SESSION_HOURS = 12  # default of CRM_SESSION_HOURS
CLAIM = "cv"
ENDING = ("password", "active", "roles")  # what of a user, when it changes, ends their sessions
_table = CredentialVersion.__table__
log = logging.getLogger("crm.security")


def credential_version(db: Any, user_id: int) -> int:
    """The user's credential version as the database has it now."""
    return int(db.execute(sa.select(_table.c.version).where(_table.c.user_id == user_id)).scalar() or 0)


def current_version(db: Any, user_id: int) -> int:
    """:func:`credential_version`, kept in this worker until some user's version moves."""
    return int(shelf("credentials").get(sessions_version(db), user_id, lambda: credential_version(db, user_id)))


def end_sessions(conn: sa.Connection, user_id: int) -> None:
    """Move the user's credential version on, within ``conn``'s transaction: every session and
    token issued to them before ends."""
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = (postgresql if dialect == "postgresql" else sqlite).insert(_table).values(user_id=user_id, version=1)
        conn.execute(insert.on_conflict_do_update(index_elements=[_table.c.user_id], set_={"version": _table.c.version + 1}))
    elif conn.execute(sa.update(_table).where(_table.c.user_id == user_id).values(version=_table.c.version + 1)).rowcount == 0:
        conn.execute(sa.insert(_table).values(user_id=user_id, version=1))
    bump(conn, SESSIONS)


def session_is_current(db: Any, user_id: int) -> bool:
    """Whether this request's session was issued at the user's current credential version, less
    than ``CRM_SESSION_HOURS`` ago."""
    hours = float(current_app.config.get("CRM_SESSION_HOURS") or SESSION_HOURS)
    signed_in = session.get(SIGNED_IN_AT)
    if not isinstance(signed_in, int | float) or not 0 <= time.time() - signed_in < hours * 3600:
        return False
    return session.get(SESSION_KEY) == current_version(db, user_id)


def token_is_current(db: Any, jwt_data: dict[str, Any]) -> bool:
    """Whether a decoded access or refresh token was issued at its user's current credential version."""
    return jwt_data.get(CLAIM) == current_version(db, int(jwt_data["sub"]))


def token_claims(db: Any, identity: Any) -> dict[str, int]:
    """What every new access and refresh token carries besides FAB's claims."""
    log.info("token issued: user %s from %s", identity, request.remote_addr if has_request_context() else "-")
    return {CLAIM: credential_version(db, int(identity))}


def reissue(db: Any, user_id: int) -> None:
    """This request's session carries the user's credential version as it is now (after a change
    that ended all their others)."""
    session[SESSION_KEY] = credential_version(db, user_id)


def _end_on_flush(db: Session, flush_context: Any, instances: Any) -> None:
    ending = {o.id for o in db.deleted if isinstance(o, User) and o.id is not None}
    for obj in db.dirty:
        if isinstance(obj, User) and obj.id is not None:
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in ENDING):
                ending.add(obj.id)
    if ending:
        conn = db.connection()
        for user_id in sorted(ending):
            end_sessions(conn, user_id)
            log.info("credentials ended: user %s (password, roles, active flag changed or deleted) by %s", user_id, _who())


def _who() -> str:
    """Who acts, from where (for the security log)."""
    if not has_request_context():
        return "a command"
    user = getattr(g, "user", None)
    return f"user {getattr(user, 'id', None)} from {request.remote_addr}"


def _remember_at_login(app: Flask, user: Any, **_extra: Any) -> None:
    session[SIGNED_IN_AT] = int(time.time())
    reissue(app.extensions["crm"].db.session, user.id)
    log.info("sign-in: user %s (%s) from %s", user.id, user.username, request.remote_addr if has_request_context() else "-")


def install_session_ends(app: Flask) -> None:
    """The flush hook for every session, and the credential version into the session at each login."""
    if not event.contains(Session, "before_flush", _end_on_flush):
        event.listen(Session, "before_flush", _end_on_flush)
    user_logged_in.connect(_remember_at_login, app)


# -- changing one's own password ---------------------------------------------------------------
def _the_current_password(form: Form, field: Field) -> None:
    if not check_password_hash(g.user.password or "", field.data or ""):
        raise ValidationError(msg("当前密码不正确").localized())


class ChangeMyPasswordForm(DynamicForm):
    """FAB's ResetPasswordForm after the current password (FAB's description says the password
    is not checked: here it is, by ``accounts.password_validator``)."""

    current_password = PasswordField(L("当前密码", "Current password"), validators=[DataRequired(), _the_current_password],
                                     widget=BS3PasswordFieldWidget())
    password = PasswordField(lazy_gettext("Password"), description=L("至少 12 个字符,不能是常见密码;几个词组成的一句话最好记",
                                                                     "At least 12 characters, not a common password; a few words are easy to remember"),
                             validators=[DataRequired(), PasswordComplexityValidator()], widget=BS3PasswordFieldWidget())
    conf_password = PasswordField(lazy_gettext("Confirm Password"), description=lazy_gettext("Please rewrite the password to confirm"),
                                  validators=[EqualTo("password", message=lazy_gettext("Passwords must match"))],
                                  widget=BS3PasswordFieldWidget())


class ResetMyPasswordView(FabResetMyPasswordView):
    """FAB's own-password form (same name, so the same rights and address), asking for the current
    password; the change ends every other session and token of the person, not this one."""

    form = ChangeMyPasswordForm

    def form_post(self, form: DynamicForm) -> None:
        sm = self.appbuilder.sm
        sm.reset_password(g.user.id, form.password.data)  # its flush ends all of their sessions…
        reissue(sm.session, g.user.id)  # …and this one continues
        flash(str(self.message), "info")
