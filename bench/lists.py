"""Benchmark: generated lists on PostgreSQL with 1,000,000 customers and 5,000,000 related rows.

    CRM_TEST_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/test \\
        python -m bench.lists [--customers 1000000] [--related 5000000] [--keep] [--requests 50]

Loads the shipped workbook's demo data (``crm demo-data``'s loader, timed) into its own schema
``crm_bench_lists`` of the test database — with ``--keep`` the schema is kept for the next run and
reused when it holds the asked row counts; without, it is dropped at the end.

For each page — list page 1, a filtered page (grade = A, region = east), a sorted page, a deep
page (keyset "next page" from the middle of the list), a search (客户名称 contains 华瑞纺织), a
record page with its related lists, the contact form (its customer dropdown over 1M rows) and the
dropdown's lookup as the user types, and the REST list (page 1, and ``after=`` from the middle) —
as an administrator and as an ``own``-scoped salesperson:
p50/p95 server time over N requests through the Flask test client, and the floor: the same data
SQL the page ran (captured, then replayed N times on a raw psycopg2 connection; the security
manager's permission look-ups are not data and are left out). Ratio = server p50 / floor p50.
Targets (issue 9): p95 < 150 ms and ratio ≤ 3 for every page.

Then a load test: ``crm serve --workers 2`` on 127.0.0.1 and ``wrk`` (Debian) against the list
page for a bounded time (``--wrk-seconds``): requests/s and p99.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_postgres_schema, postgres_app, postgres_url, replay  # noqa: E402

SCHEMA = "crm_bench_lists"
ADMIN, ADMIN_PASSWORD = "bench_admin", "bench-Pass-123"  # noqa: S105 - a throwaway schema
SALES_ROLE = "业务员"
NOT_DATA = re.compile(r"ab_permission|ab_view_menu|ab_role|ab_user_role|ab_group|SAVEPOINT|RELEASE|set_config|current_setting|"
                      r"crm_notification|crm_outbox|crm_audit|crm_cache_version", re.I)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def loaded(app: Any, customers: int, related: int) -> bool:
    from app.ops.demo import demo_plan

    with app.app_context():
        crm = app.extensions["crm"]
        with crm.db.engine.connect() as conn:
            for e, n in demo_plan(crm.spec, customers, related):
                if conn.execute(sa.text(f'SELECT count(*) FROM "{e.name}"')).scalar() != n:  # noqa: S608 - names from the spec
                    return False
    return True


CONFIG: dict[str, Any] = {"TESTING": True, "WTF_CSRF_ENABLED": False}


def load(customers: int, related: int, keep: bool) -> Any:
    app = postgres_app(SCHEMA, **CONFIG)
    if keep and loaded(app, customers, related):
        print(f"reusing schema {SCHEMA} ({customers} customers, {related} related rows)", flush=True)
        return app
    drop_postgres_schema(SCHEMA)
    app = postgres_app(SCHEMA, **CONFIG)
    from app.ops.demo import make_demo_data

    print(f"loading {customers} customers + {related} related rows (crm demo-data's loader) …", flush=True)
    started = time.perf_counter()
    make_demo_data(app, customers, related=related)
    print(f"demo data loaded in {time.perf_counter() - started:.0f} s", flush=True)
    return app


class Capture:
    """The data statements of one request (SQLAlchemy events), for the floor replay."""

    def __init__(self, engine: sa.Engine):
        self.statements: list[tuple[str, Any]] = []
        self.on = False
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if self.on:
            self.statements.append((statement, params))

    def data(self) -> list[tuple[str, Any]]:
        return [(s, p) for s, p in self.statements if not NOT_DATA.search(s)]


def measure(client: Any, capture: Capture, raw: Any, url: str, n: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    for _ in range(3):
        r = client.get(url, headers=headers)
        assert r.status_code == 200, (url, r.status_code)
    capture.statements.clear()
    capture.on = True
    client.get(url, headers=headers)
    capture.on = False
    statements = capture.data()
    server = []
    for _ in range(n):
        t = time.perf_counter()
        client.get(url, headers=headers)
        server.append(time.perf_counter() - t)
    floor = []
    with raw.cursor() as cur:
        for _ in range(n):
            floor.append(replay(cur, statements))
    raw.rollback()
    return {"p50": statistics.median(server) * 1000, "p95": percentile(server, 0.95) * 1000,
            "floor": statistics.median(floor) * 1000, "queries": len(capture.statements), "data_queries": len(statements)}


def users(app: Any) -> tuple[str, str]:
    """(admin, salesperson) logins: an administrator, and a demo salesperson owning rows."""
    from app.access.accounts import add_user
    from app.ops.demo import demo_logins

    with app.app_context():
        crm = app.extensions["crm"]
        sm = crm.appbuilder.sm
        if sm.find_user(username=ADMIN) is None:
            add_user(app, ADMIN, [crm.admin_role], ADMIN_PASSWORD)
        sales = next(login for login in demo_logins(app) if login.role == SALES_ROLE)
        return ADMIN, sales.username


def pages(app: Any, sales: str) -> tuple[dict[str, str], dict[str, str]]:
    """The URLs of each page for the administrator and for the salesperson."""
    with app.app_context():
        engine = app.extensions["crm"].db.engine
        with engine.connect() as conn:
            sales_id = conn.execute(sa.text("SELECT id FROM ab_user WHERE username = :u"), {"u": sales}).scalar()
            middle_all = conn.execute(sa.text("SELECT id FROM customer ORDER BY code DESC NULLS FIRST, id DESC OFFSET "
                                              "(SELECT count(*) / 2 FROM customer) LIMIT 1")).scalar()
            middle_own = conn.execute(sa.text("SELECT id FROM customer WHERE owner_id = :o ORDER BY code DESC NULLS FIRST, id DESC "
                                              "OFFSET (SELECT count(*) / 2 FROM customer WHERE owner_id = :o) LIMIT 1"), {"o": sales_id}).scalar()
            # a customer with related rows, one of the salesperson's
            record = conn.execute(sa.text("SELECT c.id FROM customer c JOIN contact k ON k.customer_id = c.id "
                                          "JOIN follow_up f ON f.customer_id = c.id WHERE c.owner_id = :o LIMIT 1"), {"o": sales_id}).scalar()
    search = urllib.parse.quote("华瑞纺织")
    common = {
        "page 1": "/customerview/list/",
        "filtered (grade=A, region=east)": "/customerview/list/?_flt_3_grade=A&_flt_3_region=east",
        "sorted (last contact, newest)": "/customerview/list/?_oc_CustomerView=last_contact_on&_od_CustomerView=desc",
        "search (name contains 华瑞纺织)": f"/customerview/list/?_flt_2_name={search}",
        "record page + related lists": f"/customerview/show/{record}",
        "contact form (link to customers)": "/contactview/add",
        "link lookup (customers, typed 华瑞纺织)": f"/contactview/lookup/customer?q={search}",
    }
    api = "/api/v1/customer/?q=(order_column:code,order_direction:desc)"
    admin = {**common, "deep page (keyset, middle)": f"/customerview/list/?_after_CustomerView={middle_all}",
             "REST list page 1": api, "REST deep page (after=, middle)": f"{api}&after={middle_all}"}
    own = {**common, "deep page (keyset, middle)": f"/customerview/list/?_after_CustomerView={middle_own}",
           "REST list page 1": api, "REST deep page (after=, middle)": f"{api}&after={middle_own}"}
    return admin, own


def login(client: Any, username: str, password: str) -> None:
    r = client.post("/login/", data={"username": username, "password": password})
    assert r.status_code in (200, 302), r.status_code
    assert client.get("/customerview/list/").status_code == 200, f"{username} cannot open the list"


def run_wrk(seconds: int, sales: str) -> str:
    """crm serve (2 workers) on loopback, wrk against the list page for ``seconds``."""
    from app.ops.demo import DEMO_PASSWORD

    wrk = shutil.which("wrk")
    if wrk is None:
        return "wrk not installed (apt-get install wrk): load test skipped"
    port = 18765
    env = {**os.environ, "CRM_DATABASE_URL": postgres_url(SCHEMA)}
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--workers", "2", "--port", str(port)], cwd=ROOT, env=env,  # noqa: S603
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)  # noqa: S310 - loopback
                break
            except OSError:
                time.sleep(0.5)
        results = []
        for who, password in ((ADMIN, ADMIN_PASSWORD), (sales, DEMO_PASSWORD)):
            jar = http.cookiejar.CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            page = opener.open(f"{base}/login/", timeout=10).read().decode()  # noqa: S310 - loopback
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
            form = {"username": who, "password": password, **({"csrf_token": token.group(1)} if token else {})}
            opener.open(f"{base}/login/", data=urllib.parse.urlencode(form).encode(), timeout=10)  # noqa: S310 - loopback
            cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
            out = subprocess.run([wrk, "-t2", "-c8", f"-d{seconds}s", "--latency", "-H", f"Cookie: {cookie}",  # noqa: S603
                                  f"{base}/customerview/list/"], capture_output=True, text=True, timeout=seconds + 60).stdout
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
            p99 = re.search(r"99%\s+([\d.]+\w+)", out)
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            results.append(f"  wrk list page as {who}: {rps.group(1) if rps else '?'} requests/s, p99 {p99.group(1) if p99 else '?'}"
                           f"{', NON-2xx: ' + non2xx.group(1) if non2xx else ''} (2 gunicorn workers, 8 connections, {seconds} s)")
        return "\n".join(results)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--related", type=int, default=5_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the loaded schema for the next run (and reuse it)")
    parser.add_argument("--security-manager", default="", help="FAB_SECURITY_MANAGER_CLASS for this run (default: the app's own)")
    args = parser.parse_args()
    if args.security_manager:
        CONFIG["FAB_SECURITY_MANAGER_CLASS"] = args.security_manager
    app = load(args.customers, args.related, args.keep)
    try:
        admin, sales = users(app)
        with app.app_context():
            engine = app.extensions["crm"].db.engine
        capture = Capture(engine)
        raw = engine.raw_connection()
        admin_pages, own_pages = pages(app, sales)
        bad = []
        print(f"{'page':44} {'as':6} {'p50 ms':>8} {'p95 ms':>8} {'floor ms':>9} {'ratio':>6} {'queries (data)':>15}")
        for who, password, urls in ((admin, ADMIN_PASSWORD, admin_pages), (sales, None, own_pages)):
            from app.ops.demo import DEMO_PASSWORD

            client = app.test_client()
            login(client, who, password or DEMO_PASSWORD)
            token = client.post("/api/v1/security/login", json={"username": who, "password": password or DEMO_PASSWORD,
                                                                "provider": "db"}).json["access_token"]
            label = "admin" if who == admin else "own"
            for name, url in urls.items():
                headers = {"Authorization": f"Bearer {token}"} if name.startswith("REST") else None
                m = measure(client, capture, raw, url, args.requests, headers)
                ratio = m["p50"] / m["floor"] if m["floor"] else float("inf")
                flag = "" if m["p95"] < 150 and ratio <= 3 else "  <-- misses target"
                if flag:
                    bad.append(f"{name} ({label})")
                print(f"{name:44} {label:6} {m['p50']:8.1f} {m['p95']:8.1f} {m['floor']:9.1f} {ratio:6.1f} "
                      f"{m['queries']:>8} ({m['data_queries']}){flag}", flush=True)
            # what any signed-in page costs before it shows a row: FAB's own user-info page (the
            # layout, the menu, the signed-in user) — context for the ratios above, not a target
            m = measure(client, capture, raw, "/users/userinfo/", args.requests)
            print(f"{'  (no entity data: the layout, FAB user info)':44} {label:6} {m['p50']:8.1f} {m['p95']:8.1f}", flush=True)
        raw.close()
        print("targets: p95 < 150 ms and ratio <= 3 for every page —", "all met" if not bad else f"missed: {', '.join(bad)}")
        print(run_wrk(args.wrk_seconds, sales))
    finally:
        if not args.keep:
            drop_postgres_schema(SCHEMA)


if __name__ == "__main__":
    main()
