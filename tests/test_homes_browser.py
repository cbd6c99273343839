"""The home pages and the inbox in a real browser (Debian's Chromium, headless), at 1440 and 390 px:
a salesperson's, a service supervisor's and the administrator's home, and the inbox — no sideways
scroll, own work first, the administrator's page short, money axes in 万/亿. Screenshots go to
/work/shots/homes/ when that folder exists (for people to look at), else to the test artifacts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.ops.demo import DEMO_PASSWORD, make_demo_data
from tests.conftest import ADMIN_PASSWORD
from tests.test_browser import ARTIFACTS, browser, server  # noqa: F401 - fixtures
from tests.test_digest import run_schedules

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow: Chromium
SHOTS = Path("/work/shots/homes") if Path("/work/shots/homes").is_dir() else ARTIFACTS


@pytest.fixture(scope="module")
def office(app: Any) -> Iterator[None]:
    """Demo data, and a salesperson's morning: twelve follow-ups fallen overdue, three planned for tomorrow."""
    make_demo_data(app, 120, seed=41)
    crm = app.extensions["crm"]
    table = crm.generated.models.MODELS["follow_up"].__table__
    today = dt.date.today()
    with app.app_context():
        session = crm.db.session
        uid = crm.appbuilder.sm.find_user(username=_names(app, "业务员")).id
        ids = session.execute(sa.select(table.c.id).where(table.c.owner_id == uid).order_by(table.c.id).limit(15)).scalars().all()
        for i, pk in enumerate(ids):
            session.execute(sa.update(table).where(table.c.id == pk).values(
                status="planned", done_on=None, planned_on=today - dt.timedelta(days=2) if i < 12 else today + dt.timedelta(days=1)))
        session.commit()
    run_schedules(app, ("follow_up_overdue", "follow_up_planned", "complaint_deadline_near", "contract_renewal_follow_up",
                        "visit_reminder", "service_dispatch_warning"))
    yield


def _login(browser: Any, server: str, user: str, password: str, width: int) -> Any:  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    page.goto(f"{server}/login/")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


def _names(app: Any, role: str) -> str:
    from tests.test_homes import demo_login

    return demo_login(app, role)


@pytest.mark.parametrize("width", [1440, 390])
@pytest.mark.parametrize("who", ["业务员", "服务主任", "admin"])
def test_home_pages_at_desk_and_phone_width(app: Any, office: None, browser: Any, server: str, who: str, width: int) -> None:  # noqa: F811
    user, password = ("admin", ADMIN_PASSWORD) if who == "admin" else (_names(app, who), DEMO_PASSWORD)
    page = _login(browser, server, user, password, width)
    assert page.url.rstrip("/").endswith("/dashboard"), page.url  # signed in: the home page
    page.wait_for_timeout(1500)  # charts drawn
    tag = {"业务员": "salesperson", "服务主任": "service-supervisor", "admin": "administrator"}[who]
    page.screenshot(path=str(SHOTS / f"home-{tag}-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1  # no sideways scroll
    if who != "admin":
        assert page.locator(".crm-work-card").count() > 0
        first_card = page.locator(".crm-work-card").first.bounding_box()
        first_panel = page.locator(".crm-home-panels").bounding_box()
        assert first_card["y"] < first_panel["y"]  # own work first
    else:
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < 1600 if width == 1440 else height < 3200, height  # grouped and collapsed, not 24 panels
        page.locator("details.crm-panel-group summary").first.click()
        page.wait_for_timeout(1200)
        assert page.locator("details.crm-panel-group[open] .crm-chart[data-drawn='1'], details.crm-panel-group[open] .crm-panel-empty,"
                            " details.crm-panel-group[open] .crm-panel-table").count() > 0
        page.screenshot(path=str(SHOTS / f"home-administrator-group-open-{width}.png"), full_page=True)
        # a money axis says 万 or 亿, never "M"
        page.goto(f"{server}/dashboard/report/amount_by_grade")
        page.wait_for_selector(".crm-chart[data-drawn='1']")
        ticks = page.locator(".crm-chart .ytick text").all_text_contents()
        assert ticks and all(t.endswith(("万", "亿", "元")) for t in ticks), ticks
        page.screenshot(path=str(SHOTS / f"report-money-axis-{width}.png"), full_page=True)
    page.context.close()


@pytest.mark.parametrize("width", [1440, 390])
def test_the_inbox_shows_digests_at_desk_and_phone_width(app: Any, office: None, browser: Any, server: str, width: int) -> None:  # noqa: F811
    page = _login(browser, server, _names(app, "业务员"), DEMO_PASSWORD, width)
    page.goto(f"{server}/inbox/")
    page.screenshot(path=str(SHOTS / f"inbox-salesperson-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
    digests = page.locator("tr.crm-digest")
    assert digests.count() > 0
    assert "http" not in page.locator(".crm-inbox-table").inner_text()
    digests.first.locator("a.crm-inbox-open").click()
    page.wait_for_load_state("networkidle")
    assert page.locator(".crm-narrowed").count() == 1
    page.screenshot(path=str(SHOTS / f"inbox-digest-list-{width}.png"), full_page=True)
    page.context.close()
