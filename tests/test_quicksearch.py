"""Quick search (issue 24, part 3): the top bar's JSON search and results page, the box above every
list (``?q=``), and titles in lists that open the record — within the row scope, never on a hidden
or encrypted field; the second-domain workbook gets the same with no code change."""

from __future__ import annotations

import dataclasses
import io
import re
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from app.web import quicksearch
from tests.conftest import ADMIN_PASSWORD, api_token, login, person
from tests.migration_helpers import database
from tests.probes import run_probe
from tests.workbooks import library_sheets, write_workbook

SALES_PASSWORD = "Sales-Pass-123"


def token() -> str:
    """A word no other test's records hold (Chinese, as names are)."""
    return "澜" + "".join("甲乙丙丁戊己庚辛壬癸"[int(c, 16) % 10] for c in uuid.uuid4().hex[:5])


def add(client: Any, headers: dict[str, str], entity: str, **values: Any) -> int:
    r = client.post(f"/api/v1/{entity}/", json=values, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json["id"])


def found(client: Any, q: str) -> dict[str, Any]:
    r = client.get("/search/json?" + urllib.parse.urlencode({"q": q}))
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    return dict(r.json)


def titles(answer: dict[str, Any], entity: str | None = None) -> list[str]:
    return [i["title"] for g in answer["groups"] if entity in (None, g["entity"]) for i in g["items"]]


@pytest.fixture
def sales(app: Any) -> tuple[str, str]:
    """Two salespeople (row scope ``own`` on customers), each their own login."""
    a = person(app, "qs_sales_a", ["业务员"], SALES_PASSWORD)
    b = person(app, "qs_sales_b", ["业务员"], SALES_PASSWORD)
    return a, b


def signed_in(app: Any, username: str, password: str = SALES_PASSWORD) -> Any:
    c = app.test_client()
    assert login(c, username, password).status_code in (200, 302)
    return c


def test_three_characters_of_a_name_find_the_customer_with_a_link_to_it(app: Any, admin_client: Any) -> None:
    word = token()
    headers = api_token(admin_client, "admin", ADMIN_PASSWORD)
    name = f"广州{word}物流集团有限公司"
    pk = add(admin_client, headers, "customer", name=name)
    answer = found(admin_client, word[1:4])  # three characters from inside the name
    customers = next(g for g in answer["groups"] if g["entity"] == "customer")
    assert customers["label"] == "客户档案"
    item = next(i for i in customers["items"] if i["id"] == pk)
    assert item["title"] == name and item["url"] == f"/customerview/show/{pk}"
    code = admin_client.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["code"]
    assert item["sub"] == code
    assert admin_client.get(item["url"]).status_code == 200
    by_number = found(admin_client, code)  # the number finds it too
    assert [i["id"] for g in by_number["groups"] if g["entity"] == "customer" for i in g["items"]] == [pk]


def test_results_are_grouped_by_entity_in_menu_order_and_say_where_else_they_matched(app: Any, admin_client: Any) -> None:
    word = token()
    headers = api_token(admin_client, "admin", ADMIN_PASSWORD)
    customer = add(admin_client, headers, "customer", name=f"{word}贸易公司", phone="020-8888 1234")
    add(admin_client, headers, "contact", customer=customer, name=f"{word}经理")
    answer = found(admin_client, word)
    assert [g["entity"] for g in answer["groups"]] == ["customer", "contact"]
    assert [g["label"] for g in answer["groups"]] == ["客户档案", "联系人"]
    assert titles(answer, "contact") == [f"{word}经理"]
    by_phone = found(admin_client, "8888 1234")  # a search field other than the title: said under the title
    item = next(i for g in by_phone["groups"] if g["entity"] == "customer" for i in g["items"] if i["id"] == customer)
    assert "电话:020-8888 1234" in item["sub"]
    both = found(admin_client, f"{word} 8888")  # every word must be found, each in any field
    assert [i["id"] for g in both["groups"] if g["entity"] == "customer" for i in g["items"]] == [customer]
    assert titles(found(admin_client, f"{word} 不存在的词")) == []


def test_each_entity_and_the_whole_answer_are_capped(app: Any, admin_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    word = token()
    headers = api_token(admin_client, "admin", ADMIN_PASSWORD)
    ids = [add(admin_client, headers, "customer", name=f"{word}分公司{n}") for n in range(8)]
    for n in range(3):
        add(admin_client, headers, "contact", customer=ids[0], name=f"{word}联系人{n}")
    answer = found(admin_client, word)
    customers = next(g for g in answer["groups"] if g["entity"] == "customer")
    assert [i["id"] for i in customers["items"]] == sorted(ids, reverse=True)[: quicksearch.PER_ENTITY]  # newest first
    assert customers["more"] == "/customerview/list/?" + urllib.parse.urlencode({"q": word}) and answer["more"] is True
    more = admin_client.get(customers["more"]).text  # the list box goes on where the top bar stops
    assert len(set(re.findall(rf"{word}分公司\d", more))) == 8
    monkeypatch.setattr(quicksearch, "TOTAL_CAP", 4)
    capped = found(admin_client, word)
    assert sum(len(g["items"]) for g in capped["groups"]) <= 4
    assert {g["entity"] for g in capped["groups"]} == {"customer", "contact"}  # every entity found keeps a place


def test_percent_and_underscore_are_plain_characters(app: Any, admin_client: Any) -> None:
    word = token()
    headers = api_token(admin_client, "admin", ADMIN_PASSWORD)
    add(admin_client, headers, "customer", name=f"{word}百分之100%公司")
    add(admin_client, headers, "customer", name=f"{word}百分之1000公司")
    add(admin_client, headers, "customer", name=f"{word}下划线_公司")
    add(admin_client, headers, "customer", name=f"{word}下划线X公司")
    assert titles(found(admin_client, f"{word} 100%"), "customer") == [f"{word}百分之100%公司"]
    assert titles(found(admin_client, f"{word} 线_"), "customer") == [f"{word}下划线_公司"]
    assert titles(found(admin_client, f"{word} \\"), "customer") == []
    page = admin_client.get("/customerview/list/?" + urllib.parse.urlencode({"q": f"{word} %"})).text
    assert f"{word}百分之100%公司" in page and f"{word}百分之1000公司" not in page


def test_an_empty_or_overlong_query_asks_nothing(app: Any, admin_client: Any) -> None:
    for q in ("", "   ", "\t"):
        assert found(admin_client, q) == {"q": "", "groups": [], "more": False, "timed_out": []}
    long = found(admin_client, "长" * 5000)
    assert long["q"] == "长" * quicksearch.MAX_QUERY and long["groups"] == []
    many = found(admin_client, " ".join("abcdefgh"))
    assert many["q"] == "a b c d e"  # at most MAX_TERMS words
    assert admin_client.get("/search/?q=").status_code == 200


def test_signed_out_people_get_nothing(app: Any) -> None:
    client = app.test_client()  # never signed in (a logout would end the shared admin's other sessions)
    assert client.get("/search/json?q=公司").status_code == 401
    page = client.get("/search/?q=公司")
    assert page.status_code == 302 and "/login/" in page.headers["Location"]


def test_a_salesperson_finds_only_their_own_records(app: Any, sales: tuple[str, str]) -> None:
    word = token()
    a, b = (signed_in(app, u) for u in sales)
    mine = add(a, api_token(a, sales[0], SALES_PASSWORD), "customer", name=f"{word}甲方客户")
    theirs = add(b, api_token(b, sales[1], SALES_PASSWORD), "customer", name=f"{word}乙方客户")
    assert [i["id"] for g in found(a, word)["groups"] for i in g["items"]] == [mine]
    assert [i["id"] for g in found(b, word)["groups"] for i in g["items"]] == [theirs]
    assert f"{word}乙方客户" not in titles(found(a, f"{word}乙方"))
    listed = a.get("/customerview/list/?" + urllib.parse.urlencode({"q": word})).text
    assert f"{word}甲方客户" in listed and f"{word}乙方客户" not in listed
    page = a.get("/search/?" + urllib.parse.urlencode({"q": word})).text
    assert f"{word}甲方客户" in page and f"{word}乙方客户" not in page
    export = a.get("/customerview/export/?" + urllib.parse.urlencode({"q": word}))
    if export.status_code == 200:  # where the role may export: the same rows
        sheet = load_workbook(io.BytesIO(export.data)).active
        names = {c.value for row in sheet.iter_rows() for c in row}
        assert f"{word}甲方客户" in names and f"{word}乙方客户" not in names


def test_entities_the_person_may_not_list_are_not_searched(app: Any, admin_client: Any) -> None:
    word = token()
    headers = api_token(admin_client, "admin", ADMIN_PASSWORD)
    add(admin_client, headers, "customer_development", candidate_name=f"{word}候选客户")
    assert titles(found(admin_client, word), "customer_development") == [f"{word}候选客户"]
    with app.app_context():
        spec = app.extensions["crm"].spec
        role = next(r.name for r in spec.roles if not r.admin and not any(
            p.role == r.name and p.entity == "customer_development" and "list" in p.rights for p in spec.permissions))
    user = person(app, f"qs_{uuid.uuid4().hex[:6]}", [role], SALES_PASSWORD)
    assert "customer_development" not in {g["entity"] for g in found(signed_in(app, user), word)["groups"]}


def test_a_hidden_field_is_not_searched_nor_shown(app: Any, sales: tuple[str, str], admin_client: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A salesperson whose role hides the customers' phone (a search field) finds nothing by it,
    in the top bar or the list box; the administrator does."""
    word = token()
    a = signed_in(app, sales[0])
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    pk = add(a, api_token(a, sales[0], SALES_PASSWORD), "customer", name=f"{word}隐藏电话客户", phone=phone)
    assert [i["id"] for g in found(a, phone[2:9])["groups"] for i in g["items"]] == [pk]  # visible: found
    crm = app.extensions["crm"]
    grants = tuple(dataclasses.replace(p, hidden_fields=(*p.hidden_fields, "phone")) if (p.role, p.entity) == ("业务员", "customer")
                   else p for p in crm.spec.permissions)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, permissions=grants))
    assert found(a, phone[2:9])["groups"] == []
    listed = a.get("/customerview/list/?" + urllib.parse.urlencode({"q": phone[2:9]})).text
    assert f"{word}隐藏电话客户" not in listed
    by_name = found(a, word)
    assert [i["id"] for g in by_name["groups"] for i in g["items"]] == [pk] and phone not in str(by_name)
    assert pk in [i["id"] for g in found(admin_client, phone[2:9])["groups"] for i in g["items"]]


def test_a_hidden_title_is_neither_searched_nor_shown(app: Any, sales: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    word = token()
    a = signed_in(app, sales[0])
    headers = api_token(a, sales[0], SALES_PASSWORD)
    pk = add(a, headers, "customer", name=f"{word}隐藏名称客户")
    code = a.get(f"/api/v1/customer/{pk}", headers=headers).json["result"]["code"]
    crm = app.extensions["crm"]
    grants = tuple(dataclasses.replace(p, hidden_fields=(*p.hidden_fields, "name")) if (p.role, p.entity) == ("业务员", "customer")
                   else p for p in crm.spec.permissions)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, permissions=grants))
    assert titles(found(a, word), "customer") == []
    by_code = found(a, code)
    assert titles(by_code, "customer") == [code] and word not in str(by_code)


def test_an_encrypted_field_is_never_matched(app: Any, admin_client: Any) -> None:
    word = token()
    headers = api_token(admin_client, "admin", ADMIN_PASSWORD)
    customer = add(admin_client, headers, "customer", name=f"{word}配方客户")
    add(admin_client, headers, "confidential_formula", customer=customer, product_name=f"{word}胶水",
        formula_content=f"秘方{word}甘草", review_due="2030-01-01")
    answer = found(admin_client, f"秘方{word}")
    assert answer["groups"] == []
    assert titles(found(admin_client, f"{word}胶水"), "confidential_formula") == [f"{word}胶水"]
    with app.app_context():
        spec = app.extensions["crm"].spec
        for e in spec.entities:
            assert not any(f.encrypted for f in quicksearch.search_fields(spec, e, set())), e.name


def test_list_box_filters_joins_the_filters_and_links_titles(app: Any, admin_client: Any) -> None:
    word = token()
    headers = api_token(admin_client, "admin", ADMIN_PASSWORD)
    east = add(admin_client, headers, "customer", name=f"{word}<b>东区</b>客户", region="east")
    add(admin_client, headers, "customer", name=f"{word}北区客户", region="north")
    q = urllib.parse.urlencode({"q": word})
    page = admin_client.get(f"/customerview/list/?{q}").text
    assert f"{word}北区客户" in page and f"{word}&lt;b&gt;东区&lt;/b&gt;客户" in page and "<b>东区" not in page
    assert re.search(r'<input id="crm-listq-input"[^>]*name="q" value="' + word, page)  # prefilled
    link = re.search(rf'<a class="crm-title-link" href="(/customerview/show/\d+)">{word}&lt;b&gt;东区', page)
    assert link and link.group(1) == f"/customerview/show/{east}"
    both = admin_client.get(f"/customerview/list/?{q}&_flt_0_region=east").text  # with a FAB filter
    assert f"{word}&lt;b&gt;东区&lt;/b&gt;客户" in both and f"{word}北区客户" not in both
    assert re.search(r'<input type="hidden" name="_flt_0_region" value="east">', both)  # the box keeps the filter
    assert re.search(rf'<input type="hidden" name="q" value="{word}">', both)  # the filter form keeps the words
    assert re.search(r'class="btn btn-default crm-listq-clear" href="/customerview/list/\?_flt_0_region=east"', both)
    none = admin_client.get("/customerview/list/?" + urllib.parse.urlencode({"q": word + "不存在"})).text
    assert word + "北区" not in none
    export = admin_client.get(f"/customerview/export/?{q}&_flt_0_region=east")  # the export button keeps both
    assert export.status_code == 200
    names = {c.value for row in load_workbook(io.BytesIO(export.data)).active.iter_rows() for c in row}
    assert f"{word}<b>东区</b>客户" in names and f"{word}北区客户" not in names


def test_every_list_has_the_box_and_links_its_titles(app: Any, admin_client: Any) -> None:
    crm = app.extensions["crm"]
    for name, view, *_rest in crm.generated.views.REGISTRY:
        page = admin_client.get(f"/{view.__name__.lower()}/list/")
        assert page.status_code == 200, name
        assert 'id="crm-listq-input"' in page.text, name
        rows = page.text.count('class="action_check"') or page.text.count("/show/")
        if rows and any(c in view.list_columns for c in (crm.spec.entity(name).title_field, "code")):
            assert 'class="crm-title-link"' in page.text, name


def test_the_top_bar_box_is_on_every_page_for_signed_in_people(app: Any, admin_client: Any) -> None:
    page = admin_client.get("/dashboard/").text
    assert 'role="combobox"' in page and 'aria-controls="crm-qs-list"' in page and 'role="listbox"' in page
    assert "crm/quicksearch.js" in page and "crm/quicksearch.css" in page
    assert 'id="crm-qs-input"' in admin_client.get("/customerview/list/").text
    admin_client.get("/lang/en")
    assert 'placeholder="Search names, numbers…"' in admin_client.get("/dashboard/").text
    admin_client.get("/lang/zh")
    assert 'id="crm-qs-input"' not in app.test_client().get("/login/").text  # nobody signed in: no box


def test_the_second_domain_workbook_gets_the_search_unchanged(tmp_path: Path) -> None:
    from generator import generate

    sheets = library_sheets()
    for grant in sheets["permissions"]:
        if (grant["role"], grant["entity"]) == ("馆员", "member"):
            grant["scope"] = "own"  # a librarian finds the members they look after
    workbook = write_workbook(tmp_path / "library.xlsx", sheets)
    out = tmp_path / "library_app"
    generate(workbook, out)
    env = {"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(out), "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'library.sqlite'}"}
    r = run_probe("library_search", env)
    assert r["book"] == [["book", "图书", ["红楼梦"], "/bookview/show/1"]]
    assert r["loan_by_number"][0][:2] == ["loan", "借阅"] and r["loan_by_number"][0][2][0].startswith("JY-")
    assert r["member_grouped"] == ["member"]
    assert r["list_box"] == [True, False, True]
    assert r["librarian_own"] == [["王读者"], []]


@pytest.mark.postgres
def test_search_on_postgres_is_bounded_and_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A few thousand records on PostgreSQL: the answer within the scope, and how long it takes
    (printed); a query past the time budget is cancelled and named, the request goes on."""
    from app import create_app
    from app.access.accounts import create_first_admin
    from app.migrate.create import create_schema
    from app.ops.demo import make_demo_data

    with database("postgres", tmp_path) as url:
        application = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "RATELIMIT_ENABLED": False})
        try:
            create_schema(application)
            create_first_admin(application, "admin", ADMIN_PASSWORD)
            made = make_demo_data(application, 3000, seed=3, related=3000)
            c = application.test_client()
            login(c, "admin", ADMIN_PASSWORD)
            headers = api_token(c, "admin", ADMIN_PASSWORD)
            word = token()
            pk = add(c, headers, "customer", name=f"广州{word}物流有限公司")
            found(c, "公司")  # warm up
            timings = []
            for q in (word[1:4], "物流", "公司", "KH-", "不存在的名字"):
                started = time.perf_counter()
                answer = found(c, q)
                timings.append((q, (time.perf_counter() - started) * 1000, sum(len(g["items"]) for g in answer["groups"])))
                assert sum(len(g["items"]) for g in answer["groups"]) <= quicksearch.TOTAL_CAP
            assert [i["id"] for g in found(c, word[1:4])["groups"] for i in g["items"]] == [pk]
            with capsys.disabled():
                print(f"\nquick search on PostgreSQL, {sum(made.values())} records over {len(made)} entities:")
                for q, ms, n in timings:
                    print(f"  {q!r}: {ms:.1f} ms, {n} shown")
            assert max(ms for _q, ms, _n in timings) < 2000
            with application.test_request_context():
                session = application.extensions["crm"].db.session
                before = session.execute(sa.text("SHOW statement_timeout")).scalar_one()
                started = time.perf_counter()
                slow = sa.select(sa.func.pg_sleep(1))
                assert quicksearch._rows(session, slow, time.monotonic() + 0.05) is None
                assert time.perf_counter() - started < 0.9
                assert session.execute(sa.text("SELECT 1")).scalar_one() == 1  # the transaction goes on
                assert session.execute(sa.text("SHOW statement_timeout")).scalar_one() == before
                assert quicksearch._rows(session, sa.select(sa.literal(1)), time.monotonic() - 1) is None  # budget spent
        finally:
            with application.app_context():
                application.extensions["crm"].db.session.remove()
                application.extensions["crm"].db.engine.dispose()
