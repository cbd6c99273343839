"""Step effects in a real browser (Debian's Chromium, headless, only localhost reachable): the data
centre finishes a freeze request and a new-account request from the record page — one dialog each —
and the history says what the step did to the customer; the customer's trail names the step.
Screenshots at 1440 and 390 px wide go to /work/shots/effects/ (and the test artifacts)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.test_step_dialogs_browser as steps_browser
from tests.conftest import api_token, person
from tests.test_browser import ARTIFACTS, browser, server  # noqa: F401 - fixtures
from tests.test_effects import customer_row, new_customer, new_request, raw, request_row
from tests.test_step_dialogs_browser import Visitor

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow: Chromium
PASSWORD = "effb-Pass-123"  # noqa: S105 - test-only
SHOTS = Path("/work/shots/effects")


@pytest.fixture(scope="module")
def staff(app: Any) -> dict[str, str]:
    return {"dc": person(app, "effb_dc", ["数据中心"], PASSWORD), "sales": person(app, "effb_sales", ["业务员"], PASSWORD)}


@pytest.fixture
def visitors() -> Iterator[list[Visitor]]:
    opened: list[Visitor] = []
    yield opened
    for v in opened:
        v.close()


def _shot(v: Visitor, name: str) -> None:
    for folder in (SHOTS, ARTIFACTS):
        folder.mkdir(parents=True, exist_ok=True)
        v.page.screenshot(path=str(folder / name), full_page=True)


def _finish(v: Visitor, sap: str = "") -> None:
    """The data centre's last step from the record page: its button, the dialog's date (and SAP number), submit."""
    page = v.page
    v.click(page.locator(".crm-step-open", has_text="系统处理完成"))
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    dialog.locator('[name="value-processed_on"]').fill(dt.date.today().isoformat())
    if sap:
        dialog.locator('[name="value-sap_customer_no"]').fill(sap)
    with page.expect_navigation():
        v.click(dialog.locator(".crm-step-submit"))
    page.wait_for_load_state("networkidle")


def test_the_history_says_what_the_last_approval_did(app: Any, browser: Any, server: str, staff: dict[str, str],  # noqa: F811
                                                      visitors: list[Visitor], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps_browser, "PASSWORD", PASSWORD)  # the Visitor signs in with its module's password
    h = api_token(app.test_client(), staff["sales"], PASSWORD)
    cust = new_customer(app, h, address="天津市南开区鞍山西道 1 号")
    freeze = new_request(app, h, "freeze", customer=cust)
    create = new_request(app, h, "create", address="北京市朝阳区建国路 88 号", phone="010-65001234")
    dc = Visitor(browser, server, staff["dc"])
    visitors.append(dc)

    dc.open(f"/masterdatarequestview/show/{freeze}")
    _finish(dc)
    c = customer_row(app, cust)
    assert c["status"] == "frozen"
    history = dc.page.locator(".crm-history").inner_text()
    assert f"→ 客户档案 {c['code']} {c['name']}:客户状态 → 已冻结" in history
    assert dc.clicks == 2 and dc.loads == 1  # the button, the dialog's submit; one page load
    _shot(dc, "freeze-history-1440.png")

    dc.open(f"/masterdatarequestview/show/{create}")
    _finish(dc, sap="SAP-300188")
    made = customer_row(app, request_row(app, create)["customer_id"])
    history = dc.page.locator(".crm-history").inner_text()
    assert f"→ 新建客户档案 {made['code']} {made['name']}" in history
    _shot(dc, "create-history-1440.png")

    phone = Visitor(browser, server, staff["dc"], width=390)
    visitors.append(phone)
    phone.open(f"/masterdatarequestview/show/{create}")
    assert phone.page.evaluate("() => document.documentElement.scrollWidth") <= 390 + 1  # nothing wider than the screen
    _shot(phone, "create-history-390.png")
    phone.open(f"/masterdatarequestview/show/{freeze}")
    _shot(phone, "freeze-history-390.png")

    # the customer's own trail: the change, from where, naming the step
    dc.open(f"/customerview/show/{cust}")
    dc.page.locator(".crm-audit .panel-heading span[data-toggle]").click()
    trail = dc.page.locator("#crm-audit-body")
    trail.wait_for(state="visible")
    code = raw(app, "SELECT code FROM master_data_request WHERE id = :i", i=freeze)[0][0]
    assert f"主数据变更申请 {code}" in trail.inner_text() and "系统处理完成" in trail.inner_text()
    _shot(dc, "customer-trail-1440.png")
