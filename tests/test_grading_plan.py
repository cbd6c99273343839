"""A threshold changes in a copy of the workbook: `crm plan` tells the exact moves between grades
before anything happens, `crm upgrade` applies them, and every record then has the grade the new
rules give — checked here independently, in Python, over all rows."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from app.runtime.grading import describe_moves
from generator import load_spec
from generator.expr import parse, record_lookup
from tests.conftest import ROOT, SHIPPED
from tests.migration_helpers import Office, database
from tests.test_migration_scenario import read_sheets


def expected_grades(office: Office, entity: str, field: str) -> dict[int, str | None]:
    spec, _ = load_spec(office.workbook)
    rules = [r for r in spec.grading if r.entity == entity and r.field == field]
    import sqlalchemy as sa

    with office.engine.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT * FROM "{entity}"')).mappings().all()  # noqa: S608 - test table name
    result = {}
    for row in rows:
        lookup = record_lookup(dict(row))
        result[row["id"]] = next((r.grade for r in rules if not r.condition or parse(r.condition).test(lookup, dt.datetime.now())), None)
    return result


def test_threshold_change_is_planned_exactly_and_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with database("sqlite", tmp_path) as url:
        office = Office(tmp_path, read_sheets(SHIPPED), url, monkeypatch)
        demo = subprocess.run([sys.executable, "-m", "app.cli", "demo-data", "--customers", "400"], cwd=ROOT,  # noqa: S603
                              env=os.environ.copy(), capture_output=True, text=True, timeout=300, check=False)
        assert demo.returncode == 0, demo.stderr
        before = dict(office.rows("customer", "grade"))
        assert before == expected_grades(office, "customer", "grade")  # demo data is graded by the rules

        def lower_threshold(s: dict) -> None:
            rule = next(r for r in s["grading"] if r["entity"] == "customer" and r["field"] == "grade" and "annual_demand" in str(r["condition"]))
            rule["condition"] = "(annual_demand >= 100000 or employee_count >= 200) and urgency in ('urgent', 'normal')"

        office.edit(lower_threshold)
        after = expected_grades(office, "customer", "grade")
        moves = Counter((before[i], after[i]) for i in before)
        assert any(old != new for old, new in moves.elements())
        zh, en = describe_moves("customer.grade", moves)
        plan = office.plan()
        assert en in [line["en"] for line in plan["regenerate"]]
        assert plan["refused"] == 0
        result = office.upgrade()
        assert result.exit_code == 0, result.output
        assert zh in result.output
        assert dict(office.rows("customer", "grade")) == after
        office.engine.dispose()
