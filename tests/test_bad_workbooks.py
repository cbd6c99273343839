"""A corpus of broken workbooks: each case asserts the exact cell and message (and writes nothing)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from app.cli import main
from generator import WorkbookError, load_spec
from tests.workbooks import library_sheets, write_workbook

Sheets = dict[str, list[dict[str, Any]]]


def cell(sheets: Sheets, sheet: str, index: int, column: str) -> str:
    """The Excel reference of ``sheets[sheet][index][column]`` as ``write_workbook`` lays it out."""
    headers: list[str] = []
    for row in sheets[sheet]:
        for key in row:
            if key not in headers:
                headers.append(key)
    return f"{sheet}!{get_column_letter(headers.index(column) + 1)}{index + 2}"


def field_index(sheets: Sheets, entity: str, name: str) -> int:
    return next(i for i, r in enumerate(sheets["fields"]) if r["entity"] == entity and r["name"] == name)


def set_field(entity: str, name: str, **values: Any) -> Callable[[Sheets], tuple[str, str]]:
    def mutate(s: Sheets) -> tuple[str, str]:
        i = field_index(s, entity, name)
        s["fields"][i].update(values)
        return "fields", str(i)

    return mutate


# (id, mutation, sheet, row index or None, column, expected English message)
CASES: list[tuple[str, Callable[[Sheets], Any], str, Any, str, str]] = [
    ("missing sheet", lambda s: s.pop("fields"), "", None, "", "sheet 'fields' is missing"),
    ("missing column", lambda s: [r.pop("type") for r in s["fields"]], "fields", "header", "A", "required column 'type' is missing"),
    ("empty entity name", lambda s: s["entities"][1].update(name=None), "entities", 1, "name", "entity name must not be empty"),
    (
        "duplicate entity",
        lambda s: s["entities"][2].update(name="book"),
        "entities",
        2,
        "name",
        "duplicate entity 'book' (first at entities!A2)",
    ),
    ("duplicate field", lambda s: s["fields"][1].update(name="title"), "fields", 1, "name", "duplicate field 'title' (first at fields!B2)"),
    (
        "invalid identifier",
        lambda s: s["fields"][1].update(name="Book Title"),
        "fields",
        1,
        "name",
        "name 'Book Title' is not valid: use lowercase letters, digits and _ and start with a letter",
    ),
    ("python keyword", lambda s: s["fields"][1].update(name="class"), "fields", 1, "name", "'class' is a Python keyword"),
    ("reserved field", lambda s: s["fields"][1].update(name="id"), "fields", 1, "name", "'id' is a reserved name"),
    (
        "reserved entity class",
        lambda s: s["entities"].append({"name": "text", "label": "x"}),
        "entities",
        3,
        "name",
        "'text' is a reserved name",
    ),
    ("unknown type", lambda s: s["fields"][3].update(type="choise"), "fields", 3, "type", "unknown type 'choise'"),
    ("link to unknown entity", set_field("loan", "book", link="books"), "fields", ("loan", "book"), "link", "unknown entity 'books'"),
    (
        "choice list missing",
        set_field("book", "genre", choices=None),
        "fields",
        ("book", "genre"),
        "choices",
        "a choice field needs a choice list",
    ),
    (
        "choice list undefined",
        set_field("book", "genre", choices="genres"),
        "fields",
        ("book", "genre"),
        "choices",
        "choice list 'genres' does not exist",
    ),
    (
        "default not in choices",
        set_field("book", "genre", default="poetry"),
        "fields",
        ("book", "genre"),
        "default",
        "'poetry' is not in choice list genre",
    ),
    (
        "default of wrong type",
        set_field("book", "pages", default="many"),
        "fields",
        ("book", "pages"),
        "default",
        "default 'many' is not a valid integer",
    ),
    (
        "bad date default",
        set_field("loan", "due_on", default="31/02/2026"),
        "fields",
        ("loan", "due_on"),
        "default",
        "default '31/02/2026' is not a valid date",
    ),
    ("min greater than max", set_field("book", "pages", min=10, max=5), "fields", ("book", "pages"), "min", "min 10 is greater than max 5"),
    (
        "bad regex",
        set_field("book", "isbn", pattern="[0-9"),
        "fields",
        ("book", "isbn"),
        "pattern",
        "invalid regular expression: unterminated character set at position 0",
    ),
    ("bad boolean", set_field("book", "title", required="maybe"), "fields", ("book", "title"), "required", "'maybe' is not a yes/no value"),
    (
        "form unknown field",
        lambda s: s.update(forms=[{"entity": "book", "view": "add", "section": "基本", "field": "titel"}]),
        "forms",
        0,
        "field",
        "entity book has no field 'titel'",
    ),
    (
        "form bad view",
        lambda s: s.update(forms=[{"entity": "book", "view": "lst", "section": "基本", "field": "title"}]),
        "forms",
        0,
        "view",
        "view 'lst' is not valid",
    ),
    ("permission unknown role", lambda s: s["permissions"][0].update(role="馆员们"), "permissions", 0, "role", "unknown role '馆员们'"),
    (
        "permission unknown entity",
        lambda s: s["permissions"][0].update(entity="boook"),
        "permissions",
        0,
        "entity",
        "unknown entity 'boook'",
    ),
    ("bad scope", lambda s: s["permissions"][1].update(scope="mine"), "permissions", 1, "scope", "scope 'mine' is not valid"),
    (
        "scope without owner",
        lambda s: s["permissions"][0].update(scope="own"),
        "permissions",
        0,
        "scope",
        "entity book has no owner field, so scope cannot be own",
    ),
    (
        "hidden unknown field",
        lambda s: s["permissions"][0].update(hidden_fields="isbn, price"),
        "permissions",
        0,
        "hidden_fields",
        "entity book has no field 'price'",
    ),
    (
        "numbering without counter",
        lambda s: s["entities"][2].update(numbering="JY-{YYYY}"),
        "entities",
        2,
        "numbering",
        "numbering 'JY-{YYYY}' has no counter like {####}",
    ),
    (
        "owner not a user field",
        lambda s: s["entities"][1].update(owner_field="email"),
        "entities",
        1,
        "owner_field",
        "owner field 'email' must be a user field",
    ),
    (
        "title field unknown",
        lambda s: s["entities"][0].update(title_field="name"),
        "entities",
        0,
        "title_field",
        "title field 'name' must be a string field",
    ),
    (
        "column clash",
        lambda s: s["fields"].append({"entity": "loan", "name": "book_id", "type": "integer"}),
        "fields",
        ("loan", "book"),
        "name",
        "field 'book' clashes with column book_id of book_id",
    ),
    (
        "grading unknown field in condition",
        lambda s: s.update(grading=[{"entity": "book", "field": "genre", "grade": "novel", "condition": "pagez > 100"}]),
        "grading",
        0,
        "condition",
        "condition 'pagez > 100' is wrong: unknown field 'pagez'",
    ),
    (
        "grading unsafe expression",
        lambda s: s.update(grading=[{"entity": "book", "field": "genre", "grade": "novel", "condition": "__import__('os')"}]),
        "grading",
        0,
        "condition",
        "condition '__import__('os')' is wrong: unknown function __import__; allowed: today, now, days_since, days_until, "
        "hours_since, len, abs, min, max, lower, is_blank, working_hours",
    ),
    (
        "workflow unknown state",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "poem", "action": "改"}]),
        "workflows",
        0,
        "to",
        "'poem' is not in choice list genre",
    ),
    (
        "workflow unknown role",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改", "roles": "馆长们"}]),
        "workflows",
        0,
        "roles",
        "unknown role '馆长们'",
    ),
    (
        "workflow unreachable state",
        lambda s: (
            s["choices"].append({"list": "genre", "value": "poem", "label": "诗歌"}),
            s.update(workflows=[
                {"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改"},
                {"entity": "book", "state_field": "genre", "from": "poem", "to": "novel", "action": "回"},
            ]),
        ),
        "workflows",
        1,
        "action",
        "state 'poem' can never be reached",
    ),
    (
        "template unknown placeholder",
        lambda s: s.update(templates=[{"name": "due", "channel": "email", "subject": "到期", "body": "{{ recrod.title }}"}]),
        "templates",
        0,
        "body",
        "template placeholder error: unknown placeholder 'recrod'",
    ),
    (
        "template unknown filter",
        lambda s: s.update(templates=[{"name": "due", "channel": "email", "subject": "到期", "body": "{{ record.due_on|date }}"}]),
        "templates",
        0,
        "body",
        "template placeholder error: unknown filter 'date'",
    ),
    (
        "template unknown test",
        lambda s: s.update(templates=[{"name": "due", "channel": "email", "subject": "{% if due is past %}逾期{% endif %}"}]),
        "templates",
        0,
        "subject",
        "template placeholder error: unknown test 'past'",
    ),
    (
        "schedule unknown template",
        lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "template": "nope"}]),
        "schedules",
        0,
        "template",
        "template 'nope' does not exist",
    ),
    (
        "schedule on a non-date field",
        lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "code + 1 day"}]),
        "schedules",
        0,
        "when",
        "field 'code' in a time rule must be a date or datetime",
    ),
    (
        "escalation ladder with more delays than roles",
        lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "recipients": "馆员",
                                       "escalate_after": "1 working day; 2 working days", "escalate_to": "馆员"}]),
        "schedules",
        0,
        "escalate_to",
        "escalate_after has 2 step(s) but escalate_to has 1: they go in pairs",
    ),
    (
        "escalation ladder with an unknown role on the second step",
        lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "recipients": "馆员",
                                       "escalate_after": "1 day; 2 days", "escalate_to": "馆员; 总馆长"}]),
        "schedules",
        0,
        "escalate_to",
        "unknown role '总馆长'",
    ),
    (
        "report measure misspelt",
        lambda s: s.update(reports=[{"name": "pages", "entity": "book", "group_by": "genre", "measure": "avg(pages), average(pages)"}]),
        "reports",
        0,
        "measure",
        "measure 'average(pages)' is not valid",
    ),
    (
        "report period on a non-date",
        lambda s: s.update(reports=[{"name": "by_genre", "entity": "book", "group_by": "genre", "period": "month"}]),
        "reports",
        0,
        "period",
        "group_by 'genre' is not a date, so it cannot be grouped by period",
    ),
    (
        "report pie with two measures",
        lambda s: s.update(reports=[{"name": "p", "entity": "book", "group_by": "genre", "measure": "count, sum(pages)", "chart": "pie"}]),
        "reports",
        0,
        "chart",
        "a pie chart shows one measure",
    ),
    (
        "report average of a non-numeric choice",
        lambda s: s.update(reports=[{"name": "g", "entity": "loan", "group_by": "member", "measure": "avg(book.genre)"}]),
        "reports",
        0,
        "measure",
        "field 'book.genre' is not numeric",
    ),
    (
        "language setting not zh or en",
        lambda s: s["settings"].append({"key": "language", "value": "中文"}),
        "settings",
        1,
        "value",
        "setting language: '中文' is not valid",
    ),
    (
        "misspelt setting key",
        lambda s: s["settings"].append({"key": "holiday", "value": "2026-10-01"}),
        "settings",
        1,
        "key",
        "unknown setting 'holiday'",
    ),
    ("max not finite", set_field("book", "isbn", max="inf"), "fields", ("book", "isbn"), "max", "'inf' is not a number"),
    ("min too large for a number", set_field("book", "pages", min="1e999"), "fields", ("book", "pages"), "min", "'1e999' is not a number"),
    ("default not finite", set_field("book", "pages", default="inf"), "fields", ("book", "pages"), "default",
     "default 'inf' is not a valid integer"),
    (
        "survey scale not a number",
        lambda s: s.update(surveys=[{"survey": "visit", "question": "满意吗?", "scale": "nan"}]),
        "surveys",
        0,
        "scale",
        "'nan' is not a number",
    ),
    (
        "unknown working day",
        lambda s: s["settings"].append({"key": "working_days", "value": "mon, tue, mongo"}),
        "settings",
        1,
        "value",
        "setting working_days: 'mongo' is not valid",
    ),
    (
        "entity previous_name still an entity",
        lambda s: s["entities"][0].update(previous_name="member"),
        "entities",
        0,
        "previous_name",
        "entity 'member' is still in the workbook, so it cannot be a previous name",
    ),
    (
        "two entities renamed from one previous_name",
        lambda s: (s["entities"][0].update(previous_name="volume"), s["entities"][1].update(previous_name="volume")),
        "entities",
        1,
        "previous_name",
        "duplicate previous name 'volume' (first at entities!F2)",
    ),
    (
        "field previous_name still a field",
        set_field("book", "isbn", previous_name="title"),
        "fields",
        ("book", "isbn"),
        "previous_name",
        "field 'title' is still in the workbook, so it cannot be a previous name",
    ),
    (
        "two fields renamed from one previous_name",
        lambda s: (set_field("book", "isbn", previous_name="code_no")(s), set_field("book", "pages", previous_name="code_no")(s)),
        "fields",
        ("book", "pages"),
        "previous_name",
        "duplicate previous name 'code_no' (first at fields!J3)",
    ),
]


def _expected_ref(sheets: Sheets, sheet: str, index: Any, column: str) -> str:
    if index is None:
        return "bad.xlsx"
    if index == "header":
        return f"{sheet}!A1"
    if isinstance(index, tuple):
        index = field_index(sheets, *index)
    return cell(sheets, sheet, index, column)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_workbook_reports_cell_and_message(tmp_path: Path, case: Any) -> None:
    _name, mutate, sheet, index, column, message = case
    sheets = copy.deepcopy(library_sheets())
    mutate(sheets)
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    found = [(p.ref, p.text("en")) for p in err.value.problems]
    assert (_expected_ref(sheets, sheet, index, column), message) in found


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["fields"][1]["type"] = "strin"
    sheets["fields"][3]["type"] = "choise"
    sheets["permissions"][0]["role"] = "nobody"
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    assert len(err.value.problems) == 3


def test_misspelt_setting_key_suggests_the_known_one(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["settings"] += [{"key": "holiday", "value": "2026-10-01"}, {"key": "survey_followup_role", "value": "馆员"}]
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert [p.format("bad.xlsx", "en") for p in err.value.problems] == [
        "bad.xlsx › settings!A3: unknown setting 'holiday' (未知设置项 'holiday') — did you mean 'holidays'? (是否想写 'holidays'?)"
    ]


def test_full_width_separators_split_lists(tmp_path: Path) -> None:
    # ， 、 ； ～ as escapes, so no editor can turn them into ASCII
    sheets = library_sheets()
    sheets["settings"] += [
        {"key": "working_days", "value": "mon\uff0ctue\u3001wed\uff1bThursday"},
        {"key": "working_hours", "value": "09:00\uff5e12:00\uff0c13:00-18:00"},
        {"key": "holidays", "value": "2026-10-01\uff0c2026-10-02"},
    ]
    sheets["permissions"][0]["hidden_fields"] = "isbn\uff0cpages"
    sheets["schedules"] = [{"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "recipients": "馆员\uff0c志愿者"}]
    sheets["surveys"] = [{"survey": "visit", "question": "满意吗?", "scale": 3, "labels": "差\uff0c中\u3001好"}]
    sheets["reports"] = [{"name": "g", "entity": "book", "group_by": "genre", "roles": "馆员\uff1b志愿者"}]
    spec, _ = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    assert spec.settings.working_days == ("mon", "tue", "wed", "thu")
    assert spec.settings.working_hours == (("09:00", "12:00"), ("13:00", "18:00"))
    assert spec.settings.holidays == ("2026-10-01", "2026-10-02")
    assert spec.permissions[0].hidden_fields == ("isbn", "pages")
    assert spec.schedules[0].recipients == ("馆员", "志愿者")
    assert spec.surveys[0].labels == ("差", "中", "好")
    assert spec.reports[0].roles == ("馆员", "志愿者")


def test_unknown_working_day_suggests_the_nearest(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["settings"].append({"key": "working_days", "value": "mon\uff0ctue\uff0cmongo"})
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert [p.format("bad.xlsx", "en") for p in err.value.problems] == [
        "bad.xlsx › settings!B3: setting working_days: 'mongo' is not valid (设置 working_days 的值 'mongo' 无效)"
        " — did you mean 'mon'? (是否想写 'mon'?)"
    ]


def test_did_you_mean_hint(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["fields"][3]["type"] = "choise"
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    line = err.value.problems[0].format("bad.xlsx", "en")
    assert line == (
        "bad.xlsx › fields!D5 (entity book, field genre): unknown type 'choise' (类型 'choise' 未知)"
        " — did you mean 'choice'? (是否想写 'choice'?)"
    )


def _file_case(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "bad.xlsx"
    if kind == "not xlsx":
        path.write_text("name,label\ncustomer,客户\n", encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "protected":
        path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    elif kind == "damaged zip":
        import zipfile

        with zipfile.ZipFile(path, "w") as z:
            z.writestr("hello.txt", "not a workbook")
    return path


@pytest.mark.parametrize(
    "kind,message",
    [
        ("not xlsx", "this is not an Excel .xlsx file"),
        ("empty", "the file is empty"),
        ("protected", "the file is password-protected or an old .xls file"),
        ("damaged zip", "the Excel file cannot be read (KeyError)"),
    ],
)
def test_unreadable_files(tmp_path: Path, kind: str, message: str) -> None:
    path = _file_case(tmp_path, kind)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    assert [(p.ref, p.text("en")) for p in err.value.problems] == [("bad.xlsx", message)]


def test_a_folder_given_as_workbook_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "sheets"
    folder.mkdir()
    result = CliRunner().invoke(main, ["check", "--workbook", str(folder)])
    assert result.exit_code == 1
    assert f"sheets › sheets: {folder} 是文件夹,不是 Excel 文件 ({folder} is a folder, not an Excel file)" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, IsADirectoryError)


def test_formula_without_value_and_merged_cells(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "bad.xlsx", library_sheets())
    from openpyxl import load_workbook

    wb = load_workbook(path)
    ws = wb["fields"]
    ws["C2"] = '="书"&"名"'
    ws.merge_cells("F3:G4")
    wb.save(path)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    found = [(p.ref, p.text("en")) for p in err.value.problems]
    assert ("fields!C2", "a formula without a computed value") in found
    assert ("fields!F3", "merged cells F3:G4 in the data area") in found


def test_chinese_headers_and_sheet_names_are_accepted(tmp_path: Path) -> None:
    sheets = library_sheets()
    zh = {"entities": "实体", "fields": "字段", "choices": "选项", "roles": "角色", "permissions": "权限", "settings": "设置"}
    headers = {"name": "名称", "label": "标签", "type": "类型", "entity": "实体", "required": "必填", "list": "列表显示"}
    translated = {
        zh.get(k, k): [{(headers.get(c, c) if k in ("entities", "fields") else c): v for c, v in row.items()} for row in rows]
        for k, rows in sheets.items()
    }
    spec, _ = load_spec(write_workbook(tmp_path / "zh.xlsx", translated))
    assert [e.name for e in spec.entities] == ["book", "member", "loan"]
    assert spec.entity("book").field("title").required  # type: ignore[union-attr]


def test_cli_check_prints_lines_and_exits_1_and_generate_writes_nothing(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["fields"][3]["type"] = "choise"
    sheets["settings"].append({"key": "language", "value": "en"})
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    runner = CliRunner()
    result = runner.invoke(main, ["check", "--workbook", str(path)])
    assert result.exit_code == 1
    assert "bad.xlsx › fields!D5 (entity book, field genre): unknown type 'choise' (类型 'choise' 未知)" in result.output
    assert "Traceback" not in result.output
    out = tmp_path / "out"
    result = runner.invoke(main, ["generate", "--workbook", str(path), "--out", str(out)])
    assert result.exit_code == 1
    assert not out.exists()


def test_a_sheet_nobody_knows_is_a_warning_not_an_error(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["notes"] = [{"what": "free text for the office"}]
    spec, warnings = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    assert [w.text("en") for w in warnings] == ["unknown sheet 'notes'"]


def test_warnings_are_reported_with_the_errors_they_explain(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["Field"] = sheets.pop("fields")
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    assert "sheet 'fields' is missing" in [p.text("en") for p in err.value.problems]
    assert not any(p.warning for p in err.value.problems)  # errors are what fails; the warning comes along
    n = len(err.value.problems)
    result = CliRunner().invoke(main, ["check", "--workbook", str(path)])
    assert result.exit_code == 1
    assert "bad.xlsx: 缺少工作表 'fields' (sheet 'fields' is missing)" in result.output
    assert (
        "提示 bad.xlsx › Field!A1: 未知工作表 'Field' (unknown sheet 'Field') — 是否想写 'fields'? (did you mean 'fields'?)"
        in result.output
    )
    assert f"{n} 个问题 ({n} problems)" in result.output


def test_empty_workbook_without_sheets(tmp_path: Path) -> None:
    wb = Workbook()
    path = tmp_path / "bad.xlsx"
    wb.save(path)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    messages = {p.text("en") for p in err.value.problems}
    assert {"sheet 'entities' is missing", "sheet 'fields' is missing"} <= messages
