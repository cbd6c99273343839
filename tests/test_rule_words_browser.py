"""Rules in plain words, in a real browser (Debian's Chromium, headless): a record's grade reason as
a salesperson reads it (the workbook's note) and as the administrator does (the rule and its
cell), and the outbox in labels, at desktop (1440 px) and phone (390 px) widths. Screenshots go to
``CRM_SHOTS`` (default ``var/test-artifacts/words``)."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.record.tables import OutboxMessage
from tests.conftest import ADMIN_PASSWORD, api_token, person
from tests.test_browser import ARTIFACTS, browser, server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "words-Pass-1"  # noqa: S105 - test-only
SHOTS = Path(os.environ.get("CRM_SHOTS", str(ARTIFACTS / "words")))
TECHNICAL = re.compile(r"==|!=|<=|>=|grading!|annual_demand|urgency|← ")


def _login(browser: Any, server: str, width: int, who: str, password: str) -> Any:  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    page.goto(f"{server}/login/")
    page.fill("#username", who)
    page.fill("#password", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


@pytest.fixture(scope="module")
def record(app: Any) -> Iterator[int]:
    person(app, "words_shot_sales", ["业务员"], PASSWORD)
    h = api_token(app.test_client(), "words_shot_sales", PASSWORD)
    r = app.test_client().post("/api/v1/customer/", json={"name": "杭州西溪电子有限公司", "urgency": "urgent", "annual_demand": 800000,
                                                          "employee_count": 120}, headers=h)
    assert r.status_code == 201, r.text
    now = dt.datetime.now()
    with app.app_context():
        session = app.extensions["crm"].db.session
        session.execute(sa.insert(OutboxMessage.__table__).values(
            key="words.shot.1", source="master_data_pending", entity="master_data_request", record_id=3, occurrence="2026-12-01",
            step=0, channel="inapp", subject="主数据申请待处理:MD-202612-0003", status="pending", attempts=0, next_attempt_at=now,
            created_on=now))
        session.commit()
    yield int(r.json["id"])
    with app.app_context():  # the shared app's outbox as found: other modules count what is due for that record
        session = app.extensions["crm"].db.session
        session.execute(sa.delete(OutboxMessage.__table__).where(OutboxMessage.__table__.c.key == "words.shot.1"))
        session.commit()


@pytest.mark.parametrize("width", [1440, 390])
def test_a_grade_reason_in_words_for_the_salesperson_and_whole_for_the_administrator(
        browser: Any, server: str, record: int, width: int) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    sales = _login(browser, server, width, "words_shot_sales", PASSWORD)
    sales.goto(f"{server}/customerview/show/{record}")
    reason = sales.locator(".crm-grades").inner_text()
    assert "A级:需求规模较大" in reason and not TECHNICAL.search(sales.content())
    sales.locator(".crm-grades").scroll_into_view_if_needed()
    sales.screenshot(path=str(SHOTS / f"record-salesperson-{width}.png"), full_page=True)
    sales.context.close()
    admin = _login(browser, server, width, "admin", ADMIN_PASSWORD)
    admin.goto(f"{server}/customerview/show/{record}")
    whole = admin.locator(".crm-grades").inner_text()
    assert "[grading!" in whole and "annual_demand" in whole
    admin.screenshot(path=str(SHOTS / f"record-admin-{width}.png"), full_page=True)
    admin.goto(f"{server}/outbox/list/")
    shown = admin.inner_text("body")
    assert "站内信" in shown and "主数据申请待处理" in shown and "待发送" in shown
    assert not re.search(r"\b(inapp|None|pending|master_data_pending|master_data_request)\b", shown)
    admin.screenshot(path=str(SHOTS / f"outbox-{width}.png"), full_page=True)
    admin.context.close()


@pytest.mark.parametrize("width", [1440, 390])
def test_the_import_page_lists_what_it_requires_and_the_mapping_step_shows_the_header_row(
        browser: Any, server: str, tmp_path: Path, width: int) -> None:  # noqa: F811
    from openpyxl import Workbook

    SHOTS.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    for row in (["患者花名册 2026"], ["制表:华东一部  2026-12-01"], ["公司", "紧急", "备注"], ["花名册客户", "normal", ""]):
        wb.active.append(row)
    path = tmp_path / "花名册.xlsx"
    wb.save(path)
    admin = _login(browser, server, width, "admin", ADMIN_PASSWORD)
    admin.goto(f"{server}/customerview/import/")
    assert [t.strip() for t in admin.locator(".crm-required-column").all_inner_texts()] == ["客户名称"]
    admin.screenshot(path=str(SHOTS / f"import-{width}.png"), full_page=True)
    admin.set_input_files("input[type=file]", str(path))
    admin.click("form.crm-import button[type=submit]")
    admin.wait_for_load_state("networkidle")
    assert "/map" in admin.url
    assert admin.input_value("#crm-header-row") == "3"  # found below the two title rows (备注 names a field)
    admin.screenshot(path=str(SHOTS / f"import-mapping-{width}.png"), full_page=True)
    admin.context.close()
