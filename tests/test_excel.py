"""Excel in and out: import with the forms' rules and an error workbook, upsert that changes
nothing the second time, the bad-input corpus (each file refused or marked, nothing imported),
column mapping, the CLI, and exports with their filters, sort, scope and hidden fields."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from app.access.accounts import add_user
from app.io.importer import ImportFileError, import_file
from tests.conftest import ADMIN_PASSWORD, api_token, login, person

PASSWORD = "excel-Pass-1"  # noqa: S105 - test-only


def xlsx(path: Path, rows: list[list[Any]]) -> Path:
    wb = Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


def raw_xlsx(path: Path, rows: Iterable[str], dimension: str | None = None, merges: str = "") -> Path:
    """An .xlsx written by hand, for what openpyxl cannot write: formulas with saved results, error
    values, a million rows (streamed into the zip). ``rows`` are the <row> elements."""
    sheet_head = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                  '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                  + (f'<dimension ref="{dimension}"/>' if dimension else "") + "<sheetData>")
    sheet_tail = "</sheetData>" + (f'<mergeCells count="1"><mergeCell ref="{merges}"/></mergeCells>' if merges else "") + "</worksheet>"
    parts = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        "</Types>",
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>",
        "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="data" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        "</Relationships>",
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, text in parts.items():
            z.writestr(name, text)
        with z.open("xl/worksheets/sheet1.xml", "w") as fh:
            fh.write(sheet_head.encode())
            chunk: list[str] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= 10000:
                    fh.write("".join(chunk).encode())
                    chunk = []
            fh.write("".join(chunk).encode() + sheet_tail.encode())
    return path


def text_cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


@pytest.fixture(scope="module")
def people(app: Any) -> dict[str, Any]:
    person(app, "xl_sales", ["业务员"], PASSWORD, departments=["导入一部"])
    person(app, "xl_other", ["业务员"], PASSWORD, departments=["导入二部"])
    person(app, "xl_tech", ["技术员"], PASSWORD)
    person(app, "xl_manager", ["销售经理"], PASSWORD, departments=["导入一部"])
    return {n: n for n in ("xl_sales", "xl_other", "xl_tech", "admin")}


def count(app: Any, sql: str, **params: Any) -> int:
    with app.app_context():
        return int(app.extensions["crm"].db.session.execute(sa.text(sql), params).scalar())


def run(app: Any, username: str, *args: Any, **kwargs: Any) -> Any:
    with app.test_request_context():
        user = app.extensions["crm"].appbuilder.sm.find_user(username=username)
        return import_file(app, *args, user=user, **kwargs)


def refused(app: Any, path: Path, match: str, username: str = "xl_sales", **kwargs: Any) -> str:
    """The import of ``path`` is refused with ``match`` in the message, and no customer appears."""
    before = count(app, "SELECT count(*) FROM customer")
    with pytest.raises(ImportFileError) as err:
        run(app, username, "customer", path, **kwargs)
    text = " ".join(err.value.problems)
    assert match in text, text
    assert count(app, "SELECT count(*) FROM customer") == before
    return text


# -- the import ----------------------------------------------------------------------------------

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
            "SELECT name, grade, code, owner_id, annual_demand, grade_reason, id FROM customer "
            "WHERE name IN ('宁波甬江纺织有限公司', '绍兴柯桥印染厂') ORDER BY id")).all()
    assert [(r[0], r[1]) for r in rows] == [("宁波甬江纺织有限公司", "A"), ("绍兴柯桥印染厂", "B")]
    assert all(r[2] for r in rows) and rows[0][2] != rows[1][2]
    with app.app_context():
        me = app.extensions["crm"].appbuilder.sm.find_user(username="xl_sales").id
    assert {r[3] for r in rows} == {me}
    assert float(rows[0][4]) == 1200000
    assert rows[0][5].startswith("A:") and "grading!" in rows[0][5]  # the explanation, as a save writes it
    assert count(app, "SELECT count(*) FROM crm_grade_change WHERE record_id = :id AND new_value = 'A' AND old_value IS NULL",
                 id=rows[0][6]) == 1
    assert count(app, "SELECT count(*) FROM crm_audit WHERE remote_addr = 'import' AND action = 'create' AND record_id = :id",
                 id=rows[1][6]) == 1


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
    assert set(report.errors) == {3, 4, 5, 7}  # 7: the name is unique and repeats row 2; 6 is blank
    assert report.blank == 1 and report.total == 5
    ws = load_workbook(report.report_path).active
    assert ws.max_row == 5 and "错误" in ws.cell(1, 6).value
    marked = [c.coordinate for row in ws.iter_rows() for c in row if c.fill.fgColor.rgb in ("00FFC7CE", "FFFFC7CE")]
    assert "B2" in marked and "E4" in marked  # 非常急 is not a choice; 很多 is not a number
    assert ws.cell(2, 6).value.startswith("第 3 行")
    skip = run(app, people["xl_sales"], "customer", path, skip_bad_rows=True)
    assert skip.committed and skip.inserted == 1 and skip.skipped == 4


def test_an_import_applies_each_fields_own_checks_as_the_forms_do(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    before = count(app, "SELECT count(*) FROM customer")
    path = xlsx(tmp_path / "checks.xlsx", [
        ["客户名称", "需求迫切程度", "邮箱", "电话", "统一社会信用代码/税号", "年需求规模(元)"],
        ["检查好客户", "normal", "buyer@example.com", "0571-8888 6666", "91330100MA2H0XYZ1A", 5000],
        ["检查坏邮箱", "normal", "bad-email", None, None, None],
        ["检查坏电话", "normal", None, "abc", None, None],
        ["检查坏税号", "normal", None, None, "abc", None],
        ["检查负需求", "normal", None, None, None, -5],
    ])
    report = run(app, people["xl_sales"], "customer", path)
    assert not report.committed and count(app, "SELECT count(*) FROM customer") == before
    assert set(report.errors) == {3, 4, 5, 6}
    text = " ".join(str(report.errors[n]) for n in (3, 4, 5, 6))
    assert "邮箱" in text and "电话" in text and "格式不正确" in text and "最小值" in text
    ws = load_workbook(report.report_path).active
    marked = {c.coordinate for row in ws.iter_rows() for c in row if c.fill.fgColor.rgb in ("00FFC7CE", "FFFFC7CE")}
    assert {"C2", "D3", "E4", "F5"} <= marked


def test_upsert_twice_changes_nothing_the_second_time(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "up.xlsx", [["客户名称", "需求迫切程度", "备注"], ["重复导入客户", "normal", "第一次"]])
    first = run(app, people["xl_sales"], "customer", path, mode="upsert", key="name")
    assert first.inserted == 1
    changed = xlsx(tmp_path / "up2.xlsx", [["客户名称", "需求迫切程度", "备注"], ["重复导入客户", "normal", "第二次"]])
    second = run(app, people["xl_sales"], "customer", changed, mode="upsert", key="name")
    assert (second.inserted, second.updated) == (0, 1)
    assert count(app, "SELECT version FROM customer WHERE name = '重复导入客户'") == 2
    audits = count(app, "SELECT count(*) FROM crm_audit")
    third = run(app, people["xl_sales"], "customer", changed, mode="upsert", key="name")
    assert (third.inserted, third.updated, third.unchanged) == (0, 0, 1)
    assert count(app, "SELECT count(*) FROM crm_audit") == audits


def test_duplicate_keys_within_the_file(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "dup.xlsx", [["客户名称", "需求迫切程度", "备注"], ["键重复客户", "normal", "一"], ["键重复客户", "normal", "二"]])
    report = run(app, people["xl_sales"], "customer", path, mode="upsert", key="name")
    assert not report.committed and list(report.errors) == [3]
    assert "same key as row 2" in report.errors[3][0][2]
    assert count(app, "SELECT count(*) FROM customer WHERE name = '键重复客户'") == 0


def test_changes_between_the_check_and_the_write_stop_the_whole_import(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    run(app, "admin", "customer", xlsx(tmp_path / "a.xlsx", [["客户名称", "需求迫切程度"], ["并发修改客户", "normal"]]))
    with app.app_context():
        engine = app.extensions["crm"].db.engine

    def meanwhile(sql: str) -> Any:
        def progress(phase: str, done: int, total: int | None) -> None:
            if phase == "checking" and done == total:  # checked, not yet written: someone else saves
                with engine.begin() as conn:
                    conn.execute(sa.text(sql))
        return progress

    path = xlsx(tmp_path / "b.xlsx", [["客户名称", "需求迫切程度", "备注"], ["并发修改客户", "normal", "导入的备注"], ["并发新客户", "normal", None]])
    with pytest.raises(ImportFileError, match="was edited while importing"):
        run(app, "admin", "customer", path, mode="upsert", key="name",
            progress=meanwhile("UPDATE customer SET version = version + 1, notes = '别人的备注' WHERE name = '并发修改客户'"))
    assert count(app, "SELECT count(*) FROM customer WHERE name = '并发新客户'") == 0
    assert count(app, "SELECT count(*) FROM customer WHERE name = '并发修改客户' AND notes = '别人的备注'") == 1
    new = xlsx(tmp_path / "c.xlsx", [["客户名称", "需求迫切程度"], ["抢先客户", "normal"], ["随后客户", "normal"]])
    first = xlsx(tmp_path / "d.xlsx", [["客户名称", "需求迫切程度"], ["抢先客户", "normal"]])

    def someone_imports_first(phase: str, done: int, total: int | None) -> None:
        if phase == "checking" and done == total:
            assert run(app, "xl_other", "customer", first).committed

    with pytest.raises(ImportFileError, match="the database refused a row"):
        run(app, "admin", "customer", new, progress=someone_imports_first)
    assert count(app, "SELECT count(*) FROM customer WHERE name IN ('抢先客户', '随后客户')") == 1


def test_links_resolve_by_name_within_scope(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    run(app, people["xl_other"], "customer", xlsx(tmp_path / "o.xlsx", [["客户名称", "需求迫切程度"], ["别人的客户", "normal"]]))
    run(app, people["xl_sales"], "customer", xlsx(tmp_path / "m.xlsx", [["客户名称", "需求迫切程度"], ["自己的客户", "normal"]]))
    contacts = xlsx(tmp_path / "c.xlsx", [["所属客户", "姓名"], ["自己的客户", "王经理"], ["别人的客户", "偷看"]])
    report = run(app, people["xl_sales"], "contact", contacts)
    assert not report.committed and list(report.errors) == [3]


def test_upsert_cannot_touch_records_outside_the_scope(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    run(app, people["xl_other"], "customer", xlsx(tmp_path / "o.xlsx", [["客户名称", "需求迫切程度"], ["范围外客户", "normal"]]))
    path = xlsx(tmp_path / "u.xlsx", [["客户名称", "需求迫切程度", "备注"], ["范围外客户", "normal", "改掉"]])
    report = run(app, people["xl_sales"], "customer", path, mode="upsert", key="name")
    assert list(report.errors) == [2] and "cannot be used" in report.errors[2][0][2]
    told = report.errors[2][0][2].replace("范围外客户", "…")
    assert "已存在" not in told and "范围" not in told and "exists" not in told  # its existence is not told
    assert not report.committed and report.inserted == report.updated == 0
    assert count(app, "SELECT count(*) FROM customer WHERE name = '范围外客户' AND notes IS NULL") == 1


def _answer(report: Any, value: str) -> tuple[Any, ...]:
    """What an import told: its row errors (the value named replaced by …), counts and summary."""
    errors = {n: [(col, label, m.replace(value, "…")) for col, label, m in rows] for n, rows in report.errors.items()}
    return (errors, report.total, report.inserted, report.updated, report.failed, report.committed, report.summary().replace(value, "…"))


def test_an_out_of_scope_key_answers_as_a_missing_one(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    """An upsert naming another team's record by its number is told exactly what a number nobody
    has gets; by a key a new record would take, exactly what a unique value held out of sight gets."""
    run(app, people["xl_other"], "customer", xlsx(tmp_path / "o.xlsx", [["客户名称", "需求迫切程度"], ["他组编号客户", "normal"]]))
    with app.app_context():
        theirs = str(app.extensions["crm"].db.session.execute(sa.text("SELECT code FROM customer WHERE name = '他组编号客户'")).scalar())
    answers = []
    for code in (theirs, "KH-209912-9999"):
        path = xlsx(tmp_path / f"{code}.xlsx", [["客户编码", "客户名称", "需求迫切程度", "备注"], [code, "他组编号客户改", "normal", "改掉"]])
        answers.append(_answer(run(app, people["xl_sales"], "customer", path, mode="upsert", key="code"), code))
    assert answers[0] == answers[1] and answers[0][0]  # refused, in the same words
    # by name (a new name inserts): the other team's name refused as in a plain insert of a taken name
    path = xlsx(tmp_path / "n.xlsx", [["客户名称", "需求迫切程度", "备注"], ["他组编号客户", "normal", "改掉"]])
    upsert = run(app, people["xl_sales"], "customer", path, mode="upsert", key="name")
    insert = run(app, people["xl_sales"], "customer", path)
    assert _answer(upsert, "他组编号客户") == _answer(insert, "他组编号客户") and upsert.errors
    assert count(app, "SELECT count(*) FROM customer WHERE name LIKE '他组编号客户%' AND notes IS NULL") == 1
    # a link cell naming it, by name or by #id: the words of a name or id nobody has
    theirs_id = count(app, "SELECT id FROM customer WHERE name = '他组编号客户'")
    nobody_id = count(app, "SELECT max(id) FROM customer") + 1000
    for named, unknown in (("他组编号客户", "没有这个客户"), (f"#{theirs_id}", f"#{nobody_id}")):
        said = [_answer(run(app, people["xl_sales"], "contact", xlsx(tmp_path / "l.xlsx", [["所属客户", "姓名"], [cell, "偷看"]])), cell)
                for cell in (named, unknown)]
        assert said[0] == said[1] and said[0][0], named


def test_system_columns_are_ignored_with_a_note_and_owner_needs_the_right(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "sys.xlsx", [["客户名称", "需求迫切程度", "客户等级", "客户编码", "负责业务员"],
                                        ["系统列客户", "normal", "A", "KH-X", "xl_other"]])
    report = run(app, people["xl_sales"], "customer", path)
    assert report.committed, report.errors
    assert any("客户等级" in n for n in report.notes) and any("负责业务员" in n for n in report.notes)
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        sales, other = sm.find_user(username="xl_sales").id, sm.find_user(username="xl_other").id
    assert count(app, "SELECT owner_id FROM customer WHERE name = '系统列客户'") == sales  # 业务员 may not assign others
    assert count(app, "SELECT count(*) FROM customer WHERE name = '系统列客户' AND code != 'KH-X' AND grade = 'B'") == 1
    path = xlsx(tmp_path / "mgr.xlsx", [["客户名称", "需求迫切程度", "负责业务员"], ["经理分配客户", "normal", "xl_sales"]])
    assert run(app, "xl_manager", "customer", path).committed
    assert count(app, "SELECT owner_id FROM customer WHERE name = '经理分配客户'") == sales
    # a manager gives records only to those the record page offers: not a technician, not IT, not
    # a salesperson of another department (导入二部: out of his team's sight)
    path = xlsx(tmp_path / "bad_owner.xlsx", [["客户名称", "需求迫切程度", "负责业务员"], ["技术员客户", "normal", "xl_tech"],
                                              ["管理员客户", "normal", "admin"], ["外部门客户", "normal", "xl_other"]])
    report = run(app, "xl_manager", "customer", path)
    assert not report.committed and report.failed == 3
    assert all("不能做负责人" in m for errors in report.errors.values() for _col, _label, m in errors)
    assert count(app, "SELECT count(*) FROM customer WHERE name IN ('技术员客户', '管理员客户', '外部门客户')") == 0
    assert other


def test_numbers_a_column_cannot_hold_are_cell_errors_not_a_crash(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    rows = [["客户名称", "需求迫切程度", "年需求规模(元)", "企业规模(人数)"],
            ["数字客户1", "normal", "1e30", 1], ["数字客户2", "normal", "Infinity", 1], ["数字客户3", "normal", "NaN", 1],
            ["数字客户4", "normal", 1, "1000000000000000000000000000000"], ["数字客户5", "normal", 1, "Infinity"],
            ["数字客户6", "normal", "sNaN", 1]]
    report = run(app, "admin", "customer", xlsx(tmp_path / "numbers.xlsx", rows))
    assert not report.committed and report.failed == 6 and sorted(report.errors) == [2, 3, 4, 5, 6, 7]
    assert count(app, "SELECT count(*) FROM customer WHERE name LIKE '数字客户%'") == 0


def test_a_person_cell_takes_the_name_screens_show_an_email_or_a_login(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    """Office staff type the person as the admin shows them (尹嘉: family name first) or copy an
    e-mail; an exported sheet carries names, so it imports back. A name two people share is
    refused with both logins; the login itself still names one account. (They work in the importing
    manager's department: he may give them records.)"""
    add_user(app, "xl_yin", ["业务员"], PASSWORD, email="yin.jia@example.cn", first_name="嘉", last_name="尹", departments=["导入一部"])
    add_user(app, "xl_yin2", ["业务员"], PASSWORD, first_name="嘉", last_name="尹", departments=["导入一部"])
    add_user(app, "xl_wang", ["业务员"], PASSWORD, email="Wang.Fang@Example.cn", first_name="芳", last_name="王", departments=["导入一部"])
    add_user(app, "xl_lee", ["业务员"], PASSWORD, first_name="Anna", last_name="Lee", departments=["导入一部"])
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        ids = {u: sm.find_user(username=u).id for u in ("xl_yin", "xl_yin2", "xl_wang", "xl_lee")}
    path = xlsx(tmp_path / "people.xlsx", [["客户名称", "需求迫切程度", "负责业务员"],
                                           ["人名客户一", "normal", "王芳"],
                                           ["人名客户二", "normal", " wang.fang@example.cn "],
                                           ["人名客户三", "normal", "Anna Lee"],
                                           ["人名客户四", "normal", "xl_yin2"],
                                           ["人名客户五", "normal", "尹嘉"],
                                           ["人名客户六", "normal", "芳"]])
    report = run(app, "xl_manager", "customer", path, skip_bad_rows=True)
    assert report.inserted == 4, report.errors
    owner = "SELECT owner_id FROM customer WHERE name = :n"
    assert count(app, owner, n="人名客户一") == ids["xl_wang"] and count(app, owner, n="人名客户二") == ids["xl_wang"]
    assert count(app, owner, n="人名客户三") == ids["xl_lee"] and count(app, owner, n="人名客户四") == ids["xl_yin2"]
    problems = " ".join(message for row in report.errors.values() for _column, _label, message in row)
    assert "xl_yin、xl_yin2" in problems and "找不到用户 '芳'" in problems, problems
    assert count(app, "SELECT count(*) FROM customer WHERE name IN ('人名客户五', '人名客户六')") == 0

    client = app.test_client()  # what an export writes in the person column imports back unchanged
    login(client, "admin", ADMIN_PASSWORD)
    r = client.get("/customerview/export/?_flt_0_name=人名客户")
    assert r.status_code == 200, r.status_code
    sheet = load_workbook(io.BytesIO(r.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    column = list(rows[0]).index("负责业务员")
    assert sorted(row[column] for row in rows[1:]) == ["Anna Lee", "尹嘉", "王芳", "王芳"]
    again = xlsx(tmp_path / "again.xlsx", [["客户名称", "需求迫切程度", "负责业务员"], ["人名客户七", "normal", "王芳"]])
    assert run(app, "xl_manager", "customer", again).committed
    assert count(app, owner, n="人名客户七") == ids["xl_wang"]


def test_file_columns_are_never_imported(app: Any) -> None:
    """A cell cannot carry an upload; its text would point at somebody's stored file."""
    from app.io.importcolumns import plan_columns, system_fields

    spec = app.extensions["crm"].spec
    with_files = [(e, f) for e in spec.entities for f in e.fields if f.type == "file"]
    assert with_files, "the shipped workbook has a file field"
    for e, f in with_files:
        assert f.name in system_fields(spec, e, None, "Admin")
        plan = plan_columns(spec, e, [f.label], None, "Admin")
        assert not any(f.label in p for p in plan.problems) and f.label in " ".join(plan.notes) and f not in plan.columns.values()


def test_csv_in_gbk_imports(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("客户名称,需求迫切程度\nGBK编码客户,潜在需求\n".encode("gb18030"))
    report = run(app, people["xl_sales"], "customer", path)
    assert report.committed and report.inserted == 1, report.errors


def test_a_sheet_that_starts_in_column_b_keeps_its_columns_and_rows(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws["B1"], ws["C1"], ws["D1"] = "客户名称", "需求迫切程度", "企业规模(人数)"
    ws["B2"], ws["C2"], ws["D2"] = "B列客户", "normal", 12
    ws["B3"], ws["C3"], ws["D3"] = "B列客户二", "normal", "很多"
    wb.save(tmp_path / "b.xlsx")
    report = run(app, people["xl_sales"], "customer", tmp_path / "b.xlsx")
    assert list(report.errors) == [3] and report.errors[3][0][:2] == (3, "企业规模(人数)")


# -- bad input: each a clear message, nothing imported ---------------------------------------------

@pytest.mark.parametrize("content,message", [
    (b"", "the file is empty"),
    (bytes(range(256)) * 4, "not an .xlsx or .csv file"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\x00\x00", "not an .xlsx or .csv file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "an old .xls or other Office file"),
])
def test_files_that_are_not_spreadsheets(app: Any, people: dict[str, Any], tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.xlsx"
    path.write_bytes(content)
    refused(app, path, message)


def test_a_zip_that_is_not_a_workbook(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("word/document.xml", "<document/>")
    refused(app, path, "not an .xlsx or .csv file")


def test_a_password_protected_workbook(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = xlsx(tmp_path / "plain.xlsx", [["客户名称", "需求迫切程度"], ["加密客户", "normal"]])
    with plain.open("rb") as fh, (tmp_path / "locked.xlsx").open("wb") as out:
        OOXMLFile(fh).encrypt("secret-1", out)
    refused(app, tmp_path / "locked.xlsx", "password-protected")


def test_unknown_and_missing_columns_and_merged_headers(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    text = refused(app, xlsx(tmp_path / "h.xlsx", [["客户名", "需求迫切程度", "随便"], ["x", "normal", 1]]), "unknown column")
    assert "A 列 '客户名':未知列 (unknown column '客户名');是否指 (did you mean) '客户名称'?" in text
    assert "unknown column '随便'" in text and "required column 'name' is missing" in text
    path = xlsx(tmp_path / "m.xlsx", [["客户名称", "需求迫切程度"], ["x", "normal"]])
    wb = load_workbook(path)
    wb.active.merge_cells("A1:B1")
    wb.save(path)
    refused(app, path, "merged cells in the header row")
    twice = xlsx(tmp_path / "t.xlsx", [["客户名称", "name", "需求迫切程度"], ["x", "y", "normal"]])
    refused(app, twice, "both fill 'name'")


def test_merged_data_cells_are_marked_on_every_covered_row(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "md.xlsx", [["客户名称", "需求迫切程度", "所属区域"], ["合并甲", "normal", "华东"], ["合并乙", "normal", None]])
    wb = load_workbook(path)
    wb.active.merge_cells("C2:C3")
    wb.save(path)
    report = run(app, people["xl_sales"], "customer", path)
    assert not report.committed and list(report.errors) == [3]
    assert "merged cells" in report.errors[3][0][2]


def test_blank_rows_are_skipped_and_counted(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "blank.xlsx", [["客户名称", "需求迫切程度"], [None, None], ["空行后客户", "normal"], ["  ", ""], ["空行后客户二", None]])
    report = run(app, people["xl_sales"], "customer", path)
    assert report.committed and (report.total, report.inserted, report.blank) == (2, 2, 2)
    assert "blank rows 2" in report.summary()


def test_formulas_use_their_saved_result_and_unsaved_ones_are_refused(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    header = "<row r=\"1\">" + text_cell("A1", "客户名称") + text_cell("B1", "需求迫切程度") + text_cell("C1", "企业规模(人数)") + "</row>"

    def row(n: int, name: str, size: str) -> str:
        return f'<row r="{n}">' + text_cell(f"A{n}", name) + text_cell(f"B{n}", "normal") + size + "</row>"

    saved = raw_xlsx(tmp_path / "saved.xlsx", [header, row(2, "公式有结果客户", '<c r="C2"><f>10*3</f><v>30</v></c>')])
    report = run(app, people["xl_sales"], "customer", saved)
    assert report.committed, report.errors
    assert count(app, "SELECT employee_count FROM customer WHERE name = '公式有结果客户'") == 30
    unsaved = raw_xlsx(tmp_path / "unsaved.xlsx", [header, row(2, "公式无结果客户", '<c r="C2"><f>10*3</f><v></v></c>'),
                                                   row(3, "错误值客户", '<c r="C3" t="e"><f>1/0</f><v>#DIV/0!</v></c>'),
                                                   row(4, "正常客户", '<c r="C4"><v>7</v></c>')])
    report = run(app, people["xl_sales"], "customer", unsaved)
    assert not report.committed and list(report.errors) == [2, 3]
    assert "a formula without a saved result" in report.errors[2][0][2] and report.errors[2][0][0] == 2
    assert "#DIV/0!" in report.errors[3][0][2]
    assert count(app, "SELECT count(*) FROM customer WHERE name IN ('公式无结果客户', '错误值客户', '正常客户')") == 0
    csv_path = tmp_path / "f.csv"
    csv_path.write_text("客户名称,需求迫切程度,企业规模(人数)\nCSV公式客户,normal,=10*3\n", encoding="utf-8")
    report = run(app, people["xl_sales"], "customer", csv_path)
    assert not report.committed and "a formula in a CSV file is not calculated" in report.errors[2][0][2]


def test_a_million_rows_are_refused_before_reading_them(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    header = "<row r=\"1\">" + text_cell("A1", "客户名称") + text_cell("B1", "需求迫切程度") + "</row>"
    rows = (f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>客户{n}</t></is></c></row>' for n in range(2, 1_000_002))
    path = raw_xlsx(tmp_path / "million.xlsx", [header, *rows])  # no <dimension>: the streaming count decides
    text = refused(app, path, "the file has more than 150,000 data rows, the limit per import")  # counting stops there
    assert "CRM_IMPORT_MAX_ROWS" in text
    declared = raw_xlsx(tmp_path / "declared.xlsx", [header], dimension="A1:B1000001")
    refused(app, declared, "the file has 1,000,000 data rows, more than the limit of 150,000")


def test_the_row_limit_is_configurable_for_csv_and_xlsx(app: Any, people: dict[str, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_ROWS", 3)
    csv_path = tmp_path / "four.csv"
    csv_path.write_text("客户名称,需求迫切程度\n" + "".join(f"限额客户{i},normal\n" for i in range(4)), encoding="utf-8")
    refused(app, csv_path, "more than 3 data rows")
    refused(app, xlsx(tmp_path / "four.xlsx", [["客户名称", "需求迫切程度"], *[[f"限额客户{i}", "normal"] for i in range(4)]]),
            "the file has 4 data rows, more than the limit of 3")  # from the sheet's dimension
    assert run(app, people["xl_sales"], "customer", xlsx(tmp_path / "three.xlsx", [["客户名称", "需求迫切程度"],
                                                                                   *[[f"限额内客户{i}", "normal"] for i in range(3)]])).committed


# -- mapping and the command line ----------------------------------------------------------------

def test_a_mapping_names_the_columns_the_headers_do_not(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "map.xlsx", [["公司", "紧急程度", "内部编号"], ["映射客户", "normal", "X-1"]])
    refused(app, path, "unknown column '公司'")
    report = run(app, people["xl_sales"], "customer", path, mapping={"公司": "name", "紧急程度": "需求迫切程度", "内部编号": ""})
    assert report.committed and report.inserted == 1, report.errors
    assert any("内部编号" in n for n in report.notes)
    refused(app, path, "no importable field 'grade'", mapping={"公司": "grade", "紧急程度": "urgency", "内部编号": ""})


def test_cli_import_with_map_progress_and_errors(app: Any, people: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import main

    monkeypatch.setenv("CRM_DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])  # and its var dir: the install's keys
    path = xlsx(tmp_path / "cli.xlsx", [["公司", "需求迫切程度"], *[[f"命令行客户{i}", "normal"] for i in range(300)]])
    runner = CliRunner()
    refused = runner.invoke(main, ["import", "customer", str(path), "--as", "xl_sales", "--map", "公司=name"])
    assert refused.exit_code == 1 and "xl_sales has no import right on customer" in refused.output  # 业务员: none, as on screen
    assert count(app, "SELECT count(*) FROM customer WHERE name LIKE '命令行客户%'") == 0
    unsure = runner.invoke(main, ["import", "customer", str(path), "--as", "xl_manager"])
    assert unsure.exit_code == 1 and "unknown column '公司'" in unsure.output and "nothing changed" in unsure.output
    done = runner.invoke(main, ["import", "customer", str(path), "--as", "xl_manager", "--map", "公司=name"])
    assert done.exit_code == 0, done.output
    assert "inserted 300" in done.output and "检查 (checking)" in done.output and "写入 (writing)" in done.output
    assert count(app, "SELECT count(*) FROM customer WHERE name LIKE '命令行客户%'") == 300
    bad = runner.invoke(main, ["import", "customer", str(path), "--map", "公司"])
    assert bad.exit_code == 2 and "Header=field" in bad.output


# -- export --------------------------------------------------------------------------------------

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
    from app.web.export import export_entity

    with app.app_context():
        export_entity(app, "customer", tmp_path / "tech.xlsx", app.extensions["crm"].appbuilder.sm.find_user(username="xl_tech"))
    headers = [h for h in next(load_workbook(tmp_path / "tech.xlsx").active.iter_rows(values_only=True))]
    assert "客户名称" in headers and "信用额度(元)" not in headers  # hidden for 技术员


def test_cli_export_is_the_users_own_export(app: Any, people: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``crm export --as`` exports what that user may see (their row scope), with no request behind it."""
    from app.cli import main

    monkeypatch.setenv("CRM_DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])  # and its var dir: the install's keys
    for who, name in (("xl_sales", "命令行导出本部客户"), ("xl_other", "命令行导出他部客户")):
        assert run(app, who, "customer", xlsx(tmp_path / f"{who}.xlsx", [["客户名称", "需求迫切程度"], [name, "normal"]])).committed
    runner = CliRunner()

    def export(*args: str) -> list[Any]:
        out = tmp_path / "out.xlsx"
        result = runner.invoke(main, ["export", "customer", str(out), *args])
        assert result.exit_code == 0, result.output
        rows = list(load_workbook(out).active.iter_rows(values_only=True))
        assert result.output.splitlines() == [f"已导出 (exported) {len(rows) - 1} rows to {out}"]
        assert "客户名称" in rows[0]
        return [value for row in rows[1:] for value in row]

    mine = export("--as", "xl_manager")  # 销售经理: team scope (导入一部)
    assert "命令行导出本部客户" in mine and "命令行导出他部客户" not in mine
    everything = export()  # the first administrator
    assert "命令行导出本部客户" in everything and "命令行导出他部客户" in everything
    refused = runner.invoke(main, ["export", "customer", str(tmp_path / "no.xlsx"), "--as", "xl_sales"])
    assert refused.exit_code == 1 and "xl_sales has no export right on customer" in refused.output

def test_export_follows_the_lists_filters_and_sort_and_nothing_else(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "sort.xlsx", [["客户名称", "需求迫切程度", "企业规模(人数)", "信用额度(元)", "首次沟通日期"],
                                         ["排序乙", "normal", 20, 500, "2026-03-01"], ["排序甲", "normal", 10, 900, "2026-01-02"],
                                         ["排序丙", "normal", 30, 100, None]])
    assert run(app, "admin", "customer", path).committed
    c = app.test_client()
    from tests.conftest import ADMIN_PASSWORD

    login(c, "admin", ADMIN_PASSWORD)
    rows = _export(c, "?_flt_0_name=排序&_oc_CustomerView=name&_od_CustomerView=desc")  # code points: 甲 > 乙 > 丙
    assert [r["客户名称"] for r in rows] == ["排序甲", "排序乙", "排序丙"]
    rows = _export(c, "?_flt_0_name=排序&_oc_CustomerView=name&_od_CustomerView=asc")
    assert [r["客户名称"] for r in rows] == ["排序丙", "排序乙", "排序甲"]
    assert rows[2]["首次沟通日期"] == dt.datetime(2026, 1, 2) and rows[2]["企业规模(人数)"] == 10  # typed cells
    wb = load_workbook(io.BytesIO(c.get("/customerview/export/?_flt_0_name=排序").data))
    ws = wb.active
    headers = [cell.value for cell in ws[1]]
    dates = [row[headers.index("首次沟通日期")] for row in ws.iter_rows(min_row=2) if row[headers.index("首次沟通日期")].value]
    assert dates and all(c.is_date and c.number_format.startswith("yyyy-mm-dd") for c in dates)
    assert ws.column_dimensions["A"].width > 0 and ws.freeze_panes == "A2"
    # as on the list: only searchable and sortable columns (a filter or sort on any other column, e.g.
    # one a role may not see, would let the file reveal it)
    assert len(_export(c, "?_flt_0_name=排序&_flt_0_credit_limit=900")) == 3
    assert [r["客户名称"] for r in _export(c, "?_flt_0_name=排序&_oc_CustomerView=credit_limit&_od_CustomerView=asc")] == \
        ["排序丙", "排序甲", "排序乙"]  # not sortable: the list's default order (newest number first)


def _export(client: Any, query: str) -> list[dict[str, Any]]:
    r = client.get("/customerview/export/" + query)
    if r.status_code != 200:
        return []
    rows = list(load_workbook(io.BytesIO(r.data)).active.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_an_export_imports_back_unchanged(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    path = xlsx(tmp_path / "rt.xlsx", [["客户名称", "需求迫切程度", "备注", "电话"], ["往返客户", "urgent", "@不是公式", "+86 571 8888 8888"]])
    assert run(app, "admin", "customer", path).committed
    c = app.test_client()
    from tests.conftest import ADMIN_PASSWORD

    login(c, "admin", ADMIN_PASSWORD)
    with app.app_context():  # graded since by the set-based regrade (an upgrade): a reason worded without its values
        session = app.extensions["crm"].db.session
        reason = session.execute(sa.text("SELECT grade_reason FROM customer WHERE name = '往返客户'")).scalar_one()
        assert " ← " in reason
        session.execute(sa.text("UPDATE customer SET grade_reason = :r WHERE name = '往返客户'"),
                        {"r": re.sub(r" ← .*? \[", " [", reason)})
        session.commit()
    exported = tmp_path / "exported.xlsx"
    exported.write_bytes(c.get("/customerview/export/?_flt_0_name=往返客户").data)
    again = run(app, "admin", "customer", exported, mode="upsert", key="code")
    assert (again.inserted, again.updated, again.unchanged, again.failed) == (0, 0, 1, 0), again.errors
    assert count(app, "SELECT count(*) FROM customer WHERE notes = '@不是公式' AND phone = '+86 571 8888 8888'") == 1


def test_template_has_required_marks_comments_and_dropdowns(app: Any, people: dict[str, Any]) -> None:
    c = app.test_client()
    login(c, "xl_manager", PASSWORD)
    r = c.get("/customerview/import/template/")
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.data))
    ws = wb.worksheets[0]
    headers = [cell.value for cell in ws[1]]
    assert "客户名称 *" in headers and "客户等级" not in headers  # computed fields are not asked for
    assert ws.cell(1, headers.index("客户名称 *") + 1).comment is not None
    assert ws.data_validations.dataValidation


# -- properties ----------------------------------------------------------------------------------

@given(st.text())
def test_neutralised_text_imports_back_as_it_was(text: str) -> None:
    from app.io.excel import neutralise, unneutralise

    assert unneutralise(neutralise(text)) == text  # a text starting '= as well
    assert not str(neutralise(text)).startswith(("=", "+", "-", "@", "\t", "\r"))


def test_a_text_starting_with_a_quote_and_an_equals_sign_comes_back_from_export_as_it_was() -> None:
    from app.io.excel import neutralise, unneutralise

    assert neutralise("=1+1") == "'=1+1" and neutralise("'=abc") == "''=abc" and neutralise("'abc") == "'abc"
    for text in ("'=abc", "''-1", "=abc", "'abc", "it's", "'"):
        assert unneutralise(neutralise(text)) == text


@given(st.integers(min_value=0, max_value=16383))
def test_column_letters_and_indexes_agree(index: int) -> None:
    from app.io.spreadsheet import column_index, column_letter

    assert column_index(column_letter(index)) == index


def test_a_link_cell_naming_a_title_two_records_share_is_refused_not_guessed(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    c = app.test_client()
    customer = c.post("/api/v1/customer/", json={"name": "同名联系人客户", "urgency": "normal"}, headers=admin).json["id"]
    first, second = (c.post("/api/v1/contact/", json={"customer": customer, "name": "蔡同名", "active": True}, headers=admin).json["id"]
                     for _ in range(2))
    rows = [["跟进主题", "客户", "联系人", "跟进人", "跟进方式", "计划日期", "状态"],
            ["问同名的人", "同名联系人客户", "蔡同名", "xl_sales", "phone", "2026-12-01", "planned"]]
    report = run(app, "admin", "follow_up", xlsx(tmp_path / "same_name.xlsx", rows))
    assert not report.committed
    assert any("对应多条" in m and f"#{first}" in m and f"#{second}" in m for _col, _label, m in report.errors[2]), report.errors
    rows[1][2] = f"#{second}"  # the sheet says which one
    report = run(app, "admin", "follow_up", xlsx(tmp_path / "by_id.xlsx", rows))
    assert report.committed, report.errors
    assert count(app, "SELECT contact_id FROM follow_up WHERE subject = '问同名的人'") == second


def test_an_import_naming_another_customers_contact_is_refused_on_that_cell(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    c = app.test_client()
    for name in ("导入联系人甲方", "导入联系人乙方"):
        customer = c.post("/api/v1/customer/", json={"name": name, "urgency": "normal"}, headers=admin).json["id"]
        c.post("/api/v1/contact/", json={"customer": customer, "name": f"{name}的人", "active": True}, headers=admin)
    rows = [["跟进主题", "客户", "联系人", "跟进人", "跟进方式", "计划日期", "状态"],
            ["问错的人", "导入联系人甲方", "导入联系人乙方的人", "xl_sales", "phone", "2026-12-01", "planned"]]
    report = run(app, "admin", "follow_up", xlsx(tmp_path / "wrong.xlsx", rows))
    assert not report.committed
    assert [label for _col, label, m in report.errors[2] if "所选客户的联系人" in m] == ["联系人"], report.errors
    rows[1][2] = "导入联系人甲方的人"
    assert run(app, "admin", "follow_up", xlsx(tmp_path / "right.xlsx", rows)).committed
    assert count(app, "SELECT count(*) FROM follow_up WHERE subject = '问错的人'") == 1
    rows[1][:3] = ["只问人", None, "导入联系人乙方的人"]  # the contact alone: the customer is the contact's
    report = run(app, "admin", "follow_up", xlsx(tmp_path / "contact_only.xlsx", rows))
    assert report.committed, report.errors
    assert count(app, "SELECT c.name = '导入联系人乙方' FROM follow_up f JOIN customer c ON c.id = f.customer_id WHERE f.subject = '只问人'") == 1


@pytest.mark.parametrize("text", ["202611", "2026111", "20261"])
def test_digits_that_could_be_several_dates_are_not_guessed(text: str) -> None:
    from app.record.convert import convert

    with pytest.raises(ValueError, match="is not a date"):
        convert(text, "date")
    assert convert("20261101", "date") == dt.date(2026, 11, 1)


def test_a_contact_alone_never_brings_a_customer_the_importer_may_not_see(app: Any, people: dict[str, Any], tmp_path: Path) -> None:
    """A salesperson's own contact at another salesperson's customer: naming the contact alone
    filled in that customer, which the sheet could not have named (nor the API, nor the form)."""
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    c = app.test_client()
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        sales, other = sm.find_user(username="xl_sales").id, sm.find_user(username="xl_other").id
    theirs = c.post("/api/v1/customer/", json={"name": "别人的客户带出", "urgency": "normal"}, headers=admin)
    assert theirs.status_code == 201, theirs.text
    contact = c.post("/api/v1/contact/", json={"customer": theirs.json["id"], "name": "我的联系人带出", "active": True}, headers=admin)
    assert contact.status_code == 201, contact.text
    with app.app_context():  # owners as a manager's reassignment would leave them
        session = app.extensions["crm"].db.session
        session.execute(sa.text("UPDATE customer SET owner_id = :o WHERE id = :i"), {"o": other, "i": theirs.json["id"]})
        session.execute(sa.text("UPDATE contact SET owner_id = :o WHERE id = :i"), {"o": sales, "i": contact.json["id"]})
        session.commit()
    rows = [["跟进主题", "客户", "联系人", "跟进方式", "计划日期", "状态"], ["越权带出", None, "我的联系人带出", "phone", "2026-12-01", "planned"]]
    report = run(app, "xl_sales", "follow_up", xlsx(tmp_path / "brought.xlsx", rows))
    assert not report.committed
    assert [label for _col, label, m in report.errors[2] if "无权查看" in m] == ["客户"], report.errors
    h = api_token(app.test_client(), "xl_sales", PASSWORD)
    r = c.post("/api/v1/follow_up/", json={"subject": "越权带出", "contact": contact.json["id"], "method": "phone",
                                           "planned_on": "2026-12-01"}, headers=h)
    assert r.status_code == 422 and "customer" in r.json["message"], r.json
    assert count(app, "SELECT count(*) FROM follow_up WHERE subject = '越权带出'") == 0
