"""Benchmark: the office adds a field to a 1,000,000-row table of a live PostgreSQL system.

    CRM_TEST_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/test \\
        python -m bench.upgrade [--customers 1000000] [--seconds 3]

Loads the shipped workbook's demo customers (``crm demo-data``'s loader) into its own schema
``crm_bench_upgrade`` of the test database (dropped at the end). Two sessions play the people at
work, each on its own connection: a *reader* opening the customer list (its first page, by the
list's order) and a *writer* saving a customer (one UPDATE by id), each in a loop. While they run:

* **baseline** — the same change done the plain way, in one transaction: add the column, write
  the default into every row, make it required, build its field index and its list index, commit;
* **crm upgrade** — the shipped workbook with the field added (required, a default, a filter and a
  list column), generated and applied by ``upgrade_database`` as ``crm upgrade`` does.

Printed per run: how long it took, and the readers' and writers' slowest request and p99 while
it ran, against the same people's p50 on the quiet system just before (the ratio). The question
a DBA asks: how long does a change of the workbook stop the office's work?
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from openpyxl import load_workbook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_postgres_schema, postgres_app, postgres_url  # noqa: E402

SCHEMA = "crm_bench_upgrade"
FIELD = {"name": "bench_shelf", "label": "货架", "type": "string", "required": "yes", "default": "A-01",
         "filter": "yes", "list": "yes"}
READ = "SELECT id, code, name FROM customer ORDER BY code DESC NULLS FIRST, id DESC LIMIT 20"
WRITE = "UPDATE customer SET changed_on = now() WHERE id = %s"
PLAIN = [  # what an upgrade did before: one transaction, every row rewritten, indexes built inside
    "ALTER TABLE customer ADD COLUMN bench_plain VARCHAR(255)",
    "UPDATE customer SET bench_plain = 'A-01'",
    "ALTER TABLE customer ALTER COLUMN bench_plain SET NOT NULL",
    "CREATE INDEX ix_customer_bench_plain ON customer (bench_plain)",
    "CREATE INDEX lx_customer_bench_plain_sort ON customer (bench_plain, id)",
]


class Office:
    """A reader and a writer working in a loop, each timing every request."""

    def __init__(self, engine: sa.Engine, ids: int):
        self.engine, self.ids = engine, ids
        self.stop = threading.Event()
        self.times: dict[str, list[tuple[float, float]]] = {"read": [], "write": []}
        self.threads = [threading.Thread(target=self._work, args=(kind,), daemon=True) for kind in self.times]

    def _work(self, kind: str) -> None:
        raw = self.engine.raw_connection()
        raw.driver_connection.autocommit = True
        rng = random.Random(kind)  # noqa: S311 - not for security
        with raw.cursor() as cur:
            while not self.stop.is_set():
                started = time.perf_counter()
                if kind == "read":
                    cur.execute(READ)
                    cur.fetchall()
                else:
                    cur.execute(WRITE, (rng.randint(1, self.ids),))
                self.times[kind].append((started, time.perf_counter() - started))
                time.sleep(0.005)
        raw.close()

    def __enter__(self) -> Office:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def between(self, kind: str, start: float, end: float) -> list[float]:
        """Durations of the requests that were under way at some moment of [start, end]."""
        return [d for s, d in self.times[kind] if s <= end and s + d >= start]


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def observe(office: Office, change: Any, quiet_seconds: float) -> dict[str, Any]:
    time.sleep(quiet_seconds)
    quiet_end = time.perf_counter()
    out: dict[str, Any] = {}
    started = time.perf_counter()
    out["detail"] = change()
    ended = time.perf_counter()
    out["seconds"] = ended - started
    time.sleep(0.5)
    for kind in ("read", "write"):
        quiet = office.between(kind, quiet_end - quiet_seconds, quiet_end)
        during = office.between(kind, started, ended)
        out[kind] = {"quiet_p50": statistics.median(quiet) * 1000, "n": len(during), "p99": p(during, 0.99) * 1000,
                     "max": max(during, default=0) * 1000}
    return out


def workbook_with_field(tmp: Path) -> Path:
    wb = load_workbook(ROOT / "sheets" / "crm.xlsx")
    ws = wb["fields"]
    headers = [c.value for c in ws[1]]
    first = next(row[headers.index("entity")].value for row in ws.iter_rows(min_row=2) if row[headers.index("entity")].value)
    ws.append([{**FIELD, "entity": first}.get(h) for h in headers])
    path = tmp / "crm.xlsx"
    wb.save(path)
    return path


def report(name: str, m: dict[str, Any]) -> None:
    print(f"{name:14} {m['seconds']:8.1f} s", end="")
    for kind in ("read", "write"):
        r = m[kind]
        ratio = r["max"] / r["quiet_p50"] if r["quiet_p50"] else float("inf")
        print(f"   {kind}: quiet p50 {r['quiet_p50']:6.1f} ms, during ({r['n']:4}) p99 {r['p99']:8.1f} ms, "
              f"max {r['max']:8.1f} ms (×{ratio:,.0f})", end="")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="quiet time before each change")
    args = parser.parse_args()
    from app.runtime.demo import make_demo_data
    from app.runtime.migrate import declared_metadata, finish_indexes, upgrade_database
    from generator import generate

    drop_postgres_schema(SCHEMA)
    app = postgres_app(SCHEMA, TESTING=True)
    tmp = Path(tempfile.mkdtemp())
    try:
        print(f"loading {args.customers} customers …", flush=True)
        started = time.perf_counter()
        make_demo_data(app, args.customers, related=1)
        print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
        engine = sa.create_engine(postgres_url(SCHEMA), pool_size=4)
        with engine.connect() as conn:
            ids = conn.execute(sa.text("SELECT max(id) FROM customer")).scalar_one()

        def plain() -> str:
            with engine.begin() as conn:
                for statement in PLAIN:
                    conn.execute(sa.text(statement))
            return ""

        generated = tmp / "generated"
        shutil.copytree(app.config["CRM_GENERATED_DIR"], generated, ignore=shutil.ignore_patterns("__pycache__"))
        result = generate(workbook_with_field(tmp), generated)

        def upgrade() -> str:
            done = finish_indexes(engine, upgrade_database(engine, generated, tmp / "backups", declared_metadata(result.spec)))
            return "; ".join(done.indexes + [f"NOT BUILT {u}" for u in done.unbuilt])

        print(f"{'change':14} {'took':>10}")
        with Office(engine, ids) as office:
            report("baseline", observe(office, plain, args.seconds))
            with engine.begin() as conn:  # back as it was: the upgrade finds no stray list index
                conn.execute(sa.text("ALTER TABLE customer DROP COLUMN bench_plain"))
            m = observe(office, upgrade, args.seconds)
            report("crm upgrade", m)
            print(f"  built after the commit: {m['detail']}")
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        drop_postgres_schema(SCHEMA)


if __name__ == "__main__":
    main()
