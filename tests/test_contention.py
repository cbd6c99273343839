"""Contention, through a real threaded server on SQLite and on PostgreSQL: saves based on one
version of a record have exactly one winner on every write path (the API's PUT, the edit form,
workflow actions); the others are told what the winner changed (409), nobody gets a 500, and the
trail holds one update. On SQLite, pages keep answering while another connection writes, and a
save that cannot get the write lock in time is told the database is busy (503), not a 500."""

from __future__ import annotations

import http.cookiejar
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from app.access.accounts import add_user
from app.record.tables import Transition
from tests.conftest import ADMIN_PASSWORD, api_token, csrf_token, login
from tests.migration_helpers import database

PASSWORD = "contention-Pass-1"  # noqa: S105 - test-only
SALES = "contention_sales"
EDITORS = 6  # saves at once, all based on the same version
ROUNDS = 3  # a race won by luck once must be won by the rules every time


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` behind werkzeug's threaded server: one thread per request, as under load."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:  # a 302 is an answer to look at
        return None


def browser() -> urllib.request.OpenerDirector:
    """A client with its own cookies (its own session) that does not follow redirects."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _Stay())


def call(opener: urllib.request.OpenerDirector, method: str, url: str, body: Any = None, form: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, body, Location) of one request."""
    data, kind = (json.dumps(body).encode(), "application/json") if body is not None else (
        (urlencode(form).encode(), "application/x-www-form-urlencoded") if form is not None else (None, ""))
    request = urllib.request.Request(url, data=data, method=method, headers={**({"Content-Type": kind} if kind else {}), **(headers or {})})
    try:
        with opener.open(request, timeout=120) as r:
            return r.status, r.read().decode(), r.headers.get("Location", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Location", "")


def at_once(n: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(0)`` … ``work(n - 1)`` on n threads released together."""
    start = threading.Barrier(n)

    def run(i: int) -> Any:
        start.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def raw(app: Any, sql: str, **params: Any) -> list[Any]:
    with app.app_context():
        session = app.extensions["crm"].db.session
        try:
            return [tuple(r) for r in session.execute(sa.text(sql), params).all()]
        finally:
            session.remove()


def fresh_app(url: str, **config: Any) -> Any:
    from app import create_app
    from app.migrate.create import create_schema

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "RATELIMIT_ENABLED": False, **config})
    create_schema(app)
    return app


def dispose(app: Any) -> None:
    with app.app_context():
        app.extensions["crm"].db.session.remove()
        app.extensions["crm"].db.engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def office(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """(app, its address): the shared SQLite app, or one on a fresh PostgreSQL schema; a salesperson."""
    if request.param == "sqlite":
        app = request.getfixturevalue("app")
        add_user(app, SALES, ["业务员"], PASSWORD, departments=["销售一部"])
        with serving(app) as url:
            yield app, url
        return
    with database("postgres", tmp_path_factory.mktemp("pg")) as db_url:
        from app.access.accounts import create_first_admin

        app = fresh_app(db_url)
        create_first_admin(app, "admin", ADMIN_PASSWORD)
        add_user(app, SALES, ["业务员"], PASSWORD, departments=["销售一部"])
        try:
            with serving(app) as url:
                yield app, url
        finally:
            dispose(app)


def new_customer(app: Any, h: dict[str, str], name: str) -> tuple[int, int]:
    """(id, version) of a new customer."""
    client = app.test_client()
    r = client.post("/api/v1/customer/", json={"name": f"{name}{time.time_ns()}", "urgency": "normal"}, headers=h)
    assert r.status_code == 201, r.text
    pk = int(r.json["id"])
    return pk, int(client.get(f"/api/v1/customer/{pk}", headers=h).json["result"]["version"])


def input_value(page: str, name: str) -> str:
    found = (re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
             or re.search(rf'<input[^>]*value="([^"]*)"[^>]*name="{name}"', page))
    assert found is not None, f"no {name} in the form"
    return found.group(1)


def updates_of(app: Any, pk: int) -> list[tuple[dict[str, Any], int]]:
    rows = raw(app, "SELECT changes, version FROM crm_audit WHERE entity = 'customer' AND record_id = :i AND action = 'update' "
                    "ORDER BY id", i=pk)
    return [(json.loads(changes), version) for changes, version in rows]


def test_parallel_api_saves_of_one_version_have_exactly_one_winner(office: tuple[Any, str]) -> None:
    app, url = office
    h = api_token(app.test_client(), SALES, PASSWORD)
    for _ in range(ROUNDS):
        pk, version = new_customer(app, h, "并发接口客户")

        def save(i: int, pk: int = pk, version: int = version) -> tuple[int, str, str]:
            return call(browser(), "PUT", f"{url}/api/v1/customer/{pk}", body={"notes": f"编辑者{i}", "version": version}, headers=h)

        answers = at_once(EDITORS, save)
        codes = [code for code, _, _ in answers]
        assert sorted(codes) == [200] + [409] * (EDITORS - 1), [(code, body[:200]) for code, body, _ in answers]
        winner = f"编辑者{codes.index(200)}"
        assert raw(app, "SELECT notes, version FROM customer WHERE id = :i", i=pk) == [(winner, version + 1)]
        assert updates_of(app, pk) == [({"notes": [None, winner]}, version + 1)]  # one update: the winner's
        for code, body, _ in answers:  # each of the others is told the record's version now and what the winner changed
            if code == 409:
                told = json.loads(body)
                assert told["version"] == version + 1 and [c["changes"] for c in told["changes"]] == [{"notes": [None, winner]}]


def test_parallel_form_saves_of_one_version_have_exactly_one_winner(office: tuple[Any, str]) -> None:
    app, url = office
    h = api_token(app.test_client(), SALES, PASSWORD)
    editors = []
    for _ in range(EDITORS):  # each signed in on its own browser
        b = browser()
        token = csrf_token(call(b, "GET", f"{url}/login/")[1])
        assert call(b, "POST", f"{url}/login/", form={"username": SALES, "password": PASSWORD, "csrf_token": token})[0] == 302
        editors.append(b)
    for _ in range(ROUNDS):
        pk, version = new_customer(app, h, "并发表单客户")
        forms = []
        for i, b in enumerate(editors):  # everyone opens the form on the same version …
            page = call(b, "GET", f"{url}/customerview/edit/{pk}")[1]
            assert input_value(page, "crm_version") == str(version)
            forms.append({"csrf_token": csrf_token(page), "crm_version": str(version), "name": input_value(page, "name"),
                          "urgency": "normal", "notes": f"表单编辑者{i}"})

        def save(i: int, pk: int = pk, forms: list[dict[str, str]] = forms) -> tuple[int, str]:  # … and saves at once
            code, body, location = call(editors[i], "POST", f"{url}/customerview/edit/{pk}", form=forms[i])
            if code == 302:  # saved, or refused after the race: the next page says which
                body += call(editors[i], "GET", location if location.startswith("http") else f"{url}{location}")[1]
            return code, body

        answers = at_once(EDITORS, save)
        assert all(code in (200, 302) for code, _ in answers), [code for code, _ in answers]
        refused = [i for i, (_, body) in enumerate(answers) if "此记录已被他人修改" in body]
        assert len(refused) == EDITORS - 1, [(code, re.findall(r"alert[^>]*>([^<]+)", body)) for code, body in answers]
        winner = next(f"表单编辑者{i}" for i in range(EDITORS) if i not in refused)
        assert raw(app, "SELECT notes, version FROM customer WHERE id = :i", i=pk) == [(winner, version + 1)]
        assert [(changes.get("notes"), v) for changes, v in updates_of(app, pk)] == [([None, winner], version + 1)]


def test_parallel_workflow_actions_have_exactly_one_winner(office: tuple[Any, str]) -> None:
    app, url = office
    h = api_token(app.test_client(), SALES, PASSWORD)
    client = app.test_client()
    for _ in range(ROUNDS):
        pk, _version = new_customer(app, h, "并发流程客户")
        r = client.post("/api/v1/visit_request/", json={"subject": "并发提交", "customer": pk, "visit_at": "2026-11-25",
                                                         "purpose": "first_visit", "goal": "介绍公司产品"}, headers=h)
        assert r.status_code == 201, r.text
        visit = int(r.json["id"])

        def submit(_i: int, visit: int = visit) -> tuple[int, str, str]:
            return call(browser(), "POST", f"{url}/api/v1/visit_request/{visit}/transition", body={"action": "提交审批"}, headers=h)

        codes = sorted(code for code, _, _ in at_once(EDITORS, submit))
        assert codes == [200] + [409] * (EDITORS - 1), codes
        t = Transition.__table__
        taken = raw(app, f"SELECT action FROM {t.name} WHERE entity = 'visit_request' AND record_id = :i", i=visit)
        assert taken == [("提交审批",)]


def test_parallel_balancing_gives_each_ownerless_record_once(office: tuple[Any, str]) -> None:
    """平均分配 by two managers at once: each record without an active owner is given once (one
    new version, one line in its trail), not once by each."""
    app, url = office
    manager = f"contention_manager_{time.time_ns()}"
    add_user(app, manager, ["销售经理"], PASSWORD, departments=["销售一部"])
    gone = add_user(app, f"contention_gone_{time.time_ns()}", ["业务员"], PASSWORD, departments=["销售一部"])
    h, hm = api_token(app.test_client(), SALES, PASSWORD), api_token(app.test_client(), manager, PASSWORD)
    for _ in range(ROUNDS):
        made = dict(new_customer(app, h, "并发分配客户") for _ in range(4))
        marks = ", ".join(str(pk) for pk in made)
        with app.app_context():
            session = app.extensions["crm"].db.session
            session.execute(sa.text(f"UPDATE customer SET owner_id = :u WHERE id IN ({marks})"), {"u": gone})
            session.execute(sa.text("UPDATE ab_user SET active = :f WHERE id = :u"), {"f": False, "u": gone})
            session.commit()
            session.remove()
        answers = at_once(EDITORS, lambda _i: call(browser(), "POST", f"{url}/api/v1/customer/balance", headers=hm))
        assert [code for code, _, _ in answers] == [200] * EDITORS, [(code, body[:200]) for code, body, _ in answers]
        assert sorted(raw(app, f"SELECT id, version FROM customer WHERE id IN ({marks}) AND owner_id <> :u", u=gone)) == \
            sorted((pk, version + 1) for pk, version in made.items())
        given = raw(app, f"SELECT record_id FROM crm_audit WHERE entity = 'customer' AND record_id IN ({marks}) AND action = 'update'")
        assert sorted(given) == sorted((pk,) for pk in made)
        with app.app_context():
            session = app.extensions["crm"].db.session
            session.execute(sa.text("UPDATE ab_user SET active = :t WHERE id = :u"), {"t": True, "u": gone})
            session.commit()
            session.remove()


def test_sqlite_pages_answer_while_another_connection_writes(tmp_path: Path) -> None:
    """WAL: a page reads while an import's transaction writes (its cache spilled to disk, as a big
    one's is); a save waits for the write lock up to the busy timeout, then is told the database
    is busy (503, nothing saved) — and goes through once the writer is done."""
    from app.access.accounts import create_first_admin

    app = fresh_app(f"sqlite:///{tmp_path / 'crm.sqlite'}", CRM_SQLITE_BUSY_TIMEOUT_MS=300)
    try:
        create_first_admin(app, "admin", ADMIN_PASSWORD)
        client = app.test_client()
        h = api_token(client, "admin", ADMIN_PASSWORD)
        pk, version = new_customer(app, h, "忙时客户")
        login(client, "admin", ADMIN_PASSWORD)
        with app.app_context():
            engine = app.extensions["crm"].db.engine
        with engine.connect() as writer:
            writer.exec_driver_sql("PRAGMA cache_size = 8")  # a few pages: the write goes to disk at once
            writer.exec_driver_sql("CREATE TABLE ballast (x TEXT)")
            writer.commit()
            writing = writer.begin()
            try:
                writer.execute(sa.text("INSERT INTO ballast VALUES (:x)"), [{"x": "x" * 4000}] * 500)
                started = time.monotonic()
                for path in ("/customerview/list/", f"/customerview/show/{pk}", f"/api/v1/customer/{pk}"):
                    page = client.get(path, headers=h if path.startswith("/api/") else {})
                    assert page.status_code == 200, (path, page.status_code)
                assert time.monotonic() - started < 3  # no page waited for the writer
                busy = client.put(f"/api/v1/customer/{pk}", json={"notes": "忙时修改", "version": version}, headers=h)
                assert busy.status_code == 503 and "数据库正忙" in busy.json["message"], (busy.status_code, busy.text[:300])
                form = client.get(f"/customerview/edit/{pk}").text
                posted = client.post(f"/customerview/edit/{pk}", data={"csrf_token": csrf_token(form), "crm_version": str(version),
                                                                       "name": input_value(form, "name"), "urgency": "normal",
                                                                       "notes": "忙时表单"}, follow_redirects=True)
                assert posted.status_code == 200 and "数据库正忙" in posted.text
            finally:
                writing.rollback()
        assert raw(app, "SELECT notes, version FROM customer WHERE id = :i", i=pk) == [(None, version)]  # nothing saved
        done = client.put(f"/api/v1/customer/{pk}", json={"notes": "忙后修改", "version": version}, headers=h)
        assert done.status_code == 200, done.text
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 300
    finally:
        dispose(app)


def test_a_confidential_read_waits_for_its_audit_row_and_is_never_shown_without_it(tmp_path: Path) -> None:
    """Every read of a confidential record is put on record before the record leaves the server.
    While another process's writer holds SQLite's write lock past the busy timeout, the record page,
    its history and the API's GET answer 503 (busy, try again) without the confidential value and
    without a 500; once the writer is done, the read shows it and its row is there."""
    import subprocess
    import sys

    from app.access.accounts import create_first_admin

    database = tmp_path / "crm.sqlite"
    app = fresh_app(f"sqlite:///{database}", CRM_SQLITE_BUSY_TIMEOUT_MS=300)
    try:
        create_first_admin(app, "admin", ADMIN_PASSWORD)
        client = app.test_client()
        h = api_token(client, "admin", ADMIN_PASSWORD)
        customer = client.post("/api/v1/customer/", json={"name": "保密客户", "urgency": "normal"}, headers=h).json["id"]
        made = client.post("/api/v1/confidential_formula/", headers=h, json={
            "product_name": "配方产品", "customer": customer, "formula_version": 1, "status": "active",
            "formula_content": "绝密成分表", "review_due": "2027-01-01"})
        assert made.status_code == 201, made.text
        pk = made.json["id"]
        login(client, "admin", ADMIN_PASSWORD)
        reads = "SELECT count(*) FROM crm_audit WHERE entity = 'confidential_formula' AND action = 'read'"
        # another process holds the write lock, as a big import does, until told to let go
        code = ("import sqlite3, sys; w = sqlite3.connect(sys.argv[1], isolation_level=None); w.execute('BEGIN IMMEDIATE'); "
                "w.execute(\"INSERT INTO crm_audit (entity, record_id, action, at, changes) VALUES ('x', 0, 'create', '2026-01-01', '{}')\"); "
                "print('locked', flush=True); sys.stdin.read(); w.execute('ROLLBACK')")
        writer = subprocess.Popen([sys.executable, "-c", code, str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # noqa: S603
        try:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
            for path in (f"/confidentialformulaview/show/{pk}", f"/confidentialformulaview/history/{pk}"):
                page = client.get(path)
                assert page.status_code == 503 and "保密记录的每次查看都要登记" in page.text, (path, page.status_code)
                assert "绝密成分表" not in page.text
            answer = client.get(f"/api/v1/confidential_formula/{pk}", headers=h)
            assert answer.status_code == 503 and "这次查看无法登记" in answer.json["message"], (answer.status_code, answer.text[:300])
            assert "绝密成分表" not in answer.text
        finally:
            writer.communicate("", timeout=30)
        assert raw(app, reads) == [(0,)]  # nothing was shown, nothing is on record
        answer = client.get(f"/api/v1/confidential_formula/{pk}", headers=h)
        assert answer.status_code == 200 and answer.json["result"]["formula_content"] == "绝密成分表"
        assert "绝密成分表" in client.get(f"/confidentialformulaview/show/{pk}").text
        assert raw(app, reads) == [(2,)]
    finally:
        dispose(app)


def test_each_request_loads_into_its_own_record_on_a_shared_schema(app: Any) -> None:
    """FAB shares one schema per API between requests, and marshmallow-sqlalchemy keeps the record
    being loaded on it: another request's PUT saw it (and wrote its values onto it)."""
    from app.web.api import CrmModelRestApi

    api = next(v for v in app.extensions["crm"].appbuilder.baseviews if isinstance(v, CrmModelRestApi) and v.entity == "customer")
    schema = api.edit_model_schema
    schema.instance = mine = object()
    seen: list[Any] = []
    other = threading.Thread(target=lambda: seen.append(schema.instance))
    other.start()
    other.join()
    try:
        assert seen == [None] and schema.instance is mine
    finally:
        schema.instance = None
