"""Defaults for the embedded set-up (SQLite and a file broker under var/); every value can be
overridden by the environment variables of DESIGN §5. See production_example.py for production."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# the keys every install shared before each had its own (app.access.installkeys): public, so refused
# outside development; the encryption key still reads what it encrypted until the first upgrade moves it
DEV_SECRET_KEY = "development-only-secret-key-change-me"  # noqa: S105
DEV_ENCRYPTION_KEY = "development-only-encryption-key-change-me"  # noqa: S105



class ConfigError(RuntimeError):
    """A setting that cannot be used; the message names it and how to put it right."""


def from_env() -> dict[str, Any]:
    """The settings that come from the environment, read now (tests and tools change it)."""
    env = os.environ.get
    var = Path(env("CRM_VAR_DIR", str(ROOT / "var")))
    return {
        "CRM_ENV": env("CRM_ENV", "development"),
        "CRM_VAR_DIR": str(var),
        "CRM_WORKBOOK": env("CRM_WORKBOOK", str(ROOT / "sheets" / "crm.xlsx")),
        "CRM_GENERATED_DIR": env("CRM_GENERATED_DIR", str(ROOT / "app" / "generated")),
        "SQLALCHEMY_DATABASE_URI": env("CRM_DATABASE_URL", f"sqlite:///{var / 'crm.sqlite'}"),
        "CRM_BROKER_URL": env("CRM_BROKER_URL", f"sqla+sqlite:///{var / 'broker.sqlite'}"),
        # none given: development takes the install's own (app.access.installkeys), production refuses
        "SECRET_KEY": env("CRM_SECRET_KEY", ""),
        "CRM_ENCRYPTION_KEY": env("CRM_ENCRYPTION_KEY", ""),
        "CRM_SMTP_HOST": env("CRM_SMTP_HOST", ""),
        "CRM_SMTP_PORT": int(env("CRM_SMTP_PORT", "25")),
        # 1: encrypt mail to the SMTP server (STARTTLS, its certificate checked; CRM_SMTP_CAFILE: an office CA)
        "CRM_SMTP_STARTTLS": env("CRM_SMTP_STARTTLS", "0").strip().lower() in ("1", "true", "yes"),
        "CRM_SMTP_CAFILE": env("CRM_SMTP_CAFILE", ""),
        "CRM_MAIL_FROM": env("CRM_MAIL_FROM", "crm@localhost"),
        "CRM_BASE_URL": env("CRM_BASE_URL", "http://127.0.0.1:5000"),
        "RATELIMIT_STORAGE_URI": env("CRM_RATELIMIT_STORAGE_URI", "memory://"),
        # permissions and roles follow the screens and the sheet when they changed (one digest read
        # otherwise); `crm upgrade` and `crm up` also put hand edits right ("always"); `crm serve` workers skip it ("0")
        "CRM_SYNC_PERMISSIONS": {"0": False, "always": "always"}.get(env("CRM_SYNC_PERMISSIONS", "1"), True),
        # limits whose defaults live beside the code that applies them; set here only when given
        **{name: _whole_number(name, value) for name in TUNABLE if (value := env(name, "").strip())},
    }


def _whole_number(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"环境变量 {name} 应为整数,现在是 {value!r} ({name} must be a whole number, got {value!r})") from None


TUNABLE = ("CRM_LIST_COUNT_CAP", "CRM_LIST_COUNT_TIMEOUT_MS", "CRM_IMPORT_MAX_ROWS", "CRM_IMPORT_LEASE_SECONDS",
           "CRM_DASHBOARD_WORKERS", "CRM_UPLOAD_MAX_BYTES", "CRM_IMPORT_MAX_BYTES", "CRM_LINK_LOOKUP_THRESHOLD",
           # what one import may hold (app.io.limits)
           "CRM_IMPORT_MAX_UNPACKED_BYTES", "CRM_IMPORT_MAX_CELL_CHARS", "CRM_IMPORT_MAX_MEMORY_MB",
           # the database connections (app.web.dbtuning)
           "CRM_DB_POOL_SIZE", "CRM_DB_MAX_OVERFLOW", "CRM_DB_POOL_TIMEOUT", "CRM_DB_POOL_RECYCLE", "CRM_DB_PRE_PING",
           "CRM_WEB_STATEMENT_TIMEOUT_MS", "CRM_SLOW_REQUEST_MS", "CRM_SQLITE_BUSY_TIMEOUT_MS",
           # how long `crm upgrade` waits for each table lock on PostgreSQL (app.migrate.engine)
           "CRM_UPGRADE_LOCK_TIMEOUT_MS",
           # proxies in front of the web workers whose X-Forwarded-* headers are believed (0: none)
           "CRM_PROXY_HOPS",
           # how long a sign-in lasts (app.access.sessions)
           "CRM_SESSION_HOURS")


SQLALCHEMY_TRACK_MODIFICATIONS = False

# Flask-AppBuilder
AUTH_TYPE = 1  # AUTH_DB
AUTH_USER_REGISTRATION = False
FAB_ADD_SECURITY_API = False  # its role/permission APIs break on marshmallow 4; login API stays
FAB_API_SWAGGER_UI = True
FAB_UPDATE_PERMS = False  # app.access.permsync writes them, in one pass
# one permission query per request instead of one per menu entry and button (half a list page's time)
FAB_SECURITY_MANAGER_CLASS = "app.access.permcache.CrmSecurityManager"
BABEL_DEFAULT_LOCALE = "zh"
BABEL_DEFAULT_TIMEZONE = "UTC"
BABEL_TRANSLATION_DIRECTORIES = str(ROOT / "app" / "translations")  # FAB puts its own catalog first
LANGUAGES = {
    "zh": {"flag": "cn", "name": "中文"},
    "en": {"flag": "gb", "name": "English"},
}
APP_THEME = ""
FAB_BASE_TEMPLATE = "crm/baselayout.html"  # FAB's layout, its menu bar kept across requests (app.web.pagecache)

# Login hardening: rate-limited login, a password policy, no self-registration. AUTH_RATE_LIMIT counts
# the attempts on one account from one address (an office behind one NAT address is not locked out
# by a colleague's typos); CRM_LOGIN_ADDRESS_LIMIT caps one address over all accounts (guessing
# across many names). Set RATELIMIT_STORAGE_URI to Redis when several processes serve.
AUTH_RATE_LIMITED = True
RATELIMIT_ENABLED = True
AUTH_RATE_LIMIT = "10 per minute"
CRM_LOGIN_ADDRESS_LIMIT = "60 per minute"
RATELIMIT_STORAGE_URI = "memory://"
FAB_PASSWORD_COMPLEXITY_ENABLED = True
MAX_CONTENT_LENGTH = 16 * 1024 * 1024  # any request; an import upload may reach CRM_IMPORT_MAX_BYTES (64 MB)

# Sessions and forms
WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Credentials (app.access.sessions): a session cookie, and the API's JWT in the Authorization header;
# both end with logout, a password, role or active change. Nothing else signs anyone in: FAB's API
# keys and Flask-Login's remember-me cookie would outlive those (an API key is refused at start-up,
# a remember-me cookie opens no session), and no token is read from cookies or the query string.
FAB_API_KEY_ENABLED = False
JWT_TOKEN_LOCATION = ["headers"]
# a sign-in lasts at most CRM_SESSION_HOURS, in use or not (ASVS 3.3.2, level 2: 12 hours); an
# access token 15 minutes, its refresh token as long as a session
CRM_SESSION_HOURS = 12
JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=15)
JWT_REFRESH_TOKEN_EXPIRES = timedelta(hours=CRM_SESSION_HOURS)  # follows CRM_SESSION_HOURS (app.factory)
REMEMBER_COOKIE_HTTPONLY = True
REMEMBER_COOKIE_SAMESITE = "Lax"
