"""Fixtures: ``app`` (the shipped generated app on a fresh SQLite file), ``client``, ``login``,
and ``require_service`` (skip without a service, fail instead when CRM_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "sheets" / "crm.xlsx"
ADMIN_PASSWORD = "admin-Pass-123"  # noqa: S105 - test-only
# The shared test app hashes passwords cheaply: FAB's scrypt costs 0.11 s per user made and per
# login, and the suite makes and logs in hundreds (an app built by a test itself, and every
# installed one, keeps scrypt).
FAST_PASSWORD_HASH = {"FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"}


def require_service(what: str, available: bool, reason: str) -> None:
    """Skip when a real service/tool is missing, or fail when CI says it must be there."""
    if available:
        return
    if os.environ.get("CRM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required (CRM_REQUIRE_SERVICES=1) but unavailable: {reason}")
    pytest.skip(f"{what} unavailable: {reason}")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session", autouse=True)
def _var_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runtime files (the install's keys, the embedded broker, backups) go to a temporary var dir,
    never the repository's var/, for the tests and the commands and servers they start; its keys
    made up front, as the first `crm up` would have, so no command's output depends on which test
    came first."""
    from app.access.installkeys import read_or_make

    var = tmp_path_factory.mktemp("var")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRM_VAR_DIR", str(var))
        read_or_make(var)
        yield var


@pytest.fixture(autouse=True)
def _field_keys_as_found() -> Iterator[None]:
    """The field-encryption keys are the process's (one app per process in production): a test that
    builds another app with other keys, or rotates them, leaves them as it found them."""
    from app.access import crypto

    kept = list(crypto._keys)  # noqa: SLF001 - the process's keys, restored
    yield
    crypto._keys[:] = kept  # noqa: SLF001


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from app import create_app
    from app.access.accounts import create_first_admin
    from app.migrate.create import create_schema

    db = tmp_path_factory.mktemp("db") / "crm.sqlite"
    application = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db}", "TESTING": True, "RATELIMIT_ENABLED": False,
                              **FAST_PASSWORD_HASH})
    create_schema(application)
    create_first_admin(application, "admin", ADMIN_PASSWORD)
    return application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def person(app: Any, username: str, roles: list[str], password: str, departments: list[str] | None = None) -> str:
    """A login on the session's shared app: made by the first module that needs it, the same for
    every module after (a worker runs several modules on one app, in any order)."""
    from app.access.accounts import add_user

    with app.app_context():
        known = app.extensions["crm"].appbuilder.sm.find_user(username=username) is not None
    if not known:
        add_user(app, username, roles, password, departments=departments)
    return username


def csrf_token(html: str) -> str:
    m = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(client: Any, username: str, password: str) -> Any:
    page = client.get("/login/")
    return client.post("/login/", data={"username": username, "password": password, "csrf_token": csrf_token(page.text)})


def api_token(client: Any, username: str, password: str) -> dict[str, str]:
    r = client.post("/api/v1/security/login", json={"username": username, "password": password, "provider": "db"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json['access_token']}"}


@pytest.fixture
def admin_client(client: Any) -> Iterator[Any]:
    login(client, "admin", ADMIN_PASSWORD)
    yield client


# Seconds each module took in a run on the 2-core machine (modules under 10 s are left out).
# pytest-xdist gives whole modules to its workers (--dist loadfile) in collection order (with
# --no-loadscope-reorder, which would otherwise put the modules with the most tests first): the
# longest start first and the short ones fill in behind them, so no worker is left with a long
# module at the end. A module missing here keeps its place after these.
MODULE_SECONDS = {
    "test_migrations": 109, "test_migration_scenario": 87, "test_worker": 77, "test_online_upgrade": 67, "test_browser": 64,
    "test_schedules": 64, "test_dashboard_browser": 63, "test_permission_matrix": 54, "test_upgrade_sequences": 51,
    "test_rules": 41, "test_import_jobs": 32, "test_applied_state": 31, "test_grading_plan": 25, "test_schedules_narrowing": 23,
    "test_excel": 20, "test_browser_flows": 19, "test_security": 19, "test_serve": 18, "test_lists": 30, "test_dbtuning": 12,
    "test_generate": 10, "test_csp_browser": 60, "test_rights_sync": 40, "test_install_keys": 10, "test_contention": 18,
    "test_rule_words_browser": 68, "test_rule_words": 21,
    "test_step_dialogs_browser": 50, "test_step_dialogs": 40,
    "test_forms_browser": 40,
    "test_quicksearch": 42, "test_quicksearch_browser": 31,
    "test_effects": 60, "test_effects_browser": 40,
    "test_bench_entry": 28, "test_record_tabs": 22, "test_compress": 13,
    "test_computed": 115,
    "test_demo_data": 70,
    "test_phones_browser": 150, "test_pages_language": 50,
    "test_homes": 60, "test_homes_browser": 90, "test_digest": 15,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first; the tests of a module keep their order."""
    order = {item: n for n, item in enumerate(items)}
    items.sort(key=lambda item: (-MODULE_SECONDS.get(item.path.stem, 0), order[item]))
