"""Link fields in forms (issue 9: a million customers): above CRM_LINK_LOOKUP_THRESHOLD rows the
dropdown holds only the current value and asks a lookup endpoint as the user types; the lookup and
every save keep to the user's row scope of the linked entity; below the threshold the whole
(scoped) dropdown is drawn as before."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from app.access.accounts import add_user
from tests.conftest import csrf_token, login

PASSWORD = "Link-Pass-123"  # noqa: S105 - test-only


@pytest.fixture(scope="module")
def people(app: Any) -> dict[str, str]:
    tag = uuid.uuid4().hex[:6]
    made = {"a": f"link_a_{tag}", "b": f"link_b_{tag}", "boss": f"link_boss_{tag}", "viewer": f"link_view_{tag}"}
    add_user(app, made["a"], ["业务员"], PASSWORD, departments=["链接一部"])  # own scope; may add contacts
    add_user(app, made["b"], ["业务员"], PASSWORD, departments=["链接二部"])
    add_user(app, made["boss"], ["总经理"], PASSWORD, departments=["总部"])  # contacts: list/show only
    add_user(app, made["viewer"], ["技术员"], PASSWORD, departments=["售后"])
    return made


def client(app: Any, who: str) -> Any:
    c = app.test_client()
    login(c, who, PASSWORD)
    return c


def customer_of(app: Any, c: Any, name: str) -> int:
    page = c.get("/customerview/add")
    r = c.post("/customerview/add", data={"csrf_token": csrf_token(page.text), "name": name, "urgency": "normal"})
    assert r.status_code == 302, r.text[:2000]
    with app.app_context():
        return int(app.extensions["crm"].db.session.execute(sa.text("SELECT id FROM customer WHERE name = :n"), {"n": name}).scalar_one())


def contacts_named(app: Any, name: str) -> list[Any]:
    with app.app_context():
        return list(app.extensions["crm"].db.session.execute(sa.text("SELECT customer_id FROM contact WHERE name = :n"), {"n": name}))


@pytest.fixture
def big(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every linked table counts as big."""
    monkeypatch.setitem(app.config, "CRM_LINK_LOOKUP_THRESHOLD", 0)


def select_of(html: str, name: str) -> str:
    m = re.search(rf'<select[^>]*name="{name}"[^>]*>.*?</select>', html, re.S)
    assert m, html[:3000]
    return m.group(0)


def test_a_big_linked_table_is_looked_up_not_listed(app: Any, people: dict[str, str], big: None) -> None:
    a = client(app, people["a"])
    mine = customer_of(app, a, f"链接客户甲{uuid.uuid4().hex[:4]}")
    select = select_of(a.get("/contactview/add").text, "customer")
    assert 'data-crm-lookup="/contactview/lookup/customer"' in select
    assert re.findall(r'<option value="(\d+)"', select) == []  # nothing listed up front
    assert "crm/linkfield.js" in a.get("/contactview/add").text
    related_add = a.get(f"/contactview/add?_flt_0_customer={mine}")  # "add" from the customer's contacts list
    assert related_add.status_code == 200


def test_a_small_linked_table_is_listed_within_the_scope(app: Any, people: dict[str, str]) -> None:
    a, b = client(app, people["a"]), client(app, people["b"])
    mine = customer_of(app, a, f"链接小表甲{uuid.uuid4().hex[:4]}")
    theirs = customer_of(app, b, f"链接小表乙{uuid.uuid4().hex[:4]}")
    with app.app_context():
        app.config["CRM_LINK_LOOKUP_THRESHOLD"] = 10**9
    try:
        listed = {int(x) for x in re.findall(r'<option value="(\d+)"', select_of(a.get("/contactview/add").text, "customer"))}
    finally:
        app.config.pop("CRM_LINK_LOOKUP_THRESHOLD")
    assert mine in listed and theirs not in listed


def test_lookup_finds_by_title_within_the_row_scope(app: Any, people: dict[str, str], big: None) -> None:
    a, b = client(app, people["a"]), client(app, people["b"])
    tag = uuid.uuid4().hex[:4]
    mine = customer_of(app, a, f"查找甲{tag}纺织")
    theirs = customer_of(app, b, f"查找乙{tag}纺织")
    found = a.get(f"/contactview/lookup/customer?q={tag}").json
    assert [r["id"] for r in found["results"]] == [mine] and found["results"][0]["text"] == f"查找甲{tag}纺织"
    assert found["more"] is False
    assert [r["id"] for r in b.get(f"/contactview/lookup/customer?q={tag}").json["results"]] == [theirs]
    assert all("%" in r["text"] for r in a.get("/contactview/lookup/customer?q=%25").json["results"])  # text, not a wildcard
    for _ in range(3):
        customer_of(app, a, f"翻页{tag}-{uuid.uuid4().hex[:4]}")
    assert len(a.get(f"/contactview/lookup/customer?q=翻页{tag}").json["results"]) == 3


def test_lookup_is_for_those_who_may_fill_the_form(app: Any, people: dict[str, str], big: None) -> None:
    assert app.test_client().get("/contactview/lookup/customer?q=a").status_code in (302, 401)
    assert client(app, people["boss"]).get("/contactview/lookup/customer?q=a").status_code == 403  # no add/edit on contacts
    assert client(app, people["viewer"]).get("/contactview/lookup/customer?q=a").status_code == 403
    a = client(app, people["a"])
    assert a.get("/contactview/lookup/name?q=a").status_code == 404  # not a link
    assert a.get("/contactview/lookup/customer?q=a&page=x").status_code == 200


@pytest.mark.parametrize("threshold", [0, 10**9])
def test_a_save_links_only_what_the_user_may_see(app: Any, people: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                   threshold: int) -> None:
    monkeypatch.setitem(app.config, "CRM_LINK_LOOKUP_THRESHOLD", threshold)
    a, b = client(app, people["a"]), client(app, people["b"])
    mine = customer_of(app, a, f"保存甲{uuid.uuid4().hex[:4]}")
    theirs = customer_of(app, b, f"保存乙{uuid.uuid4().hex[:4]}")
    name = f"联系人{uuid.uuid4().hex[:6]}"

    def post(value: str, url: str = "/contactview/add") -> Any:
        page = a.get("/contactview/add")  # (a form aimed at another's customer is not even shown: a 404)
        return a.post(url, data={"csrf_token": csrf_token(page.text), "name": name, "customer": value, "active": "y"})

    refused = {str(theirs): "所选记录不存在或您无权选择", "999999999": "所选记录不存在或您无权选择", "not-a-number": "不是有效的选项",
               "": "此项必填"}
    for value, message in refused.items():
        r = post(value)
        assert r.status_code == 200 and message in r.text, (value, r.status_code)
        assert contacts_named(app, name) == [], value
    r = post("", f"/contactview/add?_flt_0_customer={theirs}")  # the related list's "add", aimed at B's customer
    assert r.status_code == 200 and contacts_named(app, name) == []
    assert a.get(f"/contactview/add?_flt_0_customer={theirs}").status_code == 404
    r = post(str(mine))
    assert r.status_code == 302, r.text[:2000]
    assert [row[0] for row in contacts_named(app, name)] == [mine]


def test_the_edit_form_shows_the_current_record(app: Any, people: dict[str, str], big: None) -> None:
    a = client(app, people["a"])
    mine = customer_of(app, a, f"编辑甲{uuid.uuid4().hex[:4]}")
    name = f"编辑联系人{uuid.uuid4().hex[:6]}"
    page = a.get("/contactview/add")
    assert a.post("/contactview/add", data={"csrf_token": csrf_token(page.text), "name": name, "customer": str(mine), "active": "y"}).status_code == 302
    with app.app_context():
        pk = app.extensions["crm"].db.session.execute(sa.text("SELECT id FROM contact WHERE name = :n"), {"n": name}).scalar_one()
    select = select_of(a.get(f"/contactview/edit/{pk}").text, "customer")
    assert re.findall(r'<option value="(\d+)" selected>', select) == [str(mine)]
    assert len(re.findall(r'<option value="\d+"', select)) == 1


def test_titles_are_escaped_in_the_dropdown_and_the_lookup(app: Any, people: dict[str, str], big: None) -> None:
    a = client(app, people["a"])
    evil = f"<script>alert({uuid.uuid4().hex[:4]})</script>"
    mine = customer_of(app, a, evil)
    found = a.get("/contactview/lookup/customer?q=<script>").json["results"]
    assert {"id": mine, "text": evil} in found  # JSON: the browser's Select2 puts it in as text
    with app.app_context():
        app.config["CRM_LINK_LOOKUP_THRESHOLD"] = 10**9
    try:
        html = a.get("/contactview/add").text
    finally:
        app.config["CRM_LINK_LOOKUP_THRESHOLD"] = 0
    assert evil not in html and "&lt;script&gt;" in html
