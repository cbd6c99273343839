"""The database connections as a DBA sets them, and the web processes' guards: the pool from the
environment, a runaway statement stopped with a clear page, slow requests logged with their SQL."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.web.dbtuning import engine_options
from tests.conftest import ADMIN_PASSWORD, login
from tests.migration_helpers import database


def make_app(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **config: Any) -> Any:
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_VAR_DIR", str(tmp_path))
    from app import create_app
    from app.access.accounts import create_first_admin
    from app.migrate.create import create_schema

    base = {"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "RATELIMIT_ENABLED": False}
    # the schema and the first admin as `crm up` makes them: before, and outside, the web process
    # whose statement timeout (400 ms in a test below) is under test — on a busy machine the
    # catalogue reads of create_schema ran into it
    setup = create_app(base)
    create_schema(setup)
    create_first_admin(setup, "admin", ADMIN_PASSWORD)
    dispose(setup)
    return create_app({**base, **config})


def dispose(application: Any) -> None:
    with application.app_context():
        application.extensions["crm"].db.session.remove()
        application.extensions["crm"].db.engine.dispose()


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with database("postgres", tmp_path) as url:
        yield url


def test_a_bad_number_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.default import from_env

    monkeypatch.setenv("CRM_DB_POOL_SIZE", "five")
    with pytest.raises(SystemExit) as refused:
        from_env()
    assert "CRM_DB_POOL_SIZE" in str(refused.value) and "'five'" in str(refused.value)
    monkeypatch.setenv("CRM_DB_POOL_SIZE", " 7 ")
    assert from_env()["CRM_DB_POOL_SIZE"] == 7


def test_in_production_the_environment_wins_over_the_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"CRM_ENV": "production", "CRM_SECRET_KEY": "s" * 64, "CRM_ENCRYPTION_KEY": "k" * 44,
                        "CRM_DB_POOL_SIZE": "9", "CRM_LIST_COUNT_CAP": "5000", "CRM_VAR_DIR": str(tmp_path),
                        "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'crm.sqlite'}"}.items():
        monkeypatch.setenv(name, value)
    from app import create_app

    config = create_app().config
    assert (config["CRM_DB_POOL_SIZE"], config["CRM_LIST_COUNT_CAP"]) == (9, 5000)  # set by the environment
    assert config["SESSION_COOKIE_SECURE"] is True and config["CRM_DB_MAX_OVERFLOW"] == 10  # from the example


def test_sqlite_keeps_its_own_pool_and_no_timeout() -> None:
    assert engine_options({"SQLALCHEMY_DATABASE_URI": "sqlite:///x.sqlite", "CRM_WEB_PROCESS": True}) == {}


def test_the_timeout_joins_the_options_already_in_the_address() -> None:
    url = "postgresql+psycopg2://u@h/db?options=-csearch_path%3Dcrm"
    web = engine_options({"SQLALCHEMY_DATABASE_URI": url, "CRM_WEB_PROCESS": True, "CRM_WEB_STATEMENT_TIMEOUT_MS": 1500})
    assert web["connect_args"] == {"options": "-csearch_path=crm -c statement_timeout=1500"}
    assert "connect_args" not in engine_options({"SQLALCHEMY_DATABASE_URI": url})  # workers and commands: no limit
    assert "connect_args" not in engine_options({"SQLALCHEMY_DATABASE_URI": url, "CRM_WEB_PROCESS": True,
                                                 "CRM_WEB_STATEMENT_TIMEOUT_MS": 0})


@pytest.mark.postgres
def test_the_pool_follows_the_environment(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"CRM_DB_POOL_SIZE": "3", "CRM_DB_MAX_OVERFLOW": "2", "CRM_DB_POOL_TIMEOUT": "7",
                        "CRM_DB_POOL_RECYCLE": "600", "CRM_DB_PRE_PING": "0"}.items():
        monkeypatch.setenv(name, value)
    application = make_app(pg_url, tmp_path, monkeypatch)
    try:
        with application.app_context():
            engine = application.extensions["crm"].db.engine
            pool = engine.pool
            assert (pool.size(), pool._max_overflow, pool._timeout, pool._recycle, pool._pre_ping) == (3, 2, 7, 600, False)
            with engine.connect() as conn:  # not a web process: nothing bounds its statements
                assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "0"
    finally:
        dispose(application)


@pytest.mark.postgres
def test_a_runaway_statement_is_stopped_with_a_clear_page(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    application = make_app(pg_url, tmp_path, monkeypatch, CRM_WEB_PROCESS=True, CRM_WEB_STATEMENT_TIMEOUT_MS=400,
                           CRM_SLOW_REQUEST_MS=250)
    db = application.extensions["crm"].db

    def sleep() -> str:  # a page whose query runs far longer than the web statement timeout
        db.session.execute(sa.text("SELECT pg_sleep(5)"))
        return "finished"

    application.add_url_rule("/sleep", "sleep", sleep)
    application.add_url_rule("/api/v1/sleep", "api_sleep", sleep)
    try:
        client = application.test_client()
        login(client, "admin", ADMIN_PASSWORD)  # signing in is slow on purpose (the password hash)
        assert client.get("/customerview/list/").status_code == 200  # templates compiled
        caplog.set_level(logging.WARNING, logger="crm.requests")
        caplog.clear()
        started = time.perf_counter()
        page = client.get("/sleep")
        assert time.perf_counter() - started < 3
        assert page.status_code == 503
        text = page.get_data(as_text=True)
        assert "查询超时" in text and "没有保存任何更改" in text and "finished" not in text
        assert client.get("/api/v1/sleep").get_json() == {"message": "查询超时"}

        # the connection is usable afterwards, and a list's own short count limit gives the timeout back
        assert client.get("/customerview/list/").status_code == 200
        assert client.get("/health").status_code == 200
        with application.app_context(), db.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "400ms"

        logged = [r.getMessage() for r in caplog.records if r.name == "crm.requests"]
        slow = [line for line in logged if "/sleep: " in line]
        assert len(slow) == 2, logged  # the two sleeps
        # anything else logged took longer than the threshold (a busy machine), nothing quicker
        others = [int(re.search(r": (\d+) ms,", line).group(1)) for line in logged if line not in slow]
        assert all(ms >= 250 for ms in others), logged
        assert slow[0].startswith("slow request GET /sleep: ") and "status 503" in slow[0]
        with application.app_context():
            admin_id = application.extensions["crm"].appbuilder.sm.find_user(username="admin").id
        assert f"user {admin_id}," in slow[0] and "SQL statements" in slow[0]
        assert all("pg_sleep(5)" in line for line in slow)  # the statement that was stopped is named
    finally:
        dispose(application)
