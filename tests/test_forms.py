"""Forms with context (issue 24, part 4), on the server: a form opened from a record's tab names
that record on a fixed line, posts it and has it checked (row scope; no other record than the
address's); its tied links' lookups offer only that record's records, and a save pairing a record
of another parent is refused on the field; fields a role may not see are not on its forms at all,
and its saves leave them as they are."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from app.access.accounts import add_user
from tests.conftest import ADMIN_PASSWORD, csrf_token, login

PASSWORD = "Forms-Pass-123"  # noqa: S105 - test-only


def _client(app: Any, who: str, password: str = PASSWORD) -> Any:
    c = app.test_client()
    login(c, who, password)
    return c


def _one(app: Any, sql: str, **params: Any) -> Any:
    with app.app_context():
        return app.extensions["crm"].db.session.execute(sa.text(sql), params).scalar()


def _customer(app: Any, c: Any, name: str) -> int:
    page = c.get("/customerview/add")
    r = c.post("/customerview/add", data={"csrf_token": csrf_token(page.text), "name": name, "urgency": "normal"})
    assert r.status_code == 302, r.text[:2000]
    return int(_one(app, "SELECT id FROM customer WHERE name = :n", n=name))


def _contact(app: Any, c: Any, customer: int, name: str) -> int:
    page = c.get("/contactview/add")
    r = c.post("/contactview/add", data={"csrf_token": csrf_token(page.text), "name": name, "customer": str(customer), "active": "y"})
    assert r.status_code == 302, r.text[:2000]
    return int(_one(app, "SELECT id FROM contact WHERE name = :n", n=name))


@pytest.fixture(scope="module")
def world(app: Any) -> dict[str, Any]:
    """Two salespeople of two departments; A's customers 甲 (contacts 甲1, 甲2) and 乙 (contact
    乙1); B's customer 丙 (contact 丙1)."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"forms_a_{tag}", f"forms_b_{tag}"
    add_user(app, a, ["业务员"], PASSWORD, departments=[f"表单一部{tag}"])
    add_user(app, b, ["业务员"], PASSWORD, departments=[f"表单二部{tag}"])
    ca, cb = _client(app, a), _client(app, b)
    w: dict[str, Any] = {"a": a, "b": b, "tag": tag}
    w["甲"] = _customer(app, ca, f"表单客户甲{tag}")
    w["乙"] = _customer(app, ca, f"表单客户乙{tag}")
    w["丙"] = _customer(app, cb, f"表单客户丙{tag}")
    w["甲1"] = _contact(app, ca, w["甲"], f"甲一{tag}")
    w["甲2"] = _contact(app, ca, w["甲"], f"甲二{tag}")
    w["乙1"] = _contact(app, ca, w["乙"], f"乙一{tag}")
    w["丙1"] = _contact(app, cb, w["丙"], f"丙一{tag}")
    return w


def _follow_up(subject: str, **more: Any) -> dict[str, str]:
    return {"subject": subject, "method": "phone", "planned_on": "2026-12-01", "status": "planned",
            **{k: str(v) for k, v in more.items()}}


def _saved(app: Any, subject: str) -> list[Any]:
    with app.app_context():
        return list(app.extensions["crm"].db.session.execute(
            sa.text("SELECT customer_id, contact_id FROM follow_up WHERE subject = :s"), {"s": subject}))


def _lookup_ids(c: Any, url: str) -> set[int]:
    r = c.get(url)
    assert r.status_code == 200, r.text[:500]
    return {row["id"] for row in r.json["results"]}


def test_a_form_from_a_record_tab_names_its_record_fixed(app: Any, world: dict[str, Any]) -> None:
    c = _client(app, world["a"])
    html = c.get(f"/followupview/add?_flt_0_customer={world['甲']}").text
    fixed = html[html.index('crm-fixed'):].split("</div>\n    </div>", 1)[0]
    assert f"表单客户甲{world['tag']}" in fixed and f'href="/customerview/show/{world["甲"]}"' in fixed
    assert f'<input type="hidden" id="customer" name="customer" value="{world["甲"]}">' in fixed
    assert '<select' not in fixed and not re.search(r'<select[^>]*name="customer"', html)  # no dropdown to change it
    contact = re.search(r'<select[^>]*name="contact"[^>]*>', html).group(0)
    assert 'data-crm-within="customer"' in contact  # its lookup asks with the fixed customer
    assert 'class="btn btn-primary btn-lg crm-save"' in html and "crm-form-actions" in html


def test_the_lookup_is_narrowed_by_the_chosen_or_fixed_parent(app: Any, world: dict[str, Any]) -> None:
    c = _client(app, world["a"])
    everything = _lookup_ids(c, "/followupview/lookup/contact")
    assert {world["甲1"], world["甲2"], world["乙1"]} <= everything and world["丙1"] not in everything  # scope
    assert _lookup_ids(c, f"/followupview/lookup/contact?within={world['甲']}") == {world["甲1"], world["甲2"]}
    assert _lookup_ids(c, f"/followupview/lookup/contact?within={world['乙']}") == {world["乙1"]}
    assert _lookup_ids(c, f"/followupview/lookup/contact?within={world['丙']}") == set()  # another's customer: nothing
    assert _lookup_ids(c, f"/followupview/lookup/contact?within={world['甲']}&q=甲二") == {world["甲2"]}


def test_saved_from_the_tab_it_goes_back_to_the_record_page_on_that_tab(app: Any, world: dict[str, Any]) -> None:
    c = _client(app, world["a"])
    url = f"/followupview/add?_flt_0_customer={world['甲']}"
    subject = f"从客户页新增{world['tag']}"
    r = c.post(url, data={"csrf_token": csrf_token(c.get(url).text), "customer": str(world["甲"]),
                          **_follow_up(subject, contact=world["甲2"])})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/customerview/show/{world['甲']}#FollowUpView")
    assert _saved(app, subject) == [(world["甲"], world["甲2"])]
    subject = f"无需回传客户{world['tag']}"  # the address alone fixes it
    r = c.post(url, data={"csrf_token": csrf_token(c.get(url).text), **_follow_up(subject)})
    assert r.status_code == 302 and _saved(app, subject) == [(world["甲"], None)]


def test_from_a_contact_tab_its_customer_is_fixed_too(app: Any, world: dict[str, Any]) -> None:
    """A follow-up added from a contact's page belongs to that contact's customer: both fixed."""
    c = _client(app, world["a"])
    url = f"/followupview/add?_flt_0_contact={world['甲1']}"
    html = c.get(url).text
    assert f'name="contact" value="{world["甲1"]}"' in html and f'name="customer" value="{world["甲"]}"' in html
    assert not re.search(r'<select[^>]*name="(customer|contact)"', html)
    assert f"表单客户甲{world['tag']}" in html and f"甲一{world['tag']}" in html
    subject = f"从联系人页新增{world['tag']}"
    r = c.post(url, data={"csrf_token": csrf_token(html), "customer": str(world["乙"]), **_follow_up(subject)})
    assert r.status_code == 200 and "不能改为别的记录" in r.text and _saved(app, subject) == []  # not another customer
    r = c.post(url, data={"csrf_token": csrf_token(html), "customer": str(world["甲"]), "contact": str(world["甲1"]), **_follow_up(subject)})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/contactview/show/{world['甲1']}#FollowUpView")
    assert _saved(app, subject) == [(world["甲"], world["甲1"])]


def test_a_contact_of_another_customer_is_refused_on_the_field(app: Any, world: dict[str, Any]) -> None:
    c = _client(app, world["a"])
    for url, extra in ((f"/followupview/add?_flt_0_customer={world['甲']}", {}),  # from the tab
                       ("/followupview/add", {"customer": world["甲"]})):  # the plain form, customer chosen
        subject = f"错配联系人{uuid.uuid4().hex[:6]}"
        r = c.post(url, data={"csrf_token": csrf_token(c.get(url).text),
                              **_follow_up(subject, contact=world["乙1"], **extra)})
        assert r.status_code == 200, r.headers
        field = r.text[r.text.index('name="contact"'):].split('class="form-group', 1)[0]
        assert "联系人须是所选客户的联系人" in field, field[:2000]
        assert _saved(app, subject) == []


def test_a_tampered_parent_is_refused(app: Any, world: dict[str, Any]) -> None:
    c = _client(app, world["a"])
    theirs = f"/followupview/add?_flt_0_customer={world['丙']}"
    assert c.get(theirs).status_code == 404  # another salesperson's customer: not even named
    assert f"表单客户丙{world['tag']}" not in c.get(theirs).text
    token = csrf_token(c.get("/followupview/add").text)
    subject = f"越权客户{world['tag']}"
    r = c.post(theirs, data={"csrf_token": token, "customer": str(world["丙"]), **_follow_up(subject)})
    assert r.status_code == 200 and "所选记录不存在或您无权选择" in r.text and _saved(app, subject) == []
    assert f"表单客户丙{world['tag']}" not in r.text
    mine = f"/followupview/add?_flt_0_customer={world['甲']}"  # the address fixes 甲; the post says 乙
    r = c.post(mine, data={"csrf_token": token, "customer": str(world["乙"]), **_follow_up(subject)})
    assert r.status_code == 200 and "不能改为别的记录" in r.text and _saved(app, subject) == []
    r = c.post(mine, data={"csrf_token": token, "customer": str(world["丙"]), **_follow_up(subject)})
    assert r.status_code == 200 and _saved(app, subject) == []


def test_hidden_fields_are_absent_from_the_forms_and_kept_by_a_save(app: Any, world: dict[str, Any]) -> None:
    """等级人工认定 (grade_override) is hidden from 业务员: it was shown as "(无权查看)" on the
    salesperson's own add form."""
    c = _client(app, world["a"])
    for url in ("/customerview/add", f"/customerview/edit/{world['甲']}"):
        html = c.get(url).text
        assert 'name="grade_override"' not in html and "无权查看" not in html and "等级人工认定" not in html, url
    admin = _client(app, "admin", ADMIN_PASSWORD)
    page = admin.get(f"/customerview/edit/{world['甲']}").text
    assert 'name="grade_override"' in page  # the administrator has it
    with app.app_context():
        session = app.extensions["crm"].db.session
        session.execute(sa.text("UPDATE customer SET grade_override = 'A', version = version + 1 WHERE id = :i"), {"i": world["甲"]})
        session.commit()
    url = f"/customerview/edit/{world['甲']}"
    page = c.get(url).text
    version = re.search(r'name="crm_version" type="hidden" value="(\d+)"', page)
    assert version, page[:3000]
    r = c.post(url, data={"csrf_token": csrf_token(page), "crm_version": version.group(1), "name": f"表单客户甲{world['tag']}改",
                          "urgency": "normal", "grade_override": "C"})
    assert r.status_code == 302, r.text[:3000]
    assert _one(app, "SELECT name FROM customer WHERE id = :i", i=world["甲"]) == f"表单客户甲{world['tag']}改"
    assert _one(app, "SELECT grade_override FROM customer WHERE id = :i", i=world["甲"]) == "A"  # neither cleared nor set


@pytest.mark.slow  # generates and serves another workbook in a fresh interpreter
def test_a_second_domain_gets_the_same_forms_with_no_code_change(tmp_path: Any) -> None:
    """The library, whose loan may name the copy lent: copy → book is a tie of the structure alone."""
    import json
    import os
    import subprocess
    import sys

    from generator import generate
    from tests.probe_forms import library_with_copies
    from tests.probes import ROOT
    from tests.workbooks import library_sheets, write_workbook

    workbook = write_workbook(tmp_path / "library.xlsx", library_with_copies(library_sheets()))
    out = tmp_path / "library_app"
    generate(workbook, out)
    env = {**os.environ, "CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(out),
           "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'library.sqlite'}"}
    proc = subprocess.run([sys.executable, "-m", "tests.probe_forms"], cwd=ROOT, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    ids = r["ids"]
    assert r["fixed"] == [True, True, False, True]  # the book named, posted, not a dropdown; the copy asks by it
    assert r["lookup"] == sorted([ids["HL-001"], ids["HL-002"]])  # that book's copies only
    assert r["mismatch"] == [200, True]  # another book's copy: refused on the field
    assert r["saved"] == [302, f"/bookview/show/{ids['红楼梦']}#LoanView"]
    assert r["loans"] == [["红楼梦", "HL-002"]]
    assert r["hidden_absent"] == [True, True, True]
    assert r["locked_absent"] == [True, True]  # not theirs to set: not on the add form (empty), shown on the edit form
    assert r["hidden_kept"] == [302, "张三丰", "zs@example.cn"]
