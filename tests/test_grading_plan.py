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

from app.record.grading import describe_moves
from app.spec.expr import parse, record_lookup
from generator import load_spec
from tests.conftest import ROOT, SHIPPED
from tests.migration_helpers import Office, database
from tests.test_migration_scenario import read_sheets

pytestmark = pytest.mark.slow  # crm upgrade of the shipped workbook


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
        generated = office.run("generate")  # IT reviews the diff first: the plan still starts from the database
        assert generated.exit_code == 0, generated.output
        after = expected_grades(office, "customer", "grade")
        moves = Counter((before[i], after[i]) for i in before)
        assert any(old != new for old, new in moves.elements())
        zh, en = describe_moves("customer.grade", moves)
        plan = office.plan()
        assert en in [line["en"] for line in plan["regenerate"]]
        assert plan["refused"] == 0
        # each move names up to five of its records by number and name, the first ones by id
        line = next(line for line in plan["regenerate"] if line["en"] == en)
        named = dict(((i, f"{code} {name}") for i, code, name in office.rows("customer", "code", "name")))
        assert {(e["from"], e["to"]): e["rows"] for e in line["examples"]} == {m: n for m, n in moves.items() if m[0] != m[1]}
        for e in line["examples"]:
            ids = sorted(i for i in before if (before[i], after[i]) == (e["from"], e["to"]))[:5]
            assert e["records"] == [{"id": i, "title": named[i]} for i in ids]
        assert f"例如 {line['examples'][0]['from']}→{line['examples'][0]['to']}" in office.run("plan").output
        result = office.upgrade()
        assert result.exit_code == 0, result.output
        assert zh in result.output
        assert dict(office.rows("customer", "grade")) == after
        office.engine.dispose()


def test_a_new_validation_is_planned_with_the_stored_records_that_break_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The office adds a rule; `crm plan` says how many stored records break it (computed here in
    Python, record by record), the upgrade keeps them as they are, and a rule about the save being
    made (changed()) is not counted over stored records."""
    sheets = read_sheets(SHIPPED)
    tie = next(v for v in sheets["validations"] if v["entity"] == "follow_up" and "contact.customer" in v["condition"])
    sheets["validations"].remove(tie)  # the demo's follow-ups name any contact, as before the rule
    with database("sqlite", tmp_path) as url:
        office = Office(tmp_path, sheets, url, monkeypatch)
        demo = subprocess.run([sys.executable, "-m", "app.cli", "demo-data", "--customers", "300"], cwd=ROOT,  # noqa: S603
                              env=os.environ.copy(), capture_output=True, text=True, timeout=300, check=False)
        assert demo.returncode == 0, demo.stderr
        condition = "not annual_demand or annual_demand >= 300000"
        owner_of = dict(office.rows("contact", "customer_id"))
        astray = [i for i, customer, contact in office.rows("follow_up", "customer_id", "contact_id")
                  if contact is not None and owner_of[contact] != customer]
        assert astray
        stored = office.rows("customer", "annual_demand")
        breaking = [i for i, demand in stored if not parse(condition).test(record_lookup({"annual_demand": demand}))]
        assert 0 < len(breaking) < len(stored)

        def add_rules(s: dict) -> None:
            s["validations"].append({"entity": "customer", "condition": condition, "message": "年需求量不少于30万"})
            s["validations"].append({"entity": "follow_up", "condition": "not changed(subject)", "message": "主题不能改"})
            s["validations"].append(tie)

        office.edit(add_rules)
        lines = [line for line in office.plan()["regenerate"] if line["kind"] == "validation"]
        assert [(line["rows"], line["examples"]) for line in lines] == [(len(breaking), breaking[:5]), (len(astray), astray[:5])], lines
        assert "年需求量不少于30万" in lines[0]["zh"] and f"#{breaking[0]}" in lines[0]["zh"]
        result = office.upgrade()
        assert result.exit_code == 0, result.output
        assert lines[0]["zh"] in result.output  # said again where IT runs it
        assert office.rows("customer", "annual_demand") == stored
        office.engine.dispose()
