"""Computed fields (fields.formula) and computed defaults, on a second-domain workbook with no code
change: the language, the located workbook errors, every write path keeping roll-ups exact (a
hypothesis property), PostgreSQL concurrency, read-only on every path, upgrades that fill in bulk."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.spec.expr import ExprError, parse
from generator import WorkbookError, generate, load_spec
from tests.migration_helpers import Office, database
from tests.probe_computed import computed_library, write_computed_library
from tests.probes import ROOT
from tests.workbooks import library_sheets, write_workbook


# -- the language ------------------------------------------------------------------------------------
def test_formula_spellings_parse_and_evaluate() -> None:
    values = {"received_on": dt.date(2026, 3, 2), "a": 3, "b": 4.25, "name": "张三", "flag": True}
    ev = lambda text: parse(text).evaluate(values.get)  # noqa: E731
    assert ev("received_on + 30 days") == dt.date(2026, 4, 1)
    assert ev("received_on - 2 days") == dt.date(2026, 2, 28)
    assert ev("if(a > 2, 'big', 'small')") == "big"
    assert ev("if(missing, 1, 2)") == 2
    assert ev("round(b * 1, 1)") == 4.3  # half away from zero, as SQL's round
    assert ev("concat(name, '-', a)") == "张三-3"
    assert ev("year(received_on) * 100 + month(received_on)") == 202603
    assert ev("working_days(received_on, 3)") == dt.date(2026, 3, 5)  # Monday + 3 working days
    tree = parse("count(call where status == 'closed')").tree
    assert isinstance(tree, __import__("ast").Call) and len(tree.args) == 2  # where: the records' condition
    assert parse("note == 'a where b'").names == ("note",)  # text in quotes is kept
    with pytest.raises(ExprError, match="unknown function"):
        parse("sumif(a)")


# -- located workbook errors ---------------------------------------------------------------------------
def _field(sheets: dict[str, Any], entity: str, name: str) -> dict[str, Any]:
    return next(f for f in sheets["fields"] if f["entity"] == entity and f["name"] == name)


ERROR_CASES = [  # (entity, field, type, formula, extra cells, expected in the message, expected in the hint or None)
    ("book", "x1", "integer", "counnt(loan)", {}, "unknown function counnt", None),
    ("book", "x2", "integer", "pagez * 2", {}, "unknown field 'pagez'", "'pages'"),
    ("book", "x3", "integer", "count(member)", {}, "member is not records that link to entity book", None),
    ("book", "x4", "integer", "count(lone)", {}, "lone is not records that link to entity book", "'loan'"),
    ("book", "x5", "integer", "count(loan)", {"default": 3}, "cannot also have a default", "clear default"),
    ("book", "x6", "integer", "count(loan)", {"required": "yes"}, "cannot be required input", None),
    ("book", "x7", "string", "title", {"encrypted": "yes"}, "cannot be encrypted", None),
    ("book", "x8", "integer", "title * 2", {}, "arithmetic works on numbers only", None),
    ("book", "x9", "date", "pages + 1", {}, "gives a number, which a field of type date cannot hold", None),
    ("book", "x10", "integer", "sum(loan.due_on)", {}, "'loan.due_on' is not a number", None),
    ("loan", "x11", "date", "working_days(due_on, 3)", {}, "uses working_days", "make it a default"),
    ("loan", "x12", "string", "book.titel", {}, "unknown field 'book.titel'", None),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[1] for c in ERROR_CASES])
def test_formula_errors_are_located_with_hints(tmp_path: Path, case: tuple[Any, ...]) -> None:
    entity, name, ftype, formula, extra, said, hinted = case
    sheets = library_sheets()
    sheets["fields"].append({"entity": entity, "name": name, "label": name, "type": ftype, "formula": formula, **extra})
    row = len(sheets["fields"]) + 1  # the header is row 1
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    problems = [p for p in err.value.problems if said in p.format(lang="en")]
    assert len(problems) == 1, [p.format(lang="en") for p in err.value.problems]
    assert re.fullmatch(rf"fields![A-Z]+{row}", problems[0].ref), problems[0].ref
    assert f"entity {entity}, field {name}" in problems[0].format(lang="en")
    if hinted:
        assert hinted in problems[0].format(lang="en").split("—", 1)[1]


def test_a_cycle_through_formulas_is_one_located_error(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["fields"] += [
        {"entity": "book", "name": "due_count", "type": "integer", "formula": "count(loan where loan_weight > 1)"},
        {"entity": "loan", "name": "loan_weight", "type": "integer", "formula": "book.due_count + 1"},
    ]
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "cycle.xlsx", sheets))
    cycles = [p for p in err.value.problems if "circle" in p.format(lang="en")]
    assert len(cycles) == 1 and "book.due_count" in cycles[0].format(lang="en") and "loan.loan_weight" in cycles[0].format(lang="en")
    assert "clear its formula" in cycles[0].format(lang="en")


def test_the_second_domain_reads_formulas_in_chinese_and_generates(tmp_path: Path) -> None:
    sheets = computed_library()
    for f in sheets["fields"]:
        if "formula" in f:
            f["公式"] = f.pop("formula")
    spec, _warnings = load_spec(write_workbook(tmp_path / "lib.xlsx", sheets))
    book, loan = spec.entity("book"), spec.entity("loan")
    assert book is not None and loan is not None
    assert book.field("open_loans").formula == "count(loan where not returned)"  # type: ignore[union-attr]
    assert book.field("open_loans").readonly  # type: ignore[union-attr]  # read-only on every path: forms, API, imports
    assert loan.field("due_on").default_formula == "borrowed_on + 14 days"  # type: ignore[union-attr]
    out = tmp_path / "gen"
    generate(tmp_path / "lib.xlsx", out)
    views = (out / "views.py").read_text()
    add_columns = re.search(r"add_columns = \[([^\]]*)\]", views)
    assert add_columns and "loan_count" not in add_columns.group(1) and "book_title" not in views.split("add_columns")[2][:400]


# -- the running app (a fresh interpreter serves the second domain's generated app) -----------------------
@pytest.fixture(scope="module")
def library_app(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("computed")
    workbook = write_computed_library(tmp / "library.xlsx")
    generate(workbook, tmp / "gen")
    return {"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(tmp / "gen"), "CRM_VAR_DIR": str(tmp / "var"),
            "tmp": str(tmp)}


def _env(library_app: dict[str, str], url: str) -> dict[str, str]:
    return {**{k: v for k, v in library_app.items() if k != "tmp"}, "CRM_DATABASE_URL": url}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_rollups_equal_the_aggregate_from_scratch_after_any_sequence_of_writes(library_app: dict[str, str], kind: str,
                                                                               tmp_path: Path) -> None:
    """Hypothesis: random sequences of loans added (ORM, API, import), changed, moved to another
    book or member (ORM through the relationship, API), deleted (ORM, API), and books renamed;
    after every step each roll-up, lookup, formula and the grade read from a roll-up equals its
    value worked out from scratch."""
    examples = 40 if kind == "sqlite" else 15
    with database(kind, tmp_path) as url:
        result = _probe("property", _env(library_app, url), str(examples))
    assert result["sequences"] == examples + 1  # and the one explicit sequence of every kind of write
    assert set(result["ops"]) >= {"orm_add", "api_add", "import_add", "orm_move", "api_move", "orm_delete", "api_delete"}, result


def test_read_only_defaults_and_the_scheduler(library_app: dict[str, str]) -> None:
    url = f"sqlite:///{Path(library_app['tmp']) / 'paths.sqlite'}"
    out = _probe("paths", _env(library_app, url))
    assert out["api_write"][0] == 422 and out["api_write"][1]["message"]["loan_count"][0].startswith("由公式计算,不能填写")
    assert out["api_default"] == "2026-03-16"  # borrowed_on + 14 days
    assert out["api_given"] == "2026-03-05"  # a value given is kept
    assert out["import_default"] == [1, {}] and out["import_due"] == "2026-04-15"
    assert out["import_write"][0] == "imported"  # the computed column of the file is ignored, said in the notes
    assert out["days_out_after_tick"] == 10  # days_since(borrowed_on) refreshed by the scheduler's pass


def test_postgres_two_sessions_adding_to_one_parent_keep_the_exact_count(library_app: dict[str, str], tmp_path: Path) -> None:
    with database("postgresql", tmp_path) as url:
        out = _probe("concurrent", _env(library_app, url))
    assert out["dialect"] == "postgresql" and not out["errors"], out
    assert out["counted"] == 16 and out["stored"] == [16, 16] and out["member_loans"] == 16, out
    assert out["min_wait"] >= 0.2, out  # the second session waited for the first one's lock on the book


def _probe(name: str, env: dict[str, str], *args: str) -> Any:
    """A probe of tests/probe_computed.py in a fresh interpreter; its JSON answer."""
    proc = subprocess.run([sys.executable, "-m", "tests.probe_computed", name, *args], cwd=ROOT,  # noqa: S603 - our own module
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- upgrades ---------------------------------------------------------------------------------------------
def test_upgrade_fills_a_new_rollup_in_bulk_and_plan_says_how_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    office = Office(tmp_path, library_sheets(), f"sqlite:///{tmp_path / 'crm.sqlite'}", monkeypatch)
    assert office.upgrade().exit_code == 0
    office.insert("book", *[{"id": i, "title": f"书{i}", "pages": 100 * i, "version": 1} for i in range(1, 41)])
    office.insert("member", {"id": 1, "full_name": "读者", "version": 1})
    office.insert("loan", *[{"id": i, "code": f"JY-{i}", "book_id": 1 + i % 30, "member_id": 1, "returned": i % 3 == 0, "version": 1}
                            for i in range(1, 301)])
    office.edit(lambda s: s["fields"].extend([
        {"entity": "book", "name": "loan_count", "label": "借阅次数", "type": "integer", "formula": "count(loan)"},
        {"entity": "book", "name": "open_loans", "label": "未还", "type": "integer", "formula": "count(loan where not returned)"},
        {"entity": "loan", "name": "book_title", "label": "书名", "type": "string", "formula": "book.title"},
    ]))
    lines = [line for line in office.plan()["regenerate"] if line["kind"] == "computed"]
    by_label = {re.search(r"formula (\w+\.\w+)", line["en"]).group(1): line for line in lines}  # type: ignore[union-attr]
    assert by_label["book.loan_count"]["rows"] == 40  # a new column is empty: the 10 books without loans get 0, a change too
    assert by_label["loan.book_title"]["rows"] == 300 and "#1: None → 书2" in by_label["loan.book_title"]["en"]
    updates: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        assert office.upgrade().exit_code == 0
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    filled = [u for u in updates if re.match(r"\s*UPDATE (book|loan) SET", u)]
    assert 1 <= len(filled) <= 4, filled  # one statement per entity, not one per row
    rows = dict((r[0], r[1:]) for r in office.rows("book", "loan_count", "open_loans"))
    loans = [(1 + i % 30, i % 3 == 0) for i in range(1, 301)]
    assert rows == {b: (sum(1 for x, _r in loans if x == b), sum(1 for x, r in loans if x == b and not r)) for b in range(1, 41)}
    assert rows[4] == (10, 0) and rows[2] == (10, 10) and rows[31] == (0, 0)
    assert office.rows("loan", "book_title")[0] == (1, "书2")


@pytest.mark.slow
@pytest.mark.browser
def test_the_add_form_fills_a_computed_default_in_chromium(library_app: dict[str, str]) -> None:
    """1440 and 390 px: typing the borrowed date fills the due date 14 days later (crm/form.js asks
    /crm/defaults); computed fields are not on the add form; the book's page shows its roll-ups."""
    url = f"sqlite:///{Path(library_app['tmp']) / 'browser.sqlite'}"
    shots = ROOT / "var" / "test-artifacts" / "computed"
    out = _probe("browser", _env(library_app, url), str(shots))
    for width in ("1440", "390"):
        seen = out[width]
        assert seen["asked"] == [] and seen["errors"] == [], seen  # no computed input, no script error (CSP included)
        assert seen["filled"] == "2026-05-18", seen  # borrowed 2026-05-04 + 14 days, filled in as typed
        assert re.search(r"借阅次数\s+1\b", seen["book_page"]) and re.search(r"最晚应还\s+2026-03-16", seen["book_page"]), seen
    assert (shots / "loan-add-390.png").exists()
