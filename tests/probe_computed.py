"""Computed fields exercised in a fresh interpreter (one process serves one generated app):
``python -m tests.probe_computed NAME`` with CRM_WORKBOOK / CRM_GENERATED_DIR / CRM_DATABASE_URL
set prints a JSON result (tests/test_computed.py runs them).

The workbook is the library of tests/workbooks.py with the formulas of :func:`computed_library`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import threading
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.probes import _app
from tests.workbooks import library_sheets, write_workbook

Sheets = dict[str, list[dict[str, Any]]]
ADMIN = {"username": "admin", "password": "admin-Pass-123", "provider": "db"}


def computed_library() -> Sheets:
    """The library with a roll-up of each kind on books and members, lookups, a formula, a
    formula of dates, and a computed default (due 14 days after borrowed)."""
    sheets = library_sheets()
    sheets["fields"] += [
        {"entity": "book", "name": "loan_count", "label": "借阅次数", "type": "integer", "formula": "count(loan)", "list": "yes"},
        {"entity": "book", "name": "open_loans", "label": "未还", "type": "integer", "formula": "count(loan where not returned)"},
        {"entity": "book", "name": "last_due", "label": "最晚应还", "type": "date", "formula": "max(loan.due_on)"},
        {"entity": "book", "name": "fee_total", "label": "罚金合计", "type": "money", "formula": "sum(loan.fee where returned)"},
        {"entity": "book", "name": "fee_avg", "label": "平均罚金", "type": "decimal", "formula": "avg(loan.fee)"},
        {"entity": "loan", "name": "borrowed_on", "label": "借出日期", "type": "date", "default": "today"},
        {"entity": "loan", "name": "fee", "label": "罚金", "type": "money"},
        {"entity": "loan", "name": "book_title", "label": "书名", "type": "string", "formula": "book.title"},
        {"entity": "loan", "name": "big_book", "label": "大部头页数", "type": "integer", "formula": "if(book.pages > 500, book.pages, 0)"},
        {"entity": "loan", "name": "tag", "label": "标签", "type": "string", "formula": "concat(book.title, ' / ', member.full_name)"},
        {"entity": "loan", "name": "remind_on", "label": "提醒日", "type": "date", "formula": "due_on - 2 days"},
        {"entity": "loan", "name": "fee_rounded", "label": "罚金取整", "type": "money", "formula": "round(fee * 1.5, 1)"},
        {"entity": "loan", "name": "days_out", "label": "借出天数", "type": "integer", "formula": "days_since(borrowed_on)"},
        {"entity": "member", "name": "loans", "label": "借阅数", "type": "integer", "formula": "count(loan)"},
        {"entity": "member", "name": "open_total", "label": "在借", "type": "integer", "formula": "count(loan where not returned)"},
    ]
    sheets["fields"].append({"entity": "book", "name": "popularity", "label": "热度", "type": "choice", "choices": "pop", "readonly": "yes"})
    sheets["choices"] += [{"list": "pop", "value": "hot", "label": "热门"}, {"list": "pop", "value": "cold", "label": "冷门"}]
    sheets["grading"] = [{"entity": "book", "field": "popularity", "grade": "hot", "order": 1, "condition": "open_loans >= 2"},
                         {"entity": "book", "field": "popularity", "grade": "cold", "order": 2}]
    for f in sheets["fields"]:
        if f["entity"] == "loan" and f["name"] == "due_on":
            f["default"] = "borrowed_on + 14 days"
    return sheets


def write_computed_library(path: Path) -> Path:
    return write_workbook(path, computed_library())


def _token(c: Any) -> dict[str, str]:
    t = c.post("/api/v1/security/login", json=ADMIN).json
    return {"Authorization": f"Bearer {t['access_token']}"}


def _tables() -> dict[str, sa.Table]:
    from flask_appbuilder import Model

    return dict(Model.metadata.tables)


def mismatches(conn: sa.Connection) -> list[str]:
    """Every stored computed value that differs from the aggregate or lookup worked out from scratch in Python."""
    t = _tables()
    books = {r.id: r for r in conn.execute(sa.select(t["book"]))}
    members = {r.id: r for r in conn.execute(sa.select(t["member"]))}
    loans = list(conn.execute(sa.select(t["loan"])))
    out = []

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
            return abs(Decimal(str(a)) - Decimal(str(b))) < Decimal("0.01")
        return a == b

    for b in books.values():
        mine = [x for x in loans if x.book_id == b.id]
        fees = [x.fee for x in mine if x.fee is not None]
        want = {"loan_count": len(mine), "open_loans": sum(1 for x in mine if not x.returned),
                "last_due": max((x.due_on for x in mine if x.due_on is not None), default=None),
                "fee_total": sum((x.fee for x in mine if x.returned and x.fee is not None), Decimal(0)),
                "fee_avg": (sum(fees, Decimal(0)) / len(fees)) if fees else None,
                "popularity": "hot" if sum(1 for x in mine if not x.returned) >= 2 else "cold"}  # graded on its roll-up
        out += [f"book {b.id} {k}: stored {getattr(b, k)!r}, counted {v!r}" for k, v in want.items() if not same(getattr(b, k), v)]
    for m in members.values():
        mine = [x for x in loans if x.member_id == m.id]
        want = {"loans": len(mine), "open_total": sum(1 for x in mine if not x.returned)}
        out += [f"member {m.id} {k}: stored {getattr(m, k)!r}, counted {v!r}" for k, v in want.items() if not same(getattr(m, k), v)]
    for x in loans:
        b, m = books[x.book_id], members[x.member_id]
        want = {"book_title": b.title, "big_book": b.pages if (b.pages or 0) > 500 else 0, "tag": f"{b.title} / {m.full_name}",
                "remind_on": x.due_on - dt.timedelta(days=2) if x.due_on else None,
                "fee_rounded": None if x.fee is None else (Decimal(str(x.fee)) * Decimal("1.5")).quantize(Decimal("0.1"), ROUND_HALF_UP)}
        out += [f"loan {x.id} {k}: stored {getattr(x, k)!r}, computed {v!r}" for k, v in want.items() if not same(getattr(x, k), v)]
    return out


def probe_property() -> dict[str, Any]:
    """Random sequences of loan operations through every write path; after each, every roll-up
    and lookup equals what is worked out from scratch."""
    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st

    from app.io.importer import import_file

    app = _app()
    crm = app.extensions["crm"]
    with app.app_context():
        engine = crm.db.engine
    models = crm.generated.models.MODELS
    c = app.test_client()
    h = _token(c)
    book_ids = [c.post("/api/v1/book/", json={"title": f"书{i}", "pages": p}, headers=h).json["id"] for i, p in enumerate((120, 800, 501))]
    member_ids = [c.post("/api/v1/member/", json={"full_name": f"读者{i}"}, headers=h).json["id"] for i in range(2)]
    folder = Path(tempfile.mkdtemp(prefix="crm-computed-"))
    stats: dict[str, int] = {}

    def loan_ids() -> list[int]:
        with app.app_context():
            return list(crm.db.session.execute(sa.select(models["loan"].id).order_by(models["loan"].id)).scalars())

    def run(op: tuple[Any, ...]) -> None:
        kind = op[0]
        stats[kind] = stats.get(kind, 0) + 1
        ids = loan_ids()
        if kind == "orm_add":
            _k, b, m, returned, fee = op
            with app.app_context():
                crm.db.session.add(models["loan"](book_id=book_ids[b], member_id=member_ids[m], returned=returned, fee=fee))
                crm.db.session.commit()
        elif kind == "api_add":
            _k, b, m, returned, fee = op
            r = c.post("/api/v1/loan/", json={"book": book_ids[b], "member": member_ids[m], "returned": returned, "fee": fee}, headers=h)
            assert r.status_code == 201, r.text
        elif kind == "import_add":
            rows = [{"图书": f"书{b}", "读者": f"读者{m}", "已归还": "是" if returned else "否", "罚金": fee} for b, m, returned, fee in op[1]]
            path = write_workbook(folder / f"import{stats[kind]}.xlsx", {"loan": rows})
            with app.app_context():
                report = import_file(app, "loan", path)
            assert report.committed and not report.errors, report.first_errors()
        elif not ids:
            return
        elif kind == "orm_update":
            _k, pick, returned, fee = op
            with app.app_context():
                obj = crm.db.session.get(models["loan"], ids[pick % len(ids)])
                obj.returned, obj.fee = returned, fee
                crm.db.session.commit()
        elif kind == "orm_move":
            _k, pick, b, m = op
            with app.app_context():
                obj = crm.db.session.get(models["loan"], ids[pick % len(ids)])
                obj.book = crm.db.session.get(models["book"], book_ids[b])  # through the relationship, as a form does
                obj.member_id = member_ids[m]
                crm.db.session.commit()
        elif kind == "api_move":
            _k, pick, b, returned = op
            lid = ids[pick % len(ids)]
            version = c.get(f"/api/v1/loan/{lid}", headers=h).json["result"]["version"]
            r = c.put(f"/api/v1/loan/{lid}", json={"book": book_ids[b], "returned": returned, "version": version}, headers=h)
            assert r.status_code == 200, r.text
        elif kind == "orm_delete":
            with app.app_context():
                crm.db.session.delete(crm.db.session.get(models["loan"], ids[op[1] % len(ids)]))
                crm.db.session.commit()
        elif kind == "api_delete":
            r = c.delete(f"/api/v1/loan/{ids[op[1] % len(ids)]}", headers=h)
            assert r.status_code == 200, r.text
        elif kind == "rename_book":
            _k, b, pages = op
            version = c.get(f"/api/v1/book/{book_ids[b]}", headers=h).json["result"]["version"]
            r = c.put(f"/api/v1/book/{book_ids[b]}", json={"title": f"书{b}", "pages": pages, "version": version}, headers=h)
            assert r.status_code == 200, r.text

    book, member = st.integers(0, 2), st.integers(0, 1)
    fee = st.one_of(st.none(), st.decimals(min_value=0, max_value=500, places=2).map(float))
    pick = st.integers(0, 1000)
    ops = st.one_of(
        st.tuples(st.just("orm_add"), book, member, st.booleans(), fee),
        st.tuples(st.just("api_add"), book, member, st.booleans(), fee),
        st.tuples(st.just("import_add"), st.lists(st.tuples(book, member, st.booleans(), fee), min_size=1, max_size=4)),
        st.tuples(st.just("orm_update"), pick, st.booleans(), fee),
        st.tuples(st.just("orm_move"), pick, book, member),
        st.tuples(st.just("api_move"), pick, book, st.booleans()),
        st.tuples(st.just("orm_delete"), pick),
        st.tuples(st.just("api_delete"), pick),
        st.tuples(st.just("rename_book"), book, st.integers(1, 1200)),
    )
    checked = {"sequences": 0}

    @settings(max_examples=int(sys.argv[2]) if len(sys.argv) > 2 else 30, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(ops, min_size=1, max_size=6))
    # every kind of write at least once, whatever the random draws (the test asserts each was met)
    @example([("orm_add", 0, 0, True, None), ("api_add", 1, 1, False, 10.0), ("import_add", [(2, 0, True, None)]),
              ("orm_update", 0, True, 5.0), ("orm_move", 0, 1, 0), ("api_move", 1, 2, True), ("orm_delete", 0),
              ("api_delete", 0), ("rename_book", 0, 7)])
    def sequences(seq: list[tuple[Any, ...]]) -> None:
        checked["sequences"] += 1
        for op in seq:
            run(op)
            with engine.connect() as conn:
                wrong = mismatches(conn)
            assert not wrong, (op, wrong[:5])

    sequences()
    with engine.connect() as conn:
        loans = conn.execute(sa.select(sa.func.count()).select_from(_tables()["loan"])).scalar_one()
    return {"sequences": checked["sequences"], "ops": stats, "loans": loans}


def probe_paths() -> dict[str, Any]:
    """Read-only on every path, the computed default on create (API, import, form) and the
    add form's preview of it, the scheduler's refresh of a formula of today."""
    from app.io.importer import ImportFileError, import_file
    from app.messaging.schedules import tick

    app = _app()
    crm = app.extensions["crm"]
    with app.app_context():
        engine = crm.db.engine
    c = app.test_client()
    h = _token(c)
    out: dict[str, Any] = {}
    b = c.post("/api/v1/book/", json={"title": "红楼梦", "pages": 1606}, headers=h).json["id"]
    m = c.post("/api/v1/member/", json={"full_name": "张三"}, headers=h).json["id"]
    r = c.post("/api/v1/book/", json={"title": "写公式", "loan_count": 5}, headers=h)
    out["api_write"] = [r.status_code, r.json]
    r = c.post("/api/v1/loan/", json={"book": b, "member": m, "borrowed_on": "2026-03-02"}, headers=h)
    out["api_default"] = c.get(f"/api/v1/loan/{r.json['id']}", headers=h).json["result"]["due_on"]
    r = c.post("/api/v1/loan/", json={"book": b, "member": m, "borrowed_on": "2026-03-02", "due_on": "2026-03-05"}, headers=h)
    out["api_given"] = c.get(f"/api/v1/loan/{r.json['id']}", headers=h).json["result"]["due_on"]
    folder = Path(tempfile.mkdtemp(prefix="crm-computed-"))
    path = write_workbook(folder / "loans.xlsx", {"loan": [{"图书": "红楼梦", "读者": "张三", "借出日期": "2026-04-01"}]})
    with app.app_context():
        report = import_file(app, "loan", path)
    out["import_default"] = [report.inserted, report.errors and report.first_errors()]
    with engine.connect() as conn:
        t = _tables()["loan"]
        out["import_due"] = str(conn.execute(sa.select(t.c.due_on).order_by(t.c.id.desc()).limit(1)).scalar_one())
    path = write_workbook(folder / "bad.xlsx", {"loan": [{"图书": "红楼梦", "读者": "张三", "书名": "改书名"}]})
    try:
        with app.app_context():
            report = import_file(app, "loan", path)
        out["import_write"] = ["imported", report.inserted]
    except ImportFileError as exc:
        out["import_write"] = ["refused", [str(p) for p in exc.problems]]
    with engine.begin() as conn:  # a loan borrowed long ago, its days_out stale until the scheduler's pass
        t = _tables()["loan"]
        lid = conn.execute(sa.select(sa.func.max(t.c.id))).scalar_one()
        conn.execute(sa.update(t).where(t.c.id == lid).values(borrowed_on=dt.date(2026, 1, 1), days_out=0))
    tick(app, dt.datetime(2026, 1, 11, 9, 0))
    with engine.connect() as conn:
        out["days_out_after_tick"] = conn.execute(sa.select(t.c.days_out).where(t.c.id == lid)).scalar_one()
    return out


def probe_concurrent() -> dict[str, Any]:
    """Two sessions add a loan of the same book at once, many times: the count is exact."""
    app = _app()
    crm = app.extensions["crm"]
    with app.app_context():
        engine = crm.db.engine
    models = crm.generated.models.MODELS
    c = app.test_client()
    h = _token(c)
    book = c.post("/api/v1/book/", json={"title": "并发", "pages": 10}, headers=h).json["id"]
    member = c.post("/api/v1/member/", json={"full_name": "并发读者"}, headers=h).json["id"]
    rounds, waited = 8, []
    errors: list[str] = []

    def add(first: bool, barrier: threading.Barrier) -> None:
        try:
            with app.app_context():
                s = crm.db.session
                if first:  # writes and holds its transaction open while the other one writes
                    s.add(models["loan"](book_id=book, member_id=member, returned=False))
                    s.flush()
                    barrier.wait()
                    time.sleep(0.3)
                    s.commit()
                else:
                    barrier.wait()
                    started = time.monotonic()
                    s.add(models["loan"](book_id=book, member_id=member, returned=False))
                    s.flush()
                    waited.append(time.monotonic() - started)
                    s.commit()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(repr(exc))

    for _ in range(rounds):
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=add, args=(first, barrier)) for first in (True, False)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
    with engine.connect() as conn:
        t = _tables()
        stored = conn.execute(sa.select(t["book"].c.loan_count, t["book"].c.open_loans).where(t["book"].c.id == book)).one()
        counted = conn.execute(sa.select(sa.func.count()).select_from(t["loan"]).where(t["loan"].c.book_id == book)).scalar_one()
        member_loans = conn.execute(sa.select(t["member"].c.loans).where(t["member"].c.id == member)).scalar_one()
    return {"stored": list(stored), "counted": counted, "member_loans": member_loans, "errors": errors,
            "dialect": engine.dialect.name, "min_wait": min(waited) if waited else None}


def probe_browser() -> dict[str, Any]:
    """The add form of a loan in Chromium at 1440 and 390 px: the due date fills in from the
    borrowed date (its computed default), computed fields are not asked; a book's page shows its
    roll-ups. Screenshots go to the folder given as the second argument."""
    import shutil

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    shots = Path(sys.argv[2])
    shots.mkdir(parents=True, exist_ok=True)
    app = _app()
    c = app.test_client()
    h = _token(c)
    book = c.post("/api/v1/book/", json={"title": "红楼梦", "pages": 1606}, headers=h).json["id"]
    member = c.post("/api/v1/member/", json={"full_name": "张三"}, headers=h).json["id"]
    c.post("/api/v1/loan/", json={"book": book, "member": member, "borrowed_on": "2026-03-02", "fee": 2}, headers=h)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    server = f"http://127.0.0.1:{srv.server_port}"
    out: dict[str, Any] = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox", "--disable-gpu"])
        for width, height in ((1440, 900), (390, 844)):
            context = b.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
            page = context.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
            errors: list[str] = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{server}/login/")
            page.fill("#username", "admin")
            page.fill("#password", "admin-Pass-123")
            page.click("button[type=submit], input[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(f"{server}/loanview/add")
            page.wait_for_load_state("networkidle")
            first = page.input_value("[name=due_on]")
            page.fill("[name=borrowed_on]", "2026-05-04")
            page.dispatch_event("[name=borrowed_on]", "change")
            # polled from here: wait_for_function's own polling evaluates a string, which the strict CSP refuses
            for _ in range(50):
                if page.input_value("[name=due_on]") == "2026-05-18":
                    break
                page.wait_for_timeout(100)
            filled = page.input_value("[name=due_on]")
            page.screenshot(path=str(shots / f"loan-add-{width}.png"), full_page=True)
            asked = [n for n in ("book_title", "tag", "remind_on", "days_out") if page.locator(f"[name={n}]").count()]
            page.goto(f"{server}/bookview/show/{book}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(shots / f"book-show-{width}.png"), full_page=True)
            out[str(width)] = {"first": first, "asked": asked, "errors": errors, "book_page": page.inner_text("body")[:4000],
                               "filled": filled}
            context.close()
        b.close()
    srv.shutdown()
    return out


if __name__ == "__main__":
    result = globals()[f"probe_{sys.argv[1]}"]()
    print(json.dumps(result, ensure_ascii=False, default=str))
