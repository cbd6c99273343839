"""Benchmark: the office changes the fields of a 1,000,000-row table of a live PostgreSQL system.

    CRM_TEST_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/test \\
        python -m bench.upgrade [--customers 1000000] [--seconds 3]

Loads the shipped workbook's demo customers (``crm demo-data``'s loader) into its own schema
``crm_bench_upgrade`` of the test database (dropped at the end). Two sessions play the people at
work, each on its own connection: a *reader* opening the customer list (its first page, by the
list's order) and a *writer* saving a customer (one UPDATE by id), each in a loop. Two workbook
edits, each measured twice while they run:

1. **a new field** (required, a default, a filter and a list column):
   * *baseline* — done the plain way, in one transaction: add the column, write the default into
     every row, make it required, build its field index and its list index, commit;
   * *crm upgrade* — the shipped workbook with the field added, generated and applied by
     ``upgrade_database`` and ``finish_online`` as ``crm upgrade`` does.
2. **constraints**: an optional field the demo data leaves empty in ~15% of the rows made required
   with a default, another made unique, and a new link field (to the same entity):
   * *baseline* — the plain way, in one transaction: fill the empty rows, SET NOT NULL, add the
     unique constraint, add the link column with its foreign key and its index (then rolled
     back, so the upgrade that follows has the same work to do);
   * *crm upgrade* — the workbook so edited, as ``crm upgrade`` does it.

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
REQUIRED = ("source_channel", "exhibition")  # optional, empty in ~15% of the demo rows: made required, this default
UNIQUE = "tax_no"  # optional: made unique
LINK = {"name": "bench_referrer", "label": "介绍客户", "type": "link", "link": "customer"}
PLAIN_CONSTRAINTS = [  # the same, the way an upgrade did it before: one transaction, rolled back after
    f"UPDATE customer SET {REQUIRED[0]} = '{REQUIRED[1]}' WHERE {REQUIRED[0]} IS NULL",  # noqa: S608 - constants
    f"ALTER TABLE customer ALTER COLUMN {REQUIRED[0]} SET NOT NULL",
    f"ALTER TABLE customer ADD CONSTRAINT uq_customer_{UNIQUE}_plain UNIQUE ({UNIQUE})",
    "ALTER TABLE customer ADD COLUMN bench_plain_id INTEGER",
    "ALTER TABLE customer ADD CONSTRAINT fk_customer_bench_plain FOREIGN KEY (bench_plain_id) REFERENCES customer (id)",
    "CREATE INDEX ix_customer_bench_plain_id ON customer (bench_plain_id)",
]
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
        self.failed: dict[str, list[float]] = {"read": [], "write": []}  # when a request ended in an error
        self.threads = [threading.Thread(target=self._work, args=(kind,), daemon=True) for kind in self.times]

    def _work(self, kind: str) -> None:
        raw = self.engine.raw_connection()
        raw.driver_connection.autocommit = True
        rng = random.Random(kind)  # noqa: S311 - not for security
        with raw.cursor() as cur:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    if kind == "read":
                        cur.execute(READ)
                        cur.fetchall()
                    else:
                        cur.execute(WRITE, (rng.randint(1, self.ids),))
                except raw.driver_connection.Error:  # e.g. a deadlock with the change: the page shows an error
                    self.failed[kind].append(started)
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
                     "max": max(during, default=0) * 1000, "failed": sum(started <= t <= ended for t in office.failed[kind])}
    return out


def edited_workbook(tmp: Path, constraints: bool) -> Path:
    """The shipped workbook with ``FIELD`` added to its first entity, and with ``constraints`` the
    second edit as well (``REQUIRED``, ``UNIQUE``, ``LINK``)."""
    wb = load_workbook(ROOT / "sheets" / "crm.xlsx")
    ws = wb["fields"]
    headers = [c.value for c in ws[1]]
    col = {h: i for i, h in enumerate(headers)}
    first = next(row[col["entity"]].value for row in ws.iter_rows(min_row=2) if row[col["entity"]].value)
    ws.append([{**FIELD, "entity": first}.get(h) for h in headers])
    if constraints:
        for row in ws.iter_rows(min_row=2):
            if row[col["entity"]].value == first and row[col["name"]].value == REQUIRED[0]:
                row[col["required"]].value, row[col["default"]].value = "yes", REQUIRED[1]
            if row[col["entity"]].value == first and row[col["name"]].value == UNIQUE:
                row[col["unique"]].value = "yes"
        ws.append([{**LINK, "entity": first}.get(h) for h in headers])
    path = tmp / f"crm-{int(constraints)}.xlsx"
    wb.save(path)
    return path


def report(name: str, m: dict[str, Any]) -> None:
    print(f"{name:14} {m['seconds']:8.1f} s", end="")
    for kind in ("read", "write"):
        r = m[kind]
        ratio = r["max"] / r["quiet_p50"] if r["quiet_p50"] else float("inf")
        print(f"   {kind}: quiet p50 {r['quiet_p50']:6.1f} ms, during ({r['n']:4}) p99 {r['p99']:8.1f} ms, "
              f"max {r['max']:8.1f} ms (×{ratio:,.0f})" + (f", {r['failed']} failed" if r["failed"] else ""), end="")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="quiet time before each change")
    args = parser.parse_args()
    from app.migrate.upgrade import finish_online, upgrade_database
    from app.ops.demo import make_demo_data
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

        def upgrade(constraints: bool) -> Any:
            result = generate(edited_workbook(tmp, constraints), generated)

            def run() -> str:
                done = finish_online(engine, upgrade_database(engine, generated, tmp / "backups", result.spec))
                return "; ".join(done.finished + [f"NOT DONE {u}" for u in done.unfinished])
            return run

        def plain_constraints() -> str:
            try:
                with engine.connect() as conn, conn.begin() as tx:
                    for statement in PLAIN_CONSTRAINTS:
                        conn.execute(sa.text(statement))
                    tx.rollback()  # the same work is left for the upgrade that follows
            except sa.exc.OperationalError as exc:  # its row locks, then the table's lock: a writer in between deadlocks
                return f"the change itself FAILED: {str(exc.orig).splitlines()[0]}"
            return ""

        print(f"{'change':14} {'took':>10}")
        with Office(engine, ids) as office:
            print("1. a new field (required, a default, a filter, a list column)")
            report("baseline", observe(office, plain, args.seconds))
            with engine.begin() as conn:  # back as it was: the upgrade finds no stray list index
                conn.execute(sa.text("ALTER TABLE customer DROP COLUMN bench_plain"))
            m = observe(office, upgrade(False), args.seconds)
            report("crm upgrade", m)
            print(f"  done after the commit: {m['detail']}")
            with engine.connect() as conn:
                empty = conn.execute(sa.text(f"SELECT count(*) FROM customer WHERE {REQUIRED[0]} IS NULL")).scalar_one()  # noqa: S608
            print(f"2. {REQUIRED[0]} made required ({empty} empty rows), {UNIQUE} made unique, a new link field")
            m = observe(office, plain_constraints, args.seconds)
            report("baseline", m)
            if m["detail"]:
                print(f"  {m['detail']}")
            m = observe(office, upgrade(True), args.seconds)
            report("crm upgrade", m)
            print(f"  done after the commit: {m['detail']}")
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        drop_postgres_schema(SCHEMA)


if __name__ == "__main__":
    main()
