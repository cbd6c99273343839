"""Benchmark: the full dashboard of the shipped workbook over 200k customers with related rows on
SQLite, server time through the Flask test client, against the floor: the same SQL statements
the page ran, executed raw on the same connection.

    python -m bench.dashboard [--customers 200000] [--runs 10]

Target (issue 8): full dashboard render < 500 ms server time. Also prints the slowest panels.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_app, replay  # noqa: E402
from bench.tick import NOW, fill  # noqa: E402

# related rows per customer, roughly an office's proportions
RELATED = {"follow_up": 0.5, "complaint": 0.1, "service_call": 0.25, "survey_response": 0.1, "maintenance_contract": 0.1,
           "technician_report": 0.1, "master_data_request": 0.025, "care_event": 0.1, "contact": 0.25}
PASSWORD = "bench-Pass-123"  # noqa: S105 - a throwaway database


def load(app: Any, customers: int) -> dict[str, int]:
    from app.access.accounts import create_first_admin
    from app.ops.demo import _Maker, ensure_demo_users

    create_first_admin(app, "admin", PASSWORD)
    with app.app_context():
        crm = app.extensions["crm"]
        maker = _Maker(crm.spec, random.Random(8), NOW, ensure_demo_users(app, 3))
        counts = {"customer": customers}
        fill(app, "customer", customers, maker)
        for name, share in RELATED.items():
            if crm.spec.entity(name) is not None:
                counts[name] = int(customers * share)
                fill(app, name, counts[name], maker)
        with crm.db.engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    app = fresh_app()
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False)
    started = time.perf_counter()
    counts = load(app, args.customers)
    print(f"loaded {sum(counts.values()):,} rows in {time.perf_counter() - started:.0f} s: {counts}", flush=True)

    client = app.test_client()
    client.post("/login/", data={"username": "admin", "password": PASSWORD})
    assert client.get("/dashboard/").status_code == 200  # warm-up: templates, caches, SQLite pages

    statements: list[tuple[str, Any]] = []
    with app.app_context():
        engine = app.extensions["crm"].db.engine

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    times = []
    for i in range(args.runs):
        if i == 0:
            sa.event.listen(engine, "before_cursor_execute", capture)
        start = time.perf_counter()
        r = client.get("/dashboard/")
        times.append(time.perf_counter() - start)
        if i == 0:
            sa.event.remove(engine, "before_cursor_execute", capture)
        assert r.status_code == 200 and r.text.count('class="panel panel-default crm-panel"') >= 20

    floors = []
    raw = engine.raw_connection()
    try:
        for _ in range(args.runs):
            cursor = raw.cursor()
            floors.append(replay(cursor, statements))
            cursor.close()
    finally:
        raw.close()

    with app.app_context():
        from flask_appbuilder.security.sqla.models import User

        from app.reports.panels import Reporter

        crm = app.extensions["crm"]
        admin = crm.db.session.query(User).filter_by(username="admin").one()
        reporter = Reporter(crm, admin)
        per_panel = []
        for report in reporter.visible_reports():
            start = time.perf_counter()
            reporter.panel(report)
            per_panel.append((time.perf_counter() - start, report.name))

    p50, floor = statistics.median(times), statistics.median(floors)
    print(f"full dashboard ({len(per_panel)} panels, {len(statements)} SQL statements), {args.customers:,} customers on SQLite:")
    print(f"  server time p50 {p50 * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (target < 500 ms)")
    print(f"  raw SQL of the page (floor) p50 {floor * 1000:.0f} ms")
    print(f"  ratio page / raw SQL: {p50 / floor:.2f}")
    print("  slowest panels: " + ", ".join(f"{name} {t * 1000:.0f} ms" for t, name in sorted(per_panel, reverse=True)[:5]))


if __name__ == "__main__":
    main()
