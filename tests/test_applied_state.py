"""The database, not the generated folder, is the truth: `crm generate` → `crm plan` → `crm upgrade`
start from what the database was last upgraded to, so a refused change undone in the workbook
goes through, a grading change generated first is still planned and applied, and several
databases each get the plan from their own state (SQLite and PostgreSQL, through the CLI)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from generator import generate_spec, load_spec
from tests.migration_helpers import Office, Sheets, database
from tests.workbooks import library_sheets

pytestmark = pytest.mark.slow  # crm upgrade on a database per test

BOOKS = ({"title": "红楼梦", "isbn": "A1", "pages": 1606, "genre": "novel"},
         {"title": "三体", "isbn": "A2", "pages": 302, "genre": "science"},
         {"title": "围城", "isbn": None, "pages": None, "genre": None},
         {"title": "三体", "isbn": "A4", "pages": 302, "genre": "science"})  # a second copy: titles are not unique


def graded_library() -> Sheets:
    """The library with books graded long/short by their pages (first matching rule wins)."""
    sheets = library_sheets()
    sheets["fields"].append({"entity": "book", "name": "size", "label": "篇幅", "type": "choice", "choices": "size",
                             "readonly": "yes", "list": "yes"})
    sheets["choices"] += [{"list": "size", "value": "long", "label": "长篇"}, {"list": "size", "value": "short", "label": "短篇"}]
    sheets["grading"] = [{"entity": "book", "field": "size", "grade": "long", "order": 1, "condition": "pages >= 500"},
                         {"entity": "book", "field": "size", "grade": "short", "order": 2}]
    return sheets


@pytest.fixture(params=["sqlite", "postgres"])
def office(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Office]:
    with database(request.param, tmp_path) as url:
        o = Office(tmp_path, graded_library(), url, monkeypatch)
        assert o.upgrade().exit_code == 0
        o.insert("book", *BOOKS)
        o.insert("member", {"full_name": "张三", "email": "zs@example.cn"})
        o.insert("loan", {"code": "JY-1", "book_id": 1, "member_id": 1, "returned": False})
        assert o.run("regrade").exit_code == 0  # rows written by SQL get their grades
        yield o
        o.engine.dispose()


def revisions(office: Office) -> list[str]:
    return sorted(p.name for p in (office.generated / "versions").glob("[0-9]*.py"))


def entity_rows(office: Office) -> dict[str, Any]:
    return {t: v for t, v in office.snapshot().items() if not t.startswith(("ab_", "crm_", "alembic"))}


UP_TO_DATE = {"pending": [], "regenerate": [], "retired": [], "refused": 0, "owed": []}


@pytest.mark.parametrize("change", ["unique", "retype"])
def test_an_upgrade_refused_then_undone_in_the_workbook_goes_through(office: Office, change: str) -> None:
    before, rows, files = copy.deepcopy(office.sheets), entity_rows(office), revisions(office)
    if change == "unique":  # two books share a title
        office.edit(lambda s: office.field("book", "title").update(unique="yes"))
    else:  # ISBNs are not numbers
        office.edit(lambda s: office.field("book", "isbn").update(type="integer", max=None))
    generated = office.run("generate")
    assert generated.exit_code == 0, generated.output
    assert len(revisions(office)) == len(files) + 1
    refused = office.upgrade()
    assert refused.exit_code == 1 and "REFUSED" in refused.output
    assert ("三体" if change == "unique" else "A1") in refused.output
    assert office.plan()["refused"] >= 1

    office.edit(lambda s: s.update(copy.deepcopy(before)))  # the office undoes its edit
    again = office.run("generate")
    assert again.exit_code == 0 and "removed versions/0002_" in again.output, again.output
    assert revisions(office) == files
    assert office.plan() == UP_TO_DATE
    assert office.run("generate", "--check").exit_code == 0
    upgraded = office.upgrade()
    assert upgraded.exit_code == 0, upgraded.output
    assert entity_rows(office) == rows  # every row kept, nothing changed


def test_an_upgrade_refused_then_undone_goes_through_without_generating_first(office: Office) -> None:
    before, rows = copy.deepcopy(office.sheets), entity_rows(office)
    office.edit(lambda s: office.field("book", "title").update(unique="yes"))
    assert office.upgrade().exit_code == 1
    office.edit(lambda s: s.update(copy.deepcopy(before)))
    assert office.upgrade().exit_code == 0
    assert entity_rows(office) == rows


def set_threshold(s: Sheets, pages: int) -> None:
    s["grading"][0]["condition"] = f"pages >= {pages}"


def test_a_grading_change_generated_first_is_planned_with_its_records_and_regraded(office: Office) -> None:
    assert [v for _, v in office.rows("book", "size")] == ["long", "short", "short", "short"]
    office.edit(lambda s: set_threshold(s, 300))
    assert office.run("generate").exit_code == 0  # writes the new spec.json: the plan must not care
    plan = office.plan()
    grading = [line for line in plan["regenerate"] if line["kind"] == "grading"]
    assert len(grading) == 1 and grading[0]["rows"] == 2 and plan["refused"] == 0
    assert "short→long 2" in grading[0]["en"]
    assert grading[0]["examples"] == [{"from": "short", "to": "long", "rows": 2,
                                       "records": [{"id": 2, "title": "三体"}, {"id": 4, "title": "三体"}]}]
    text = office.run("plan").output
    assert "例如 short→long (2): 三体、三体" in text
    upgraded = office.upgrade()
    assert upgraded.exit_code == 0, upgraded.output
    assert [v for _, v in office.rows("book", "size")] == ["long", "long", "short", "long"]
    assert office.plan() == UP_TO_DATE  # applied: the plan no longer names the move


def test_grading_examples_stop_at_five_a_move(office: Office) -> None:
    office.insert("book", *[{"title": f"长篇{i}", "pages": 800} for i in range(7)])  # stored without a grade
    plan = office.plan()
    assert plan == UP_TO_DATE  # the rules did not change: regrade says what it moves, not plan
    office.edit(lambda s: set_threshold(s, 700))
    lines = [line for line in office.plan()["regenerate"] if line["kind"] == "grading"]
    moves = {(e["from"], e["to"]): e for e in lines[0]["examples"]}
    assert moves[(None, "long")]["rows"] == 7 and len(moves[(None, "long")]["records"]) == 5


def test_each_database_gets_the_plan_from_its_own_state(office: Office, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staging runs ahead of production on one checkout: each upgrade starts from its own database."""
    staging = office.url
    with database("postgres" if staging.startswith("postgresql") else "sqlite", tmp_path / "production") as production:
        monkeypatch.setenv("CRM_DATABASE_URL", production)
        assert office.upgrade().exit_code == 0
        prod = sa.create_engine(production)
        with prod.begin() as conn:
            conn.execute(sa.text("INSERT INTO book (title, pages, created_on, changed_on, version) "
                                 "VALUES ('围城', 359, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"))

        office.edit(lambda s: s["fields"].append({"entity": "book", "name": "shelf", "label": "书架", "type": "string"}))
        monkeypatch.setenv("CRM_DATABASE_URL", staging)
        assert office.upgrade().exit_code == 0  # staging: 0002 adds shelf
        office.edit(lambda s: s["fields"].append({"entity": "book", "name": "floor", "label": "楼层", "type": "integer"}))

        monkeypatch.setenv("CRM_DATABASE_URL", production)
        plan = office.plan()
        assert [line["en"] for line in plan["pending"] + plan["regenerate"]] == [
            "new field book.shelf", "new field book.floor"]
        assert office.upgrade().exit_code == 0

        monkeypatch.setenv("CRM_DATABASE_URL", staging)
        plan = office.plan()
        assert [line["en"] for line in plan["pending"] + plan["regenerate"]] == ["new field book.floor"]
        assert office.upgrade().exit_code == 0
        for engine, n in ((office.engine, 4), (prod, 1)):
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM book WHERE shelf IS NULL AND floor IS NULL")).scalar_one() == n
                assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() in ("0002", "0003")
        prod.dispose()


def forget_applied(office: Office) -> None:
    """The database as an earlier release left it: a revision, no recorded spec."""
    with office.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM crm_applied_spec"))


def test_a_database_of_an_earlier_release_gets_its_spec_recorded_and_nothing_else(office: Office) -> None:
    forget_applied(office)
    # (every upgrade synchronises the roles, which moves the pages' security version on: not compared)
    unrecorded = ("crm_applied_spec", "crm_cache_version")
    before = {t: v for t, v in office.snapshot().items() if t not in unrecorded}
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    assert {t: v for t, v in office.snapshot().items() if t not in unrecorded} == before
    with office.engine.connect() as conn:
        recorded = conn.execute(sa.text("SELECT revision, spec FROM crm_applied_spec")).all()
    assert [(r[0], r[1] + "\n") for r in recorded] == [("0001", (office.generated / "spec.json").read_text(encoding="utf-8"))]


def test_a_database_an_earlier_release_left_stuck_upgrades_once_the_edit_is_undone(office: Office) -> None:
    """The earlier release stacked a refused revision and its undoing on the folder; the database
    has the shape the workbook declares again, so it is recorded as it is and the two go."""
    forget_applied(office)
    rows, before = entity_rows(office), copy.deepcopy(office.sheets)
    office.edit(lambda s: office.field("book", "title").update(unique="yes"))
    generate_spec(load_spec(office.workbook)[0], office.generated)  # stacked on the folder, as that release did
    office.edit(lambda s: s.update(copy.deepcopy(before)))
    generate_spec(load_spec(office.workbook)[0], office.generated)
    assert len(revisions(office)) == 3
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert len(revisions(office)) == 1 and entity_rows(office) == rows
