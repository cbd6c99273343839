"""A record page's tabs (app.web.recordtabs): counted in one statement within the reader's row
scope, offered only to those who may list the related entity, each list loaded when its tab opens
(in Chromium: the page's HTML holds none of the related rows; opening the tab shows them), and at
390 px the tabs are one selector."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import ADMIN_PASSWORD, api_token, login, person
from tests.test_browser import CHROMIUM_ARGS, browser, server  # noqa: F401 - fixtures

PASSWORD = "tabs-Pass-2026"  # noqa: S105 - test-only
SHOTS = Path("/work/shots/perf")


@pytest.fixture(scope="module")
def world(app: Any) -> dict[str, Any]:
    """A customer of a salesperson with three contacts: two of hers, one of the administrator's."""
    c = app.test_client()
    h = api_token(c, "admin", ADMIN_PASSWORD)
    tag = uuid.uuid4().hex[:5]
    sales = person(app, f"tabs_sales_{tag}", ["业务员"], PASSWORD)
    with app.app_context():
        sales_id = app.extensions["crm"].appbuilder.sm.find_user(username=sales).id
    r = c.post("/api/v1/customer/", json={"name": f"标签页客户{tag}", "urgency": "normal"}, headers=h)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = {"tag": tag, "sales": sales, "customer": r.json["id"], "mine": [], "theirs": []}
    owners: dict[int, int] = {}
    for n, hers in enumerate([True, True, False]):
        name = f"标签页联系人{n}号{tag}"
        r = c.post("/api/v1/contact/", json={"name": name, "customer": out["customer"], "active": True}, headers=h)
        assert r.status_code == 201, r.text
        out["mine" if hers else "theirs"].append(name)
        if hers:
            owners[r.json["id"]] = sales_id
    with app.app_context():  # the owner is the creator's through the API: hand the customer and two contacts to her
        session = app.extensions["crm"].db.session
        session.execute(sa.text("UPDATE customer SET owner_id = :o WHERE id = :i"), {"o": sales_id, "i": out["customer"]})
        for pk, owner in owners.items():
            session.execute(sa.text("UPDATE contact SET owner_id = :o WHERE id = :i"), {"o": owner, "i": pk})
        session.commit()
    return out


def _badge(html: str, name: str) -> str:
    m = re.search(rf'href="#{name}"[^>]*>[^<]*<span class="badge[^"]*">([^<]+)</span>', html)
    return m.group(1) if m else ""


def test_tab_counts_and_lists_keep_the_readers_row_scope(app: Any, world: dict[str, Any]) -> None:
    admin = app.test_client()
    login(admin, "admin", ADMIN_PASSWORD)
    page = admin.get(f"/customerview/show/{world['customer']}")
    assert _badge(page.text, "ContactView") == "3" and _badge(page.text, "SurveyResponseView") == "0"

    sales = app.test_client()
    login(sales, world["sales"], PASSWORD)
    page = sales.get(f"/customerview/show/{world['customer']}")
    assert page.status_code == 200
    assert _badge(page.text, "ContactView") == "2"  # her own contacts only, as her contact list shows
    assert 'href="#SurveyResponseView"' not in page.text  # she may not list survey answers: no tab
    tab = sales.get(f"/customerview/show/{world['customer']}", headers={"X-CRM-Tab": "ContactView"})
    assert all(n in tab.text for n in world["mine"]) and not any(n in tab.text for n in world["theirs"])
    assert sales.get(f"/customerview/show/{world['customer']}", headers={"X-CRM-Tab": "SurveyResponseView"}).status_code == 404


@pytest.fixture
def signed_in(browser: Any, server: str) -> Iterator[Any]:  # noqa: F811
    contexts: list[Any] = []

    def open_at(width: int) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
        contexts.append(context)
        pg = context.new_page()
        pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
        pg.goto(f"{server}/login/")
        pg.fill("#username", "admin")
        pg.fill("#password", ADMIN_PASSWORD)
        pg.click("button[type=submit], input[type=submit]")
        pg.wait_for_load_state("networkidle")
        return pg

    yield open_at
    for context in contexts:
        context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_a_tab_loads_its_list_when_opened(signed_in: Any, server: str, world: dict[str, Any]) -> None:  # noqa: F811
    page = signed_in(1440)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.headers.get("x-crm-tab", "")) if "/customerview/show/" in r.url else None)
    html = page.request.get(f"{server}/customerview/show/{world['customer']}").text()
    assert not any(n in html for n in world["mine"] + world["theirs"])  # the page itself holds no related row
    page.goto(f"{server}/customerview/show/{world['customer']}")
    page.evaluate("() => localStorage.removeItem('lastTab')")
    page.goto(f"{server}/customerview/show/{world['customer']}")
    page.wait_for_load_state("networkidle")
    assert page.locator("#Home.active").is_visible() and asked[-1] == ""  # the detail, no tab asked for
    assert page.locator("#ContactView td").count() == 0
    page.locator(".nav-tabs a[href='#ContactView']").click()
    for name in world["mine"] + world["theirs"]:
        page.locator("#ContactView td", has_text=name).first.wait_for()
    assert asked[-1] == "ContactView"  # loaded as it opened
    page.locator(".nav-tabs a[href='#Home']").click()
    page.screenshot(path=str(SHOTS / "record-1440.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.slow
def test_at_390_px_the_tabs_are_one_selector(signed_in: Any, server: str, world: dict[str, Any]) -> None:  # noqa: F811
    page = signed_in(390)
    page.goto(f"{server}/customerview/show/{world['customer']}")
    page.evaluate("() => localStorage.removeItem('lastTab')")
    page.goto(f"{server}/customerview/show/{world['customer']}")
    page.wait_for_load_state("networkidle")
    assert not page.locator(".crm-record-tabs").is_visible()  # no rows of wrapped tabs
    select = page.locator("select.crm-tab-select")
    assert select.is_visible() and select.input_value() == "Home"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "record-390.png"), full_page=True)
    select.select_option("ContactView")
    page.locator("#ContactView td", has_text=world["mine"][0]).first.wait_for()
    assert page.locator("#ContactView.active").is_visible() and not page.locator("#Home").is_visible()
    page.screenshot(path=str(SHOTS / "record-390-contacts.png"), full_page=True)
