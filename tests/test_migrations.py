"""Schema evolution keeps every row: each rule on SQLite and on PostgreSQL, with `crm plan` text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.migration_helpers import Office, database
from tests.workbooks import library_sheets


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

    from app.runtime.migrate import declared_metadata
    from generator import load_spec

    spec, _ = load_spec(office.workbook)
    def ours(obj: object, name: str, type_: str, reflected: bool, compare_to: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        return not table.startswith(("ab_", "alembic", "crm_"))

    with office.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": ours})
        diff = compare_metadata(ctx, declared_metadata(spec))
    assert diff == []
    assert office.plan() == {"pending": [], "regenerate": [], "retired": [], "refused": 0}


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
                                  "link target changed to reader: every value of loan.member_id resolves"]
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert office.rows("reader", "full_name") == [(1, "张三"), (2, "李四")]
    assert office.rows("loan", "member_id") == [(1, 1), (2, 2)]


def test_type_change_converts_when_every_value_converts(office: Office) -> None:
    office.edit(lambda s: office.field("book", "isbn").update(type="integer", unique="no", max=None))
    plan = office.plan_text()
    assert plan[0] == "type change book.isbn string(20) → integer: 2 values do not convert, e.g. #1='A1', #2='A2'"
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


def test_link_target_changed_is_refused_unless_values_resolve(office: Office) -> None:
    office.edit(lambda s: office.field("loan", "book").update(link="member"))  # ids 1, 2 exist in member
    assert office.plan_text() == ["link target changed to member: every value of loan.book_id resolves"]
    office.insert("loan", {"code": "JY-3", "book_id": 3, "member_id": 1, "returned": False})
    assert office.plan_text() == ["link target changed to member: 1 values of loan.book_id do not resolve, e.g. #3=3"]
    assert office.upgrade().exit_code == 1


def test_failed_upgrade_leaves_the_database_exactly_as_before(office: Office, monkeypatch: pytest.MonkeyPatch) -> None:
    office.edit(lambda s: s["fields"].extend([
        {"entity": "book", "name": "shelf", "label": "书架", "type": "string", "default": "A"},
        {"entity": "member", "name": "phone", "label": "电话", "type": "phone"},
    ]))
    before = office.snapshot()
    monkeypatch.setenv("CRM_TEST_FAIL_AFTER_STEP", "1")
    with pytest.raises(RuntimeError, match="injected failure after step 1"):
        office.upgrade()
    assert office.snapshot() == before
    monkeypatch.delenv("CRM_TEST_FAIL_AFTER_STEP")
    assert office.upgrade().exit_code == 0
    assert office.rows("book", "shelf") == [(1, "A"), (2, "A"), (3, "A")]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_system_table_of_an_older_release_gains_new_columns_and_keeps_rows(kind: str, tmp_path: Path) -> None:
    """A database made before a runtime table grew a column (crm_outbox.anchor) gets the column,
    nullable, with every row kept; running it again (or two processes at once) changes nothing."""
    import sqlalchemy as sa

    from app.runtime.migrate import add_system_columns, ensure_system_tables
    from app.runtime.outbox import OUTBOX

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
