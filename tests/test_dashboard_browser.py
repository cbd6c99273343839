"""The dashboard in a real browser (Debian's Chromium, headless, every request outside localhost
blocked): every panel drawn, a click drills down to the rows behind it, the language switches,
and screenshots are kept as test artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.runtime.demo import make_demo_data
from tests.test_browser import ARTIFACTS, browser, page, server  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", autouse=True)
def demo_rows(app: Any) -> Iterator[None]:
    make_demo_data(app, 120, seed=7)
    yield


def _blocked(page: Any) -> list[str]:  # noqa: F811 - the fixture
    return page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")


def _wait_until_every_chart_is_drawn(page: Any) -> None:  # noqa: F811 - the fixture
    page.wait_for_function("""() => [...document.querySelectorAll('.crm-chart')].every(
        c => c.getAttribute('data-drawn') === '1' || c.classList.contains('crm-panel-empty'))""")


def _settled_box(page: Any, locator: Any) -> dict[str, float]:  # noqa: F811 - the fixture
    """The element's box once the page stopped moving (later panels and responsive relayouts shift it)."""
    box = locator.bounding_box()
    for _ in range(50):
        page.wait_for_timeout(100)
        again = locator.bounding_box()
        if again == box:
            return again
        box = again
    raise AssertionError(f"the chart kept moving: {box}")


def test_every_panel_renders_offline(page: Any, server: str) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{server}/dashboard/")
    page.wait_for_load_state("networkidle")
    panels = page.locator(".crm-panel")
    assert panels.count() >= 20
    charts = page.locator(".crm-chart")
    for i in range(charts.count()):
        chart = charts.nth(i)
        drawn = chart.get_attribute("data-drawn") == "1"
        empty = "crm-panel-empty" in (chart.get_attribute("class") or "")
        assert drawn or empty, chart.get_attribute("id")
        if drawn:  # a real drawing: an SVG with marks in it
            assert chart.locator("svg.main-svg").count() >= 1
            assert chart.locator("path, rect").count() > 3, chart.get_attribute("id")
    tables = page.locator(".crm-panel-table tbody tr")
    assert tables.count() >= 1
    assert all(u.startswith(server) for u in _blocked(page))
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_click_on_a_slice_drills_down(page: Any, server: str) -> None:  # noqa: F811
    page.goto(f"{server}/dashboard/")
    page.wait_for_load_state("networkidle")
    _wait_until_every_chart_is_drawn(page)
    bars = page.locator("#chart-customers_by_source .point path")
    tallest = max(range(bars.count()), key=lambda i: bars.nth(i).bounding_box()["height"])  # a 1-row bar is a sliver
    bar = bars.nth(tallest)
    bar.scroll_into_view_if_needed()
    box = _settled_box(page, bar)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # plotly picks the point on hover
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/dashboard/drill/customers_by_source?key=*")
    assert page.locator(".crm-drill-table tbody tr").count() >= 1
    assert "共" in page.locator(".crm-drill").inner_text()
    page.screenshot(path=str(ARTIFACTS / "dashboard-drill.png"), full_page=True)


def test_language_switch_to_english_and_back(page: Any, server: str) -> None:  # noqa: F811
    page.goto(f"{server}/lang/en")
    page.goto(f"{server}/dashboard/")
    page.wait_for_load_state("networkidle")
    text = page.locator(".crm-dashboard").inner_text()
    assert "Customers by grade" in text and "客户等级分布" not in text
    page.screenshot(path=str(ARTIFACTS / "dashboard-en.png"), full_page=True)
    page.goto(f"{server}/lang/zh")
    page.goto(f"{server}/dashboard/")
    assert "客户等级分布" in page.locator(".crm-dashboard").inner_text()
