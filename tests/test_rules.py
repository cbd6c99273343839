"""Business rules of the shipped workbook on real records: grading (on save and set-based, with
reasons and history), numbering, validations, workflows with roles, ownership."""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask_appbuilder import Model

from app.runtime.accounts import add_user
from app.runtime.demo import make_demo_data
from app.runtime.grading import grade_lookup, graded_fields, regrade
from generator.expr import record_lookup
from tests.conftest import api_token, csrf_token, login

PASSWORD = "rules-Pass-1"  # noqa: S105 - test-only
ROLES = {"sales": "业务员", "sales2": "业务员", "manager": "销售经理", "service": "客服专员", "quality": "质量主管",
         "gm": "总经理", "brand": "品牌经理", "channel": "渠道总经理"}


@pytest.fixture(scope="module")
def people(app: Any) -> dict[str, str]:
    names = {}
    for key, role in ROLES.items():
        names[key] = f"rules_{key}"
        add_user(app, names[key], [role], PASSWORD, departments=["销售一部"])
    return names


def headers(app: Any, people: dict[str, str], who: str) -> dict[str, str]:
    return api_token(app.test_client(), people[who], PASSWORD)


def create(app: Any, h: dict[str, str], entity: str, **values: Any) -> dict[str, Any]:
    client = app.test_client()
    r = client.post(f"/api/v1/{entity}/", json=values, headers=h)
    assert r.status_code == 201, r.text
    return client.get(f"/api/v1/{entity}/{r.json['id']}", headers=h).json["result"] | {"id": r.json["id"]}


def put(app: Any, h: dict[str, str], entity: str, pk: int, **values: Any) -> Any:
    """An edit as a client makes it: read the record (and its version), then save."""
    client = app.test_client()
    version = client.get(f"/api/v1/{entity}/{pk}", headers=h).json["result"]["version"]
    return client.put(f"/api/v1/{entity}/{pk}", json={**values, "version": version}, headers=h)


def customer(app: Any, h: dict[str, str], **values: Any) -> dict[str, Any]:
    return create(app, h, "customer", **{"name": f"测试客户{dt.datetime.now().timestamp()}", "urgency": "normal", **values})


# -- grading ------------------------------------------------------------------------------------

def test_grade_is_computed_on_save_with_its_reason_and_history(app: Any, people: dict[str, str]) -> None:
    h = headers(app, people, "sales")
    c = customer(app, h, annual_demand=800000, urgency="urgent", annual_amount=1200000)
    assert c["grade"] == "A" and c["value_tier"] == "high"
    assert "annual_demand=800000" in c["grade_reason"] and "[grading!" in c["grade_reason"]
    client = app.test_client()
    r = put(app, h, "customer", c["id"], urgency="potential")
    assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/customer/{c['id']}", headers=h).json["result"]["grade"] == "C"
    history = _history(app, c["id"])
    assert [(h["old_value"], h["new_value"]) for h in history if h["field"] == "grade"] == [(None, "A"), ("A", "C")]


def _history(app: Any, record_id: int) -> list[dict[str, Any]]:
    from app.runtime.tables import GradeChange

    t = GradeChange.__table__
    with app.app_context():
        conn = app.extensions["crm"].db.session.connection()
        rows = conn.execute(sa.select(t).where(t.c.entity == "customer", t.c.record_id == record_id).order_by(t.c.id)).mappings()
        return [dict(r) for r in rows]


def test_grade_cannot_be_typed_in(app: Any, people: dict[str, str]) -> None:
    h = headers(app, people, "sales")
    r = app.test_client().post("/api/v1/customer/", json={"name": "想自己定级", "urgency": "potential", "grade": "A"}, headers=h)
    assert r.status_code == 422 and "grade" in r.json["message"]


def test_set_based_regrade_equals_the_rules_evaluated_in_python(app: Any) -> None:
    make_demo_data(app, 300, seed=11)
    with app.app_context():
        crm = app.extensions["crm"]
        spec = crm.spec
        tables = dict(Model.metadata.tables)
        session = crm.db.session
        entity = spec.entity("customer")
        # scramble the stored grades, then a set-based regrade must put every one back
        session.execute(sa.text("UPDATE customer SET grade = NULL, value_tier = 'low'"))
        moves = regrade(session.connection(), spec, entity, tables, dt.datetime.now())
        session.commit()
        assert sum(moves["grade"].values()) > 0
        now = dt.datetime.now()
        rows = session.execute(sa.select(tables["customer"])).mappings().all()
        for graded in graded_fields(spec, entity):
            for row in rows:
                hit = grade_lookup(record_lookup(dict(row)), graded, now, spec.calendar)
                assert row[graded.field] == (hit[0].grade if hit else None), (graded.field, dict(row))


# -- numbering ----------------------------------------------------------------------------------

def test_numbers_follow_the_pattern_are_readonly_and_searchable(app: Any, people: dict[str, str]) -> None:
    h = headers(app, people, "service")
    c = customer(app, headers(app, people, "sales"))
    first = create(app, h, "complaint", subject="包装破损", customer=c["id"], received_at="2026-11-20", severity="general",
                   category="quality", description="外箱破损三件", deadline="2026-11-27")
    second = create(app, h, "complaint", subject="延期交货", customer=c["id"], received_at="2026-11-20", severity="general",
                    category="delivery", description="交期延误", deadline="2026-11-27")
    pattern = app.extensions["crm"].spec.entity("complaint").numbering
    # every token ({YYYY}, {MM}, {###} …) stands for as many digits as it has characters
    regex = "".join(rf"\d{{{len(part) - 2}}}" if part.startswith("{") else re.escape(part)
                    for part in re.split(r"(\{[^{}]+\})", pattern))
    assert re.fullmatch(regex, first["code"]), (pattern, first["code"])
    assert int(re.findall(r"\d+", second["code"])[-1]) == int(re.findall(r"\d+", first["code"])[-1]) + 1
    r = put(app, h, "complaint", first["id"], code="X-1")
    assert r.status_code == 422  # not an editable column
    found = app.test_client().get(f"/api/v1/complaint/?q=(filters:!((col:code,opr:eq,value:'{first['code']}')))", headers=h)
    assert found.status_code == 200 and found.json["count"] == 1


def test_numbering_is_unique_under_eight_parallel_writers_on_postgres(tmp_path: Any) -> None:
    from app.runtime import numbering
    from app.runtime.tables import Sequence
    from tests.migration_helpers import database

    with database("postgres", tmp_path) as url:
        engine = sa.create_engine(url, pool_size=10)
        Sequence.__table__.create(engine)
        codes: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        start = threading.Barrier(8)

        def writer() -> None:
            try:
                start.wait()
                for _ in range(40):
                    with engine.begin() as conn:
                        code = numbering.allocate(conn, "complaint", "TS-{YYYY}{MM}-{####}")[0]
                    with lock:
                        codes.append(code)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=writer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        engine.dispose()
    assert not errors
    assert len(codes) == 320 and len(set(codes)) == 320
    assert sorted(int(c[-4:]) for c in codes) == list(range(1, 321))


# -- validations -------------------------------------------------------------------------------

def test_validation_rule_gives_422_with_the_sheet_message_on_the_field(app: Any, people: dict[str, str]) -> None:
    h = headers(app, people, "sales")
    r = app.test_client().post("/api/v1/customer/", json={
        "name": "日期颠倒的客户", "urgency": "normal", "first_contacted_on": "2026-11-10", "last_contact_on": "2026-11-01"}, headers=h)
    assert r.status_code == 422
    messages = [m for msgs in r.json["message"].values() for m in msgs]
    assert "最近联系日期不能早于首次沟通日期。" in messages


def test_validation_rule_in_the_form_is_shown_on_the_field(app: Any, people: dict[str, str]) -> None:
    client = app.test_client()
    login(client, people["sales"], PASSWORD)
    page = client.get("/customerview/add")
    r = client.post("/customerview/add", data={"csrf_token": csrf_token(page.text), "name": "表单校验客户", "urgency": "normal",
                                               "first_contacted_on": "2026-11-10", "last_contact_on": "2026-11-01"})
    assert r.status_code == 200  # the form again, with the message
    assert "最近联系日期不能早于首次沟通日期。" in r.text
    with app.app_context():
        n = app.extensions["crm"].db.session.execute(sa.text("SELECT count(*) FROM customer WHERE name = '表单校验客户'")).scalar()
    assert n == 0


# -- workflows ---------------------------------------------------------------------------------

def _visit(app: Any, h: dict[str, str], c: dict[str, Any]) -> dict[str, Any]:
    return create(app, h, "visit_request", subject="拜访采购部", customer=c["id"], visit_at="2026-11-25", purpose="first_visit",
                  goal="介绍公司产品")


def test_visit_request_is_approved_before_the_visit(app: Any, people: dict[str, str]) -> None:
    sales, manager = headers(app, people, "sales"), headers(app, people, "manager")
    c = customer(app, sales)
    v = _visit(app, sales, c)
    assert v["status"] == "draft" and v["code"]
    client = app.test_client()
    url = f"/api/v1/visit_request/{v['id']}"
    # a salesperson cannot approve; nothing changes
    assert client.post(f"{url}/transition", json={"action": "提交审批"}, headers=sales).status_code == 200
    r = client.post(f"{url}/transition", json={"action": "批准"}, headers=sales)
    assert r.status_code == 403
    assert client.get(url, headers=sales).json["result"]["status"] == "submitted"
    # rejecting needs a comment
    r = client.post(f"{url}/transition", json={"action": "驳回"}, headers=manager)
    assert r.status_code == 422
    assert client.post(f"{url}/transition", json={"action": "批准"}, headers=manager).status_code == 200
    # the visit is registered only with attendance filed and a result (condition)
    r = client.post(f"{url}/transition", json={"action": "登记走访完成"}, headers=sales)
    assert r.status_code == 403 and "attendance_filed" in r.json["message"]
    assert put(app, sales, "visit_request", v["id"], attendance_filed=True, result="客户有意向").status_code == 200
    assert client.post(f"{url}/transition", json={"action": "登记走访完成"}, headers=sales).status_code == 200
    info = client.get(f"{url}/transitions", headers=sales).json["result"]
    assert [(h["from_state"], h["to_state"]) for h in info["history"]] == [("draft", "submitted"), ("submitted", "approved"),
                                                                          ("approved", "visited")]


def test_state_cannot_be_changed_by_editing(app: Any, people: dict[str, str]) -> None:
    sales = headers(app, people, "sales")
    v = _visit(app, sales, customer(app, sales))
    r = put(app, sales, "visit_request", v["id"], status="approved")
    assert r.status_code == 422


def test_major_complaint_goes_to_the_general_manager(app: Any, people: dict[str, str]) -> None:
    service, gm, quality = (headers(app, people, k) for k in ("service", "gm", "quality"))
    c = customer(app, headers(app, people, "sales"))
    major = create(app, service, "complaint", subject="批量质量问题", customer=c["id"], received_at="2026-11-20", severity="major",
                   category="quality", description="整批色差", deadline="2026-11-25")
    client = app.test_client()
    url = f"/api/v1/complaint/{major['id']}"
    actions = {a["action"]: a["allowed"] for a in client.get(f"{url}/transitions", headers=service).json["result"]["actions"]}
    assert actions == {"呈报总经理": True, "开始调查": False}
    assert client.post(f"{url}/transition", json={"action": "呈报总经理"}, headers=service).status_code == 200
    assert client.post(f"{url}/transition", json={"action": "总经理批示", "comment": ""}, headers=quality).status_code == 403
    assert client.post(f"{url}/transition", json={"action": "总经理批示", "comment": "限期整改"}, headers=gm).status_code == 200
    assert client.get(url, headers=gm).json["result"]["status"] == "investigating"


def test_master_data_freeze_only_when_a_reason_holds(app: Any, people: dict[str, str]) -> None:
    sales, brand = headers(app, people, "sales"), headers(app, people, "brand")
    c = customer(app, sales)
    client = app.test_client()
    body = {"request_type": "freeze", "customer": c["id"], "customer_name": c["name"], "reason": "长期未回款"}
    r = client.post("/api/v1/master_data_request/", json=body, headers=sales)
    assert r.status_code == 422
    assert "账户冻结须至少满足一项条件:信用逾期、库存不合理或严重市场违规。" in r.json["message"]["request_type"]
    req = create(app, sales, "master_data_request", **body, credit_overdue=True)
    url = f"/api/v1/master_data_request/{req['id']}"
    assert client.post(f"{url}/transition", json={"action": "提交申请"}, headers=sales).status_code == 200
    assert client.post(f"{url}/transition", json={"action": "品牌经理审核通过"}, headers=brand).status_code == 200
    assert client.get(url, headers=brand).json["result"]["status"] == "channel_gm"


def test_transition_buttons_on_the_show_page(app: Any, people: dict[str, str]) -> None:
    sales = headers(app, people, "sales")
    v = _visit(app, sales, customer(app, sales))
    client = app.test_client()
    login(client, people["sales"], PASSWORD)
    page = client.get(f"/visitrequestview/show/{v['id']}")
    assert page.status_code == 200 and "提交审批" in page.text
    r = client.post(f"/visitrequestview/transition/{v['id']}", data={"csrf_token": csrf_token(page.text),
                                                                       "action": "status:draft:submitted"})
    assert r.status_code == 302
    assert app.test_client().get(f"/api/v1/visit_request/{v['id']}", headers=sales).json["result"]["status"] == "submitted"
    # approving is the manager's: the salesperson's click is refused and nothing changes
    page = client.get(f"/visitrequestview/show/{v['id']}")
    r = client.post(f"/visitrequestview/transition/{v['id']}", data={"csrf_token": csrf_token(page.text),
                                                                      "action": "status:submitted:approved"})
    assert r.status_code == 403
    assert app.test_client().get(f"/api/v1/visit_request/{v['id']}", headers=sales).json["result"]["status"] == "submitted"


# -- ownership -----------------------------------------------------------------------------------

def test_the_recorder_owns_and_a_manager_reassigns(app: Any, people: dict[str, str]) -> None:
    sales, manager = headers(app, people, "sales"), headers(app, people, "manager")
    c = customer(app, sales)
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        me, other = sm.find_user(username=people["sales"]), sm.find_user(username=people["sales2"])
        me_id, other_id = me.id, other.id
    owner = c["owner"]["id"] if isinstance(c["owner"], dict) else c["owner"]
    assert owner == me_id
    client = app.test_client()
    assert client.put(f"/api/v1/customer/{c['id']}/owner", json={"owner": other_id}, headers=sales).status_code == 403
    assert client.put(f"/api/v1/customer/{c['id']}/owner", json={"owner": other_id}, headers=manager).status_code == 200
    after = client.get(f"/api/v1/customer/{c['id']}", headers=manager).json["result"]["owner"]
    assert (after["id"] if isinstance(after, dict) else after) == other_id


def test_a_clerk_recording_a_call_does_not_become_its_technician(app: Any, people: dict[str, str]) -> None:
    """叫修登记 belongs to a technician (the role that works its own calls). The service clerk who
    registers a call used to become its technician, so the call sat with someone who never
    repairs anything and no technician saw it; it now waits, unassigned, for dispatch."""
    spec = app.extensions["crm"].spec
    e = spec.entity("service_call")
    assert e.owner_field == "technician" and not e.field("technician").required
    c = customer(app, headers(app, people, "sales"))
    call = create(app, headers(app, people, "service"), "service_call", customer=c["id"], area_type="urban",
                  call_type=spec.choices[e.field("call_type").choices][0].value, product_model="XH-200",
                  reported_at="2026-11-20 10:00:00", fault_description="不出料")
    assert call["technician"] is None


def test_balanced_assignment_gives_orphans_to_the_least_loaded(app: Any, people: dict[str, str]) -> None:
    from app.runtime.ownership import assignees, balance

    with app.app_context():
        crm = app.extensions["crm"]
        session = crm.db.session
        spec = crm.spec
        entity = spec.entity("customer")
        model = crm.generated.models.MODELS["customer"]
        people_ids = [u.id for u in assignees(session, spec, entity)]
        assert len(people_ids) >= 2
        departed = add_user(app, "rules_departed", ["业务员"], PASSWORD)
        session.execute(sa.text("UPDATE ab_user SET active = :f WHERE id = :i"), {"f": False, "i": departed})
        session.execute(sa.update(model).where(model.id.in_(sa.select(model.id).limit(12).scalar_subquery())).values(owner_id=departed))
        session.commit()
        loads_before = dict(session.execute(sa.select(model.owner_id, sa.func.count()).group_by(model.owner_id)).all())
        given = balance(session, spec, entity, model)
        assert sum(given.values()) == 12
        loads = dict(session.execute(sa.select(model.owner_id, sa.func.count()).group_by(model.owner_id)).all())
        assert departed not in loads
        # least-loaded first: whoever received records ends at most one above the lightest load now
        received = [i for i in people_ids if given.get(i)]
        assert received and max(loads[i] for i in received) <= min(loads.get(i, 0) for i in people_ids) + 1
        assert sum(loads.get(i, 0) for i in people_ids) == sum(loads_before.get(i, 0) for i in people_ids) + 12


def test_demo_data_obeys_every_validation_rule(app: Any) -> None:
    from app.runtime.rules import rules_for, validate_values

    # one moment for making and for checking (rules such as "not in the future" move with the clock);
    # a few seconds before midnight, where a date and a datetime taken apart would disagree
    now = dt.datetime(2026, 3, 31, 23, 59, 58)
    make_demo_data(app, 60, seed=21, now=now)
    with app.app_context():
        crm = app.extensions["crm"]
        for e in crm.spec.entities:
            rules = rules_for(crm.spec, e)
            table = Model.metadata.tables[e.name]
            for row in crm.db.session.execute(sa.select(table)).mappings():
                values = {f.name: row[f.column] for f in e.fields}
                assert not validate_values(crm.spec, rules, record_lookup(values), now), (e.name, row["id"], values)


def test_demo_records_belong_to_people_who_work_them(app: Any) -> None:
    """Demo customers belonged to anyone — a technician, a quality manager — so a salesperson
    logging in as demo saw a random few; each record now belongs to a holder of a role that works
    its own records there, and the demo people sit in departments, so team scope shows teams."""
    from flask_appbuilder.security.sqla.models import Role, User

    from app.runtime.demo import DEMO_DEPARTMENTS
    from app.runtime.ownership import own_roles

    with app.app_context():  # the app is the session's: other tests' records are not this call's
        crm = app.extensions["crm"]
        before = {e.name: crm.db.session.execute(sa.select(sa.func.coalesce(sa.func.max(Model.metadata.tables[e.name].c.id), 0))).scalar()
                  for e in crm.spec.entities}
    make_demo_data(app, 40, seed=23)
    with app.app_context():
        session = crm.db.session
        roles_of: dict[int, set[str]] = {}
        for uid, role in session.execute(sa.select(User.id, Role.name).join(User.roles)):
            roles_of.setdefault(uid, set()).add(role)
        checked = 0
        for e in crm.spec.entities:
            if not e.owner_field or not own_roles(crm.spec, e):
                continue
            column = Model.metadata.tables[e.name].c[f"{e.owner_field}_id"]
            demo = sa.select(User.id).where(User.username.like("demo%"))
            made = Model.metadata.tables[e.name].c.id > before[e.name]
            for (owner,) in session.execute(sa.select(column).where(made, column.in_(demo)).distinct()):
                assert roles_of[owner] & own_roles(crm.spec, e), (e.name, owner, roles_of[owner])
                checked += 1
        assert checked >= 2
        sales = session.execute(sa.select(User).where(User.username.like("demo%"))).scalars().first()
        assert sales.groups and sales.groups[0].name in DEMO_DEPARTMENTS


def test_a_field_left_out_gets_its_default_before_the_rules_run(app: Any, people: dict[str, str]) -> None:
    """contact.active defaults to yes, and a rule asks for the departure date of a contact who is
    not active. An API client that leaves active out is not saying no: the default counts before
    the rules run. Saying no on purpose still asks for the date."""
    spec = app.extensions["crm"].spec
    assert spec.entity("contact").field("active").default is True
    h = headers(app, people, "sales")
    c = customer(app, h)
    made = create(app, h, "contact", name="默认在职联系人", customer=c["id"])
    assert made["active"] is True
    r = app.test_client().post("/api/v1/contact/", json={"name": "已离职联系人", "customer": c["id"], "active": False}, headers=h)
    assert r.status_code == 422 and "active" in r.json["message"], r.text
