"""Step dialogs in a real browser (Debian's Chromium, headless, only localhost reachable): a
service call dispatched, reached and closed from its record page, each step one dialog and one
page load; a visit request approved with a comment that lands in the history; the dialog's
keyboard behaviour and its fit on a phone. Screenshots at 1440 and 390 px wide go to
/work/shots/steps/ (and the test artifacts)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import ADMIN_PASSWORD, api_token, person
from tests.test_browser import ARTIFACTS, browser, server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow: Chromium
PASSWORD = "stepb-Pass-12"  # noqa: S105 - test-only (the password policy: at least 12 characters)
SHOTS = Path("/work/shots/steps")


class Visitor:
    """A signed-in person's browser tab that counts what it costs: page loads and clicks."""

    def __init__(self, browser: Any, server: str, login: str, width: int = 1440) -> None:  # noqa: F811
        self.context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
        self.page = self.context.new_page()
        self.page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
        self.server, self.loads, self.clicks = server, 0, 0
        self.page.goto(f"{server}/login/")
        self.page.fill("#username", login)
        self.page.fill("#password", PASSWORD if login != "admin" else ADMIN_PASSWORD)
        self.page.click("input[type=submit], button[type=submit]")
        self.page.wait_for_load_state("networkidle")
        self.page.on("framenavigated", lambda frame: self._loaded(frame))

    def _loaded(self, frame: Any) -> None:
        if frame == self.page.main_frame:
            self.loads += 1

    def click(self, locator: Any) -> None:
        self.clicks += 1
        locator.click()

    def open(self, path: str) -> None:
        self.page.goto(f"{self.server}{path}")
        self.page.wait_for_load_state("networkidle")
        self.loads = self.clicks = 0  # counted from the record page on

    def shot(self, name: str) -> None:
        for folder in (SHOTS, ARTIFACTS):
            folder.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(folder / name), full_page=False)

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def staff(app: Any) -> dict[str, str]:
    return {"clerk": person(app, "stepb_clerk", ["客服专员"], PASSWORD), "tech": person(app, "stepb_tech", ["技术员"], PASSWORD),
            "sales": person(app, "stepb_sales", ["业务员"], PASSWORD, departments=["步骤一部"]),
            "manager": person(app, "stepb_manager", ["销售经理"], PASSWORD, departments=["步骤一部"])}


@pytest.fixture
def visitors(browser: Any, server: str) -> Iterator[list[Visitor]]:  # noqa: F811
    opened: list[Visitor] = []
    yield opened
    for v in opened:
        v.close()


def _service_call(app: Any) -> int:
    h = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    c = app.test_client()
    cust = c.post("/api/v1/customer/", json={"name": f"浏览器叫修客户{dt.datetime.now().timestamp()}", "urgency": "normal"}, headers=h)
    r = c.post("/api/v1/service_call/", headers=h, json={"customer": cust.json["id"], "call_type": "free", "product_model": "KX-200",
                                                         "reported_at": (dt.datetime.now() - dt.timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S"),
                                                         "fault_description": "压缩机不启动", "contact_name": "王先生"})
    assert r.status_code == 201, r.text
    return int(r.json["id"])


def _status(app: Any, pk: int) -> tuple[str, Any]:
    crm = app.extensions["crm"]
    table = crm.generated.models.MODELS["service_call"].__table__
    with app.app_context():
        row = crm.db.session.execute(sa.select(table.c.status, table.c.technician_id).where(table.c.id == pk)).one()
        crm.db.session.rollback()
    return row[0], row[1]


def _step(v: Visitor, label: str, fill: Any, shots: str = "") -> dict[str, int]:
    """One step from the record page: its button, what its dialog asks, its submit. Returns what it cost."""
    page = v.page
    v.click(page.locator(".crm-step-open", has_text=label))
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    assert page.evaluate("() => document.querySelector('dialog[open]').contains(document.activeElement)")  # focus moved in
    fill(dialog)
    if shots:
        v.shot(f"{shots}-1440.png")
    with page.expect_navigation():
        v.click(dialog.locator(".crm-step-submit"))
    page.wait_for_load_state("networkidle")
    return {"clicks": v.clicks, "loads": v.loads}


def test_dispatch_arrive_close_each_one_dialog_from_the_record_page(app: Any, browser: Any, server: str,  # noqa: F811
                                                                    staff: dict[str, str], visitors: list[Visitor]) -> None:
    pk = _service_call(app)
    clerk = Visitor(browser, server, staff["clerk"])
    visitors.append(clerk)
    path = f"/servicecallview/show/{pk}"
    clerk.open(path)
    assert "需填写:技术员、派工时间" in clerk.page.locator(".crm-steps").inner_text()

    def dispatch(dialog: Any) -> None:
        dialog.locator("select[name=value-technician]").select_option(label=clerk.page.locator(
            "select[name=value-technician] option", has_text="stepb_tech").first.inner_text())
        assert dialog.locator("input[name=value-dispatched_at]").input_value()  # offered as now

    cost = _step(clerk, "派工", dispatch, shots="dispatch-dialog")
    assert cost == {"clicks": 2, "loads": 1}, cost
    assert _status(app, pk)[0] == "dispatched"
    assert "派工" in clerk.page.locator(".crm-history").inner_text()

    tech = Visitor(browser, server, staff["tech"])
    visitors.append(tech)
    tech.open(path)
    tech.page.locator(".crm-steps").scroll_into_view_if_needed()
    tech.shot("technician-steps-1440.png")  # 退回重新派工 greyed, why in words; 到达现场 asks the arrival
    why = tech.page.locator(".crm-step-why").all_inner_texts()
    assert any("需要角色" in w for w in why) and any("到达时间" in w for w in why), why
    cost = _step(tech, "到达现场", lambda dialog: None)  # the arrival is offered as now: nothing to type
    assert cost == {"clicks": 2, "loads": 1}, cost
    assert _status(app, pk)[0] == "in_progress"
    tech.open(path)

    def close(dialog: Any) -> None:
        tech.click(dialog.locator("input[type=checkbox][name=value-customer_signed]"))
        dialog.locator("textarea[name=comment]").fill("已修复,客户签字确认")

    cost = _step(tech, "完工结案", close)
    assert cost == {"clicks": 3, "loads": 1}, cost  # the button, the customer's signature box, the submit
    assert _status(app, pk)[0] == "closed"
    history = tech.page.locator(".crm-history").inner_text()
    assert "完工结案" in history and "已修复,客户签字确认" in history


def test_a_refused_value_is_said_in_the_dialog_and_nothing_is_saved(app: Any, browser: Any, server: str,  # noqa: F811
                                                                   staff: dict[str, str], visitors: list[Visitor]) -> None:
    pk = _service_call(app)
    clerk = Visitor(browser, server, staff["clerk"])
    visitors.append(clerk)
    clerk.open(f"/servicecallview/show/{pk}")
    page = clerk.page
    clerk.click(page.locator(".crm-step-open", has_text="派工"))
    dialog = page.locator("dialog[open]")
    dialog.locator("select[name=value-technician]").select_option(index=1)
    dialog.locator("input[name=value-dispatched_at]").fill("2020-01-01T08:00")  # before the call came in
    clerk.click(dialog.locator(".crm-step-submit"))
    error = dialog.locator('[data-crm-field="dispatched_at"] .crm-step-field-error')
    error.wait_for()
    assert "派工时间不能早于叫修时间" in error.inner_text()
    assert clerk.loads == 0 and _status(app, pk) == ("registered", None)  # said in place; nothing saved
    # Esc closes the dialog, focus goes back to its button
    page.keyboard.press("Escape")
    assert page.locator("dialog[open]").count() == 0
    assert page.evaluate("() => document.activeElement.classList.contains('crm-step-open')")


def test_the_dialog_fits_a_phone(app: Any, browser: Any, server: str, staff: dict[str, str],  # noqa: F811
                                 visitors: list[Visitor]) -> None:
    pk = _service_call(app)
    phone = Visitor(browser, server, staff["clerk"], width=390)
    visitors.append(phone)
    phone.open(f"/servicecallview/show/{pk}")
    phone.page.locator(".crm-steps").scroll_into_view_if_needed()
    phone.shot("record-steps-390.png")
    phone.click(phone.page.locator(".crm-step-open", has_text="派工"))
    dialog = phone.page.locator("dialog[open]")
    dialog.wait_for()
    box = dialog.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    for name in ("select[name=value-technician]", "input[name=value-dispatched_at]", ".crm-step-submit", ".crm-step-cancel"):
        inner = dialog.locator(name).bounding_box()
        assert inner is not None and inner["x"] >= 0 and inner["x"] + inner["width"] <= 390, (name, inner)
    phone.shot("dispatch-dialog-390.png")
    wide = Visitor(browser, server, staff["clerk"], width=1440)
    visitors.append(wide)
    wide.open(f"/servicecallview/show/{pk}")
    wide.page.locator(".crm-steps").scroll_into_view_if_needed()
    wide.shot("record-steps-1440.png")


def test_approve_a_visit_with_a_comment_that_lands_in_the_history(app: Any, browser: Any, server: str,  # noqa: F811
                                                                  staff: dict[str, str], visitors: list[Visitor]) -> None:
    h = api_token(app.test_client(), staff["sales"], PASSWORD)
    c = app.test_client()
    cust = c.post("/api/v1/customer/", json={"name": f"走访客户{dt.datetime.now().timestamp()}", "urgency": "normal"}, headers=h).json["id"]
    pk = c.post("/api/v1/visit_request/", headers=h, json={"subject": "年度回访", "customer": cust, "visit_at": "2026-12-20",
                                                            "purpose": "first_visit", "goal": "了解明年需求"}).json["id"]
    assert c.post(f"/api/v1/visit_request/{pk}/transition", json={"action": "提交审批"}, headers=h).status_code == 200
    manager = Visitor(browser, server, staff["manager"])
    visitors.append(manager)
    manager.open(f"/visitrequestview/show/{pk}")
    page = manager.page
    page.locator(".crm-steps").scroll_into_view_if_needed()
    page.fill("#crm-step-comment", "同意")
    manager.shot("approve-comment-1440.png")
    with page.expect_navigation():
        manager.click(page.locator(".crm-step-form button[name=action]", has_text="批准"))
    page.wait_for_load_state("networkidle")
    assert (manager.clicks, manager.loads) == (1, 1)
    rows = page.locator(".crm-history tr").all_inner_texts()
    assert any("批准" in r and "同意" in r for r in rows), rows
    # 驳回 needs a comment: its dialog asks for it, carrying what the page's box said
    pk2 = c.post("/api/v1/visit_request/", headers=h, json={"subject": "二次回访", "customer": cust, "visit_at": "2026-12-21",
                                                             "purpose": "first_visit", "goal": "跟进"}).json["id"]
    assert c.post(f"/api/v1/visit_request/{pk2}/transition", json={"action": "提交审批"}, headers=h).status_code == 200
    manager.open(f"/visitrequestview/show/{pk2}")
    page.fill("#crm-step-comment", "预算不足")
    manager.click(page.locator(".crm-step-open", has_text="驳回"))
    dialog = page.locator("dialog[open]")
    assert dialog.locator("textarea[name=comment]").input_value() == "预算不足"
    manager.shot("reject-dialog-1440.png")
    with page.expect_navigation():
        manager.click(dialog.locator(".crm-step-submit"))
    page.wait_for_load_state("networkidle")
    assert any("驳回" in r and "预算不足" in r for r in page.locator(".crm-history tr").all_inner_texts())
