"""The shipped workbook walked through successive edits on a database full of demo data
(SQLite and PostgreSQL): after every upgrade, every row and every kept value is still there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, SHIPPED
from tests.migration_helpers import Office, Sheets, database
from tests.workbooks import read_sheets

pytestmark = pytest.mark.slow  # twelve upgrades of the shipped workbook


def rename_entity(s: Sheets, old: str, new: str) -> None:
    for rows in s.values():
        for row in rows:
            if row.get("entity") == old:
                row["entity"] = new
            if row.get("link") == old:
                row["link"] = new
            if isinstance(row.get("trigger"), str) and row["trigger"].startswith(old + "."):
                row["trigger"] = new + row["trigger"][len(old):]
    entity = next(e for e in s["entities"] if e["name"] == old)
    entity.update(name=new, previous_name=old)


def rename_field(s: Sheets, entity: str, old: str, new: str) -> None:
    """Rename a field the way the office would: the field row and every reference to it."""
    pattern = re.compile(rf"\b{old}\b")
    for row in s["fields"]:
        if row["entity"] == entity and row["name"] == old:
            row.update(name=new, previous_name=old)
    for key in ("forms", "permissions", "grading", "validations", "workflows", "reports", "schedules"):
        for row in s.get(key, []):
            if row.get("entity") != entity:
                continue
            for col in ("field", "hidden_fields", "condition", "group_by", "measure", "when", "state_field"):
                if isinstance(row.get(col), str):
                    row[col] = pattern.sub(new, row[col])
    # step effects of other entities' workflows that write this entity's field: through a link to
    # it (`customer.tax_no = …`) or as a key of a record they create (`create customer(tax_no = …)`)
    links = {(r["entity"], r["name"]) for r in s["fields"] if r.get("link") == entity}
    for row in s.get("workflows", []):
        text = row.get("effects")
        if not isinstance(text, str):
            continue
        for owner, link in links:
            if row["entity"] == owner:
                text = re.sub(rf"\b{link}\.{old}\b", f"{link}.{new}", text)
        text = re.sub(rf"(create\s+{entity}\s*\()([^)]*)(\))",
                      lambda m: m.group(1) + re.sub(rf"(^|,)(\s*){old}(\s*=)", rf"\g<1>\g<2>{new}\g<3>", m.group(2)) + m.group(3), text)
        row["effects"] = text


def remove_field(s: Sheets, entity: str, name: str) -> None:
    s["fields"] = [r for r in s["fields"] if not (r["entity"] == entity and r["name"] == name)]
    s["forms"] = [r for r in s["forms"] if not (r["entity"] == entity and r["field"] == name)]
    for row in s["permissions"]:
        if row["entity"] == entity and isinstance(row.get("hidden_fields"), str):
            row["hidden_fields"] = ",".join(f for f in row["hidden_fields"].split(",") if f.strip() != name)


def remove_entity(s: Sheets, name: str) -> None:
    for key, rows in s.items():
        s[key] = [r for r in rows if r.get("entity") != name and r.get("link") != name and r.get("name") != name
                  and not str(r.get("trigger") or "").startswith(name + ".")]


def counts(office: Office) -> dict[str, int]:
    with office.engine.connect() as conn:
        insp = sa.inspect(conn)
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()  # noqa: S608
                for t in insp.get_table_names() if not t.startswith(("ab_", "alembic", "crm_"))}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_twelve_edits_lose_no_row(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with database(backend, tmp_path) as url:
        office = Office(tmp_path, read_sheets(SHIPPED), url, monkeypatch)
        demo = subprocess.run([sys.executable, "-m", "app.cli", "demo-data", "--customers", "40"], cwd=ROOT,  # noqa: S603
                              env=os.environ.copy(), capture_output=True, text=True, timeout=300, check=False)
        assert demo.returncode == 0, demo.stderr
        start = counts(office)
        assert start["customer"] == 40 and all(n > 0 for n in start.values())
        names = office.rows("customer", "name")
        tax_numbers = office.rows("customer", "tax_no")
        short_names = office.rows("customer", "short_name")
        regions = office.rows("customer", "region")
        amounts = office.rows("maintenance_contract", "amount")

        edits: list[tuple[str, Callable[[Sheets], Any], Callable[[], None]]] = [
            ("add a field", lambda s: s["fields"].append(
                {"entity": "customer", "name": "wechat_id", "label": "微信号", "type": "string", "max": 40}),
             lambda: None),
            ("add a required field with a default", lambda s: s["fields"].append(
                {"entity": "customer", "name": "vip", "label": "VIP", "type": "boolean", "required": "yes", "default": "no"}),
             lambda: _check(office.rows("customer", "vip"), lambda v: v is not None and not v)),
            ("rename a field", lambda s: rename_field(s, "customer", "tax_no", "tax_number"),
             lambda: _same(office.rows("customer", "tax_number"), tax_numbers)),
            ("remove a field", lambda s: remove_field(s, "customer", "short_name"),
             lambda: _same(office.rows("customer", "short_name"), short_names)),
            ("re-add the removed field", lambda s: s["fields"].append(
                {"entity": "customer", "name": "short_name", "label": "客户简称", "type": "string", "max": 30}),
             lambda: _same(office.rows("customer", "short_name"), short_names)),
            ("widen a text field", lambda s: office.field("customer", "name").update(max=200),
             lambda: _same(office.rows("customer", "name"), names)),
            ("map a choice value", lambda s: s["choices"].append(
                {"list": "region", "value": "north_china", "label": "华北地区", "previous_value": "north"})
             or s.__setitem__("choices", [c for c in s["choices"] if not (c["list"] == "region" and c["value"] == "north")]),
             lambda: _same(office.rows("customer", "region"), [(i, "north_china" if v == "north" else v) for i, v in regions])),
            ("money becomes decimal", lambda s: office.field("maintenance_contract", "amount").update(type="decimal"),
             lambda: _same([(i, float(v) if v is not None else None) for i, v in office.rows("maintenance_contract", "amount")],
                           [(i, float(v) if v is not None else None) for i, v in amounts])),
            ("an optional field becomes required with a default", lambda s: office.field("contact", "department").update(
                required="yes", default="采购部"),
             lambda: _check(office.rows("contact", "department"), lambda v: v is not None)),
            ("rename an entity", lambda s: rename_entity(s, "care_event", "customer_care"), lambda: None),
            ("add an entity", lambda s: (s["entities"].append({"name": "competitor", "label": "竞争对手", "menu": "客户管理"}),
                                         s["fields"].extend([
                                             {"entity": "competitor", "name": "name", "label": "名称", "type": "string", "required": "yes"},
                                             {"entity": "competitor", "name": "customer", "label": "客户", "type": "link", "link": "customer"},
                                         ])),
             lambda: None),
            ("remove an entity", lambda s: remove_entity(s, "technician_report"), lambda: None),
            ("make a field filterable (index)", lambda s: office.field("customer", "bank_name").update(filter="yes"), lambda: None),
        ]
        expected = dict(start)
        assert len(edits) >= 12
        for what, edit, check in edits:
            office.edit(edit)
            plan = office.plan()
            assert plan["refused"] == 0, (what, plan)
            result = office.upgrade()
            assert result.exit_code == 0, (what, result.output)
            if what == "rename an entity":
                expected["customer_care"] = expected.pop("care_event")
            if what == "add an entity":
                expected["competitor"] = 0
            assert counts(office) == expected, what
            check()
            after = office.plan()
            assert after == {"pending": [], "regenerate": [], "retired": after["retired"], "refused": 0, "owed": []}, what
        assert len(list((office.generated / "versions").glob("*.py"))) == 1 + len(edits)
        office.engine.dispose()


def _same(actual: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    assert actual == expected


def _check(rows: list[tuple[Any, ...]], predicate: Callable[[Any], bool]) -> None:
    assert rows and all(predicate(v) for _, v in rows)
