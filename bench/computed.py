"""Benchmark: importing children into a table of parents, with roll-ups on the parents (a count, a
count with a condition) and a lookup on the children, against the same import without them.

    python -m bench.computed [--rows 100000] [--parents 200000]

The library workbook of tests/workbooks.py: ``--parents`` books, then ``--rows`` loans imported
from one .xlsx by the importer (checks, numbering, audit). With roll-ups the import ends with one
``UPDATE book SET loan_count = (SELECT count(*) …), open_loans = … WHERE id IN (…)`` per chunk of the
books it touched, and one lookup UPDATE over the loans it wrote. Each side runs in its own process
on a fresh SQLite file (one process serves one generated app). Target (issue 26): ratio ≤ 1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROLLUPS = [
    {"entity": "book", "name": "loan_count", "label": "借阅次数", "type": "integer", "formula": "count(loan)"},
    {"entity": "book", "name": "open_loans", "label": "未还", "type": "integer", "formula": "count(loan where not returned)"},
    {"entity": "loan", "name": "book_title", "label": "书名", "type": "string", "formula": "book.title"},
]


def side(with_rollups: bool, rows: int, parents: int) -> dict[str, float]:
    """One side, in this process: a fresh app, the parents inserted directly, the children imported."""
    import sqlalchemy as sa

    from generator import generate
    from tests.workbooks import library_sheets, write_workbook

    tmp = Path(tempfile.mkdtemp(prefix="bench-computed-"))
    sheets = library_sheets()
    if with_rollups:
        sheets["fields"] += ROLLUPS
    workbook = write_workbook(tmp / "library.xlsx", sheets)
    generate(workbook, tmp / "gen")
    os.environ.update({"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(tmp / "gen"), "CRM_VAR_DIR": str(tmp),
                       "CRM_DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite'}"})
    from app import create_app
    from app.io.importer import import_file
    from app.migrate.create import create_schema

    app = create_app()
    create_schema(app)
    with app.app_context():
        engine = app.extensions["crm"].db.engine
    from flask_appbuilder import Model

    t = Model.metadata.tables
    now = __import__("datetime").datetime(2026, 1, 1)
    with engine.begin() as conn:
        base = {"created_on": now, "changed_on": now, "version": 1}
        conn.execute(sa.insert(t["book"]), [{"title": f"书{i}", "pages": 100 + i % 900, **base} for i in range(parents)])
        conn.execute(sa.insert(t["member"]), [{"full_name": f"读者{i}", **base} for i in range(200)])
    from openpyxl import Workbook

    rng = random.Random(26)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("借阅")
    ws.append(["图书", "读者", "已归还", "应还日期"])
    for _ in range(rows):
        ws.append([f"书{rng.randrange(parents)}", f"读者{rng.randrange(200)}", rng.choice(["是", "否"]), "2026-02-01"])
    wb.save(tmp / "loans.xlsx")
    started = time.perf_counter()
    with app.app_context():
        report = import_file(app, "loan", tmp / "loans.xlsx")
    seconds = time.perf_counter() - started
    assert report.inserted == rows and not report.errors, report.first_errors()
    if with_rollups:
        with engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.sum(t["book"].c.loan_count))).scalar_one()
        assert total == rows, (total, rows)
    return {"seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--parents", type=int, default=200_000)
    parser.add_argument("--side", choices=("plain", "rollups"))
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side(args.side == "rollups", args.rows, args.parents)))
        return
    times = {}
    for name in ("plain", "rollups"):
        proc = subprocess.run([sys.executable, "-m", "bench.computed", "--side", name, "--rows", str(args.rows),  # noqa: S603
                               "--parents", str(args.parents)], cwd=ROOT, capture_output=True, text=True, check=True)
        times[name] = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
        print(f"{name:8} {args.rows} loans into {args.parents} books: {times[name]:.1f} s")
    print(f"ratio with roll-ups / without: {times['rollups'] / times['plain']:.2f} (target ≤ 1.3)")


if __name__ == "__main__":
    main()
