"""The hand-written, generic application: ``create_app`` serves whichever generated package
``CRM_GENERATED_DIR`` points at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from flask_wtf.csrf import CSRFProtect

from config.default import from_env
from generator.spec import Spec

from .runtime.i18n import L, install_safe_gettext
from .runtime.loader import Generated, load_generated
from .runtime.migrate import ensure_system_tables
from .runtime.rules import install_rules
from .runtime.security import menu_item, sync_roles


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


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application for the configured workbook, generated package and database."""
    app = Flask(__name__)
    app.config.from_object("config.default")
    app.config.from_mapping(from_env())
    if app.config["CRM_ENV"] == "production":
        app.config.from_object("config.production.example")
    if config:
        app.config.update(config)
    generated = load_generated(app.config["CRM_GENERATED_DIR"])
    spec = generated.spec
    app.config.setdefault("APP_NAME", spec.settings.app_name)
    app.config["AUTH_ROLE_ADMIN"] = generated.permissions.ADMIN_ROLE
    app.config["BABEL_DEFAULT_LOCALE"] = spec.settings.language
    install_rules(spec)
    CSRFProtect(app)
    db = SQLA()
    appbuilder = AppBuilder()
    app.extensions["crm"] = CrmState(spec, generated, appbuilder, db)
    with app.app_context():
        db.init_app(app)
        ensure_system_tables(db.engine)  # else FAB's create_all would bypass the migrations
        appbuilder.init_app(app, db.session)
        install_safe_gettext(app)
        register_views(appbuilder, generated)
        exposed = _exposed_permissions(appbuilder, generated)
        menus = {name: group for name, _v, _a, group, _zh, _en in generated.views.REGISTRY}
        sync_roles(appbuilder, generated.permissions.ROLES, generated.permissions.GRANTS, exposed, menus)
    return app


def register_views(appbuilder: AppBuilder, generated: Generated) -> None:
    """Menus, screens and APIs of every entity, in the workbook's order."""
    for name, view, api, group, label, label_en in generated.views.REGISTRY:
        appbuilder.add_view(
            view,
            menu_item(name),
            label=L(label, label_en),
            category=group,
            icon="fa-table",
        )
        appbuilder.add_api(api)


def _exposed_permissions(appbuilder: AppBuilder, generated: Generated) -> dict[str, set[str]]:
    exposed: dict[str, set[str]] = {}
    for name, view_cls, api_cls, *_rest in generated.views.REGISTRY:
        perms: set[str] = set()
        for b in appbuilder.baseviews:
            if isinstance(b, view_cls | api_cls):
                perms |= set(b.base_permissions or [])
        exposed[name] = perms
    return exposed
