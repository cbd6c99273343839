"""Workflow steps as one dialog (app/record/steps.py, app/web/stepdialog.py): what a step asks for,
derived from its condition or set by ``workflows.asks``; one submit saving those values and taking
the step in one transaction, refused alike through the dialog and the REST API (validations,
locks, scope, field secrecy, version), nothing half-saved; why a step cannot be taken, in words."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.ops.demo import make_demo_data
from generator import WorkbookError, generate, load_spec
from tests.conftest import ADMIN_PASSWORD, api_token, csrf_token, login, person
from tests.probes import run_probe
from tests.step_parity import check_every_step, dialog_inputs, snapshot
from tests.workbooks import library_sheets, write_workbook

PASSWORD = "step-Pass-123"  # noqa: S105 - test-only
DISPATCH, ARRIVE, CLOSE = "status:registered:dispatched", "status:dispatched:in_progress", "status:in_progress:closed"


@pytest.fixture(scope="module")
def people(app: Any) -> dict[str, str]:
    return {"clerk": person(app, "step_clerk", ["客服专员"], PASSWORD), "tech": person(app, "step_tech", ["技术员"], PASSWORD),
            "tech2": person(app, "step_tech2", ["技术员"], PASSWORD), "sales": person(app, "step_sales", ["业务员"], PASSWORD)}


def uid(app: Any, login_name: str) -> int:
    from flask_appbuilder.security.sqla.models import User

    with app.app_context():
        return int(app.extensions["crm"].db.session.execute(sa.select(User.id).where(User.username == login_name)).scalar_one())


def signed_in(app: Any, who: str, password: str = PASSWORD) -> Any:
    client = app.test_client()
    login(client, who, password)
    return client


def new_call(app: Any, h: dict[str, str]) -> int:
    c = app.test_client()
    cust = c.post("/api/v1/customer/", json={"name": f"叫修客户{dt.datetime.now().timestamp()}", "urgency": "normal"}, headers=h)
    assert cust.status_code == 201, cust.text
    r = c.post("/api/v1/service_call/", headers=h, json={"customer": cust.json["id"], "call_type": "free", "product_model": "X1",
                                                         "reported_at": "2026-12-07 09:00:00", "fault_description": "不制冷"})
    assert r.status_code == 201, r.text
    return int(r.json["id"])


def post_step(client: Any, pk: int, action: str, values: dict[str, str], version: Any, comment: str = "") -> Any:
    page = client.get(f"/servicecallview/show/{pk}").text
    data = {"csrf_token": csrf_token(page), "action": action, "comment": comment, **{f"value-{k}": v for k, v in values.items()},
            **({"version": str(version)} if version is not None else {})}
    return client.post(f"/servicecallview/transition/{pk}", data=data, headers={"Accept": "application/json"})


def record(app: Any, pk: int) -> dict[str, Any]:
    return snapshot(app, "service_call", pk)[0]


# -- what a step asks ---------------------------------------------------------------------------
def test_dispatch_asks_for_technician_and_time_and_the_page_says_why_others_cannot(app: Any, people: dict[str, str]) -> None:
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    pk = new_call(app, admin)
    page = signed_in(app, "step_clerk").get(f"/servicecallview/show/{pk}").text
    asked = dialog_inputs(page, DISPATCH)
    assert sorted(asked) == ["dispatched_at", "technician"]
    assert uid(app, "step_tech") and str(uid(app, "step_tech")) in asked["technician"]  # whom it may be given to: the technicians
    assert str(uid(app, "step_sales")) not in asked["technician"]
    assert "需填写:技术员、派工时间" in page
    # the cancel needs a comment: a dialog asking only that, the comment marked required
    cancel = page.split('value="status:registered:cancelled"', 1)[1].split("</dialog>", 1)[0]
    assert 'name="comment"' in cancel and "required" in cancel and "value-" not in cancel
    # a technician may not dispatch: the page says so in words, beside the greyed button
    tech_page = signed_in(app, "step_tech").get(f"/servicecallview/show/{pk}")
    assert tech_page.status_code == 404  # not theirs yet (own scope): not even seen
    r = post_step(signed_in(app, "step_clerk"), pk, DISPATCH, {"technician": str(uid(app, "step_tech")),
                                                               "dispatched_at": "2026-12-07T10:00"}, 1)
    assert r.status_code == 200 and r.json["ok"], r.text
    tech_page = signed_in(app, "step_tech").get(f"/servicecallview/show/{pk}").text
    why = re.findall(r'<small class="crm-step-why text-muted"[^>]*>([^<]*)</small>', tech_page)
    assert any("需要角色" in w for w in why)  # 退回重新派工: 服务主任 only
    assert "需填写:到达时间" in tech_page  # 到达现场: its dialog asks the arrival


def test_a_condition_the_dialog_cannot_satisfy_is_said_in_words(app: Any, people: dict[str, str]) -> None:
    """The technician may not write 派工时间 (read-only for the role): with it empty, a step
    needing it says so on the page instead of offering a dialog that could never succeed."""
    crm = app.extensions["crm"]
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    pk = new_call(app, admin)
    tech = uid(app, "step_tech")
    extra = dataclasses.replace(next(t for t in crm.spec.workflows if t.entity == "service_call" and t.source == "registered"
                                     and t.target == "dispatched"), roles=("技术员",))
    spec = dataclasses.replace(crm.spec, workflows=tuple(extra if (t.entity, t.source, t.target) == (extra.entity, extra.source, extra.target)
                                                          else t for t in crm.spec.workflows))
    table = crm.generated.models.MODELS["service_call"].__table__
    with app.app_context():
        crm.db.session.execute(sa.update(table).where(table.c.id == pk).values(technician_id=tech))
        crm.db.session.commit()
    kept, crm.spec = crm.spec, spec
    try:
        page = signed_in(app, "step_tech").get(f"/servicecallview/show/{pk}").text
    finally:
        crm.spec = kept
    why = re.findall(r'<small class="crm-step-why text-muted"[^>]*>([^<]*)</small>', page)
    assert any("条件不满足" in w and "您的角色不能填写派工时间" in w for w in why), why
    assert DISPATCH not in re.findall(r'<input type="hidden" name="action" value="([^"]+)"', page)  # no dialog for it


def test_asks_column_names_exactly_the_fields_asked(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crm = app.extensions["crm"]
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    pk = new_call(app, admin)
    asks = ("voucher_no", "dispatched_at", "remarks")
    changed = tuple(dataclasses.replace(t, asks=asks) if (t.entity, t.source, t.target) == ("service_call", "registered", "dispatched")
                    else t for t in crm.spec.workflows)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, workflows=changed))
    client = signed_in(app, "admin", ADMIN_PASSWORD)
    page = client.get(f"/servicecallview/show/{pk}").text  # the technician the condition needs is not asked: said so
    assert "请先在编辑页填写技术员" in page and not dialog_inputs(page, DISPATCH)
    table = crm.generated.models.MODELS["service_call"].__table__
    with app.app_context():
        crm.db.session.execute(sa.update(table).where(table.c.id == pk).values(technician_id=uid(app, "admin")))
        crm.db.session.commit()
    page = client.get(f"/servicecallview/show/{pk}").text
    assert list(dialog_inputs(page, DISPATCH)) == list(asks)  # in the workbook's order, the condition's technician not added
    listed = app.test_client().get(f"/api/v1/service_call/{pk}/transitions", headers=admin).json["result"]["actions"]
    assert [a["name"] for a in next(x for x in listed if x["key"] == DISPATCH)["asks"]] == list(asks)
    # the technician is not asked: a value for it is refused, nothing saved
    before = snapshot(app, "service_call", pk)
    r = post_step(client, pk, DISPATCH, {"technician": str(uid(app, "admin")), "dispatched_at": "2026-12-07T10:00"}, 1)
    assert r.status_code == 422 and list(r.json["errors"]) == ["technician"]
    assert snapshot(app, "service_call", pk) == before


# -- one submit, one transaction ------------------------------------------------------------------
def test_dispatch_arrive_close_each_one_submit_with_history_and_audit(app: Any, people: dict[str, str]) -> None:
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    pk = new_call(app, admin)
    clerk, tech = signed_in(app, "step_clerk"), signed_in(app, "step_tech")
    r = post_step(clerk, pk, DISPATCH, {"technician": str(uid(app, "step_tech")), "dispatched_at": "2026-12-07T10:00"}, 1, "尽快上门")
    assert r.status_code == 200, r.text
    row = record(app, pk)
    assert (row["status"], row["technician_id"], row["version"]) == ("dispatched", uid(app, "step_tech"), 2)  # one save
    r = post_step(tech, pk, ARRIVE, {"arrived_at": "2026-12-07T11:30"}, 2)
    assert r.status_code == 200, r.text
    r = post_step(tech, pk, CLOSE, {"customer_signed": "1", "closed_at": "2026-12-07T15:00"}, 3, "已修复")
    assert r.status_code == 200, r.text
    row = record(app, pk)
    assert (row["status"], row["customer_signed"], row["version"]) == ("closed", True, 4)
    history = app.test_client().get(f"/api/v1/service_call/{pk}/transitions", headers=admin).json["result"]["history"]
    assert [(h["action"], h["comment"]) for h in history] == [("派工", "尽快上门"), ("到达现场", None), ("完工结案", "已修复")]
    audit = app.test_client().get(f"/servicecallview/history/{pk}")
    assert audit.status_code in (200, 302)
    from app.record import audit as trail

    with app.app_context():
        rows = trail.history(app.extensions["crm"].db.session, "service_call", pk)
    updates = [r["changes"] for r in rows if r["action"] == "update"]
    assert len(updates) == 3  # each step one audit row: its values and the state together
    assert {"technician_id", "dispatched_at", "status"} <= set(updates[0]) or {"technician", "dispatched_at", "status"} <= set(updates[0])


def test_refusals_are_the_same_through_the_dialog_and_the_api_and_save_nothing(app: Any, people: dict[str, str]) -> None:
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    pk = new_call(app, admin)
    clerk = signed_in(app, "step_clerk")
    h = api_token(app.test_client(), "step_clerk", PASSWORD)
    tech = str(uid(app, "step_tech"))

    def both(values: dict[str, Any], version: Any, comment: str = "", action: str = DISPATCH) -> tuple[Any, Any]:
        before = snapshot(app, "service_call", pk)
        page = post_step(clerk, pk, action, values, version, comment)
        api = app.test_client().post(f"/api/v1/service_call/{pk}/transition", headers=h,
                                     json={"action": action, "values": values, "version": version, "comment": comment})
        assert snapshot(app, "service_call", pk) == before  # nothing half-saved
        errors = api.json["message"] if isinstance(api.json["message"], dict) else {}
        assert page.status_code == api.status_code and sorted(page.json["errors"]) == sorted(errors), (page.json, api.json)
        return page, api

    page, api = both({"technician": tech, "dispatched_at": "2026-12-07T08:00"}, 1)  # a validation: before the call came in
    assert page.status_code == 422 and "派工时间不能早于叫修时间" in page.json["errors"]["dispatched_at"][0]
    page, api = both({"technician": tech, "dispatched_at": "2026-12-07T10:00"}, 0)  # read an older version
    assert page.status_code == 409 and "已被他人修改" in page.json["message"] and api.json["version"] == 1
    page, api = both({"technician": str(uid(app, "step_sales")), "dispatched_at": "2026-12-07T10:00"}, 1)  # not a technician
    assert page.status_code == 422 and list(page.json["errors"]) == ["technician"]
    page, api = both({"technician": tech, "dispatched_at": "明天"}, 1)
    assert page.status_code == 422 and list(page.json["errors"]) == ["dispatched_at"]
    page, api = both({"fee": "100", "dispatched_at": "2026-12-07T10:00"}, 1)  # not this step's to write
    assert page.status_code == 422 and list(page.json["errors"]) == ["fee"]
    page, api = both({"dispatched_at": "2026-12-07T10:00"}, 1)  # the technician still missing: the condition says so
    assert page.status_code == 422 and "条件不满足" in page.json["message"]
    page, api = both({}, 1, "", "status:registered:cancelled")
    assert page.status_code == 422 and "意见" in page.json["message"]
    page, api = both({"dispatched_at": "2026-12-07T10:00"}, None)  # values without the version read
    assert page.status_code == 422 and list(page.json["errors"]) == ["version"]


def test_scope_and_roles_refuse_alike(app: Any, people: dict[str, str]) -> None:
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    pk = new_call(app, admin)
    clerk = signed_in(app, "step_clerk")
    assert post_step(clerk, pk, DISPATCH, {"technician": str(uid(app, "step_tech")), "dispatched_at": "2026-12-07T10:00"}, 1).status_code == 200
    own = new_call(app, admin)  # tech2's own call: a page of theirs to post from
    assert post_step(clerk, own, DISPATCH, {"technician": str(uid(app, "step_tech2")), "dispatched_at": "2026-12-07T10:00"}, 1).status_code == 200
    other = signed_in(app, "step_tech2")  # own scope: another technician's call is not there for them
    h2 = api_token(app.test_client(), "step_tech2", PASSWORD)
    before = snapshot(app, "service_call", pk)
    r = other.post(f"/servicecallview/transition/{pk}", data={"csrf_token": csrf_token(other.get(f"/servicecallview/show/{own}").text),
                                                               "action": ARRIVE, "version": "2", "value-arrived_at": "2026-12-07T11:00"},
                   headers={"Accept": "application/json"})
    api = app.test_client().post(f"/api/v1/service_call/{pk}/transition", headers=h2,
                                 json={"action": ARRIVE, "values": {"arrived_at": "2026-12-07T11:00"}, "version": 2})
    assert (r.status_code, api.status_code) == (404, 404)
    # the clerk may not take the technician's step, nor write the arrival through it
    page = post_step(clerk, pk, ARRIVE, {"arrived_at": "2026-12-07T11:00"}, 2)
    api = app.test_client().post(f"/api/v1/service_call/{pk}/transition", headers=api_token(app.test_client(), "step_clerk", PASSWORD),
                                 json={"action": ARRIVE, "values": {"arrived_at": "2026-12-07T11:00"}, "version": 2})
    assert (page.status_code, api.status_code) == (403, 403) and "需要角色" in page.json["message"]
    assert snapshot(app, "service_call", pk) == before


def test_a_lock_refuses_a_value_the_step_asks_for(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped lock keeps a submitted visit request's time as submitted: a step asked (by
    ``asks``) to change it is refused by that validation, on both paths, nothing saved."""
    crm = app.extensions["crm"]
    sales = person(app, "step_sales", ["业务员"], PASSWORD)
    h = api_token(app.test_client(), sales, PASSWORD)
    c = app.test_client()
    cust = c.post("/api/v1/customer/", json={"name": f"锁定客户{dt.datetime.now().timestamp()}", "urgency": "normal"}, headers=h).json["id"]
    pk = c.post("/api/v1/visit_request/", headers=h, json={"subject": "锁定", "customer": cust, "visit_at": "2026-11-25",
                                                            "purpose": "first_visit", "goal": "介绍"}).json["id"]
    assert c.post(f"/api/v1/visit_request/{pk}/transition", json={"action": "提交审批"}, headers=h).status_code == 200
    changed = tuple(dataclasses.replace(t, asks=("visit_at",)) if (t.entity, t.source, t.target) == ("visit_request", "submitted", "approved")
                    else t for t in crm.spec.workflows)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, workflows=changed))
    admin = signed_in(app, "admin", ADMIN_PASSWORD)
    before = snapshot(app, "visit_request", pk)
    page = admin.get(f"/visitrequestview/show/{pk}").text
    r = admin.post(f"/visitrequestview/transition/{pk}", headers={"Accept": "application/json"},
                   data={"csrf_token": csrf_token(page), "action": "status:submitted:approved", "version": str(before[0]["version"]),
                         "value-visit_at": "2026-11-30T09:00"})
    api = app.test_client().post(f"/api/v1/visit_request/{pk}/transition", headers=api_token(app.test_client(), "admin", ADMIN_PASSWORD),
                                 json={"action": "批准", "values": {"visit_at": "2026-11-30T09:00"}, "version": before[0]["version"]})
    assert (r.status_code, api.status_code) == (422, 422)
    assert "不能再改" in r.json["errors"]["visit_at"][0] and list(api.json["message"]) == ["visit_at"]
    assert snapshot(app, "visit_request", pk) == before


def test_the_comment_goes_with_whichever_button(app: Any) -> None:
    """批准 with 同意 typed in the page's 意见 box: the history's 意见 says 同意."""
    sales = person(app, "step_sales", ["业务员"], PASSWORD)
    h = api_token(app.test_client(), sales, PASSWORD)
    c = app.test_client()
    cust = c.post("/api/v1/customer/", json={"name": f"审批客户{dt.datetime.now().timestamp()}", "urgency": "normal"}, headers=h).json["id"]
    pk = c.post("/api/v1/visit_request/", headers=h, json={"subject": "审批", "customer": cust, "visit_at": "2026-11-25",
                                                            "purpose": "first_visit", "goal": "介绍"}).json["id"]
    assert c.post(f"/api/v1/visit_request/{pk}/transition", json={"action": "提交审批"}, headers=h).status_code == 200
    admin = signed_in(app, "admin", ADMIN_PASSWORD)
    page = admin.get(f"/visitrequestview/show/{pk}").text
    form = page.split('class="crm-step-form"', 1)[1].split("</form>", 1)[0]
    assert 'name="comment"' in form and 'value="status:submitted:approved"' in form  # one form: the box and the one-click 批准
    r = admin.post(f"/visitrequestview/transition/{pk}", data={"csrf_token": csrf_token(page), "action": "status:submitted:approved",
                                                                "comment": "同意"})
    assert r.status_code == 302
    history = admin.get(f"/visitrequestview/show/{pk}").text.split("crm-history", 1)[1].split("</table>", 1)[0]
    assert "同意" in history


# -- every step of the shipped workbook and of another domain's -----------------------------------
def _check_report(report: dict[str, Any], at_least_taken: int) -> None:
    taken = 0
    for name, entry in report.items():
        assert entry["asks"] == entry["dialog_asks"] or sorted(entry["asks"]) == entry["dialog_asks"], name
        assert entry["refusals"], name
        for what, (page, api, unchanged) in entry["refusals"].items():
            assert page == api, (name, what, page, api)  # the same status, the same fields
            assert page[0] in (403, 409, 422), (name, what, page)
            assert unchanged, (name, what, "saved something")
        assert "stale version" in entry["refusals"] and entry["refusals"]["stale version"][0][0] == 409, name
        if entry["taken"] is not None:
            assert "half_saved" not in entry["taken"], (name, entry["taken"])
            t = entry["taken"]
            assert t["version"] == 1 and t["moves"] == 1 and t["audits"] == 1 and t["audit_has_state"], (name, t)
            assert t["comment"] == "步骤意见", (name, t)
            taken += 1
    assert taken >= at_least_taken, (taken, [name for name, entry in report.items() if entry['taken'] is None])


def test_every_step_of_the_shipped_workbook(app: Any) -> None:
    make_demo_data(app, 8, seed=23, related=40)
    with app.app_context():  # demo candidates drawn from the customers' names: the code step's new customer would be refused
        s = app.extensions["crm"].db.session
        s.execute(sa.text("UPDATE customer_development SET candidate_name = candidate_name || '(候选' || id || ')'"))
        s.commit()
        s.remove()
    client = signed_in(app, "admin", ADMIN_PASSWORD)
    routes = {n: "/" + v.__name__.lower() for n, v, *_rest in app.extensions["crm"].generated.views.REGISTRY}
    report = check_every_step(app, client, api_token(app.test_client(), "admin", ADMIN_PASSWORD), routes)
    assert len(report) == len(app.extensions["crm"].spec.workflows)
    _check_report(report, at_least_taken=len(report))  # every step, with values that satisfy it
    for what in ("unasked", "bad", "validation"):  # each kind of refusal was met somewhere
        assert any(w.startswith(what) for e in report.values() for w in e["refusals"]), what


def with_a_workflow(sheets: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The workbook as given, or, when it has no workflow, one added to its first entity that has
    a yes/no field and a date field: states open → done (condition: both filled), open → dropped
    (comment required), done → open (asks the date again), with a validation over the two."""
    sheets = copy.deepcopy(sheets)
    if sheets.get("workflows"):
        return sheets
    fields = sheets["fields"]
    entity = next(e["name"] for e in sheets["entities"]
                  if {"boolean", "date"} <= {f["type"] for f in fields if f["entity"] == e["name"]})
    flag = next(f["name"] for f in fields if f["entity"] == entity and f["type"] == "boolean")
    day = next(f["name"] for f in fields if f["entity"] == entity and f["type"] == "date")
    sheets["choices"] = [*sheets.get("choices", []), *({"list": "step_state", "value": v, "label": label}
                                                      for v, label in (("open", "进行中"), ("done", "已完成"), ("dropped", "已放弃")))]
    fields.append({"entity": entity, "name": "step_state", "label": "状态", "type": "choice", "choices": "step_state",
                   "default": "open", "required": "yes", "list": "yes"})
    sheets["workflows"] = [
        {"entity": entity, "state_field": "step_state", "from": "open", "to": "done", "action": "完成", "condition": f"{flag} and {day}"},
        {"entity": entity, "state_field": "step_state", "from": "open", "to": "dropped", "action": "放弃", "require_comment": "yes"},
        {"entity": entity, "state_field": "step_state", "from": "done", "to": "open", "action": "重开", "asks": day},
    ]
    sheets["validations"] = [*sheets.get("validations", []), {"entity": entity, "condition": f"not {flag} or {day}",
                                                              "message": "勾选时须填写日期"}]
    return sheets


@pytest.mark.slow
def test_every_step_of_a_second_domain_workbook(tmp_path: Path) -> None:
    workbook = write_workbook(tmp_path / "library.xlsx", with_a_workflow(library_sheets()))
    out = tmp_path / "library_app"
    generate(workbook, out)
    env = {"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(out), "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'library.sqlite'}"}
    report = run_probe("step_parity", env, timeout=300)
    assert len(report) == 3
    _check_report(report, at_least_taken=3)
    assert any(w.startswith("validation") for e in report.values() for w in e["refusals"])


# -- the asks column in the workbook ---------------------------------------------------------------
def test_asks_column_is_read_and_checked_with_located_errors(tmp_path: Path) -> None:
    sheets = with_a_workflow(library_sheets())
    sheets["workflows"][0]["询问字段"] = "returned, due_on"  # the Chinese header
    del sheets["workflows"][2]["asks"]
    sheets["workflows"][2]["询问字段"] = "due_onn, step_state"
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "asks.xlsx", sheets))
    said = [p.format() for p in err.value.problems]
    unknown = [p for p in err.value.problems if "due_onn" in p.format()]
    assert len(unknown) == 1 and re.fullmatch(r"workflows![A-Z]+4", unknown[0].ref), said  # the third step's row
    assert "'due_on'" in unknown[0].format().split("—", 1)[1], said  # did you mean
    assert any("step_state" in s and "状态字段" in s for s in said), said
    sheets["workflows"][2]["询问字段"] = "due_on"
    spec, _warnings = load_spec(write_workbook(tmp_path / "asks-ok.xlsx", sheets))
    assert [t.asks for t in spec.workflows] == [("returned", "due_on"), (), ("due_on",)]


def test_read_only_and_hidden_fields_are_never_asked_nor_written(app: Any, people: dict[str, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The technician sees 派工时间 but may not change it (readonly_fields), and here may not see
    the fee (hidden_fields): a step whose ``asks`` names them asks the technician neither, and a
    value for either is refused through the dialog and the API alike, nothing saved."""
    crm = app.extensions["crm"]
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    pk = new_call(app, admin)
    assert post_step(signed_in(app, "step_clerk"), pk, DISPATCH, {"technician": str(uid(app, "step_tech")),
                                                                  "dispatched_at": "2026-12-07T10:00"}, 1).status_code == 200
    workflows = tuple(dataclasses.replace(t, asks=("arrived_at", "dispatched_at", "fee")) if (t.entity, t.source, t.target)
                      == ("service_call", "dispatched", "in_progress") else t for t in crm.spec.workflows)
    permissions = tuple(dataclasses.replace(p, hidden_fields=(*p.hidden_fields, "fee")) if (p.role, p.entity) == ("技术员", "service_call")
                        else p for p in crm.spec.permissions)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, workflows=workflows, permissions=permissions))
    tech = signed_in(app, "step_tech")
    page = tech.get(f"/servicecallview/show/{pk}").text
    assert list(dialog_inputs(page, ARRIVE)) == ["arrived_at"]
    h = api_token(app.test_client(), "step_tech", PASSWORD)
    before = snapshot(app, "service_call", pk)
    for values, said in (({"arrived_at": "2026-12-07T11:00", "dispatched_at": "2026-12-07T10:30"}, "此操作不能修改此字段"),
                         ({"arrived_at": "2026-12-07T11:00", "fee": "500"}, "无权修改此字段")):
        r = post_step(tech, pk, ARRIVE, values, 2)
        api = app.test_client().post(f"/api/v1/service_call/{pk}/transition", headers=h,
                                     json={"action": ARRIVE, "values": values, "version": 2})
        shut = next(k for k in values if k != "arrived_at")
        assert (r.status_code, api.status_code) == (422, 422) and list(r.json["errors"]) == [shut] == list(api.json["message"])
        assert said in r.json["errors"][shut][0]
        assert snapshot(app, "service_call", pk) == before


def test_a_link_a_step_asks_for_is_checked_like_the_form(app: Any, people: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A link asked by ``asks`` (the contract of a call): offered as a dropdown of the records in
    the person's scope (a lookup as they type over a big table); another customer's contract is
    refused by the workbook's tie between them, a record that is not there by the field itself."""
    crm = app.extensions["crm"]
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    pk = new_call(app, admin)
    c = app.test_client()
    other = c.post("/api/v1/customer/", json={"name": f"别家客户{dt.datetime.now().timestamp()}", "urgency": "normal"}, headers=admin).json["id"]
    contract = c.post("/api/v1/maintenance_contract/", headers=admin, json={
        "name": "别家的保养合同", "customer": other, "start_date": "2026-01-01", "end_date": "2026-12-31"})
    assert contract.status_code == 201, contract.text
    workflows = tuple(dataclasses.replace(t, asks=("contract", "technician", "dispatched_at")) if (t.entity, t.source, t.target)
                      == ("service_call", "registered", "dispatched") else t for t in crm.spec.workflows)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, workflows=workflows))
    client = signed_in(app, "admin", ADMIN_PASSWORD)
    page = client.get(f"/servicecallview/show/{pk}").text
    assert str(contract.json["id"]) in dialog_inputs(page, DISPATCH)["contract"]
    monkeypatch.setitem(app.config, "CRM_LINK_LOOKUP_THRESHOLD", 0)
    page = client.get(f"/servicecallview/show/{pk}").text
    assert 'data-crm-step-lookup="/servicecallview/lookup/contract"' in page
    tech = str(uid(app, "step_tech"))
    before = snapshot(app, "service_call", pk)
    for value, said in ((str(contract.json["id"]), "维保合同须是该客户的合同"), ("99999999", "所选记录不存在")):
        r = post_step(client, pk, DISPATCH, {"contract": value, "technician": tech, "dispatched_at": "2026-12-07T10:00"}, 1)
        assert r.status_code == 422 and said in r.json["errors"]["contract"][0], r.json
        assert snapshot(app, "service_call", pk) == before
