"""Excel in and out: import with the forms' rules and an error workbook, upsert that changes
nothing the second time, exports with scope, hidden fields and formulas neutralised."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import Workbook, load_workbook

from app.runtime.accounts import add_user
from app.runtime.importer import ImportFileError, import_file
from tests.conftest import api_token, login

PASSWORD = "excel-Pass-1"  # noqa: S105 - test-only


def xlsx(path: Path, rows: list[list[Any]]) -> Path:
    wb = Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


@pytest.fixture(scope="module")
def people(app: Any) -> dict[str, Any]:
    add_user(app, "xl_sales", ["业务员"], PASSWORD, departments=["导入一部"])
    add_user(app, "xl_other", ["业务员"], PASSWORD, departments=["导入二部"])
    add_user(app, "xl_tech", ["技术员"], PASSWORD)
    add_user(app, "xl_manager", ["销售经理"], PASSWORD, departments=["导入一部"])
    return {n: n for n in ("xl_sales", "xl_other", "xl_tech", "admin")}


def count(app: Any, sql: str, **params: Any) -> int:
    with app.app_context():
        return int(app.extensions["crm"].db.session.execute(sa.text(sql), params).scalar())


def run(app: Any, username: str, *args: Any, **kwargs: Any) -> Any:
    with app.test_request_context():
        user = app.extensions["crm"].appbuilder.sm.find_user(username=username)
        return import_file(app, *args, user=user, **kwargs)


def test_import_with_labels_conversions_rules_and_numbering(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "customers.xlsx", [
        ["客户名称 *", "需求迫切程度", "年需求规模(元)", "所属区域", "首次沟通日期", "最近联系日期"],
        ["宁波甬江纺织有限公司", "迫切需求", "1,200,000", "华东", "2026/10/08", "2026年11月01日"],
        ["绍兴柯桥印染厂", "normal", 80000, "east", "2026-09-01", None],
    ])
    report = run(app, people["xl_sales"], "customer", path)
    assert report.failed == 0 and report.inserted == 2 and report.committed, report.errors
    with app.app_context():
        rows = app.extensions["crm"].db.session.execute(sa.text(
            "SELECT name, grade, code, owner_id, annual_demand FROM customer WHERE name IN ('宁波甬江纺织有限公司', '绍兴柯桥印染厂') ORDER BY id")).all()
    assert [(r[0], r[1]) for r in rows] == [("宁波甬江纺织有限公司", "A"), ("绍兴柯桥印染厂", "B")]
    assert all(r[2] for r in rows) and rows[0][2] != rows[1][2]
    with app.app_context():
        me = app.extensions["crm"].appbuilder.sm.find_user(username="xl_sales").id
    assert {r[3] for r in rows} == {me}
    assert float(rows[0][4]) == 1200000
    assert count(app, "SELECT count(*) FROM crm_audit WHERE remote_addr = 'import' AND action = 'create'") >= 2


def test_bad_rows_import_nothing_and_come_back_marked(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    before = count(app, "SELECT count(*) FROM customer")
    path = xlsx(tmp_path / "bad.xlsx", [
        ["客户名称", "需求迫切程度", "首次沟通日期", "最近联系日期", "企业规模(人数)"],
        ["好客户甲", "normal", None, None, 10],
        ["坏客户乙", "非常急", None, None, 10],
        ["坏客户丙", "normal", "2026-11-10", "2026-11-01", 10],
        ["坏客户丁", "normal", None, None, "很多"],
        [None, None, None, None, None],
        ["好客户甲", "normal", None, None, 11],
    ])
    report = run(app, people["xl_sales"], "customer", path)
    assert not report.committed and report.inserted == 0
    assert count(app, "SELECT count(*) FROM customer") == before
    assert set(report.errors) == {3, 4, 5, 7}  # 7: the name is unique and repeats row 2
    wb = load_workbook(report.report_path)
    ws = wb.active
    assert ws.max_row == 5 and "错误" in ws.cell(1, 6).value
    marked = [c.coordinate for row in ws.iter_rows() for c in row if c.fill.fgColor.rgb in ("00FFC7CE", "FFFFC7CE")]
    assert "B2" in marked  # 非常急 is not a choice
    skip = run(app, people["xl_sales"], "customer", path, skip_bad_rows=True)
    assert skip.committed and skip.inserted == 1 and skip.skipped == 4


def test_upsert_twice_changes_nothing_the_second_time(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "up.xlsx", [["客户名称", "需求迫切程度", "备注"], ["重复导入客户", "normal", "第一次"]])
    first = run(app, people["xl_sales"], "customer", path, mode="upsert", key="name")
    assert first.inserted == 1
    changed = xlsx(tmp_path / "up2.xlsx", [["客户名称", "需求迫切程度", "备注"], ["重复导入客户", "normal", "第二次"]])
    second = run(app, people["xl_sales"], "customer", changed, mode="upsert", key="name")
    assert (second.inserted, second.updated) == (0, 1)
    audits = count(app, "SELECT count(*) FROM crm_audit")
    third = run(app, people["xl_sales"], "customer", changed, mode="upsert", key="name")
    assert (third.inserted, third.updated, third.unchanged) == (0, 0, 1)
    assert count(app, "SELECT count(*) FROM crm_audit") == audits


def test_links_resolve_by_name_within_scope(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    run(app, people["xl_other"], "customer", xlsx(tmp_path / "o.xlsx", [["客户名称", "需求迫切程度"], ["别人的客户", "normal"]]))
    run(app, people["xl_sales"], "customer", xlsx(tmp_path / "m.xlsx", [["客户名称", "需求迫切程度"], ["自己的客户", "normal"]]))
    contacts = xlsx(tmp_path / "c.xlsx", [["所属客户", "姓名"], ["自己的客户", "王经理"], ["别人的客户", "偷看"]])
    report = run(app, people["xl_sales"], "contact", contacts)
    assert not report.committed and list(report.errors) == [3]


@pytest.mark.parametrize("content,message", [
    (b"", "empty"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "password-protected"), (bytes(range(256)) * 4, "not an .xlsx"),
])
def test_unreadable_files_are_reported(app: Any, people: dict[str, Any], tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.xlsx"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=message):
        run(app, people["xl_sales"], "customer", path)


def test_unknown_and_missing_columns_and_merged_headers(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ImportFileError) as err:
        run(app, people["xl_sales"], "customer", xlsx(tmp_path / "h.xlsx", [["公司名", "需求迫切程度"], ["x", "normal"]]))
    text = " ".join(err.value.problems)
    assert "unknown column '公司名'" in text and "required column 'name' is missing" in text
    path = xlsx(tmp_path / "m.xlsx", [["客户名称", "需求迫切程度"], ["x", "normal"]])
    wb = load_workbook(path)
    wb.active.merge_cells("A1:B1")
    wb.save(path)
    with pytest.raises(ImportFileError, match="merged"):
        run(app, people["xl_sales"], "customer", path)


def test_csv_in_gbk_imports(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("客户名称,需求迫切程度\nGBK编码客户,潜在需求\n".encode("gb18030"))
    report = run(app, people["xl_sales"], "customer", path)
    assert report.committed and report.inserted == 1, report.errors


def test_export_respects_scope_hidden_fields_and_neutralises_formulas(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    api = api_token(app.test_client(), "xl_sales", PASSWORD)
    r = app.test_client().post("/api/v1/customer/", json={"name": '=HYPERLINK("http://x")', "urgency": "normal",
                                                          "notes": "+cmd|' /C calc'!A0"}, headers=api)
    assert r.status_code == 201, r.text
    c = app.test_client()
    login(c, "xl_manager", PASSWORD)  # 销售经理: export right, team scope (导入一部)
    r = c.get("/customerview/export/")
    assert r.status_code == 200
    ws = load_workbook(io.BytesIO(r.data)).active
    values = [cell for row in ws.iter_rows(values_only=True) for cell in row if cell is not None]
    assert "'=HYPERLINK(\"http://x\")" in values and "'+cmd|' /C calc'!A0" in values
    assert "自己的客户" in values and "别人的客户" not in values
    filtered = load_workbook(io.BytesIO(c.get("/customerview/export/?_flt_0_name=自己的客户").data)).active
    assert filtered.max_row == 2
    sales = app.test_client()
    login(sales, "xl_sales", PASSWORD)
    assert sales.get("/customerview/export/").status_code in (302, 403)  # 业务员 may not export
    from flask import g

    from app.runtime.views import export_entity

    with app.test_request_context():
        g.user = app.extensions["crm"].appbuilder.sm.find_user(username="xl_tech")
        export_entity(app, "customer", tmp_path / "tech.xlsx")
    headers = [h for h in next(load_workbook(tmp_path / "tech.xlsx").active.iter_rows(values_only=True))]
    assert "客户名称" in headers and "信用额度(元)" not in headers  # hidden for 技术员


def test_template_has_required_marks_comments_and_dropdowns(app: Any, people: dict[str, Any]) -> None:
    c = app.test_client()
    login(c, "xl_manager", PASSWORD)
    r = c.get("/customerview/import/template/")
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.data))
    ws = wb.worksheets[0]
    headers = [cell.value for cell in ws[1]]
    assert "客户名称 *" in headers
    assert ws.cell(1, headers.index("客户名称 *") + 1).comment is not None
    assert ws.data_validations.dataValidation


def test_import_page_uploads_and_reports(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    from tests.conftest import csrf_token

    c = app.test_client()
    login(c, "xl_manager", PASSWORD)  # 销售经理 has the import right; 业务员 has not
    assert app.test_client().get("/customerview/import/").status_code in (302, 403)
    page = c.get("/customerview/import/")
    assert page.status_code == 200
    good = xlsx(tmp_path / "ui.xlsx", [["客户名称", "需求迫切程度"], ["界面导入客户", "normal"]])
    r = c.post("/customerview/import/", data={"csrf_token": csrf_token(page.text), "mode": "insert",
                                              "file": (good.open("rb"), "ui.xlsx")}, content_type="multipart/form-data")
    assert r.status_code == 200 and "新增 1" in r.text
    assert count(app, "SELECT count(*) FROM customer WHERE name = '界面导入客户'") == 1
    api = api_token(app.test_client(), "xl_manager", PASSWORD)
    assert app.test_client().get("/api/v1/customer/?q=(filters:!((col:name,opr:eq,value:界面导入客户)))", headers=api).json["count"] == 1
