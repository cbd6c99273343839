"""The top bar's search in a real browser (Debian's Chromium): a customer found by three characters
of its name from any page in one interaction — type, the result is there, Enter (or a tap) opens
it — by keyboard alone, on a 390 px phone, and with a Chinese input method composing."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.conftest import ADMIN_PASSWORD, api_token
from tests.test_browser import ARTIFACTS, browser, page, server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow: Chromium


def customer(app: Any, name: str) -> int:
    c = app.test_client()
    r = c.post("/api/v1/customer/", json={"name": name}, headers=api_token(c, "admin", ADMIN_PASSWORD))
    assert r.status_code == 201, r.text
    return int(r.json["id"])


def word() -> str:
    return "".join("澄沁澜湛溯泓瀚渊溪涟"[int(c, 16) % 10] for c in uuid.uuid4().hex[:4])


def watch(pg: Any) -> list[str]:
    """Console errors and refused scripts (a CSP violation is one) of the page."""
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_found_from_the_dashboard_and_another_list_in_one_interaction(app: Any, page: Any, server: str) -> None:  # noqa: F811
    w = word()
    name = f"广州{w}物流集团有限公司"
    pk = customer(app, name)
    errors = watch(page)
    page.goto(f"{server}/dashboard/")
    page.keyboard.press("/")  # keyboard only: the shortcut, three characters, Enter
    assert page.evaluate("document.activeElement.id") == "crm-qs-input"
    page.keyboard.type(w[:3])
    option = page.locator("#crm-qs-list [role=option]", has_text=name)
    option.wait_for()
    assert page.get_attribute("#crm-qs-input", "aria-expanded") == "true"
    assert page.locator("#crm-qs-list .crm-qs-group").first.inner_text() == "客户档案"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/customerview/show/{pk}")
    assert name in page.content()
    page.goto(f"{server}/contactview/list/")  # another entity's list: type, click the result
    page.click("#crm-qs-input")
    page.keyboard.type(w[1:4])
    page.locator("#crm-qs-list [role=option]", has_text=name).click()
    page.wait_for_url(f"**/customerview/show/{pk}")
    assert not errors, errors


def test_arrows_move_through_the_results_and_escape_closes(app: Any, page: Any, server: str) -> None:  # noqa: F811
    w = word()
    first, second = customer(app, f"{w}甲公司"), customer(app, f"{w}乙公司")
    page.goto(f"{server}/customerview/list/")
    page.keyboard.press("/")
    page.keyboard.type(w)
    page.locator("#crm-qs-list [role=option]", has_text=f"{w}甲公司").wait_for()
    box = page.locator("#crm-qs-input")
    options = page.locator("#crm-qs-list [role=option]")
    assert options.nth(0).get_attribute("aria-selected") == "true"  # the newest first, highlighted
    assert box.get_attribute("aria-activedescendant") == options.nth(0).get_attribute("id")
    page.keyboard.press("ArrowDown")
    assert options.nth(1).get_attribute("aria-selected") == "true" and options.nth(0).get_attribute("aria-selected") == "false"
    assert box.get_attribute("aria-activedescendant") == options.nth(1).get_attribute("id")
    page.keyboard.press("Escape")
    assert box.get_attribute("aria-expanded") == "false" and not page.locator("#crm-qs-list").is_visible()
    page.keyboard.press("ArrowDown")  # open again, on the next one
    assert page.locator("#crm-qs-list").is_visible()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/customerview/show/{first}")
    assert second != first
    page.go_back()
    page.locator("#crm-qs-input").fill("")
    page.keyboard.press("/")  # "/" inside a text field is typed, not a shortcut
    page.locator("#crm-listq-input").focus()
    page.keyboard.type("a/b")
    assert page.locator("#crm-listq-input").input_value() == "a/b"
    page.keyboard.press("Enter")  # the list box: the words as ?q=
    page.wait_for_url(re.compile(r".*/customerview/list/\?q=a%2Fb"))


def test_enter_before_a_result_opens_the_results_page(app: Any, page: Any, server: str) -> None:  # noqa: F811
    w = word()
    customer(app, f"{w}结果页公司")
    page.goto(f"{server}/dashboard/")
    page.click("#crm-qs-input")
    page.fill("#crm-qs-input", w)
    page.keyboard.press("Enter")  # at once, before the list came: the page of all results
    page.wait_for_url(re.compile(r".*/search/\?q="))
    assert f"{w}结果页公司" in page.locator(".crm-search-items").first.inner_text()


def test_on_a_phone_the_box_stays_on_screen_with_the_menu_folded(app: Any, browser: Any, server: str) -> None:  # noqa: F811
    w = word()
    name = f"深圳{w}电子有限公司"
    pk = customer(app, name)
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", has_touch=True, is_mobile=True)
    pg = context.new_page()
    pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    pg.goto(f"{server}/login/")
    pg.fill("#username", "admin")
    pg.fill("#password", ADMIN_PASSWORD)
    pg.click("input[type=submit], button[type=submit]")
    pg.wait_for_load_state("networkidle")
    pg.goto(f"{server}/customerview/list/")
    assert not pg.locator(".navbar-collapse").is_visible()  # the menu is folded into its button
    box = pg.locator("#crm-qs-input")
    assert box.is_visible()
    size = box.bounding_box()
    assert size is not None and size["width"] > 300 and size["y"] < 120
    box.tap()
    pg.keyboard.type(w[:3])
    option = pg.locator("#crm-qs-list [role=option]", has_text=name)
    option.wait_for()
    where = pg.locator("#crm-qs-list").bounding_box()
    assert where is not None and where["x"] >= 0 and where["x"] + where["width"] <= 390
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "quicksearch-390.png"))
    option.tap()
    pg.wait_for_url(f"**/customerview/show/{pk}")
    context.close()


def test_nothing_is_asked_while_the_input_method_composes(app: Any, page: Any, server: str) -> None:  # noqa: F811
    """Pinyin being typed (tai'da) is not searched; the characters it becomes are."""
    w = word()
    name = f"{w}泰达物流"
    customer(app, name)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/search/json" in r.url else None)
    page.goto(f"{server}/dashboard/")
    page.click("#crm-qs-input")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "taida", "selectionStart": 5, "selectionEnd": 5})
    page.wait_for_timeout(600)  # past the pause after which a search is asked
    assert asked == []
    cdp.send("Input.insertText", {"text": w})  # the input method commits the characters
    page.locator("#crm-qs-list [role=option]", has_text=name).wait_for()
    assert asked and all("taida" not in url for url in asked)
