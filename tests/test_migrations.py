"""Schema evolution keeps every row: each rule on SQLite and on PostgreSQL, with `crm plan` text."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.migration_helpers import Office, database
from tests.workbooks import library_sheets

pytestmark = pytest.mark.slow  # crm upgrade on a database per test

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
def office(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Office]:
    with database(request.param, tmp_path) as url:
        o = Office(tmp_path, library_sheets(), url, monkeypatch)
        result = o.upgrade()
        assert result.exit_code == 0, result.output
        o.insert("book", {"title": "红楼梦", "isbn": "A1", "pages": 1606, "genre": "novel"},
                 {"title": "三体", "isbn": "A2", "pages": 302, "genre": "science"},
                 {"title": "围城", "isbn": None, "pages": None, "genre": None})
        o.insert("member", {"full_name": "张三", "email": "zs@example.cn"}, {"full_name": "李四", "email": None})
        o.insert("loan", {"code": "JY-1", "book_id": 1, "member_id": 1, "returned": False},
                 {"code": "JY-2", "book_id": 2, "member_id": 2, "returned": True})
        yield o
        o.engine.dispose()


def test_fresh_database_matches_the_models_without_drift(office: Office) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from app.migrate.declared import declared_metadata
    from generator import load_spec

    spec, _ = load_spec(office.workbook)
    def ours(obj: object, name: str, type_: str, reflected: bool, compare_to: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        return not table.startswith(("ab_", "alembic", "crm_"))

    with office.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": ours})
        diff = compare_metadata(ctx, declared_metadata(spec))
    assert diff == []
    assert office.plan() == {"pending": [], "regenerate": [], "retired": [], "refused": 0, "owed": []}


def test_field_added_fills_the_default(office: Office) -> None:
    office.edit(lambda s: s["fields"].append({"entity": "book", "name": "shelf", "label": "书架", "type": "string",
                                              "required": "yes", "default": "A-01"}))
    assert office.plan_text() == ["new field book.shelf: 3 existing rows get the default 'A-01'"]
    assert office.upgrade().exit_code == 0
    assert office.rows("book", "shelf") == [(1, "A-01"), (2, "A-01"), (3, "A-01")]
    assert office.columns("book")["shelf"]["nullable"] is False
    assert (office.generated / "versions").is_dir() and len(list((office.generated / "versions").glob("0002_*.py"))) == 1


def test_required_field_added_without_default_is_refused(office: Office) -> None:
    office.edit(lambda s: s["fields"].append({"entity": "book", "name": "shelf", "label": "书架", "type": "string", "required": "yes"}))
    assert office.plan_text() == ["new required field book.shelf but 3 existing rows would be empty — give a default in fields"]
    before = office.snapshot()
    result = office.upgrade()
    assert result.exit_code == 1 and "upgrade refused" in result.output
    assert office.snapshot() == before
    assert not list((office.generated / "versions").glob("0002_*.py"))  # nothing generated either


def test_field_removed_is_kept_hidden_and_comes_back(office: Office) -> None:
    office.edit(lambda s: s["fields"].remove(office.field("book", "pages")))
    assert office.plan_text() == ["field book.pages removed from the workbook: column kept and hidden, 2 values kept"]
    assert office.upgrade().exit_code == 0
    assert "pages" in office.columns("book")
    assert office.plan()["retired"] == [{"table": "book", "column": "pages", "values": 2}]
    office.edit(lambda s: s["fields"].append({"entity": "book", "name": "pages", "label": "页数", "type": "integer"}))
    assert office.plan_text()[0] == "field book.pages restored: 2 earlier values visible again"
    assert office.upgrade().exit_code == 0
    assert office.rows("book", "pages") == [(1, 1606), (2, 302), (3, None)]


def test_retired_column_is_dropped_only_when_destructive_and_after_a_backup(office: Office) -> None:
    office.edit(lambda s: s["fields"].remove(office.field("book", "pages")))
    assert office.upgrade().exit_code == 0
    assert "pages" in office.columns("book")
    result = office.upgrade("--allow-destructive")
    assert result.exit_code == 0, result.output
    assert "dropped column book.pages (2 values, saved to book.pages-" in result.output
    assert "pages" not in office.columns("book")
    saved = list((office.var / "backups").glob("book.pages-*.json"))
    assert len(saved) == 1 and "1606" in saved[0].read_text(encoding="utf-8")
    assert office.rows("book", "title")[0] == (1, "红楼梦")


def test_field_renamed_with_previous_name_keeps_data(office: Office) -> None:
    def rename(s: dict) -> None:
        f = office.field("book", "pages")
        f["previous_name"], f["name"] = "pages", "page_count"

    office.edit(rename)
    assert office.plan_text() == ["field renamed book.pages → page_count: 2 values kept"]
    assert office.upgrade().exit_code == 0
    assert office.rows("book", "page_count") == [(1, 1606), (2, 302), (3, None)]


def test_a_field_name_freed_by_a_rename_can_be_used_again_each_with_its_own_index(office: Office) -> None:
    def rename(s: dict) -> None:
        f = office.field("book", "genre")
        f["previous_name"], f["name"] = "genre", "category"

    office.edit(rename)
    assert office.upgrade().exit_code == 0
    office.edit(lambda s: office.field("book", "category").pop("previous_name"))
    office.edit(lambda s: s["fields"].append({"entity": "book", "name": "genre", "label": "体裁", "type": "string", "filter": "yes"}))
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    with office.engine.connect() as conn:
        found = {i["name"]: i["column_names"] for i in sa.inspect(conn).get_indexes("book") if i["name"].startswith("ix_")}
    assert found["ix_book_category"] == ["category"] and found["ix_book_genre"] == ["genre"]
    assert office.rows("book", "category") == [(1, "novel"), (2, "science"), (3, None)]


def test_link_field_renamed_keeps_its_foreign_key(office: Office) -> None:
    def rename(s: dict) -> None:
        f = office.field("loan", "member")
        f["previous_name"], f["name"] = "member", "reader"

    office.edit(rename)
    assert office.plan_text() == ["field renamed loan.member_id → reader_id: 2 values kept"]
    assert office.upgrade().exit_code == 0
    assert office.rows("loan", "reader_id") == [(1, 1), (2, 2)]
    import sqlalchemy as sa

    with office.engine.connect() as conn:
        fks = sa.inspect(conn).get_foreign_keys("loan")
    assert {(tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in fks} >= {(("reader_id",), "member")}


def test_field_renamed_carries_its_audit_trail_and_history(office: Office) -> None:
    """A record's audit rows keyed the change by the old column (member_id, returned): after the
    rename the history page would show a name no field has. The keys follow, as do the grade and
    workflow history of the field, in the rename's own transaction; other fields and entities and
    values that merely contain the old name are left alone."""
    import json

    import sqlalchemy as sa

    from app.record import audit
    from app.record.tables import GradeChange, Transition

    at = dt.datetime(2026, 11, 1, 9, 0)
    with office.engine.begin() as conn:
        conn.execute(audit.AuditRow.__table__.insert(), [
            {"entity": "loan", "record_id": 1, "action": "update", "at": at,
             "changes": json.dumps({"member_id": [1, 2], "returned": [False, True], "code": ["member_id", "x"]})},
            {"entity": "loan", "record_id": 2, "action": "update", "at": at, "changes": json.dumps({"code": ["returned", "JY-9"]})},
            # a field once called reader, dropped long ago, left its entry beside member's: neither is lost
            {"entity": "loan", "record_id": 3, "action": "create", "at": at,
             "changes": json.dumps({"member_id": [None, 1], "reader_id": [None, "旧值"]})},
            {"entity": "book", "record_id": 1, "action": "update", "at": at, "changes": json.dumps({"returned": [1, 2]})}])
        conn.execute(GradeChange.__table__.insert().values(entity="loan", record_id=1, field="returned", old_value="B",
                                                           new_value="A", rule="grading!C2", changed_on=at))
        conn.execute(Transition.__table__.insert().values(entity="loan", record_id=1, field="returned", to_state="yes",
                                                          action="return", at=at))

    def rename(s: dict) -> None:
        member, returned = office.field("loan", "member"), office.field("loan", "returned")
        member["previous_name"], member["name"] = "member", "reader"
        returned["previous_name"], returned["name"] = "returned", "is_returned"

    office.edit(rename)
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    with office.engine.connect() as conn:
        t = audit.AuditRow.__table__
        rows = {(e, r): json.loads(c) for e, r, c in conn.execute(sa.select(t.c.entity, t.c.record_id, t.c.changes))}
        assert rows[("loan", 1)] == {"reader_id": [1, 2], "is_returned": [False, True], "code": ["member_id", "x"]}
        assert rows[("loan", 2)] == {"code": ["returned", "JY-9"]}  # a value that is an old name: not a key
        assert rows[("loan", 3)] == {"member_id": [None, 1], "reader_id": [None, "旧值"]}
        assert rows[("book", 1)] == {"returned": [1, 2]}  # another entity's field of that name
        for table in (GradeChange.__table__, Transition.__table__):
            assert conn.execute(sa.select(table.c.field)).scalars().all() == ["is_returned"], table.name


def test_entity_renamed_with_previous_name_keeps_rows_and_links(office: Office) -> None:
    def rename(s: dict) -> None:
        s["entities"][1].update(name="reader", previous_name="member")
        for f in s["fields"]:
            if f["entity"] == "member":
                f["entity"] = "reader"
        office.field("loan", "member")["link"] = "reader"
        for p in s["permissions"]:
            if p["entity"] == "member":
                p["entity"] = "reader"

    office.edit(rename)
    assert office.plan_text() == ["entity renamed member → reader: 2 rows kept",
                                  "numbering counters, audit trail, grade history, messages and permissions of member follow the"
                                  " rename to reader: ab_view_menu 2",
                                  "link follows the renamed entity member → reader: values of loan.member_id unchanged"]
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert office.rows("reader", "full_name") == [(1, "张三"), (2, "李四")]
    assert office.rows("loan", "member_id") == [(1, 1), (2, 2)]


def named_indexes(office: Office, table: str) -> list[str]:
    """The names of ``table``'s own indexes, from the database's catalogue."""
    query = ("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND name NOT LIKE 'sqlite_%' ORDER BY name"
             if office.engine.dialect.name == "sqlite" else
             "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :t AND indexname NOT LIKE 'pk_%' "
             "ORDER BY indexname")
    with office.engine.connect() as conn:
        return list(conn.execute(sa.text(query), {"t": table}).scalars())


def rename_member(office: Office, to: str) -> None:
    """The office renames the entity ``member`` to ``to`` (its fields, rights and the loan's link
    follow), and upgrades."""
    def rename(s: dict) -> None:
        s["entities"][1].update(name=to, previous_name="member")
        for row in s["fields"] + s["permissions"]:
            if row["entity"] == "member":
                row["entity"] = to
        office.field("loan", "member")["link"] = to

    office.edit(rename)
    result = office.upgrade()
    assert result.exit_code == 0, result.output


def test_an_entity_name_freed_by_a_rename_can_be_used_again_each_table_with_its_own_indexes(office: Office) -> None:
    rename_member(office, "reader")

    def new_member(s: dict) -> None:  # a new entity takes the freed name, with fields of the same names
        s["entities"][1].pop("previous_name")
        s["entities"].append({"name": "member", "label": "会员", "label_en": "Member", "menu": "读者", "title_field": "full_name",
                              "owner_field": "librarian"})
        s["fields"] += [{**f, "entity": "member"} for f in s["fields"] if f["entity"] == "reader"]

    office.edit(new_member)
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    mine = {t: named_indexes(office, t) for t in ("reader", "member")}
    assert mine["member"] and all(name.startswith(("ix_member_", "lx_member_")) for name in mine["member"])
    assert mine["reader"] and all(name.startswith(("ix_reader_", "lx_reader_")) for name in mine["reader"])
    assert [n.replace("member", "reader") for n in mine["member"]] == mine["reader"]
    assert office.rows("reader", "full_name") == [(1, "张三"), (2, "李四")]
    office.insert("member", {"full_name": "王五"})
    assert office.rows("member", "full_name") == [(1, "王五")]


def test_a_unique_field_renamed_frees_its_name_for_a_new_unique_field(office: Office) -> None:
    def rename(s: dict) -> None:
        f = office.field("book", "isbn")
        f["previous_name"], f["name"] = "isbn", "code"

    office.edit(rename)
    assert office.upgrade().exit_code == 0
    office.edit(lambda s: (office.field("book", "code").pop("previous_name"),
                           s["fields"].append({"entity": "book", "name": "isbn", "label": "新ISBN", "type": "string", "max": 20})))
    assert office.upgrade().exit_code == 0
    office.edit(lambda s: office.field("book", "isbn").update(max=30))  # any later change of the new field
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    office.edit(lambda s: office.field("book", "isbn").update(unique="yes"))
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    office.insert("book", {"title": "新书", "code": "C9", "isbn": "N1"})
    for duplicate in ({"title": "重复", "code": "C9", "isbn": "N2"}, {"title": "重复", "code": "C8", "isbn": "N1"}):
        with pytest.raises(sa.exc.IntegrityError):  # each field unique on its own
            office.insert("book", duplicate)


@pytest.mark.parametrize("long", [False, True])
def test_an_entity_name_freed_by_a_rename_is_free_whatever_the_length_of_its_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                      long: bool) -> None:
    field = "a_rather_long_field_name_for_the_readerx"  # 40: the longest a field name may be if long else "nickname"
    sheets = library_sheets()
    sheets["fields"].append({"entity": "member", "name": field, "label": "别名", "type": "string", "filter": "yes"})
    with database("sqlite", tmp_path) as url:
        office = Office(tmp_path, sheets, url, monkeypatch)
        assert office.upgrade().exit_code == 0

        rename_member(office, "library_member_record")
        office.edit(lambda s: (s["entities"][1].pop("previous_name"),
                               s["entities"].append({"name": "member", "label": "会员", "menu": "读者", "title_field": "full_name"}),
                               s["fields"].extend([{**f, "entity": "member"} for f in s["fields"]
                                                   if f["entity"] == "library_member_record" and f["type"] != "user"])))
        result = office.upgrade()
        assert result.exit_code == 0, result.output
        # on the renamed table: 65 characters when long, past PostgreSQL's limit but not SQLite's
        assert f"ix_member_{field}" in named_indexes(office, "member")
        assert f"ix_library_member_record_{field}" in named_indexes(office, "library_member_record")
        office.engine.dispose()


def test_type_change_converts_when_every_value_converts(office: Office) -> None:
    office.edit(lambda s: office.field("book", "isbn").update(type="integer", unique="no", max=None))
    plan = office.plan_text()
    assert plan[0] == ("type change book.isbn string(20) → integer: 2 values would not convert unchanged (not a valid integer: 2),"
                       " e.g. #1='A1', #2='A2' — keep the field as string, or correct those rows first")
    assert office.upgrade().exit_code == 1
    with office.engine.begin() as conn:
        import sqlalchemy as sa

        conn.execute(sa.text("UPDATE book SET isbn = '9787' WHERE id = 1"))
        conn.execute(sa.text("UPDATE book SET isbn = ' 12 ' WHERE id = 2"))
    assert office.plan_text()[0] == "type change book.isbn string(20) → integer: all 2 values convert"
    assert office.upgrade().exit_code == 0
    assert office.rows("book", "isbn") == [(1, 9787), (2, 12), (3, None)]


def test_unique_added_over_duplicates_is_refused_with_values(office: Office) -> None:
    office.insert("member", {"full_name": "张三", "email": "x@example.cn"})
    office.edit(lambda s: office.field("member", "full_name").update(unique="yes"))
    assert office.plan_text() == ["member.full_name becomes unique but 1 values repeat: '张三' ×2",
                                  "member.full_name: index removed"]
    before = office.snapshot()
    assert office.upgrade().exit_code == 1
    assert office.snapshot() == before


def test_required_added_fills_empty_rows_from_the_default_or_is_refused(office: Office) -> None:
    office.edit(lambda s: office.field("book", "pages").update(required="yes"))
    assert office.plan_text() == ["book.pages becomes required but 1 rows are empty — give a default in fields"]
    assert office.upgrade().exit_code == 1
    office.edit(lambda s: office.field("book", "pages").update(default=100))
    assert office.plan_text() == ["book.pages becomes required: 1 empty values get the default 100"]
    assert office.upgrade().exit_code == 0
    assert office.rows("book", "pages") == [(1, 1606), (2, 302), (3, 100)]


def test_choice_value_removed_while_used_is_refused_or_mapped(office: Office) -> None:
    office.edit(lambda s: s["choices"].remove(next(c for c in s["choices"] if c["value"] == "science")))
    assert office.plan_text() == [
        "choice values science removed but 1 rows of book.genre use them: 'science': 1 — map them with previous_value in choices,"
        " or change those rows first"]
    assert office.upgrade().exit_code == 1
    office.edit(lambda s: s["choices"].append({"list": "genre", "value": "popsci", "label": "科普读物", "previous_value": "science"}))
    assert office.plan_text() == ["choice values replaced in book.genre: science→popsci (1)"]
    assert office.upgrade().exit_code == 0
    assert office.rows("book", "genre") == [(1, "novel"), (2, "popsci"), (3, None)]


def test_link_target_changed_is_refused_while_rows_hold_a_value(office: Office) -> None:
    """The stored ids are ids of books: pointing the field at members would silently make every
    loan name some unrelated member (ids 1, 2 exist in both tables), so it is refused until the
    field is empty; a new link field is the way to link to members."""
    office.edit(lambda s: office.field("loan", "book").update(required="no"))
    assert office.upgrade().exit_code == 0
    office.edit(lambda s: office.field("loan", "book").update(link="member"))
    assert office.plan_text() == [
        "link target changed from book to member: 2 rows of loan.book_id hold ids of book records that would silently point"
        " to unrelated member records, e.g. #1=1, #2=2 — keep this link and add a new link field to member (a removed field"
        " is kept hidden with its values), or empty this field in those rows first"]
    before = office.snapshot()
    result = office.upgrade()
    assert result.exit_code == 1 and "upgrade refused" in result.output
    assert office.snapshot() == before
    with office.engine.begin() as conn:
        import sqlalchemy as sa

        conn.execute(sa.text("UPDATE loan SET book_id = NULL"))
    assert office.plan_text()[0] == "link target changed from book to member: no row of loan.book_id has a value"
    assert office.upgrade().exit_code == 0
    office.insert("loan", {"code": "JY-3", "book_id": 2, "member_id": 1, "returned": False})
    assert office.rows("loan", "book_id") == [(1, None), (2, None), (3, 2)]


def test_failed_upgrade_leaves_the_database_exactly_as_before(office: Office, monkeypatch: pytest.MonkeyPatch) -> None:
    office.edit(lambda s: s["fields"].extend([
        {"entity": "book", "name": "shelf", "label": "书架", "type": "string", "default": "A"},
        {"entity": "member", "name": "phone", "label": "电话", "type": "phone"},
    ]))
    from app.migrate import apply as migrate  # run_steps calls its apply()

    before = office.snapshot()
    files = {p.relative_to(office.generated): p.read_bytes() for p in office.generated.rglob("*") if p.is_file()}
    apply, applied = migrate.apply, []

    def apply_then_crash(*args: Any) -> None:  # the process dies after the first step
        apply(*args)
        applied.append(args[0])
        raise RuntimeError(f"injected failure after step {len(applied)}")

    monkeypatch.setattr(migrate, "apply", apply_then_crash)
    with pytest.raises(RuntimeError, match="injected failure after step 1"):
        office.upgrade()
    assert office.snapshot() == before
    # nor the generated files: no revision 0002 (nor its bytecode), spec.json as it was
    assert {p.relative_to(office.generated): p.read_bytes() for p in office.generated.rglob("*") if p.is_file()} == files
    monkeypatch.setattr(migrate, "apply", apply)
    assert office.upgrade().exit_code == 0
    assert office.rows("book", "shelf") == [(1, "A"), (2, "A"), (3, "A")]


def _rename_loan(office: Office, new: str = "lending") -> None:
    def rename(s: dict) -> None:
        next(e for e in s["entities"] if e["name"] == "loan").update(name=new, previous_name="loan")
        for row in s["fields"] + s["permissions"]:
            if row["entity"] == "loan":
                row["entity"] = new

    office.edit(rename)


def test_entity_renamed_carries_its_numbers_history_messages_and_rights(office: Office) -> None:
    """Everything the runtime keeps under an entity's name moves with a rename, in the same
    migration: the next number continues the sequence, a record's audit trail, grade, workflow
    and survey history are still found, queued messages link to the new screen, and rights given
    to a role outside the workbook still apply."""
    import sqlalchemy as sa
    from flask_appbuilder.security.sqla.models import PermissionView, Role, ViewMenu, assoc_permissionview_role

    from app.record import audit, numbering
    from app.record.tables import GradeChange, OutboxMessage, SurveyAnswer, Transition

    when, pattern = dt.datetime(2026, 11, 2, 9, 0), "JY-{YYYY}-{####}"
    at = dt.datetime(2026, 11, 1, 9, 0)
    with office.engine.begin() as conn:
        assert numbering.allocate(conn, "loan", pattern, when, 2) == ["JY-2026-0001", "JY-2026-0002"]
        conn.execute(audit.AuditRow.__table__.insert(), [
            {"entity": "loan", "record_id": 1, "action": "create", "at": at, "changes": '{"code": [null, "JY-1"]}'},
            {"entity": "loan", "record_id": 1, "action": "update", "at": at, "changes": '{"returned": [false, true]}'},
            {"entity": "book", "record_id": 1, "action": "create", "at": at, "changes": "{}"}])
        conn.execute(GradeChange.__table__.insert().values(entity="loan", record_id=1, field="returned", old_value="B",
                                                           new_value="A", rule="grading!C2", changed_on=at))
        conn.execute(Transition.__table__.insert().values(entity="loan", record_id=1, field="returned", to_state="yes",
                                                          action="return", at=at))
        conn.execute(SurveyAnswer.__table__.insert().values(survey="s", entity="loan", record_id=1, question_order=1, value=4,
                                                            submitted_at=at))
        conn.execute(OutboxMessage.__table__.insert().values(
            key="k1", source="due", entity="loan", record_id=1, occurrence="P1", step=0, channel="inapp",
            link="http://crm.example/loanview/show/1", status="pending", attempts=0, next_attempt_at=at, created_on=at))
        # a role an administrator made in the screens (not in the workbook) may list loans
        role_id = conn.execute(Role.__table__.insert().values(name="审计员").returning(Role.__table__.c.id)).scalar_one()
        pv, vm = PermissionView.__table__, ViewMenu.__table__
        pv_id = conn.execute(sa.select(pv.c.id).join(vm, vm.c.id == pv.c.view_menu_id).where(vm.c.name == "loan").limit(1)).scalar_one()
        conn.execute(assoc_permissionview_role.insert().values(permission_view_id=pv_id, role_id=role_id))

    _rename_loan(office)
    assert office.plan_text() == [
        "entity renamed loan → lending: 2 rows kept",
        "numbering counters, audit trail, grade history, messages and permissions of loan follow the rename to lending:"
        " crm_audit 2, crm_grade_change 1, crm_outbox 1, crm_survey_answer 1, crm_transition 1, crm_sequence 1, ab_view_menu 2"]
    result = office.upgrade()
    assert result.exit_code == 0, result.output

    with office.engine.begin() as conn:
        assert numbering.allocate(conn, "lending", pattern, when) == ["JY-2026-0003"]
        assert [h["action"] for h in audit.history(conn, "lending", 1)] == ["create", "update"]
        assert audit.history(conn, "loan", 1) == []
        assert [h["action"] for h in audit.history(conn, "book", 1)] == ["create"]
        for table in (GradeChange.__table__, Transition.__table__, SurveyAnswer.__table__, OutboxMessage.__table__):
            assert conn.execute(sa.select(table.c.entity, table.c.record_id)).all() == [("lending", 1)], table.name
        assert conn.execute(sa.select(OutboxMessage.__table__.c.link)).scalar_one() == "http://crm.example/lendingview/show/1"
        rights = conn.execute(sa.select(vm.c.name).select_from(assoc_permissionview_role.join(pv).join(vm))
                              .where(assoc_permissionview_role.c.role_id == role_id)).scalars().all()
        assert rights == ["lending"]
        assert conn.execute(sa.select(sa.func.count()).select_from(vm).where(vm.c.name.in_(["loan", "loan.menu"]))).scalar_one() == 0


def test_entity_renamed_onto_history_of_an_earlier_entity_is_refused(office: Office) -> None:
    """Audit rows still kept under the new name (an entity of that name existed once) would be
    mixed with the renamed records' history: the rename is refused and nothing changes."""
    from app.record import audit

    with office.engine.begin() as conn:
        conn.execute(audit.AuditRow.__table__.insert().values(entity="lending", record_id=1, action="create",
                                                              at=dt.datetime(2025, 1, 1), changes="{}"))
    before = office.snapshot()
    _rename_loan(office)
    assert office.plan_text()[0] == (
        "entity renamed loan → lending: history of an earlier entity is still kept under the name lending (crm_audit 1) and"
        " would mix with these records — choose another name")
    result = office.upgrade()
    assert result.exit_code == 1 and "choose another name" in result.output
    assert office.snapshot() == before
    assert not list((office.generated / "versions").glob("0002_*.py"))


def test_text_to_integer_refuses_values_that_would_change(office: Office) -> None:
    """'007' would become 7 and a 20-digit number does not fit an integer column: the plan names
    the field, how many rows, why, examples and what to do, and nothing is written."""
    import sqlalchemy as sa

    with office.engine.begin() as conn:
        conn.execute(sa.text("UPDATE book SET isbn = '007' WHERE id = 1"))
        conn.execute(sa.text("UPDATE book SET isbn = '12345678901234567890' WHERE id = 2"))
    office.edit(lambda s: office.field("book", "isbn").update(type="integer", unique="no", max=None))
    assert office.plan_text()[0] == (
        "type change book.isbn string(20) → integer: 2 values would not convert unchanged (leading zeros would be lost: 1,"
        " too large for the type: 1), e.g. #1='007', #2='12345678901234567890' — keep the field as string, or correct those"
        " rows first")
    zh = office.plan_text("zh")[0]
    assert "book.isbn(图书.ISBN)" in zh and "2 个值无法原样转换" in zh and "开头的 0 会丢失 1 个" in zh and "请保持字段类型为 string" in zh
    before = office.snapshot()
    result = office.upgrade()
    assert result.exit_code == 1 and "upgrade refused" in result.output and "leading zeros" in result.output
    assert office.snapshot() == before
    assert not list((office.generated / "versions").glob("0002_*.py"))
    with office.engine.begin() as conn:
        conn.execute(sa.text("UPDATE book SET isbn = '7' WHERE id = 1"))
        conn.execute(sa.text("UPDATE book SET isbn = '1234567' WHERE id = 2"))
    assert office.upgrade().exit_code == 0
    assert office.rows("book", "isbn") == [(1, 7), (2, 1234567), (3, None)]


def test_upgrade_refused_after_generating_leaves_no_files(office: Office, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan passes, then a row arrives that the step cannot take before the upgrade checks
    again: the upgrade is refused and the revision and the updated spec it had written are gone,
    so the next run (after the row is fixed) goes through."""
    import sqlalchemy as sa

    from app.ops import evolution

    files = {p.relative_to(office.generated): p.read_bytes() for p in office.generated.rglob("*") if p.is_file()
             and "__pycache__" not in p.parts}
    office.edit(lambda s: office.field("book", "pages").update(required="yes"))
    with office.engine.begin() as conn:
        conn.execute(sa.text("UPDATE book SET pages = 10 WHERE pages IS NULL"))
    plan = evolution.make_plan

    def plan_then_a_row_arrives(*args: object) -> object:
        found = plan(*args)
        office.insert("book", {"title": "新书", "isbn": "A9", "pages": None})
        return found

    monkeypatch.setattr(evolution, "make_plan", plan_then_a_row_arrives)
    result = office.upgrade()
    assert result.exit_code == 1 and "book.pages becomes required but 1 rows are empty" in result.output
    after = {p.relative_to(office.generated): p.read_bytes() for p in office.generated.rglob("*") if p.is_file()
             and "__pycache__" not in p.parts}
    assert after == files
    assert not list((office.generated / "versions").rglob("0002_*"))
    monkeypatch.setattr(evolution, "make_plan", plan)
    with office.engine.begin() as conn:
        conn.execute(sa.text("UPDATE book SET pages = 20 WHERE pages IS NULL"))
    assert office.upgrade().exit_code == 0
    assert len(list((office.generated / "versions").glob("0002_*.py"))) == 1


@pytest.mark.parametrize(("value", "ftype", "dialect", "reason"), [
    ("007", "integer", "sqlite", "leading_zeros"), ("-00", "integer", "postgresql", "leading_zeros"), ("0", "integer", "sqlite", None),
    (" 12 ", "integer", "sqlite", None), ("1,000", "integer", "sqlite", None), ("0.5", "integer", "sqlite", "invalid"),
    ("2147483648", "integer", "postgresql", "too_large"), ("2147483648", "integer", "sqlite", None),
    ("12345678901234567890", "integer", "sqlite", "too_large"), ("A1", "integer", "sqlite", "invalid"),
    ("01.5", "decimal", "sqlite", "leading_zeros"), ("1.23456", "decimal", "sqlite", "decimals"), ("1.2345", "decimal", "sqlite", None),
    ("123456789012345", "decimal", "sqlite", "too_large"), ("12345678901234.5", "decimal", "postgresql", None),
    ("0.001", "money", "sqlite", "invalid"), ("0012", "string", "sqlite", None),
])
def test_conversion_problem_names_what_a_value_would_lose(value: str, ftype: str, dialect: str, reason: str | None) -> None:
    from app.migrate.data import conversion_problem
    from app.spec.columns import Col

    assert conversion_problem(value, Col("x", ftype), (), dialect) == reason


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_system_table_of_an_older_release_gains_new_columns_and_keeps_rows(kind: str, tmp_path: Path) -> None:
    """A database made before a runtime table grew a column (crm_outbox.anchor) gets the column,
    nullable, with every row kept; running it again (or two processes at once) changes nothing."""
    import sqlalchemy as sa

    from app.messaging.outbox import OUTBOX
    from app.migrate.system import add_system_columns, ensure_system_tables

    with database(kind, tmp_path) as url:
        engine = sa.create_engine(url)
        old = sa.MetaData()
        sa.Table("crm_outbox", old, *(sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                                      for c in OUTBOX.columns if c.name != "anchor"))
        old.create_all(engine)
        row = {"key": "k1", "source": "s", "entity": "e", "record_id": 1, "occurrence": "P1", "step": 0, "channel": "inapp",
               "status": "sent", "attempts": 1, "next_attempt_at": dt.datetime(2026, 1, 1), "created_on": dt.datetime(2026, 1, 1)}
        with engine.begin() as conn:
            conn.execute(old.tables["crm_outbox"].insert().values(**row))
        ensure_system_tables(engine)
        assert "anchor" in {c["name"] for c in sa.inspect(engine).get_columns("crm_outbox")}
        with engine.connect() as conn:
            kept = conn.execute(sa.select(OUTBOX.c.key, OUTBOX.c.status, OUTBOX.c.anchor)).all()
        assert [tuple(r) for r in kept] == [("k1", "sent", None)]
        assert add_system_columns(engine, [OUTBOX]) == []
        engine.dispose()


SHELF = {"entity": "book", "name": "shelf", "label": "书架", "type": "string", "filter": "yes"}


def test_an_upgrade_while_another_of_the_database_runs_stops_at_once_naming_it_and_changes_nothing(office: Office,
                                                                                               tmp_path: Path) -> None:
    from app.migrate.upgrade import one_upgrade_at_a_time

    office.edit(lambda s: s["fields"].append(SHELF))
    before = office.snapshot()
    elsewhere = sa.create_engine(office.url)  # another checkout's (another machine's) upgrade of this database
    with one_upgrade_at_a_time(elsewhere):
        result = office.upgrade()
        assert result.exit_code == 1
        assert "另一个升级正在进行" in result.output and "nothing changed" in result.output
        assert f"crm upgrade pid {os.getpid()} on {socket.gethostname()}" in result.output
        assert ("PostgreSQL session" in result.output) is (office.engine.dialect.name == "postgresql")
        assert office.snapshot() == before
        assert not list((office.generated / "versions").glob("0002_*.py"))
    elsewhere.dispose()
    (tmp_path / "other").mkdir()
    with database("sqlite" if office.engine.dialect.name == "sqlite" else "postgres", tmp_path / "other") as url:  # another office's database
        other = sa.create_engine(url)
        with one_upgrade_at_a_time(other):
            result = office.upgrade()
        other.dispose()
    assert result.exit_code == 0, result.output
    assert "shelf" in office.columns("book")


def test_two_upgrades_started_together_apply_the_change_once(office: Office) -> None:
    office.edit(lambda s: s["fields"].append(SHELF))
    runs = [subprocess.Popen([sys.executable, "-m", "app.cli", "upgrade"], cwd=ROOT, env=dict(os.environ),  # noqa: S603
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [(run.wait(timeout=300), run.stdout.read()) for run in runs if run.stdout]
    for code, output in outputs:
        assert code == 0 or (code == 1 and "另一个升级正在进行" in output), output
    assert sum("已应用迁移" in output for _, output in outputs) == 1, outputs
    assert "shelf" in office.columns("book")
    assert len(list((office.generated / "versions").glob("0002_*.py"))) == 1
    assert len(list((office.generated / "versions").glob("*.py"))) == 2
    assert office.upgrade().exit_code == 0 and office.plan_text() == []


def test_plan_says_a_field_becomes_encrypted_and_how_many_values_are_written_again(office: Office) -> None:
    from app.access.crypto import decrypt

    office.edit(lambda s: s["fields"].append({"entity": "member", "name": "note", "label": "备注", "type": "text"}))
    assert office.upgrade().exit_code == 0
    with office.engine.begin() as conn:
        conn.execute(sa.text("UPDATE member SET note = 'VIP' WHERE id = 1"))
    office.field("member", "note")["encrypted"] = "yes"
    office.save()
    assert "member.note becomes encrypted at rest: 1 values encrypted and written back" in office.plan_text()
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert "改为加密保存:1 个值加密后重写" in result.output
    assert [decrypt(v) if v else v for _, v in office.rows("member", "note")] == ["VIP", None]


def test_a_failed_sqlite_upgrade_changes_nothing_and_keeps_what_was_saved_meanwhile(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from app.migrate import upgrade as migrate  # the upgrade's own backup and index steps

    with database("sqlite", tmp_path) as url:
        office = Office(tmp_path, library_sheets(), url, monkeypatch)
        assert office.upgrade().exit_code == 0
        office.insert("book", {"title": "红楼梦", "isbn": "A1"})
        office.edit(lambda s: s["fields"].append(SHELF))
        backup, ensure_indexes = migrate.backup_sqlite, migrate.ensure_indexes

        def backup_then_someone_saves(path: Path, backup_dir: Path) -> Path | None:
            made = backup(path, backup_dir)
            office.insert("book", {"title": "备份之后存的", "isbn": "A2"})
            return made

        def fail(conn: sa.Connection, declared: sa.MetaData) -> None:
            assert "shelf" in {c["name"] for c in sa.inspect(conn).get_columns("book")}  # the revision ran
            raise OSError("disk full")

        monkeypatch.setattr(migrate, "backup_sqlite", backup_then_someone_saves)
        monkeypatch.setattr(migrate, "ensure_indexes", fail)
        with pytest.raises(OSError, match="disk full"):
            office.upgrade()
        assert "shelf" not in office.columns("book")  # the schema change went with the transaction
        assert [title for _, title in office.rows("book", "title")] == ["红楼梦", "备份之后存的"]
        monkeypatch.setattr(migrate, "backup_sqlite", backup)
        monkeypatch.setattr(migrate, "ensure_indexes", ensure_indexes)
        assert office.upgrade().exit_code == 0
        assert "shelf" in office.columns("book")
        office.engine.dispose()


def test_a_field_renamed_onto_a_removed_fields_kept_column_is_refused_and_nothing_changes(office: Office) -> None:
    office.edit(lambda s: s["fields"].remove(office.field("book", "isbn")))
    assert office.upgrade().exit_code == 0  # isbn's column and values are kept, hidden
    before = office.snapshot()

    def rename(s: dict[str, Any]) -> None:
        f = office.field("book", "pages")
        f["previous_name"], f["name"] = "pages", "isbn"

    office.edit(rename)
    plan = office.plan()
    assert plan["refused"] == 1
    assert any("book.pages → isbn: the table already has a column isbn" in line["en"] for line in plan["regenerate"])
    assert plan["retired"] == []  # pages is renamed, not left behind
    result = office.upgrade()
    assert result.exit_code == 1 and "choose another name" in result.output and "Traceback" not in result.output
    assert office.snapshot() == before


def test_the_plan_does_not_list_a_renamed_field_or_entity_as_left_behind(office: Office) -> None:
    def rename(s: dict[str, Any]) -> None:
        f = office.field("book", "pages")
        f["previous_name"], f["name"] = "pages", "page_count"

        s["entities"][1].update(name="reader", previous_name="member")
        for row in s["fields"] + s["permissions"]:
            if row["entity"] == "member":
                row["entity"] = "reader"
        office.field("loan", "member")["link"] = "reader"

    office.edit(rename)
    plan = office.plan()
    assert plan["refused"] == 0 and plan["retired"] == []
    assert office.upgrade().exit_code == 0


def test_an_import_reads_a_rule_through_a_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule naming a linked record's field (book.pages) read it as blank in an import — the link
    cell holds an id — and refused every row; a save on screen read it right."""
    from openpyxl import Workbook

    sheets = library_sheets()
    sheets["validations"] = [{"entity": "loan", "condition": "not book or book.pages >= 10", "message": "页数太少的书不外借"}]
    with database("sqlite", tmp_path) as url:
        office = Office(tmp_path, sheets, url, monkeypatch)
        assert office.upgrade().exit_code == 0
        office.insert("book", {"title": "厚书", "pages": 300, "version": 1}, {"title": "薄书", "pages": 5, "version": 1})
        office.insert("member", {"full_name": "张三", "version": 1})
        path = tmp_path / "loans.xlsx"
        wb = Workbook()
        for row in (["图书", "读者", "应还日期"], ["厚书", "张三", "2026-12-01"], ["薄书", "张三", "2026-12-01"]):
            wb.active.append(row)
        wb.save(path)
        def crm(*args: str) -> str:  # its own process: this one holds the shipped app (one generated app per process)
            done = subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=dict(os.environ),  # noqa: S603
                                  capture_output=True, text=True, timeout=300)
            return done.stdout + done.stderr

        crm("user", "add", "boss", "--role", "馆长", "--password", "boss-Pass-123")
        output = crm("import", "loan", str(path), "--skip-bad-rows", "--as", "boss")
        assert "inserted 1" in output and "failed 1" in output, output
        assert [r[1] for r in office.rows("loan", "book_id")] == [1]
