"""What every page would otherwise work out again, kept across requests and keyed by what it
depends on.

A list page spent most of its time drawing what does not change from one request to the next:
the menu (an access check per entry), the search form (every filter's input, the users'
dropdown), and reading the signed-in user's grants. These depend on users, roles, permissions and
departments, on the language, and on nothing in the entities' data. So:

* **The security version.** One row of ``crm_cache_version`` (``security``) is bumped in the same
  transaction as any change to users (their names, active flag, roles, departments), roles,
  permissions or departments, from any screen, API or command (a flush hook on every session).
  Each request reads it once (one primary-key row); every cached answer is keyed by it, so a grant
  taken away in one worker counts in every worker from the next request on, as before.
* **The sessions version.** A second row (``sessions``), read with the first in the same
  statement, moved on whenever some user's credential version moves (a logout, a password change:
  ``app.access.sessions``), so the credential versions of signed-in users can be kept too without
  emptying the menus at every logout.
* **Shelves.** A process-wide dict per kind of answer (grants, menus, search forms), emptied when
  the version moves and bounded in size. Nothing on a shelf holds a row of the entities' data.

Changes made to FAB's tables with raw SQL behind the ORM's back are not seen: run
``crm upgrade`` (it bumps the version) after such an edit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from itertools import chain
from typing import Any

import sqlalchemy as sa
from flask import current_app, g, has_request_context, render_template, request, session
from flask_appbuilder.security.sqla.models import Group, Permission, PermissionView, Role, User, ViewMenu
from flask_babel import get_locale
from markupsafe import Markup
from sqlalchemy import event, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.record.tables import CacheVersion
from app.web.inbox import needs_me

SECURITY = "security"
SESSIONS = "sessions"
VERSION_KEYS = (SECURITY, SESSIONS)
SECURITY_MODELS = (Role, Permission, ViewMenu, PermissionView, Group)
# what of a user the cached answers show or depend on (a login's counters and timestamps do not)
USER_ATTRIBUTES = ("username", "first_name", "last_name", "email", "active", "roles", "groups")
SHELF_SIZE = 2_000
MENU_SHELF_SIZE = 500  # a menu bar is ~10 KB: at most ~5 MB of them per process
_table = CacheVersion.__table__


def _changed(db: Session, obj: Any) -> bool:
    """Whether a changed object of a flush moves the security version (a user only when what the
    cached answers show of them changed)."""
    if isinstance(obj, SECURITY_MODELS):
        return db.is_modified(obj)
    if isinstance(obj, User):
        state = inspect(obj)
        return any(state.attrs[name].history.has_changes() for name in USER_ATTRIBUTES if name in state.attrs)
    return False


def _bump_on_flush(db: Session, flush_context: Any, instances: Any) -> None:
    added_or_gone = chain(db.new, db.deleted)
    if any(isinstance(o, (*SECURITY_MODELS, User)) for o in added_or_gone) or any(_changed(db, o) for o in db.dirty):
        bump(db.connection())


def bump(conn: Any, key: str = SECURITY) -> None:
    """Move the version ``key`` on (within ``conn``'s transaction; the row is made at start-up)."""
    conn.execute(sa.update(_table).where(_table.c.key == key).values(version=_table.c.version + 1))


def install_version_bump() -> None:
    if not event.contains(Session, "before_flush", _bump_on_flush):
        event.listen(Session, "before_flush", _bump_on_flush)


def ensure_version_row(engine: sa.Engine) -> None:
    """The ``security`` and ``sessions`` rows, so that requests read versions (two processes may race here)."""
    for key in VERSION_KEYS:
        try:
            with engine.begin() as conn:
                if conn.execute(sa.select(_table.c.key).where(_table.c.key == key)).first() is None:
                    conn.execute(sa.insert(_table).values(key=key, version=0))
        except IntegrityError:  # another process made it first
            pass


def _versions(session: Any) -> dict[str, int]:
    """Both versions, read with one statement once per request (every time outside one)."""
    if has_request_context():
        known = g.__dict__.get("_crm_versions")
        if known is not None:
            return known
    rows = session.execute(sa.select(_table.c.key, _table.c.version).where(_table.c.key.in_(VERSION_KEYS))).all()
    versions = {key: 0 for key in VERSION_KEYS} | {key: int(version or 0) for key, version in rows}
    if has_request_context():
        g._crm_versions = versions
    return versions


def security_version(session: Any) -> int:
    """The security version, read once per request (every time outside one)."""
    return _versions(session)[SECURITY]


def sessions_version(session: Any) -> int:
    """The sessions version, read once per request with the security version."""
    return _versions(session)[SESSIONS]


class Shelf:
    """Answers kept across requests for one security version; emptied when it moves on."""

    def __init__(self, size: int = SHELF_SIZE):
        self.size = size
        self._version: int | None = None
        self._items: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, version: int, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if self._version != version:
                self._version, self._items = version, {}
            if key in self._items:
                return self._items[key]
        value = make()
        with self._lock:
            if self._version == version:
                if len(self._items) >= self.size:
                    self._items.clear()
                self._items[key] = value
        return value


def shelf(name: str, size: int = SHELF_SIZE) -> Shelf:
    """The application's shelf ``name`` (each application its own: tests run several at once)."""
    shelves: dict[str, Shelf] = current_app.extensions.setdefault("crm_shelves", {})
    if name not in shelves:
        shelves[name] = Shelf(size)
    return shelves[name]


# -- the menu bar ------------------------------------------------------------------------------
def page_key() -> tuple[Any, ...]:
    """What every cached fragment of a page depends on besides the security version: the chosen
    language (and the one the language menu shows), and where the application is mounted."""
    return str(get_locale()), session.get("locale"), request.script_root


def navbar() -> Markup:
    """FAB's menu bar for the signed-in user: drawn once per user, language, count of what needs them
    (unread messages and records waiting for their step) and security version (every entry is an
    access check; that count is the only data in it)."""
    appbuilder = current_app.appbuilder  # type: ignore[attr-defined]
    db = appbuilder.session
    user = getattr(g, "user", None)
    user_id = getattr(user, "id", None) if getattr(user, "is_authenticated", False) else None
    key = (*page_key(), user_id, needs_me(db))
    html = shelf("menus", MENU_SHELF_SIZE).get(security_version(db), key,
                              lambda: render_template("appbuilder/navbar.html", appbuilder=appbuilder))
    return Markup(html)  # noqa: S704 - FAB's own template, rendered with autoescape


def install_page_cache(app: Any) -> None:
    """``crm_navbar()`` for the layout (``crm/baselayout.html``)."""
    app.jinja_env.globals["crm_navbar"] = navbar
