"""Defaults for the embedded set-up (SQLite and a file broker under var/); every value can be
overridden by the environment variables of DESIGN §5. See production.example.py for production."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("CRM_VAR_DIR", ROOT / "var"))

DEV_SECRET_KEY = "development-only-secret-key-change-me"  # noqa: S105 - refused outside development
DEV_ENCRYPTION_KEY = "development-only-encryption-key-change-me"  # noqa: S105

CRM_ENV = os.environ.get("CRM_ENV", "development")
CRM_VAR_DIR = str(VAR)
CRM_WORKBOOK = os.environ.get("CRM_WORKBOOK", str(ROOT / "sheets" / "crm.xlsx"))
CRM_GENERATED_DIR = os.environ.get("CRM_GENERATED_DIR", str(ROOT / "app" / "generated"))
SQLALCHEMY_DATABASE_URI = os.environ.get("CRM_DATABASE_URL", f"sqlite:///{VAR / 'crm.sqlite'}")
CRM_BROKER_URL = os.environ.get("CRM_BROKER_URL", f"sqla+sqlite:///{VAR / 'broker.sqlite'}")
SECRET_KEY = os.environ.get("CRM_SECRET_KEY", DEV_SECRET_KEY)
CRM_ENCRYPTION_KEY = os.environ.get("CRM_ENCRYPTION_KEY", DEV_ENCRYPTION_KEY)
CRM_SMTP_HOST = os.environ.get("CRM_SMTP_HOST", "")
CRM_SMTP_PORT = int(os.environ.get("CRM_SMTP_PORT", "25"))
CRM_MAIL_FROM = os.environ.get("CRM_MAIL_FROM", "crm@localhost")

SQLALCHEMY_TRACK_MODIFICATIONS = False

# Flask-AppBuilder
AUTH_TYPE = 1  # AUTH_DB
AUTH_USER_REGISTRATION = False
FAB_ADD_SECURITY_API = False  # its role/permission APIs break on marshmallow 4; login API stays
FAB_API_SWAGGER_UI = True
FAB_UPDATE_PERMS = True
FAB_PASSWORD_COMPLEXITY_ENABLED = False
BABEL_DEFAULT_LOCALE = "zh"
BABEL_DEFAULT_TIMEZONE = "UTC"
LANGUAGES = {
    "zh": {"flag": "cn", "name": "中文"},
    "en": {"flag": "gb", "name": "English"},
}
APP_THEME = ""
FAB_BASE_TEMPLATE = "appbuilder/baselayout.html"

# Sessions and forms
WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
