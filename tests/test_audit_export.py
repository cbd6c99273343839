"""The audit trail read back: a record's full history and its .xlsx export (row scope, hidden
fields withheld, formulas neutralised), the administrators' audit log with its filters and export,
and proof that nothing in the app edits or deletes an audit row."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from app.access.accounts import add_user
from app.record import audit
from tests.conftest import api_token, csrf_token, login

PASSWORD = "audit-Pass-1"  # noqa: S105 - test-only
HEADERS = ["时间", "用户", "来源", "实体", "记录编号", "操作", "版本", "字段", "原值", "新值"]


@pytest.fixture(scope="module")
def users(app: Any) -> dict[str, str]:
    made = {}
    for key, role, dept, first in (("a", "业务员", "审计一部", "甲"), ("b", "业务员", "审计二部", "乙"), ("tech", "技术员", "售后", "技"),
                                   ("boss", "系统管理员", "总部", "管")):
        made[key] = f"aud_{key}"
        add_user(app, made[key], [role], PASSWORD, first_name=first, last_name="审", departments=[dept])
    return made


def api(app: Any, users: dict[str, str], who: str) -> dict[str, str]:
    return api_token(app.test_client(), users[who], PASSWORD)


def signed_in(app: Any, users: dict[str, str], who: str) -> Any:
    c = app.test_client()
    login(c, users[who], PASSWORD)
    return c


def new_customer(app: Any, headers: dict[str, str], name: str, **extra: Any) -> int:
    r = app.test_client().post("/api/v1/customer/", json={"name": name, "urgency": "normal", **extra}, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json["id"])


def update(app: Any, headers: dict[str, str], pk: int, **values: Any) -> None:
    c = app.test_client()
    version = c.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["version"]
    r = c.put(f"/api/v1/customer/{pk}", json={**values, "version": version}, headers=headers)
    assert r.status_code == 200, r.text


def sheet(response: Any) -> list[list[Any]]:
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Disposition"].startswith("attachment")
    ws = load_workbook(io.BytesIO(response.data)).active
    return [list(row) for row in ws.iter_rows(values_only=True)]


def audit_snapshot(app: Any) -> list[Any]:
    with app.app_context():
        return list(app.extensions["crm"].db.session.execute(sa.text("SELECT * FROM crm_audit ORDER BY id")).all())


def test_record_history_export_has_who_when_where_and_old_to_new(app: Any, users: dict[str, str]) -> None:
    ha = api(app, users, "a")
    pk = new_customer(app, ha, "历史客户", notes="第一版")
    update(app, ha, pk, notes="=HYPERLINK(\"http://evil\",\"x\")")
    c = signed_in(app, users, "a")
    show = c.get(f"/customerview/show/{pk}").text
    assert f"/customerview/history/{pk}/export/" in show and f"/customerview/history/{pk}" in show
    page = c.get(f"/customerview/history/{pk}")
    assert page.status_code == 200 and "第一版" in page.text and "备注" in page.text
    rows = sheet(c.get(f"/customerview/history/{pk}/export/"))
    assert rows[0] == HEADERS
    by_field = {(r[5], r[7]): r for r in rows[1:]}
    created = by_field[("新增", "客户名称")]
    assert created[1] == "审甲" and created[2] == "127.0.0.1" and created[4] == pk and created[9] == "历史客户"
    assert isinstance(created[0], dt.datetime)
    changed = by_field[("修改", "备注")]
    assert changed[8] == "第一版"
    # a formula typed into a field stays text in the export (leading quote), never a live formula
    assert changed[9] == "'=HYPERLINK(\"http://evil\",\"x\")"
    # newest first, as on the screen
    assert rows[1][5] == "修改"


def test_hidden_fields_are_withheld_in_history_and_its_export(app: Any, users: dict[str, str]) -> None:
    boss = api(app, users, "boss")
    pk = new_customer(app, boss, "额度保密客户", credit_limit=7777777)
    update(app, boss, pk, credit_limit=6666666)
    tech = signed_in(app, users, "tech")  # 技术员: every customer, credit_limit hidden
    page = tech.get(f"/customerview/history/{pk}")
    assert page.status_code == 200
    assert "7777777" not in page.text and "6666666" not in page.text and "(无权查看)" in page.text
    rows = sheet(tech.get(f"/customerview/history/{pk}/export/"))
    flat = repr(rows)
    assert "7777777" not in flat and "6666666" not in flat
    withheld = [r for r in rows[1:] if r[7] == "信用额度(元)"]
    assert withheld and all(r[8] == r[9] == "(无权查看)" for r in withheld)
    # the administrator sees the values
    admin_rows = sheet(signed_in(app, users, "boss").get(f"/customerview/history/{pk}/export/"))
    assert [r[8:] for r in admin_rows[1:] if r[5] == "修改" and r[7] == "信用额度(元)"] == [["7777777.00", "6666666.00"]]


def test_another_salespersons_history_is_not_reachable(app: Any, users: dict[str, str]) -> None:
    pk = new_customer(app, api(app, users, "b"), "乙的私密历史客户", notes="乙的备注")
    c = signed_in(app, users, "a")
    for path in (f"/customerview/history/{pk}", f"/customerview/history/{pk}/export/", f"/customerview/history/{pk}?page=1"):
        r = c.get(path)
        assert r.status_code in (403, 404), path
        assert "乙的备注" not in r.get_data(as_text=True) and b"PK\x03\x04" not in r.data[:4]
    # the owner can
    assert signed_in(app, users, "b").get(f"/customerview/history/{pk}").status_code == 200


def test_record_history_is_complete_and_paged(app: Any, users: dict[str, str]) -> None:
    ha = api(app, users, "a")
    pk = new_customer(app, ha, "很多历史的客户")
    with app.app_context():
        session = app.extensions["crm"].db.session
        for i in range(60):
            audit.record(session, "customer", pk, "update", {"notes": [f"旧{i}", f"新{i}"]})
        session.commit()
    c = signed_in(app, users, "a")
    first, second = c.get(f"/customerview/history/{pk}").text, c.get(f"/customerview/history/{pk}?page=1").text
    assert "新59" in first and "新10" in first and "新9<" not in first.replace(" ", "")
    assert "新9" in second and "新0" in second and "新59" not in second
    assert "61" in first  # the total: 60 updates and the creation
    rows = sheet(c.get(f"/customerview/history/{pk}/export/"))
    assert len(rows) - 1 >= 61 and sum(1 for r in rows[1:] if r[9] and str(r[9]).startswith("新")) == 60


def test_admin_audit_log_filters_and_export(app: Any, users: dict[str, str]) -> None:
    ha, hb = api(app, users, "a"), api(app, users, "b")
    mine = new_customer(app, ha, "日志甲客户")
    update(app, ha, mine, notes="甲改过")
    theirs = new_customer(app, hb, "日志乙客户")
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        a_id, b_id = sm.find_user(username=users["a"]).id, sm.find_user(username=users["b"]).id
    boss = signed_in(app, users, "boss")
    assert "审计日志" in boss.get("/auditlog/").text
    # by entity and record
    page = boss.get(f"/auditlog/?entity=customer&record_id={mine}").text
    assert "日志甲客户" in page and "甲改过" in page and "日志乙客户" not in page
    assert page.index("甲改过") < page.index("日志甲客户")  # newest first: the update above the creation
    # by user and action
    page = boss.get(f"/auditlog/?entity=customer&user_id={b_id}&action=create").text
    assert "日志乙客户" in page and "日志甲客户" not in page
    assert "日志甲客户" not in boss.get(f"/auditlog/?record_id={mine}&action=delete").text
    # by date range (inclusive days)
    today = dt.date.today()
    assert "日志甲客户" in boss.get(f"/auditlog/?record_id={mine}&entity=customer&since={today}&until={today}").text
    tomorrow, yesterday = today + dt.timedelta(days=1), today - dt.timedelta(days=1)
    assert "日志甲客户" not in boss.get(f"/auditlog/?record_id={mine}&entity=customer&since={tomorrow}").text
    assert "日志甲客户" not in boss.get(f"/auditlog/?record_id={mine}&entity=customer&until={yesterday}").text
    # bad filters are named, in the page's language, and list nothing
    bad = boss.get("/auditlog/?record_id=abc&since=2026-13-40")
    assert bad.status_code == 200
    assert "记录编号须为数字" in bad.text and "开始日期格式应为" in bad.text and "must be a number" not in bad.text
    assert "日志甲客户" not in bad.text
    boss.get("/lang/en")
    try:
        bad = boss.get("/auditlog/?record_id=abc&since=2026-13-40").text
        assert "record id must be a number" in bad and "from date must look like 2026-11-22" in bad and "须为数字" not in bad
    finally:
        boss.get("/lang/zh")
    # export of exactly the filtered rows
    rows = sheet(boss.get(f"/auditlog/export/?entity=customer&user_id={a_id}"))
    assert rows[0] == HEADERS
    assert {r[4] for r in rows[1:]} >= {mine} and theirs not in {r[4] for r in rows[1:]}
    assert all(r[1] == "审甲" for r in rows[1:])
    assert boss.get("/auditlog/export/?record_id=abc").status_code == 400


def test_audit_log_is_for_administrators_only(app: Any, users: dict[str, str]) -> None:
    pk = new_customer(app, api(app, users, "a"), "只有管理员看日志")
    for who in ("a", "tech"):
        c = signed_in(app, users, who)
        assert "审计日志" not in c.get("/customerview/list/").text
        for path in ("/auditlog/", f"/auditlog/?record_id={pk}", "/auditlog/export/"):
            r = c.get(path)
            assert r.status_code in (302, 403), (who, path)
            assert "只有管理员看日志" not in r.get_data(as_text=True) and b"PK\x03\x04" not in r.data[:4]
    assert "审计日志" in signed_in(app, users, "boss").get("/customerview/list/").text


def test_nothing_in_the_app_edits_or_deletes_audit_rows(app: Any, users: dict[str, str]) -> None:
    pk = new_customer(app, api(app, users, "a"), "不可篡改的历史")
    audit_id = audit_snapshot(app)[-1][0]
    boss = signed_in(app, users, "boss")
    token = csrf_token(boss.get(f"/customerview/edit/{pk}").text)
    before = audit_snapshot(app)  # the edit form opened above is not a change
    paths = ["/auditlog/", "/auditlog/export/", f"/auditlog/{audit_id}", f"/auditlog/edit/{audit_id}",
             f"/auditlog/delete/{audit_id}", "/auditlog/add", f"/customerview/history/{pk}", f"/customerview/history/{pk}/export/"]
    form = {"csrf_token": token, "changes": "{}", "action": "delete", "user_id": "1"}
    for path in paths:
        for method in ("post", "put", "patch", "delete"):
            r = getattr(boss, method)(path, data=form)
            assert r.status_code in (404, 405), (method, path, r.status_code)
    # no REST API for the audit table either, whatever the token
    headers = api(app, users, "boss")
    for method in ("get", "post", "put", "delete"):
        for path in ("/api/v1/crm_audit/", f"/api/v1/crm_audit/{audit_id}", "/api/v1/auditlog/", f"/api/v1/auditlog/{audit_id}"):
            r = getattr(app.test_client(), method)(path, json={"changes": "{}"}, headers=headers)
            assert r.status_code in (404, 405), (method, path, r.status_code)
    assert audit_snapshot(app) == before


def test_audit_log_granted_outside_the_sheet_keeps_the_row_scope(app: Any, users: dict[str, str]) -> None:
    """IT may grant the log to a role made in the admin; its holders then see only rows of records
    their row scope shows (a salesperson: own customers), on the screen and in the export."""
    crm = app.extensions["crm"]
    with app.app_context():
        sm = crm.appbuilder.sm
        role = sm.find_role("日志查看") or sm.add_role("日志查看")
        for perm in ("can_list", "can_export"):
            sm.add_permission_role(role, sm.find_permission_view_menu(perm, "AuditLog"))
    add_user(app, "aud_viewer", ["业务员", "日志查看"], PASSWORD, departments=["审计一部"])
    viewer_api = api_token(app.test_client(), "aud_viewer", PASSWORD)
    mine = new_customer(app, viewer_api, "日志里我的客户")
    theirs = new_customer(app, api(app, users, "b"), "日志里别人的客户")
    c = app.test_client()
    login(c, "aud_viewer", PASSWORD)
    page = c.get("/auditlog/?entity=customer")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "日志里我的客户" in text and "日志里别人的客户" not in text
    assert c.get(f"/auditlog/?record_id={theirs}").get_data(as_text=True).count("日志里别人的客户") == 0
    rows = sheet(c.get("/auditlog/export/?entity=customer"))
    assert {r[4] for r in rows[1:]} == {mine}, "the export holds only the viewer's own customer"
    boss = signed_in(app, users, "boss")
    assert "日志里别人的客户" in boss.get(f"/auditlog/?record_id={theirs}").get_data(as_text=True)


def test_history_reads_like_the_record_page(app: Any, users: dict[str, str]) -> None:
    """Changes show what users see on the record: a choice's label (迫切需求, not urgent), a person's
    name (not a user id), a linked record's title, 新增/修改 (not create/update), and no empty → empty
    lines — on the record page, the history page and its export alike."""
    ha = api(app, users, "a")
    pk = new_customer(app, ha, "读得懂的历史客户", notes="", bank_name=None)
    update(app, ha, pk, urgency="urgent", notes="")
    with app.app_context():
        session = app.extensions["crm"].db.session
        b_id = session.execute(sa.text("SELECT id FROM ab_user WHERE username = :u"), {"u": users["b"]}).scalar_one()
    moved = app.test_client().put(f"/api/v1/customer/{pk}/owner", json={"owner": b_id}, headers=api(app, users, "boss"))
    assert moved.status_code == 200, moved.text
    r = app.test_client().post("/api/v1/contact/", json={"name": "历史联系人", "customer": pk, "active": True}, headers=api(app, users, "boss"))
    assert r.status_code == 201, r.text

    boss = signed_in(app, users, "boss")
    show = boss.get(f"/customerview/show/{pk}").text
    panel = show[show.index("crm-audit"):]
    history = boss.get(f"/customerview/history/{pk}").text
    for text in (panel, history):
        assert "一般需求(有需求想法) → 迫切需求" in text, "choice labels, not codes"
        assert "审甲 → 审乙" in text, "people by name, not id"
        assert "修改" in text and "新增" in text
        assert ">update<" not in text and ">create<" not in text
        assert "备注:  → " not in text and "开户银行:  → " not in text, "nothing changed from empty to empty"
    contact_pk = r.json["id"]
    contact_history = boss.get(f"/contactview/history/{contact_pk}").text
    assert f"读得懂的历史客户 (#{pk})" in contact_history, "a link by the linked record's title"

    rows = sheet(boss.get(f"/customerview/history/{pk}/export/"))
    assert ["一般需求(有需求想法)", "迫切需求"] in [r[8:] for r in rows[1:] if r[7] == "需求迫切程度"]
    assert ["审甲", "审乙"] in [r[8:] for r in rows[1:] if r[7] == "负责业务员"]
