"""Benchmark: set-based regrade of 200k customers of the shipped workbook on SQLite, against a
hand-written single SQL UPDATE of the same rules, and a per-row ORM loop for contrast.

    python -m bench.regrade [--rows 200000] [--orm-rows 20000]

Target (issue 4): regrade / hand-written UPDATE ≤ 1.3. Grades are scrambled before every timed
run, so every run rewrites every row; the regrade also writes one history row per change and the
reason text, which the hand-written UPDATE writes too (without the history).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a file (python bench/x.py) as well as a module

from bench.common import fresh_app  # noqa: E402

# The shipped workbook's customer rules (grading sheet), written by hand as one UPDATE.
HAND_WRITTEN = """
UPDATE customer SET
  grade = CASE
    WHEN grade_override = 'A' THEN 'A'
    WHEN grade_override = 'B' THEN 'B'
    WHEN grade_override = 'C' THEN 'C'
    WHEN (annual_demand >= 500000 OR employee_count >= 1000) AND urgency = 'urgent' THEN 'A'
    WHEN urgency IN ('urgent', 'normal') THEN 'B'
    ELSE 'C' END,
  grade_reason = CASE
    WHEN grade_override = 'A' THEN 'A: manual'
    WHEN grade_override = 'B' THEN 'B: manual'
    WHEN grade_override = 'C' THEN 'C: manual'
    WHEN (annual_demand >= 500000 OR employee_count >= 1000) AND urgency = 'urgent' THEN 'A: large and urgent'
    WHEN urgency IN ('urgent', 'normal') THEN 'B: general'
    ELSE 'C: potential' END,
  value_tier = CASE
    WHEN annual_amount >= 1000000 THEN 'high'
    WHEN annual_amount >= 500000 AND repurchase_count >= 6 THEN 'high'
    WHEN annual_amount >= 200000 THEN 'medium'
    WHEN repurchase_count >= 3 THEN 'medium'
    ELSE 'low' END
"""
SCRAMBLE = "UPDATE customer SET grade = NULL, value_tier = NULL, grade_reason = NULL"


def timed(setup: Any, run: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        setup()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--orm-rows", type=int, default=5_000, help="rows for the (slow) per-row ORM loop")
    args = parser.parse_args()
    app = fresh_app()

    from flask_appbuilder import Model

    from app.ops.demo import _Maker, ensure_demo_users
    from app.record.grading import grade_record, regrade
    from app.record.rules import rules_for

    with app.app_context():
        crm = app.extensions["crm"]
        spec, session = crm.spec, crm.db.session
        entity = spec.entity("customer")
        assert entity is not None
        tables = dict(Model.metadata.tables)
        table = tables["customer"]
        maker = _Maker(spec, random.Random(5), dt.datetime.now(), ensure_demo_users(app, 1))
        print(f"inserting {args.rows} customers …", flush=True)
        now = dt.datetime.now()
        for start in range(0, args.rows, 20_000):
            batch = []
            rules = rules_for(spec, entity)
            for i in range(start, min(args.rows, start + 20_000)):
                row = maker.valid_row(entity, rules, i)
                row.update(code=f"BENCH-{i:07d}", created_on=now, changed_on=now)
                for f in entity.fields:
                    if f.required and row[f.column] is None:
                        row[f.column] = {"string": f"{f.label}{i}"}.get(f.type, row[f.column])
                batch.append(row)
            session.execute(sa.insert(table), batch)
        session.commit()
        engine = crm.db.engine

        def scramble(where: str = "") -> None:
            with engine.begin() as conn:
                conn.execute(sa.text(SCRAMBLE + where))
                conn.execute(sa.text("DELETE FROM crm_grade_change"))

        def scramble_fifth() -> None:
            scramble(" WHERE id % 5 = 0")

        def set_based() -> None:
            with engine.begin() as conn:
                regrade(conn, spec, entity, tables, dt.datetime.now())

        def hand_written() -> None:
            with engine.begin() as conn:
                conn.execute(sa.text(HAND_WRITTEN))

        t_ours = timed(scramble, set_based)
        t_hand = timed(scramble, hand_written)
        t_ours_fifth = timed(scramble_fifth, set_based)
        t_hand_fifth = timed(scramble_fifth, hand_written)
        model = crm.generated.models.MODELS["customer"]

        def orm_loop() -> None:
            for obj in session.query(model).order_by(model.id).limit(args.orm_rows):
                grade_record(obj, spec, entity)
            session.commit()

        t_orm = timed(scramble, orm_loop, repeat=1) * args.rows / args.orm_rows
    print(f"{args.rows} rows on SQLite, every grade changes:")
    print(f"  set-based regrade (history + reasons): {t_ours:.2f} s")
    print(f"  hand-written single UPDATE:            {t_hand:.2f} s")
    print(f"  ratio regrade / hand-written:          {t_ours / t_hand:.2f} (target <= 1.3)")
    print(f"{args.rows} rows on SQLite, a fifth of the grades change (a threshold moved):")
    print(f"  set-based regrade (history + reasons): {t_ours_fifth:.2f} s")
    print(f"  hand-written single UPDATE:            {t_hand_fifth:.2f} s")
    print(f"  ratio regrade / hand-written:          {t_ours_fifth / t_hand_fifth:.2f} (target <= 1.3)")
    print(f"  per-row ORM loop (extrapolated from {args.orm_rows} rows): {t_orm:.1f} s ({t_orm / t_ours:.0f}x the set-based regrade)")


if __name__ == "__main__":
    main()
