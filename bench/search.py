"""Benchmark: the top bar's quick search (``/search/json``) and a list's box (``?q=``) on PostgreSQL.

    CRM_TEST_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/test \\
        python -m bench.search [--customers 100000] [--related 200000] [--requests 30] [--keep]

Loads the shipped workbook's demo data into its own schema ``crm_bench_search`` (``--keep`` keeps
it for the next run and reuses it), then times, as an administrator and as an ``own``-scoped
salesperson, queries of three characters of a name (the issue's case), two characters (too short
for a trigram: a scan bounded by LIMIT and the time budget), a number prefix, and a word found
nowhere: p50/p95 server time over N requests through the Flask test client, the records shown
and the entities not searched within the budget.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import lists  # noqa: E402
from bench.common import drop_postgres_schema  # noqa: E402

SCHEMA = "crm_bench_search"


def queries(app: Any) -> dict[str, str]:
    """What is asked: three characters from the middle of an existing customer's name, two, a
    number prefix, and a word no record holds."""
    with app.app_context():
        with app.extensions["crm"].db.engine.connect() as conn:
            name, code = conn.execute(sa.text("SELECT name, code FROM customer ORDER BY id LIMIT 1 OFFSET "
                                              "(SELECT count(*) / 2 FROM customer)")).one()
    return {"3 characters of a name": name[2:5], "2 characters": name[2:4], "number prefix": code[:7],
            "found nowhere": "不存在的名字"}


def measure(client: Any, url: str, n: int) -> tuple[float, float, dict[str, Any]]:
    for _ in range(2):  # warm
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.status_code)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get(url)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, lists.percentile(times, 0.95) * 1000, answer.json if answer.is_json else {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--related", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the loaded schema for the next run (and reuse it)")
    args = parser.parse_args()
    lists.SCHEMA = SCHEMA  # the lists benchmark's loader, on this benchmark's own schema
    app = lists.load(args.customers, args.related, args.keep)
    try:
        admin, sales = lists.users(app)
        asked = queries(app)
        from app.ops.demo import DEMO_PASSWORD

        print(f"{'query':26} {'as':6} {'what':8} {'p50 ms':>8} {'p95 ms':>8} {'shown':>6}  not searched in time")
        for who, password, label in ((admin, lists.ADMIN_PASSWORD, "admin"), (sales, DEMO_PASSWORD, "own")):
            client = app.test_client()
            lists.login(client, who, password)
            for name, q in asked.items():
                p50, p95, answer = measure(client, "/search/json?" + urllib.parse.urlencode({"q": q}), args.requests)
                shown = sum(len(g["items"]) for g in answer.get("groups", []))
                late = "、".join(answer.get("timed_out", [])) or "—"
                print(f"{name:26} {label:6} {'top bar':8} {p50:8.1f} {p95:8.1f} {shown:6}  {late}", flush=True)
                p50, p95, _ = measure(client, "/customerview/list/?" + urllib.parse.urlencode({"q": q}), args.requests)
                print(f"{name:26} {label:6} {'list':8} {p50:8.1f} {p95:8.1f}", flush=True)
    finally:
        if not args.keep:
            drop_postgres_schema(SCHEMA)


if __name__ == "__main__":
    main()
