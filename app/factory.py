"""The application factory: ``create_app`` serves whichever generated package ``CRM_GENERATED_DIR``
points at — the runtime packages installed on a Flask-AppBuilder app for its spec."""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from app import tasks as _tasks  # noqa: F401 - registers the shared tasks
from app.access import crypto
from app.access.accounts import install_display_names, login_attempt_key, password_validator
from app.access.installkeys import install_secrets
from app.access.permsync import recall, remember, rights_source, sync_security, wanted
from app.access.security import menu_item
from app.access.sessions import ResetMyPasswordView, install_session_ends
from app.io.importjobs import allow_large_import_upload
from app.loader import Generated, load_generated
from app.messaging.queue import celery_init_app
from app.messaging.surveys import register_surveys
from app.migrate.system import ensure_system_tables
from app.record.audit import install_audit
from app.record.rules import install_rules
from app.reports.dashboard import CrmIndexView, register_dashboard
from app.spec.model import Spec
from app.web.api import install_schema_cache
from app.web.auditview import register_audit_log
from app.web.compress import install_compression
from app.web.computeddefaults import register_computed_defaults
from app.web.csp import install_csp
from app.web.dbtuning import engine_options, install_request_watch, install_sqlite_tuning
from app.web.errors import register_error_pages
from app.web.i18n import L, SpokenJSON, install_safe_gettext
from app.web.inbox import register_inbox
from app.web.pagecache import ensure_version_row, install_page_cache, install_version_bump
from app.web.quicksearch import register_quick_search
from config.default import ConfigError, from_env


@dataclass
class CrmState:
    """What the runtime engines need, kept at ``app.extensions['crm']``."""

    spec: Spec
    generated: Generated
    appbuilder: AppBuilder
    db: SQLA

    @property
    def admin_role(self) -> str:
        return str(self.generated.permissions.ADMIN_ROLE)


def use_office_clock(timezone: str) -> None:
    """The workbook's timezone is the process's local time. Every due moment, 6h/7h deadline,
    working-day count and created_on is naive local time (``datetime.now()``): on a server whose
    clock runs in UTC the office's 09:00 would otherwise be 17:00, and reminders 8 hours late."""
    if timezone and os.environ.get("TZ") != timezone and hasattr(time, "tzset"):
        os.environ["TZ"] = timezone
        time.tzset()


class _Unrouted(AppBuilder):  # type: ignore[misc]  # FAB is not typed
    """An app builder whose screens get their blueprints but do not add them to the app's URL map:
    all a process that only syncs the roles' rights needs (their permissions and the menu), without
    compiling some 540 URL rules it will never match."""

    def register_blueprint(self, baseview: Any, endpoint: str | None = None, static_folder: str | None = None) -> None:
        baseview.create_blueprint(self, endpoint=endpoint, static_folder=static_folder)


def create_app(config: dict[str, Any] | None = None, serve: bool = True) -> Flask:
    """Build the application for the configured workbook, generated package and database;
    ``serve=False``: an app that answers no request (the screens are built, not routed)."""
    app = Flask(__name__)
    app.config.from_object("config.default")
    values = from_env()
    if values["CRM_ENV"] == "production":  # the production example's values, under the environment's own
        app.config.from_object("config.production_example")
    app.config.from_mapping(values)
    if config:
        app.config.update(config)
    app.config.update(install_secrets(app.config))  # development: the install's own keys, not public ones
    _refuse_development_secrets(app)
    # a refresh token lives as long as a session (app.access.sessions)
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = dt.timedelta(hours=float(app.config["CRM_SESSION_HOURS"]))
    # the pool, pre-ping and (web processes) the statement timeout; options given by the caller win
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**engine_options(app.config), **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})}
    app.config.setdefault("FAB_PASSWORD_COMPLEXITY_VALIDATOR", password_validator)
    app.config.setdefault("RATELIMIT_KEY_FUNC", login_attempt_key)  # FAB's login limit: per account and address
    hops = int(app.config.get("CRM_PROXY_HOPS") or 0)
    if hops:  # the client's address (login limits, logs) from the proxies' X-Forwarded-For, not the proxy's
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    generated = load_generated(app.config["CRM_GENERATED_DIR"])
    spec = generated.spec
    use_office_clock(spec.settings.timezone)
    app.config.setdefault("APP_NAME", spec.settings.app_name)
    app.config["AUTH_ROLE_ADMIN"] = generated.permissions.ADMIN_ROLE
    app.config["BABEL_DEFAULT_LOCALE"] = spec.settings.language
    sync = app.config.get("CRM_SYNC_PERMISSIONS", True)  # False: never (web workers); "always": also when unchanged
    app.config["FAB_UPDATE_PERMS"] = False  # done below in one pass (permsync), not by FAB statement by statement
    install_rules(spec)
    install_audit()
    install_version_bump()  # what web workers keep across requests follows users, roles and grants
    install_session_ends(app)  # logout, a password, role or active change end every session and token
    install_schema_cache()  # FAB's REST arguments: each schema checked once, not on every request
    install_display_names()
    crypto.configure(app.config["CRM_ENCRYPTION_KEY"], app.config.get("CRM_OLD_ENCRYPTION_KEY", ""))
    install_compression(app)  # first registered, so it runs last: the body the others left, gzipped
    app.before_request(allow_large_import_upload)  # before CSRF reads the body
    csrf = CSRFProtect(app)
    app.after_request(_security_headers)
    install_csp(app)  # scripts: the app's own files and nonced inline blocks only
    register_error_pages(app)
    app.add_url_rule("/health", "crm_health", _health)
    csrf.exempt(_health)
    db = SQLA()
    appbuilder = (AppBuilder if serve else _Unrouted)(indexview=CrmIndexView)
    app.extensions["crm"] = CrmState(spec, generated, appbuilder, db)
    with app.app_context():
        db.init_app(app)
        install_sqlite_tuning(db.engine, app.config)  # WAL and a busy timeout, before the first connection
        ensure_system_tables(db.engine)  # else FAB's create_all would bypass the migrations
        ensure_version_row(db.engine)
        install_request_watch(app, db.engine)  # slow requests logged with what their SQL cost
        appbuilder.init_app(app, db.session)
        install_safe_gettext(app)
        app.json = SpokenJSON(app)  # JSON answers in the asker's language only
        install_page_cache(app)
        _limit_logins(appbuilder)
        register_dashboard(app, appbuilder)  # first in the menu; also the landing page after login
        register_views(appbuilder, generated)
        register_surveys(app)  # the public survey page and the monthly rollup
        register_inbox(appbuilder)  # my messages (unread count in the menu); the outbox for admins
        register_audit_log(appbuilder)  # 审计日志 under the security menu, for roles granted it
        if serve:  # pages only: no screen, menu entry or permission of their own
            register_quick_search(app)  # the top bar's search: every entity the person may list
            register_computed_defaults(app)  # the add form's preview of defaults written as expressions
        celery_init_app(app)  # reminders, escalations, surveys and deliveries run on Celery
        if sync:
            want = wanted_security(appbuilder, generated)
            with db.engine.begin() as conn:
                sync_security(conn, want, force=sync == "always")
                source = rights_source(spec)
                if recall(conn, source) != want:  # kept for the next upgrade that changes none of it
                    remember(conn, want, source)
    return app


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
}  # Content-Security-Policy: app.web.csp (a nonce per response)


def _refuse_development_secrets(app: Flask) -> None:
    """Outside development the secrets must come from the environment, never the defaults; FAB's API
    keys are refused everywhere."""
    from config.default import DEV_ENCRYPTION_KEY, DEV_SECRET_KEY

    if app.config.get("FAB_API_KEY_ENABLED"):  # in any environment: no credential outside app.access.sessions
        raise ConfigError("FAB_API_KEY_ENABLED: API keys are not supported — they would outlive logout, password and role "
                          "changes; the REST API signs in with /api/v1/security/login (JWT)")
    if app.config["CRM_ENV"] == "development":
        return
    weak = [name for name, value, dev in (("CRM_SECRET_KEY", app.config["SECRET_KEY"], DEV_SECRET_KEY),
                                          ("CRM_ENCRYPTION_KEY", app.config["CRM_ENCRYPTION_KEY"], DEV_ENCRYPTION_KEY))
            if not value or value == dev]
    if weak:
        raise ConfigError(f"CRM_ENV={app.config['CRM_ENV']}: set {' and '.join(weak)} (the development defaults are refused)")


def _limit_logins(appbuilder: AppBuilder) -> None:
    """One budget of password attempts per account and address (``AUTH_RATE_LIMIT``, keyed by
    ``login_attempt_key``) and one ceiling per address over all accounts, each shared by the login
    form, the API's login and the own-password form (its current password is a guess too): a
    limit per screen would give each its own budget."""
    from flask import current_app
    from flask_appbuilder.security.api import SecurityApi
    from flask_limiter.util import get_remote_address

    config, sm = current_app.config, appbuilder.sm
    if not config["AUTH_RATE_LIMITED"]:
        return
    budgets = [sm.limiter.shared_limit(config["AUTH_RATE_LIMIT"], scope="crm-login", methods=["POST"])]
    if config.get("CRM_LOGIN_ADDRESS_LIMIT"):
        budgets.append(sm.limiter.shared_limit(str(config["CRM_LOGIN_ADDRESS_LIMIT"]), scope="crm-login-address",
                                               key_func=get_remote_address, methods=["POST"]))
    guarded = [sm.auth_view, *(view for view in appbuilder.baseviews if isinstance(view, SecurityApi | ResetMyPasswordView))]
    for view in guarded:
        for budget in budgets:
            budget(view.blueprint)


def _health() -> Any:
    """For load balancers: 200 when the database answers, 503 otherwise (no login, no data)."""
    from flask import current_app, jsonify
    from sqlalchemy import text

    try:
        current_app.extensions["crm"].db.session.execute(text("SELECT 1"))
        return jsonify(status="ok")
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return jsonify(status="database unavailable"), 503


HSTS = "max-age=31536000; includeSubDomains"  # a year: once on HTTPS, browsers never try plain HTTP


def _security_headers(response: Any) -> Any:
    """The headers of every answer (ASVS 14.4): no sniffing, no framing by others, no referrer
    outside; HSTS when the request came over HTTPS (directly, or as the proxies of
    ``CRM_PROXY_HOPS`` say); and nothing a signed-in person saw kept by the browser or a proxy
    cache (8.2.1), static files aside."""
    from flask import request
    from flask_login import current_user

    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if not (request.endpoint or "").endswith("static") and getattr(current_user, "is_authenticated", False):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def register_views(appbuilder: AppBuilder, generated: Generated) -> None:
    """Menus, screens and APIs of every entity, in the workbook's order."""
    for name, view, api, group, label, label_en, group_en in generated.views.REGISTRY:
        appbuilder.add_view(
            view,
            menu_item(name),
            label=L(label, label_en),
            category=group,
            category_label=L(group, group_en),
            icon="fa-table",
        )
        appbuilder.add_api(api)


def wanted_security(appbuilder: AppBuilder, generated: Generated) -> Any:
    """What the registered screens and the roles sheet ask of FAB's security tables."""
    menus = {name: group for name, _v, _a, group, *_labels in generated.views.REGISTRY}
    return wanted(appbuilder, generated.permissions.ROLES, generated.permissions.GRANTS, _exposed_permissions(appbuilder, generated), menus)


def _exposed_permissions(appbuilder: AppBuilder, generated: Generated) -> dict[str, set[str]]:
    exposed: dict[str, set[str]] = {}
    for name, view_cls, api_cls, *_rest in generated.views.REGISTRY:
        perms: set[str] = set()
        for b in appbuilder.baseviews:
            if isinstance(b, view_cls | api_cls):
                perms |= set(b.base_permissions or [])
        exposed[name] = perms
    return exposed
