"""One save lifecycle, whatever the path: the ORM's flush (screens, API, tasks) and the bulk
importer take a field's default, a record's number, and write audit and grade-history rows with
the same functions of ``app/record``. A record imported from a sheet and the same record saved
through the REST API (whose ORM session the screens share) leave audit and grade-history rows of
one shape — the same columns filled, the same keys in the changes, the same kinds of values — so
the importer's set-based writing and the ORM's flush cannot drift apart again."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.io.importer import import_file
from app.record.audit import AuditRow
from app.record.models import column_default
from app.record.numbering import number_new
from app.record.rules import default_value, defaulted_fields
from app.record.tables import GradeChange
from tests.conftest import ADMIN_PASSWORD, api_token
from tests.test_excel import xlsx

REPORTED = dt.datetime(2026, 11, 2, 9, 30)  # a Monday morning
DISPATCHED, ARRIVED = dt.datetime(2026, 11, 2, 10, 0), dt.datetime(2026, 11, 2, 11, 15)
CALL = {"area_type": "urban", "call_type": "free", "product_model": "SP-100", "fault_description": "不出料",
        "labor_hours": 1.5, "fee": 200}
FORMULA = {"product_name": "同形涂料", "formula_version": 1, "formula_content": "同形配方:树脂 40%"}
REVIEW = dt.date(2027, 6, 30)


def test_a_default_is_what_the_generated_column_declares(app: Any) -> None:
    """``default_value`` (both paths) gives what the generated model declares for every defaulted
    field of the shipped workbook; today and now are the moment of the save."""
    crm = app.extensions["crm"]
    now = dt.datetime.now()
    seen = 0
    for entity in crm.spec.entities:
        table = crm.generated.models.MODELS[entity.name].__table__
        for f in defaulted_fields(entity):
            declared, ours = column_default(table.c[f.column]), default_value(f, now)
            if f.default in ("today", "now"):
                assert type(ours) is type(declared) and ours == (now.date() if f.type == "date" else now), f.name
            else:
                assert ours == declared and type(ours) is type(declared), (entity.name, f.name, ours, declared)
            seen += 1
    assert seen > 20 and any(f.default == "today" for e in crm.spec.entities for f in defaulted_fields(e))


def test_a_number_given_is_kept_and_the_blank_ones_take_the_next_in_order(app: Any) -> None:
    crm = app.extensions["crm"]
    entity = next(e for e in crm.spec.entities if e.numbering and "{YYYY}" in e.numbering and "{MM}" in e.numbering)
    when = dt.datetime(2031, 5, 6)  # a period no other test numbers in
    with app.app_context(), crm.db.engine.connect() as conn:  # rolled back: numbers given back
        numbers = number_new(conn, entity, ["GIVEN-1", None, "", None], when)
        again = number_new(conn, entity, [None], when)
        assert number_new(conn, entity, ["GIVEN-2"], when) == ["GIVEN-2"]
        conn.rollback()
    assert numbers[0] == "GIVEN-1" and all("203105" in n for n in numbers[1:] + again)
    assert sorted(numbers[1:]) == numbers[1:] and len(set(numbers[1:] + again)) == 4 and again[0] > numbers[3]


# -- the rows both paths write ---------------------------------------------------------------------

def kind(value: Any) -> str:
    """What sort of value a column or a change holds. Text that is an ISO date or moment, or a
    sealed (encrypted) value, is told apart from other text: a moment written ``2026-11-02
    09:30:00`` is not the ORM's ``2026-11-02T09:30:00``, a confidential value in clear is not sealed."""
    if value is None:
        return "none"
    if isinstance(value, str):
        if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?", value):
            return "iso-moment"
        if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            return "iso-date"
        return "sealed" if value.startswith("enc1:") else "text"
    return type(value).__name__


def audit_shape(row: dict[str, Any]) -> dict[str, Any]:
    changes = json.loads(row["changes"])
    return {**{k: kind(v) for k, v in row.items() if k != "changes"},
            "changes": {name: [kind(v) for v in pair] for name, pair in changes.items()}}


def rows_of(app: Any, table: sa.Table, entity: str, record_id: int) -> list[dict[str, Any]]:
    with app.app_context():
        conn = app.extensions["crm"].db.session.connection()
        return [dict(r) for r in conn.execute(sa.select(table).where(table.c.entity == entity, table.c.record_id == record_id)
                                              .order_by(table.c.id)).mappings()]




def imported(app: Any, entity: str, path: Path, **kwargs: Any) -> int:
    """Import ``path`` as the administrator; the id of the last record it wrote."""
    with app.test_request_context():
        admin = app.extensions["crm"].appbuilder.sm.find_user(username="admin")
        report = import_file(app, entity, path, user=admin, **kwargs)
    assert report.committed and not report.errors and report.inserted + report.updated == 1, report.errors
    with app.app_context():
        return int(app.extensions["crm"].db.session.execute(sa.text(f"SELECT max(id) FROM {entity}")).scalar_one())


@pytest.fixture(scope="module")
def both(app: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A service call saved through the API and the same call imported, each then given its
    dispatch and arrival (which moves its graded 派工时效), and a confidential formula saved and
    imported: the audit and grade-history rows of each path."""
    client = app.test_client()
    h = api_token(client, "admin", ADMIN_PASSWORD)
    name = f"同一生命周期客户{dt.datetime.now().timestamp()}"
    r = client.post("/api/v1/customer/", json={"name": name, "urgency": "normal"}, headers=h)
    assert r.status_code == 201, r.text
    customer = r.json["id"]
    folder = tmp_path_factory.mktemp("save-paths")

    r = client.post("/api/v1/service_call/", json={**CALL, "customer": customer, "reported_at": REPORTED.isoformat()}, headers=h)
    assert r.status_code == 201, r.text
    saved = r.json["id"]
    version = client.get(f"/api/v1/service_call/{saved}", headers=h).json["result"]["version"]
    r = client.put(f"/api/v1/service_call/{saved}", headers=h,
                   json={"dispatched_at": DISPATCHED.isoformat(), "arrived_at": ARRIVED.isoformat(), "version": version})
    assert r.status_code == 200, r.text
    loaded = imported(app, "service_call", xlsx(folder / "new.xlsx", [["customer", "reported_at", *CALL],
                                                                       [name, REPORTED, *CALL.values()]]))
    with app.app_context():
        code = app.extensions["crm"].db.session.execute(sa.text("SELECT code FROM service_call WHERE id = :i"), {"i": loaded}).scalar()
    assert loaded != saved and code
    imported(app, "service_call", xlsx(folder / "update.xlsx", [["code", "dispatched_at", "arrived_at"], [code, DISPATCHED, ARRIVED]]),
             mode="upsert", key="code")

    r = client.post("/api/v1/confidential_formula/", json={**FORMULA, "customer": customer, "review_due": REVIEW.isoformat()},
                    headers=h)
    assert r.status_code == 201, r.text
    formula = r.json["id"]
    formula_loaded = imported(app, "confidential_formula", xlsx(folder / "formula.xlsx", [["customer", "review_due", *FORMULA],
                                                                                          [name, REVIEW, *FORMULA.values()]]))
    return {"orm": {"audit": rows_of(app, AuditRow.__table__, "service_call", saved),
                    "grades": rows_of(app, GradeChange.__table__, "service_call", saved),
                    "secret": rows_of(app, AuditRow.__table__, "confidential_formula", formula)},
            "import": {"audit": rows_of(app, AuditRow.__table__, "service_call", loaded),
                       "grades": rows_of(app, GradeChange.__table__, "service_call", loaded),
                       "secret": rows_of(app, AuditRow.__table__, "confidential_formula", formula_loaded)}}


def test_an_import_and_a_save_write_audit_rows_of_one_shape(app: Any, both: dict[str, Any]) -> None:
    orm, imp = both["orm"]["audit"], both["import"]["audit"]
    assert [r["action"] for r in orm] == [r["action"] for r in imp] == ["create", "update"]
    assert [r["version"] for r in orm] == [r["version"] for r in imp] == [1, 2]
    with app.app_context():
        admin = app.extensions["crm"].appbuilder.sm.find_user(username="admin").id
    assert {r["user_id"] for r in orm + imp} == {admin}  # who acted, on both paths
    assert [r["remote_addr"] for r in imp] == ["import", "import"]  # from where: what the path itself says
    for saved, loaded in zip(orm, imp, strict=True):
        assert audit_shape(loaded) == audit_shape(saved), saved["action"]
    created = json.loads(imp[0]["changes"])
    assert created["reported_at"] == [None, REPORTED.isoformat()]  # a moment as the ORM writes it
    assert {"code", "status", "sla_status", "channel", "customer_signed"} <= set(created)  # numbered, started, graded, defaulted
    assert json.loads(imp[1]["changes"]) == json.loads(orm[1]["changes"])


def test_an_import_and_a_save_seal_confidential_values_alike(both: dict[str, Any]) -> None:
    (saved,), (loaded,) = both["orm"]["secret"], both["import"]["secret"]
    assert audit_shape(loaded) == audit_shape(saved)
    assert audit_shape(loaded)["changes"]["formula_content"] == ["none", "sealed"]


def test_an_import_and_a_save_write_grade_history_of_one_shape(both: dict[str, Any]) -> None:
    orm, imp = both["orm"]["grades"], both["import"]["grades"]
    moves = [(g["field"], g["old_value"], g["new_value"], g["rule"]) for g in orm]
    assert [(g["field"], g["old_value"], g["new_value"], g["rule"]) for g in imp] == moves
    assert [m[1:3] for m in moves] == [(None, "pending"), ("pending", "on_time")]
    assert all(re.fullmatch(r"grading!C\d+", m[3]) for m in moves)
    for saved, loaded in zip(orm, imp, strict=True):
        assert {k: kind(v) for k, v in loaded.items()} == {k: kind(v) for k, v in saved.items()}
        assert loaded["explanation"] == saved["explanation"]
