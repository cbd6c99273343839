"""Office sheets as they come (issue 24, part 5): a title row or two above the header ("患者花名册
2026", a date line), found or chosen (``--header-row N``, the mapping step), with errors at the
sheet's own row numbers; a failed all-or-nothing import that prints its first errors; the import
page and template requiring only what the import really requires."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook

from tests.conftest import csrf_token, login, person
from tests.test_excel import PASSWORD, count, run

HEADER = ["客户名称", "需求迫切程度", "备注"]


def titled(path: Path, titles: list[list[Any]], rows: list[list[Any]], merge: bool = True) -> Path:
    """An office sheet: ``titles`` rows (the first merged across the table, as offices do), then the header and ``rows``."""
    wb = Workbook()
    ws = wb.active
    for t in titles:
        ws.append(t)
    if titles and merge:
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADER))
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


@pytest.fixture(scope="module")
def people(app: Any) -> None:
    person(app, "xl_manager", ["销售经理"], PASSWORD, departments=["导入一部"])


def test_one_title_row_above_the_header_is_skipped(app: Any, people: None, tmp_path: Path) -> None:
    path = titled(tmp_path / "one.xlsx", [["客户花名册 2026"]], [["标题行客户甲", "normal", "x"], ["标题行客户乙", "urgent", ""]])
    report = run(app, "xl_manager", "customer", path)
    assert report.committed and report.inserted == 2 and report.header_row == 2, report.errors
    assert count(app, "SELECT count(*) FROM customer WHERE name LIKE '标题行客户%'") == 2
    assert count(app, "SELECT count(*) FROM customer WHERE name = '客户花名册 2026' OR name = '客户名称'") == 0


def test_two_title_rows_and_errors_at_the_sheets_own_row_numbers(app: Any, people: None, tmp_path: Path) -> None:
    path = titled(tmp_path / "two.xlsx", [["客户花名册 2026"], ["制表:华东一部", None, "2026-12-01"]],
                  [["两行标题客户", "normal", ""], ["两行标题坏行", "非常急", ""]])
    report = run(app, "xl_manager", "customer", path)
    assert not report.committed and report.header_row == 3
    assert list(report.errors) == [5], report.errors  # Excel's row 5: two titles, the header, one good row above it
    assert report.errors[5][0][0] == 1  # column B
    book = load_workbook(report.report_path)  # the error workbook: the header, then the bad row, saying row 5
    rows = list(book.active.iter_rows(values_only=True))
    assert list(rows[0][:3]) == HEADER and rows[1][0] == "两行标题坏行" and str(rows[1][-1]).startswith("第 5 行")
    assert count(app, "SELECT count(*) FROM customer WHERE name LIKE '两行标题%'") == 0


def test_a_csv_with_a_title_line(app: Any, people: None, tmp_path: Path) -> None:
    path = tmp_path / "titled.csv"
    path.write_text("客户名单(导出于 2026-12-01)\n\n" + ",".join(HEADER) + "\nCSV标题客户,normal,\n", encoding="utf-8")
    report = run(app, "xl_manager", "customer", path)
    assert report.committed and report.inserted == 1 and report.header_row == 3, report.errors


def test_a_header_row_given_is_used_as_given(app: Any, people: None, tmp_path: Path) -> None:
    from app.io.importer import ImportFileError

    # the title row names a field (备注): found automatically all the same, the header naming more
    path = titled(tmp_path / "given.xlsx", [["备注"], ["说明"]], [["指定表头客户", "normal", ""]], merge=False)
    assert run(app, "xl_manager", "customer", path, dry_run=True).header_row == 3
    with pytest.raises(ImportFileError) as wrong:  # row 2 as the header: its cells are no columns
        run(app, "xl_manager", "customer", path, header_row=2)
    assert "第 2 行 A 列 '说明'" in " ".join(wrong.value.problems)
    with pytest.raises(ImportFileError) as beyond:
        run(app, "xl_manager", "customer", path, header_row=40)
    assert "第 40 行不在文件中" in " ".join(beyond.value.problems)
    report = run(app, "xl_manager", "customer", path, header_row=3)
    assert report.committed and report.inserted == 1


def test_cli_header_row_and_the_first_errors_of_a_failed_import(app: Any, people: None, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import main

    monkeypatch.setenv("CRM_DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    runner = CliRunner()
    good = titled(tmp_path / "cli-ok.xlsx", [["客户花名册 2026"], [None]], [["命令行标题客户", "normal", ""]])
    wrong = runner.invoke(main, ["import", "customer", str(good), "--as", "xl_manager", "--header-row", "1"])
    assert wrong.exit_code == 1 and "标题行有合并单元格 A1:C1" in wrong.output  # row 1 as the header: its merged title refused
    done = runner.invoke(main, ["import", "customer", str(good), "--as", "xl_manager", "--header-row", "3"])
    assert done.exit_code == 0 and "inserted 1" in done.output, done.output
    assert runner.invoke(main, ["import", "customer", str(good), "--header-row", "0"]).exit_code == 2
    # twelve bad rows under two title rows: the first ten said with row, column and message, then how many more
    bad = titled(tmp_path / "cli-bad.xlsx", [["客户花名册 2026"], ["制表人:王"]],
                 [["命令行好行", "normal", ""], *[[f"命令行坏行{i}", "非常急", ""] for i in range(12)]])
    failed = runner.invoke(main, ["import", "customer", str(bad), "--as", "xl_manager"])
    assert failed.exit_code == 1, failed.output
    out = failed.output
    assert "表头在第 3 行" in out
    said = re.findall(r"第 (\d+) 行 B 列\(需求迫切程度\)", out)
    assert said == [str(n) for n in range(5, 15)], out  # rows 5…14 of the sheet, column B
    assert "另有 2 行有错误" in out and "错误报告" in out and "cli-bad-错误报告.xlsx" in out
    assert out.index("第 5 行 B 列") < out.index("cli-bad-错误报告.xlsx")
    assert count(app, "SELECT count(*) FROM customer WHERE name LIKE '命令行%行%'") == 0


def _upload(client: Any, path: Path, **fields: Any) -> Any:
    page = client.get("/customerview/import/")
    data = {"csrf_token": csrf_token(page.text), "mode": "insert", **fields, "file": (path.open("rb"), path.name)}
    return client.post("/customerview/import/", data=data, content_type="multipart/form-data")


@pytest.fixture
def eager(app: Any) -> Any:
    conf = app.extensions["celery"].conf
    conf.task_always_eager = True
    yield
    conf.task_always_eager = False


def test_web_imports_below_title_rows_and_the_mapping_step_chooses_the_row(app: Any, people: None, tmp_path: Path,
                                                                            eager: None) -> None:
    c = app.test_client()
    login(c, "xl_manager", PASSWORD)
    r = _upload(c, titled(tmp_path / "web1.xlsx", [["客户花名册 2026"]], [["网页标题客户", "normal", ""]]))
    assert r.status_code == 302 and "/map" not in r.headers["Location"], r.headers.get("Location")
    assert count(app, "SELECT count(*) FROM customer WHERE name = '网页标题客户'") == 1
    # two title rows and a header that names nothing: the mapping step, on row 1; choose row 3 there
    wb = Workbook()
    for row in (["客户花名册 2026"], ["制表:华东一部"], ["公司", "紧急"], ["网页选行客户", "normal"]):
        wb.active.append(row)
    path = tmp_path / "web2.xlsx"
    wb.save(path)
    r = _upload(c, path)
    token = re.search(r"/import/job/([0-9a-f]{32})/map", r.headers["Location"]).group(1)  # type: ignore[union-attr]
    page = html.unescape(c.get(f"/customerview/import/job/{token}/map").text)
    assert 'name="header_row"' in page and 'value="1"' in page and "第 1 行 A 列 '客户花名册 2026'" in page
    moved = html.unescape(c.post(f"/customerview/import/job/{token}/map",
                                 data={"csrf_token": csrf_token(page), "header_row": "3", "shown_header_row": "1"}).text)
    assert "第 3 行 A 列 '公司'" in moved and "<td>公司</td>" in moved and "(其上的标题行不导入)" in moved
    done = c.post(f"/customerview/import/job/{token}/map", data={"csrf_token": csrf_token(moved), "header_row": "3",
                                                                "shown_header_row": "3", "map_0": "name", "map_1": "urgency"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/import/job/{token}")
    assert count(app, "SELECT count(*) FROM customer WHERE name = '网页选行客户'") == 1
    # the upload form takes the row too
    r = _upload(c, titled(tmp_path / "web3.xlsx", [["备注"], ["说明"]], [["网页指定行客户", "normal", ""]], merge=False),
                header_row="3")
    assert r.status_code == 302 and "/map" not in r.headers["Location"]
    assert count(app, "SELECT count(*) FROM customer WHERE name = '网页指定行客户'") == 1


def test_the_required_columns_are_those_the_import_requires(app: Any, people: None) -> None:
    c = app.test_client()
    login(c, "xl_manager", PASSWORD)
    page = c.get("/customerview/import/").text
    required = re.findall(r'crm-required-column">([^<]+)<', page)
    assert required == ["客户名称"], required  # not 负责业务员 (the importer), 客户状态/需求迫切程度 (defaults), nor the number
    template = load_workbook(io.BytesIO(c.get("/customerview/import/template/").data)).active
    starred = [c.value for c in template[1] if str(c.value).endswith(" *")]
    assert starred == ["客户名称 *"], starred
    # a follow-up's own: its subject, customer and planned date; not its owner, method or status
    page = c.get("/follow_upview/import/").text
    assert "负责" not in " ".join(re.findall(r'crm-required-column">([^<]+)<', page))


def test_the_header_is_found_and_required_columns_said_for_another_domain(tmp_path: Path) -> None:
    """The second-domain workbook (a library): the same search, on its own fields' names and labels."""
    from app.io.importcolumns import filled_without_a_column, header_score, required_missing
    from app.io.spreadsheet import open_sheet
    from generator import load_spec
    from tests.workbooks import library_sheets, write_workbook

    spec, _ = load_spec(write_workbook(tmp_path / "library.xlsx", library_sheets()))
    member = spec.entity("member")
    assert member is not None
    wb = Workbook()
    for row in (["读者名册 2026"], ["馆藏部 制表"], ["姓名", "邮箱", "管理员"], ["林小满", "lin@example.cn", ""]):
        wb.active.append(row)
    wb.save(tmp_path / "members.xlsx")
    sheet = open_sheet(tmp_path / "members.xlsx", header=header_score(member))
    assert (sheet.header_row, sheet.headers) == (3, ["姓名", "邮箱", "管理员"])
    assert list(sheet.rows) == [(4, ["林小满", "lin@example.cn", ""])]
    required = required_missing(spec, member, set(), filled_without_a_column(spec, member, None, "Admin"))
    assert member.owner_field not in {f.name for f in required}  # 管理员: the importing user
