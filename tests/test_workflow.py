"""Workflow actions tell people and leave an authoritative trace: a transition's ``notify`` (a role
or ``owner``) gets an in-app message linking to the record (and a mail through the outbox when mail
is set up), written in the transaction of the state change; the history names who acted; users
read the states' labels, never their codes."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa

from app.access.accounts import add_user
from app.record.tables import Notification, OutboxMessage
from tests.conftest import api_token, csrf_token, login

PASSWORD = "flow-Pass-123"  # noqa: S105 - test-only
NOTES, OUTBOX = Notification.__table__, OutboxMessage.__table__
SCRIPT = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def staff(app: Any) -> dict[str, int]:
    """A salesperson and three sales managers (the approvers of visit requests), one of another department."""
    return {"sales": add_user(app, "flow_sales", ["业务员"], PASSWORD, first_name="小王", last_name="业务",
                              departments=["销售一部"]),
            "manager": add_user(app, "flow_manager", ["销售经理"], PASSWORD, first_name="经理", last_name="李",
                                departments=["销售一部"]),
            "manager2": add_user(app, "flow_manager2", ["销售经理"], PASSWORD, departments=["销售二部"]),
            "manager3": add_user(app, "flow_manager3", ["销售经理"], PASSWORD, departments=["销售一部"])}


def token(app: Any, who: str) -> dict[str, str]:
    return api_token(app.test_client(), f"flow_{who}", PASSWORD)


def visit_request(app: Any, h: dict[str, str], subject: str) -> int:
    client = app.test_client()
    r = client.post("/api/v1/customer/", json={"name": f"流程客户{dt.datetime.now().timestamp()}", "urgency": "normal"}, headers=h)
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/visit_request/", json={"subject": subject, "customer": r.json["id"], "visit_at": "2026-11-25",
                                                     "purpose": "first_visit", "goal": "介绍公司产品"}, headers=h)
    assert r.status_code == 201, r.text
    return int(r.json["id"])


def act(app: Any, h: dict[str, str], pk: int, action: str, comment: str = "") -> Any:
    return app.test_client().post(f"/api/v1/visit_request/{pk}/transition", json={"action": action, "comment": comment}, headers=h)


def rows(app: Any, query: Any) -> list[dict[str, Any]]:
    with app.app_context():
        return [dict(r) for r in app.extensions["crm"].db.session.execute(query).mappings()]


def notes_of(app: Any, user_id: int) -> list[dict[str, Any]]:
    return rows(app, sa.select(NOTES).where(NOTES.c.user_id == user_id).order_by(NOTES.c.id))


def test_a_transition_tells_its_notify_role_and_the_owner_in_their_inbox(app: Any, staff: dict[str, int]) -> None:
    sales, manager = token(app, "sales"), token(app, "manager")
    pk = visit_request(app, sales, "拜访<b>采购部</b>")
    before = {k: len(notes_of(app, uid)) for k, uid in staff.items()}
    assert act(app, sales, pk, "提交审批").status_code == 200  # notify: 销售经理 — each whose scope reaches it
    assert len(notes_of(app, staff["manager2"])) == before["manager2"]  # another department's
    for who in ("manager", "manager3"):
        new = notes_of(app, staff[who])[before[who]:]
        assert len(new) == 1
        assert "拜访<b>采购部</b>" in new[0]["title"] and "提交审批" in new[0]["title"]
        assert "业务小王" in new[0]["body"]  # who did it
        assert new[0]["link"] == f"/visitrequestview/show/{pk}"
    assert len(notes_of(app, staff["sales"])) == before["sales"]  # the one who acted is not told
    # taken again it is refused (the state moved on): nobody is told twice
    assert act(app, sales, pk, "status:draft:submitted").status_code == 409
    assert len(notes_of(app, staff["manager"])) == before["manager"] + 1
    # 驳回 notifies the owner, with the comment
    assert act(app, manager, pk, "驳回", f"预算不足 {SCRIPT}").status_code == 200
    told = notes_of(app, staff["sales"])[before["sales"]:]
    assert len(told) == 1 and "驳回" in told[0]["title"] and SCRIPT in told[0]["body"] and "李经理" in told[0]["body"]
    # the inbox shows it escaped, with a link to the record
    client = app.test_client()
    login(client, "flow_sales", PASSWORD)
    page = client.get("/inbox/").text
    assert f'href="/visitrequestview/show/{pk}"' in page
    assert SCRIPT not in page and "&lt;script&gt;" in page
    assert "<b>采购部" not in page


def test_only_members_whose_scope_reaches_the_record_are_told_and_read_no_field_values(app: Any, staff: dict[str, int]) -> None:
    """Another department's manager is not told (the link would answer 404); the message carries
    the record's title, the action, who and the comment — nothing else."""
    sales = token(app, "sales")
    pk = visit_request(app, sales, "保密拜访")
    other, mine = len(notes_of(app, staff["manager2"])), len(notes_of(app, staff["manager"]))
    assert act(app, sales, pk, "提交审批").status_code == 200
    assert len(notes_of(app, staff["manager2"])) == other
    note = notes_of(app, staff["manager"])[mine]
    assert "保密拜访" in note["title"]
    assert "介绍公司产品" not in note["title"] + (note["body"] or "")  # the goal field's value
    assert "2026-11-25" not in note["title"] + (note["body"] or "")


def test_mail_goes_through_the_outbox_once_per_recipient(app: Any, staff: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_SMTP_HOST", "127.0.0.1")
    sales = token(app, "sales")
    pk = visit_request(app, sales, "邮件拜访")
    assert act(app, sales, pk, "提交审批").status_code == 200
    mails = rows(app, sa.select(OUTBOX).where(OUTBOX.c.entity == "visit_request", OUTBOX.c.record_id == pk))
    to = {m["recipient_user_id"]: m for m in mails}
    assert len(to) == len(mails) and {staff["manager"], staff["manager3"]} <= set(to) and staff["manager2"] not in to
    mail = to[staff["manager"]]
    assert (mail["channel"], mail["status"], mail["recipient_address"]) == ("email", "pending", "flow_manager@localhost")
    assert "邮件拜访" in mail["subject"] and mail["link"].endswith(f"/visitrequestview/show/{pk}")
    assert mail["link"] in mail["body"]


def test_a_failed_save_tells_nobody(app: Any, staff: dict[str, int]) -> None:
    from app.record import workflow

    sales = token(app, "sales")
    pk = visit_request(app, sales, "失败的提交")
    n = len(notes_of(app, staff["manager"]))
    with app.test_request_context():
        crm = app.extensions["crm"]
        session = crm.db.session
        from flask_appbuilder.security.sqla.models import User

        user = session.get(User, staff["sales"])
        obj = session.get(crm.generated.models.MODELS["visit_request"], pk)
        entity = crm.spec.entity("visit_request")

        def broken_commit() -> None:
            raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

        original = session.commit
        session.commit = broken_commit  # type: ignore[method-assign]
        try:
            with pytest.raises(sa.exc.OperationalError):
                workflow.perform(session, crm.spec, entity, obj, "status:draft:submitted", user, crm.admin_role)
        finally:
            session.commit = original  # type: ignore[method-assign]
    assert len(notes_of(app, staff["manager"])) == n
    assert rows(app, sa.select(OUTBOX.c.id).where(OUTBOX.c.entity == "visit_request", OUTBOX.c.record_id == pk)) == []
    assert app.test_client().get(f"/api/v1/visit_request/{pk}", headers=sales).json["result"]["status"] == "draft"


def test_the_history_names_who_acted_and_shows_state_labels(app: Any, staff: dict[str, int]) -> None:
    sales, manager = token(app, "sales"), token(app, "manager")
    pk = visit_request(app, sales, "历史拜访")
    assert act(app, sales, pk, "提交审批").status_code == 200
    client = app.test_client()
    login(client, "flow_manager", PASSWORD)
    page = client.get(f"/visitrequestview/show/{pk}")
    r = client.post(f"/visitrequestview/transition/{pk}", data={"csrf_token": csrf_token(page.text), "action": "status:submitted:rejected",
                                                               "comment": SCRIPT})
    assert r.status_code == 302
    shown = client.get(r.headers["Location"]).text
    assert "驳回:待审批 → 已驳回" in shown  # the flash message, in labels
    assert "submitted → rejected" not in shown
    history = shown.split("crm-history", 1)[1].split("</table>", 1)[0]
    assert "审批人/操作人" in history
    assert "业务小王" in history and "李经理" in history
    assert "草稿 → 待审批" in history and "待审批 → 已驳回" in history and "draft" not in history
    assert SCRIPT not in shown and "&lt;script&gt;" in history
    # the change log of the record page reads the same labels
    assert "状态: 待审批 → 已驳回" in shown.split("crm-audit", 1)[1]
    # the API keeps the codes and adds who and the labels
    info = app.test_client().get(f"/api/v1/visit_request/{pk}/transitions", headers=manager).json["result"]
    last = info["history"][-1]
    assert (last["from_state"], last["to_state"], last["from_label"], last["to_label"]) == ("submitted", "rejected", "待审批", "已驳回")
    assert last["user"] == "李经理" and last["user_id"] == staff["manager"]


def test_the_approval_records_its_approver_and_nobody_can_type_one(app: Any, staff: dict[str, int]) -> None:
    """批准人 was a free field: a salesperson could name their manager. The workbook now has the
    批准 action fill it (workflows ``stamp``) and the field is read-only."""
    sales, manager = token(app, "sales"), token(app, "manager")
    pk = visit_request(app, sales, "盖章测试")
    client = app.test_client()
    typed = client.post("/api/v1/visit_request/", json={"subject": "自批", "customer": client.get(
        f"/api/v1/visit_request/{pk}", headers=sales).json["result"]["customer"]["id"], "visit_at": "2026-11-25",
        "purpose": "first_visit", "goal": "x", "approved_by": staff["manager"]}, headers=sales)
    assert typed.status_code == 422 and "approved_by" in typed.text, typed.text  # not a field a client may send
    assert act(app, sales, pk, "提交审批").status_code == 200
    approved_by = "SELECT approved_by_id FROM visit_request WHERE id = :i"
    with app.app_context():
        assert app.extensions["crm"].db.session.execute(sa.text(approved_by), {"i": pk}).scalar() is None
    assert act(app, manager, pk, "批准").status_code == 200
    with app.app_context():
        assert app.extensions["crm"].db.session.execute(sa.text(approved_by), {"i": pk}).scalar() == staff["manager"]


def test_notify_may_name_several_recipients_each_told_once(app: Any, staff: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    crm = app.extensions["crm"]
    flows = tuple(dataclasses.replace(t, notify="owner;销售经理、owner") if t.entity == "visit_request" and t.action == "驳回" else t
                  for t in crm.spec.workflows)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, workflows=flows))
    sales, manager = token(app, "sales"), token(app, "manager")
    pk = visit_request(app, sales, "多人通知")
    assert act(app, sales, pk, "提交审批").status_code == 200
    before = {k: len(notes_of(app, uid)) for k, uid in staff.items()}
    assert act(app, manager, pk, "驳回", "再补充").status_code == 200
    assert len(notes_of(app, staff["sales"])) == before["sales"] + 1  # the owner, named twice, told once
    assert len(notes_of(app, staff["manager3"])) == before["manager3"] + 1  # the other manager of the department
    assert len(notes_of(app, staff["manager"])) == before["manager"]  # not the one who acted


def test_screen_actions_on_a_record_outside_the_users_scope_are_refused(app: Any, staff: dict[str, int]) -> None:
    """The record page's buttons post to routes of their own: each takes the record from the user's
    scope, as the page did, and a new owner must be one of the users offered."""
    sales, manager = token(app, "sales"), token(app, "manager")
    pk = visit_request(app, sales, "别组的拜访")
    assert act(app, sales, pk, "提交审批").status_code == 200
    other = app.test_client()
    login(other, "flow_manager2", PASSWORD)  # a manager of another department: team scope
    assert other.get(f"/visitrequestview/show/{pk}").status_code == 404
    token_page = other.get("/visitrequestview/list/").text
    r = other.post(f"/visitrequestview/transition/{pk}", data={"csrf_token": csrf_token(token_page), "action": "status:submitted:rejected",
                                                              "comment": "不是我组的"})
    assert r.status_code == 404
    r = other.post(f"/visitrequestview/reassign/{pk}", data={"csrf_token": csrf_token(token_page), "owner": str(staff["manager2"])})
    assert r.status_code == 404
    record = app.test_client().get(f"/api/v1/visit_request/{pk}", headers=sales).json["result"]
    assert record["status"] == "submitted" and record["owner"]["id"] == staff["sales"]

    mine = app.test_client()  # the manager of the record's department, giving it to nobody real
    login(mine, "flow_manager", PASSWORD)
    page = mine.get(f"/visitrequestview/show/{pk}").text
    assert mine.post(f"/visitrequestview/reassign/{pk}", data={"csrf_token": csrf_token(page), "owner": "99999"}).status_code == 302
    assert "负责人须是可选的在职用户之一" in mine.get(f"/visitrequestview/show/{pk}").text
    r = app.test_client().put(f"/api/v1/visit_request/{pk}/owner", json={"owner": 99999}, headers=manager)
    assert r.status_code == 422 and "owner" in r.json["message"]
    assert app.test_client().get(f"/api/v1/visit_request/{pk}", headers=sales).json["result"]["owner"]["id"] == staff["sales"]


def test_the_api_info_offers_for_a_link_only_the_records_the_user_may_see(app: Any, staff: dict[str, int]) -> None:
    add_user(app, "flow_sales_other", ["业务员"], PASSWORD, departments=["销售二部"])
    theirs = visit_request(app, token(app, "sales_other"), "别人的客户")
    their_customer = app.test_client().get(f"/api/v1/visit_request/{theirs}", headers=token(app, "sales_other")).json["result"]["customer"]["id"]
    sales = token(app, "sales")
    visit_request(app, sales, "自己的客户")
    client = app.test_client()
    info = client.get("/api/v1/visit_request/_info?q=(keys:!(add_columns,edit_columns),add_columns:(customer:(page_size:100)),"
                      "edit_columns:(customer:(page_size:100)))", headers=sales).json
    mine = client.get("/api/v1/customer/?q=(page_size:100,columns:!(id))", headers=sales).json
    for key in ("add_columns", "edit_columns"):
        offered = next(c for c in info[key] if c["name"] == "customer")
        assert offered["count"] == mine["count"] and offered["count"] >= 1
        assert {v["id"] for v in offered["values"]} == set(mine["ids"])
        assert their_customer not in {v["id"] for v in offered["values"]}
        assert not any("Project-Id-Version" in c["description"] for c in info[key])  # no help: no description


def test_an_empty_link_or_person_field_shows_blank_not_none(app: Any, staff: dict[str, int]) -> None:
    pk = visit_request(app, token(app, "sales"), "未批准的拜访")  # 批准人 (a person) and 联系人 (a link) empty
    client = app.test_client()
    login(client, "flow_sales", PASSWORD)
    shown = client.get(f"/visitrequestview/show/{pk}").text
    assert "批准人" in shown and "联系人" in shown
    for page in (shown, client.get("/visitrequestview/list/").text):
        assert not re.search(r">\s*None\s*<", page)


def test_a_condition_reads_in_the_words_of_the_record() -> None:
    """A greyed-out action said "条件不满足 (condition not met): request_type != 'freeze' or …" — the
    workbook's expression, field codes and choice codes."""
    from app.web.condtext import condition_text
    from generator import load_spec
    from tests.conftest import SHIPPED

    spec, _ = load_spec(SHIPPED)  # the words need the spec only, not an app (outside a request: Chinese)
    said = condition_text(spec, spec.entity("master_data_request"), "processed_on and (request_type != 'create' or sap_customer_no)")
    assert said == "已填写系统处理日期 且 (申请类型 ≠ 「新增开户」 或 已填写SAP客户编号)"
    assert condition_text(spec, spec.entity("complaint"), "not customer_informed") == "已告知客户为否"
    assert condition_text(spec, spec.entity("complaint"), "what is this") == "工作簿规定的条件"  # unreadable: never the expression


def test_english_mode_names_menu_groups_and_actions_in_english(app: Any, staff: dict[str, int]) -> None:
    """The workbook's menu_en and action_en: a user who chose English read 客户管理 and 提交审批."""
    sales = token(app, "sales")
    pk = visit_request(app, sales, "英文界面拜访")
    assert act(app, sales, pk, "Submit for approval").status_code == 200  # the API takes either name
    client = app.test_client()
    login(client, "flow_manager", PASSWORD)
    client.get("/lang/en")
    page = client.get(f"/visitrequestview/show/{pk}").text
    assert "Customers" in page.split('class="nav navbar-nav"', 1)[1].split("</ul>", 1)[0] and "客户管理" not in page
    # a step taken in one click is a submit button; one with something to ask opens its dialog ("Reject…")
    opener = r'<button type="(?:submit|button)" (?:name="action"|class="btn btn-sm btn-primary crm-step-open")[^>]*>([^<]*)</button>'
    buttons = [b.rstrip("…") for b in re.findall(opener, page.split("crm-steps", 1)[1])]
    assert {"Approve", "Reject"} <= set(buttons) and "批准" not in buttons
    history = page.split("crm-history", 1)[1].split("</table>", 1)[0]
    assert "Submit for approval" in history and "提交审批" not in history
    r = client.post(f"/visitrequestview/transition/{pk}", data={"csrf_token": csrf_token(page), "action": "status:submitted:approved"})
    assert "Approve:" in client.get(r.headers["Location"]).text  # the flash message
    client.get("/lang/zh")
    page = client.get(f"/visitrequestview/show/{pk}").text
    history = page.split("crm-history", 1)[1].split("</table>", 1)[0]
    assert "提交审批" in history and "批准" in history and "客户管理" in page
