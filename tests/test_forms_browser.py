"""Forms with context in a real browser (Debian's Chromium): a follow-up added from a customer's
page, its contact chosen among that customer's contacts only, saved, back on the customer's page;
at 390 px the form does not overflow and 保存 is in view without scrolling."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.test_browser import ARTIFACTS, CHROMIUM_ARGS, browser, server  # noqa: F401 - fixtures
from tests.test_forms import _saved

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow: Chromium


@pytest.fixture(scope="module")
def customers(app: Any) -> dict[str, Any]:
    """Two customers of the administrator, each with two contacts (made through the API)."""
    from tests.conftest import api_token

    c = app.test_client()
    h = api_token(c, "admin", ADMIN_PASSWORD)
    tag = uuid.uuid4().hex[:5]
    out: dict[str, Any] = {"tag": tag}
    for key in ("甲", "乙"):
        r = c.post("/api/v1/customer/", json={"name": f"浏览器客户{key}{tag}", "urgency": "normal"}, headers=h)
        assert r.status_code == 201, r.text
        out[key] = r.json["id"]
        out[f"{key}contacts"] = []
        for n in (1, 2):
            name = f"{key}联系人{n}号{tag}"
            r = c.post("/api/v1/contact/", json={"name": name, "customer": out[key], "active": True}, headers=h)
            assert r.status_code == 201, r.text
            out[f"{key}contacts"].append(name)
    return out


def _signed_in(browser: Any, server: str, width: int, height: int) -> Any:  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    pg = context.new_page()
    pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    pg.goto(f"{server}/login/")
    pg.fill("#username", "admin")
    pg.fill("#password", ADMIN_PASSWORD)
    pg.click("button[type=submit], input[type=submit]")
    pg.wait_for_load_state("networkidle")
    return pg


@pytest.fixture
def wide(browser: Any, server: str) -> Iterator[Any]:  # noqa: F811
    pg = _signed_in(browser, server, 1440, 900)
    yield pg
    pg.context.close()


def test_a_follow_up_from_the_customer_page_offers_only_its_contacts(app: Any, wide: Any, server: str,  # noqa: F811
                                                                     customers: dict[str, Any]) -> None:
    page, tag = wide, customers["tag"]
    loads: list[str] = []
    page.on("framenavigated", lambda frame: loads.append(frame.url) if frame == page.main_frame else None)
    page.goto(f"{server}/customerview/show/{customers['甲']}")  # load 1: the customer's page
    page.locator(".nav-tabs a[href='#FollowUpView']").click()  # click 1: its follow-ups tab
    page.locator("#FollowUpView a[href*='/followupview/add']").click()  # click 2, load 2: 新增 on that tab
    page.wait_for_load_state("networkidle")

    fixed = page.locator(".crm-fixed")
    assert f"浏览器客户甲{tag}" in fixed.inner_text()  # the parent, named …
    assert page.locator("select[name=customer]").count() == 0  # … and not to be changed
    page.fill("#subject", f"客户页跟进{tag}")  # click 3 (typing)
    page.fill("#planned_on", "2026-12-01")  # click 4
    page.locator("select[name=contact] + .select2 .select2-selection").click()  # click 5: the contact lookup
    options = page.locator(".select2-results__option:not(.loading-results)")
    options.filter(has_text=customers["甲contacts"][0]).wait_for(timeout=10_000)
    offered = options.all_inner_texts()
    assert sorted(offered) == sorted(customers["甲contacts"]), offered  # that customer's contacts only
    assert not any(name in text for name in customers["乙contacts"] for text in offered)
    page.screenshot(path=str(ARTIFACTS / "forms-follow-up-from-customer.png"), full_page=True)
    options.filter(has_text=customers["甲contacts"][1]).click()  # click 6
    page.locator("button.crm-save").click()  # click 7, load 3: saved, back on the customer's page
    page.wait_for_load_state("networkidle")

    assert page.url.endswith(f"/customerview/show/{customers['甲']}#FollowUpView")
    assert page.locator("#FollowUpView.active").is_visible()  # on the tab it was added from
    page.locator("#FollowUpView td", has_text=f"客户页跟进{tag}").first.wait_for()  # its list, loaded as the tab opens
    assert len(loads) == 3, loads  # the customer's page, the form, the customer's page again
    with app.app_context():
        import sqlalchemy as sa

        contact = app.extensions["crm"].db.session.execute(
            sa.text("SELECT id FROM contact WHERE name = :n"), {"n": customers["甲contacts"][1]}).scalar_one()
    assert _saved(app, f"客户页跟进{tag}") == [(customers["甲"], contact)]


@pytest.mark.parametrize("path", ["/followupview/add?_flt_0_customer={甲}", "/customerview/add"])
def test_on_a_phone_the_form_fits_and_save_is_in_view(browser: Any, server: str, customers: dict[str, Any],  # noqa: F811
                                                      path: str) -> None:
    page = _signed_in(browser, server, 390, 844)
    try:
        page.goto(server + path.format(**customers))
        page.wait_for_load_state("networkidle")
        width, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        assert width <= inner, (width, inner)  # no sideways scrolling
        box = page.locator("button.crm-save").bounding_box()
        assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 844 and box["height"] >= 44, box
        row = page.locator(".crm-field:has(> label)").first
        label, field = row.locator("> label").bounding_box(), row.locator("> .crm-input").bounding_box()
        assert label and field and field["y"] >= label["y"] + label["height"] - 1  # the label above its input
        select2 = page.locator(".crm-form .select2-container").first.bounding_box()
        assert select2 and select2["x"] + select2["width"] <= inner
        name = "phone-follow-up-from-customer" if "followup" in path else "phone-customer-add"
        page.screenshot(path=str(ARTIFACTS / f"forms-{name}.png"))
    finally:
        page.context.close()
