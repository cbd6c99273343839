"""Step effects (``workflows.effects``; app/spec/effects.py, app/record/effects.py): the shipped
master-data request's last approval creates, changes, freezes the customer — through the step
dialog, the record page's button and the REST API, on SQLite and PostgreSQL — in the step's one
transaction, audited on each record touched and said in the history; one refused effect refuses
the step and every other effect; two last approvals at once create one customer; the second-domain
workbook's own effects work with no code change; and ``crm check`` says what is wrong with an effect,
where, with a hint."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.access.accounts import add_user
from generator import WorkbookError, generate, load_spec
from tests.conftest import ADMIN_PASSWORD, api_token, csrf_token, login
from tests.effect_library import library_with_effects
from tests.migration_helpers import database
from tests.probes import run_probe
from tests.test_contention import at_once, browser, call, dispose, fresh_app, raw, serving
from tests.workbooks import write_workbook

PASSWORD = "effects-Pass-12"  # noqa: S105 - test-only
DC, DC2, SALES = "eff_dc", "eff_dc2", "eff_sales"
LAST = "status:data_center:done"  # 系统处理完成: the data centre's last step
ROUTE = "/masterdatarequestview"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def office(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The shipped workbook's app on SQLite (the tests' shared one) or on a fresh PostgreSQL schema,
    with two people of the data centre and a salesperson."""
    if request.param == "sqlite":
        app = request.getfixturevalue("app")
        _people(app)
        yield app
        return
    with database("postgres", tmp_path_factory.mktemp("pg")) as url:
        from app.access.accounts import create_first_admin

        app = fresh_app(url)
        create_first_admin(app, "admin", ADMIN_PASSWORD)
        _people(app)
        try:
            yield app
        finally:
            dispose(app)


def _people(app: Any) -> None:
    with app.app_context():
        sm = app.extensions["crm"].appbuilder.sm
        for who, role in ((DC, "数据中心"), (DC2, "数据中心"), (SALES, "业务员")):
            if sm.find_user(username=who) is None:
                add_user(app, who, [role], PASSWORD, departments=["销售一部"])


def uid(app: Any, who: str) -> int:
    return int(raw(app, "SELECT id FROM ab_user WHERE username = :u", u=who)[0][0])


def unique(name: str) -> str:
    return f"{name}{time.time_ns() % 10**12}"


def new_customer(app: Any, h: dict[str, str], **values: Any) -> int:
    """A customer recorded by the salesperson (``h``): theirs."""
    r = app.test_client().post("/api/v1/customer/", json={"name": unique("效果客户"), "urgency": "normal", **values}, headers=h)
    assert r.status_code == 201, r.text
    return int(r.json["id"])


def new_request(app: Any, h: dict[str, str], kind: str, customer: int | None = None, **values: Any) -> int:
    """A master-data request of ``kind`` by the salesperson (``h``), brought to the data centre's desk."""
    body = {"request_type": kind, "customer_name": unique("申请客户"), "reason": "经销商申请",
            "credit_overdue": kind == "freeze", "change_content": "地址、电话" if kind == "modify" else None,
            **({"customer": customer} if customer else {}), **values}
    r = app.test_client().post("/api/v1/master_data_request/", json=body, headers=h)
    assert r.status_code == 201, r.text
    pk = int(r.json["id"])
    with app.app_context():  # the approvals before the last one are the workflow tests' business
        s = app.extensions["crm"].db.session
        s.execute(sa.text("UPDATE master_data_request SET status = 'data_center' WHERE id = :i"), {"i": pk})
        s.commit()
        s.remove()
    return pk


def request_row(app: Any, pk: int) -> dict[str, Any]:
    cols = "status, customer_id, version, customer_name, sap_customer_no"
    return dict(zip(cols.split(", "), raw(app, f"SELECT {cols} FROM master_data_request WHERE id = :i", i=pk)[0], strict=True))  # noqa: S608


def customer_row(app: Any, pk: int) -> dict[str, Any]:
    cols = "code, name, status, owner_id, address, phone, tax_no, grade, version"
    return dict(zip(cols.split(", "), raw(app, f"SELECT {cols} FROM customer WHERE id = :i", i=pk)[0], strict=True))  # noqa: S608


def page_client(app: Any, who: str) -> Any:
    c = app.test_client()
    login(c, who, PASSWORD)
    return c


def take(app: Any, path: str, pk: int, values: dict[str, str] | None = None, who: str = DC) -> tuple[int, str]:
    """Take the last step by ``path`` — ``dialog`` (the record page's dialog, its values and the
    version posted, answered in JSON), ``button`` (the page's one-click form: a redirect and a flash)
    or ``api`` — as ``who``; (status, what the person is told)."""
    version = request_row(app, pk)["version"]
    if path == "api":
        h = api_token(app.test_client(), who, PASSWORD)
        r = app.test_client().post(f"/api/v1/master_data_request/{pk}/transition", headers=h,
                                   json={"action": "系统处理完成", "values": values or {}, "version": version})
        return r.status_code, json.dumps(r.get_json(silent=True), ensure_ascii=False)
    c = page_client(app, who)
    page = c.get(f"{ROUTE}/show/{pk}").text
    data = {"csrf_token": csrf_token(page), "action": LAST, "comment": "", "version": str(version),
            **{f"value-{k}": v for k, v in (values or {}).items()}}
    if path == "dialog":
        r = c.post(f"{ROUTE}/transition/{pk}", data=data, headers={"Accept": "application/json"})
        return r.status_code, json.dumps(r.get_json(silent=True), ensure_ascii=False)
    r = c.post(f"{ROUTE}/transition/{pk}", data=data)
    shown = c.get(f"{ROUTE}/show/{pk}").text
    flashes = re.findall(r'class="alert alert-(?:danger|success)[^"]*"[^>]*>(.*?)</div>', shown, re.S)
    return (200 if r.status_code == 302 and "alert-success" in shown else 422), " ".join(flashes)


def ready(app: Any, pk: int, path: str, kind: str) -> dict[str, str]:
    """What the last step needs (its condition: processed on, and the SAP number of a new account):
    the dialog and the API send it with the step; for the one-click button it is filled in first."""
    values = {"processed_on": dt.date.today().isoformat(), **({"sap_customer_no": "SAP-1001"} if kind == "create" else {})}
    if path != "button":
        return values
    with app.app_context():
        s = app.extensions["crm"].db.session
        s.execute(sa.text("UPDATE master_data_request SET processed_on = :d, sap_customer_no = :n WHERE id = :i"),
                  {"d": dt.date.today(), "n": values.get("sap_customer_no"), "i": pk})
        s.commit()
        s.remove()
    return {}


def audit_steps(app: Any, entity: str, pk: int) -> list[tuple[str, str | None]]:
    return [(a, s) for a, s in raw(app, "SELECT action, step FROM crm_audit WHERE entity = :e AND record_id = :i ORDER BY id",
                                   e=entity, i=pk)]


PATHS = ("dialog", "button", "api")


@pytest.mark.parametrize("path", PATHS)
def test_last_approval_creates_the_customer_with_its_number_and_links_it(office: Any, path: str) -> None:
    app = office
    admin = api_token(app.test_client(), SALES, PASSWORD)  # the salesperson records the customers and requests
    pk = new_request(app, admin, "create", address="天津市河西区友谊路 8 号", phone="022-23456789")
    before = raw(app, "SELECT count(*) FROM customer")[0][0]
    status, said = take(app, path, pk, ready(app, pk, path, "create"))
    assert status == 200, said
    req = request_row(app, pk)
    assert req["status"] == "done" and req["customer_id"] is not None
    assert raw(app, "SELECT count(*) FROM customer")[0][0] == before + 1
    new = customer_row(app, req["customer_id"])
    # its number from its own numbering rule, its defaults, its grade, its owner: as any new customer
    assert re.fullmatch(r"KH-\d{6}-\d{4}", new["code"]), new
    assert (new["name"], new["status"], new["owner_id"]) == (req["customer_name"], "active", uid(app, SALES))
    assert new["address"] == "天津市河西区友谊路 8 号" and new["grade"] is not None
    # audited on each record touched, the customer's rows naming the step
    step = [s for a, s in audit_steps(app, "customer", req["customer_id"])]
    assert len(step) == 1 and step[0] is not None and "系统处理完成" in step[0] and "主数据变更申请" in step[0]
    assert any(a == "update" and s and "系统处理完成" in s for a, s in audit_steps(app, "master_data_request", pk))
    # the history says what the step did
    page = page_client(app, DC).get(f"{ROUTE}/show/{pk}").text
    created = f'→ <a href="/customerview/show/{req["customer_id"]}">新建客户档案 {new["code"]} {new["name"]}</a>'
    assert created in page, page  # said, and a link to the new customer
    assert f'<div class="crm-effect">→ 客户 → {new["code"]} {new["name"]}</div>' in page  # the request's own link, filled


@pytest.mark.parametrize("path", PATHS)
def test_last_approval_freezes_and_modifies_the_linked_customer(office: Any, path: str) -> None:
    app = office
    admin = api_token(app.test_client(), SALES, PASSWORD)  # the salesperson records the customers and requests
    frozen = new_customer(app, admin)
    pk = new_request(app, admin, "freeze", customer=frozen)
    status, said = take(app, path, pk, ready(app, pk, path, "freeze"))
    assert status == 200, said
    c = customer_row(app, frozen)
    if path == "api":  # the API's answer says what the step did
        assert json.loads(said)["result"]["effects"] == [f"客户档案 {c['code']} {c['name']}:客户状态 → 已冻结"], said
    assert c["status"] == "frozen" and c["version"] == 2
    assert audit_steps(app, "customer", frozen)[-1][1] and "系统处理完成" in str(audit_steps(app, "customer", frozen)[-1][1])
    page = page_client(app, DC).get(f"{ROUTE}/show/{pk}").text
    assert f'→ <a href="/customerview/show/{frozen}">客户档案 {c["code"]} {c["name"]}:客户状态 → 已冻结</a>' in page
    en = page_client(app, DC)
    en.get("/lang/en")
    assert f">Customer {c['code']} {c['name']}: Status → Frozen</a>" in en.get(f"{ROUTE}/show/{pk}").text

    changed = new_customer(app, admin, address="旧地址")
    pk = new_request(app, admin, "modify", customer=changed, address="新地址 9 号", tax_no="91120103MA05L8XK2Q")
    name = request_row(app, pk)["customer_name"]
    status, said = take(app, path, pk, ready(app, pk, path, "modify"))
    assert status == 200, said
    c = customer_row(app, changed)
    assert (c["name"], c["address"], c["tax_no"], c["status"]) == (name, "新地址 9 号", "91120103MA05L8XK2Q", "prospect")
    assert c["phone"] is None  # left blank on the request: not copied over


@pytest.mark.parametrize("path", PATHS)
def test_one_refused_effect_refuses_the_step_and_every_other_with_the_reason(office: Any, path: str) -> None:
    app = office
    admin = api_token(app.test_client(), SALES, PASSWORD)  # the salesperson records the customers and requests
    cust = new_customer(app, admin, address="旧地址")
    with app.app_context():  # a stored customer that breaks a rule of the validations sheet (kept; corrected when next saved)
        s = app.extensions["crm"].db.session
        s.execute(sa.text("UPDATE customer SET first_contacted_on = :a, last_contact_on = :b WHERE id = :i"),
                  {"a": dt.date(2026, 12, 1), "b": dt.date(2026, 11, 1), "i": cust})
        s.commit()
        s.remove()
    before = customer_row(app, cust)
    # the name and address would change, but the customer cannot be saved as it stands
    pk = new_request(app, admin, "modify", customer=cust, address="新地址", tax_no="91120103MA05L8XK2Q")
    req = request_row(app, pk)
    status, said = take(app, path, pk, ready(app, pk, path, "modify"))
    assert status == 422, said
    assert "系统处理完成" in said and before["code"] in said and "最近联系日期不能早于首次沟通日期" in said, said
    assert customer_row(app, cust) == before
    after = request_row(app, pk)
    assert (after["status"], after["version"]) == ("data_center", req["version"])
    assert raw(app, "SELECT count(*) FROM crm_transition WHERE entity = 'master_data_request' AND record_id = :i", i=pk)[0][0] == 0
    assert not [s for _a, s in audit_steps(app, "customer", cust) if s]

    # a new account whose name another customer has: nothing created, nothing moved
    taken = customer_row(app, cust)["name"]
    pk = new_request(app, admin, "create", customer_name=taken)
    count = raw(app, "SELECT count(*) FROM customer")[0][0]
    status, said = take(app, path, pk, ready(app, pk, path, "create"))
    assert status == 422 and "系统处理完成" in said, said
    assert raw(app, "SELECT count(*) FROM customer")[0][0] == count
    assert request_row(app, pk)["status"] == "data_center" and request_row(app, pk)["customer_id"] is None


@pytest.mark.postgres
def test_two_last_approvals_at_once_create_exactly_one_customer(tmp_path: Path) -> None:
    with database("postgres", tmp_path) as url:
        from app.access.accounts import create_first_admin

        app = fresh_app(url)
        try:
            create_first_admin(app, "admin", ADMIN_PASSWORD)
            _people(app)
            admin = api_token(app.test_client(), SALES, PASSWORD)  # the salesperson records the customers and requests
            with serving(app) as base:
                for _round in range(3):
                    pk = new_request(app, admin, "create")
                    name, version = request_row(app, pk)["customer_name"], request_row(app, pk)["version"]
                    tokens = [api_token(app.test_client(), who, PASSWORD) for who in (DC, DC2)]
                    body = {"action": "系统处理完成", "version": version,
                            "values": {"processed_on": dt.date.today().isoformat(), "sap_customer_no": "SAP-2002"}}

                    def approve(i: int, pk: int = pk, body: dict[str, Any] = body, tokens: list[dict[str, str]] = tokens) -> int:
                        return call(browser(), "POST", f"{base}/api/v1/master_data_request/{pk}/transition", body=body,
                                    headers=tokens[i])[0]

                    assert sorted(at_once(2, approve)) == [200, 409]
                    assert raw(app, "SELECT count(*) FROM customer WHERE name = :n", n=name)[0][0] == 1
                    assert raw(app, "SELECT count(*) FROM crm_transition WHERE record_id = :i AND entity = 'master_data_request'",
                               i=pk)[0][0] == 1
                    assert request_row(app, pk)["customer_id"] is not None
        finally:
            dispose(app)


# -- the second domain: its own effects, no code change ------------------------------------------
def test_a_second_domain_workbook_runs_its_own_effects(tmp_path: Path) -> None:
    workbook = write_workbook(tmp_path / "library.xlsx", library_with_effects())
    out = tmp_path / "library_app"
    generate(workbook, out)
    env = {"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(out), "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'lib.sqlite'}"}
    report = run_probe("library_effects", env, timeout=300)
    own, other = report["own"], report["other"]
    assert own["status"] == 200, own
    assert (own["book"], own["blocked"], own["loan_state"]) == ("lost", True, "lost")
    assert re.fullmatch(r"FK-\d{4}-\d{3}", own["fine"]["code"]) and own["fine"]["amount"] == 80 and own["fine"]["member_is_loans"]
    assert own["fine_step"] and "挂失" in own["fine_step"]
    assert '">新建罚款 FK-' in own["page"] and '→ <a href="/bookview/show/' in own["page"] and ">图书 遗失之书:馆藏状态 → 遗失</a>" in own["page"]
    assert '<div class="crm-effect">→ 罚款 → FK-' in own["page"]  # the loan's own link to the fine, filled
    # a member outside the librarian's scope: the whole step refused, said why, nothing done
    assert other["status"] == 422 and "不在您的数据范围内" in other["message"], other
    assert (other["book"], other["blocked"], other["loan_state"], other["fines"]) == ("available", False, "open", 1)
    # a lock of the validations sheet meets the second effect: the first and the step itself are undone
    locked = report["locked"]
    assert locked["status"] == 422 and "没有邮箱的读者不能暂停借阅" in locked["message"] and "读者 无邮箱之书的读者" in locked["message"], locked
    assert (locked["book"], locked["blocked"], locked["loan_state"], locked["fines"]) == ("available", False, "open", 1)


# -- crm check: each mistake located, with a hint -------------------------------------------------
ERROR_CASES = [
    ("bok.status = 'lost'",
     "效果 'bok.status = 'lost'' 有误:unknown field 'bok' (effect 'bok.status = 'lost'' is wrong: unknown field 'bok') — "
     "是否想写 'book'? (did you mean 'book'?)"),
    ("book.statuss = 'lost'",
     "效果 'book.statuss = 'lost'' 有误:实体 book 没有字段 'statuss' (effect 'book.statuss = 'lost'' is wrong: entity book has no "
     "field 'statuss') — 是否想写 'status'? (did you mean 'status'?)"),
    ("member.full_name = 5",
     "效果 'member.full_name = 5' 有误:member.full_name 是文本字段(string),5 是数字,类型不符 (effect 'member.full_name = 5' is "
     "wrong: member.full_name is a text field (string) but 5 is a number) — 文本和选项值要加引号,写成 member.full_name = '5' "
     "(put text and choice values in quotes: member.full_name = '5')"),
    ("book.status = 'losst'",
     "效果 'book.status = 'losst'' 有误:'losst' 不是字段 book.status 的选项(选项列表 book_status) (effect 'book.status = 'losst'' "
     "is wrong: 'losst' is not a choice of field book.status (list book_status)) — 是否想写 'lost'? (did you mean 'lost'?)"),
    ("create fine(member = member)",
     "效果 'create fine(member = member)' 新建的 fine 缺少必填字段 amount(它们没有默认值,也不由编号规则填写) (effect 'create "
     "fine(member = member)' creates a fine without its required field(s) amount (no default, no numbering fills them)) — "
     "在括号里加上 amount = … (add amount = … inside the brackets)"),
    ("create fine(amount = 'eighty', member = member)",
     "效果 'create fine(amount = 'eighty', member = member)' 有误:fine.amount 是数字字段(money),'eighty' 是文本,类型不符 (effect "
     "'create fine(amount = 'eighty', member = member)' is wrong: fine.amount is a number field (money) but 'eighty' is text) — "
     "写入的值须与字段同一类型 (the value written must have the field's type)"),
    ("create fien(amount = 1)", "未知实体 'fien' (unknown entity 'fien') — 是否想写 'fine'? (did you mean 'fine'?)"),
    ("fine = created",
     "效果 'fine = created' 用了 created,但此步骤在它之前没有新建记录 (effect 'fine = created' uses created, but the step creates "
     "nothing before it) — 先写 create 实体(…),再用 created (write create entity(…) first, then use created)"),
    ("state = 'returned'",
     "效果 'state = 'returned'' 不能写字段 loan.state:它是流程的状态字段,只由该记录自己的流程按钮改变 (effect 'state = 'returned'' "
     "cannot write field loan.state: it is a workflow state, moved only by that record's own steps)"),
    ("code = 'x'",
     "效果 'code = 'x'' 不能写字段 loan.code:它是只读字段,只由系统填写 (effect 'code = 'x'' cannot write field loan.code: it is "
     "read-only, filled by the system)"),
    ("book = member",
     "效果 'book = member' 有误:关联字段 book 只能填 book 的记录 (effect 'book = member' is wrong: link book takes a book record) — "
     "写 created(此步骤新建的 book),或本记录指向 book 的关联字段 (write created (the book this step created) or a link of this "
     "record to book)"),
    ("book.status == 'lost'",
     "效果 'book.status == 'lost'' 有误:write 'link.field = value', 'field = created' or 'create entity(field = value, …)' (effect "
     "'book.status == 'lost'' is wrong: write 'link.field = value', 'field = created' or 'create entity(field = value, …)') — "
     "效果写作 关联.字段 = 值、create 实体(字段 = 值, …) 或 字段 = created,可在末尾加 if 条件 (write link.field = value, create "
     "entity(field = value, …) or field = created, optionally ending with if condition)"),
    ("book.status = 'lost' if pages > 3",
     "效果 'book.status = 'lost' if pages > 3' 有误:unknown field 'pages' (effect 'book.status = 'lost' if pages > 3' is wrong: "
     "unknown field 'pages')"),
]


@pytest.mark.parametrize(("effects", "expected"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_crm_check_locates_each_mistake_in_an_effect(tmp_path: Path, effects: str, expected: str) -> None:
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", library_with_effects(effects)))
    said = [p.format() for p in err.value.problems]
    assert said == [f"workflows!H3 (entity loan): {expected}"], said


def test_effects_are_read_in_order_from_either_header(tmp_path: Path) -> None:
    spec, _warnings = load_spec(write_workbook(tmp_path / "ok.xlsx", library_with_effects()))
    lost = next(t for t in spec.workflows if t.action == "挂失")
    assert lost.effects == ("book.status = 'lost'", "member.blocked = True", "create fine(member = member, amount = 80, reason = 'lost book')",
                            "fine = created")
    sheets = library_with_effects()
    sheets["workflows"][1]["effects"] = sheets["workflows"][1].pop("效果")
    spec, _warnings = load_spec(write_workbook(tmp_path / "en.xlsx", sheets))
    assert next(t for t in spec.workflows if t.action == "挂失").effects == lost.effects
