"""The dashboard in a real browser (Debian's Chromium, headless, every request outside localhost
blocked): every panel drawn, a click drills down to the rows behind it, the language switches,
and screenshots are kept as test artifacts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from app.ops.demo import make_demo_data
from tests.test_browser import ARTIFACTS, browser, page, server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow: Chromium


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
    page.goto(f"{server}/dashboard/all/")
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
    page.goto(f"{server}/dashboard/all/")
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
    page.goto(f"{server}/dashboard/all/")
    page.wait_for_load_state("networkidle")
    text = page.locator(".crm-dashboard").inner_text()
    assert "Customers by grade" in text and "客户等级分布" not in text
    page.screenshot(path=str(ARTIFACTS / "dashboard-en.png"), full_page=True)
    page.goto(f"{server}/lang/zh")
    page.goto(f"{server}/dashboard/all/")
    assert "客户等级分布" in page.locator(".crm-dashboard").inner_text()


LABELS = """() => [...document.querySelectorAll('.crm-chart[data-drawn="1"]')].map(chart => {
    const box = chart.getBoundingClientRect();
    const rect = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    const ticks = [...chart.querySelectorAll('.xtick')].filter(g => g.querySelector('text')).map(g => {
        const text = g.querySelector('text');
        const at = /translate\\(([-\\d.]+)/.exec((g.getAttribute('transform') || '') + (text.getAttribute('transform') || ''));
        const turn = /rotate\\(([-\\d.]+)/.exec(text.getAttribute('transform') || '');
        const own = text.getBBox();  // before rotation
        return {text: text.textContent, x: at ? +at[1] : 0, angle: turn ? +turn[1] : 0, width: own.width,
                height: own.height, rect: rect(text)};
    });
    const named = sel => [...chart.querySelectorAll(sel)].map(t => ({text: t.textContent, rect: rect(t)}));
    return {id: chart.id, box: [box.left, box.top, box.right, box.bottom], ticks,
            legend: named('.legendtext'), others: named('.angularaxistick text, .legendtext, .ytick text')};
})"""


@pytest.mark.parametrize(("lang", "width"), [("zh", 1000), ("zh", 1600), ("en", 1000)])
def test_every_label_is_readable(page: Any, server: str, lang: str, width: int) -> None:  # noqa: F811
    """Category names under a bar or line panel overlapped their neighbours (Plotly slanted them
    only 30°), the legend sat on the month labels, and a radar's axis names ran off its panel."""
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{server}/lang/{lang}")
    page.goto(f"{server}/dashboard/all/")
    page.wait_for_load_state("networkidle")
    _wait_until_every_chart_is_drawn(page)
    charts = page.evaluate(LABELS)
    assert sum(len(c["ticks"]) for c in charts) > 50 and any(c["others"] for c in charts)
    inside = lambda r, b: r[0] >= b[0] - 1 and r[1] >= b[1] - 1 and r[2] <= b[2] + 1 and r[3] <= b[3] + 1  # noqa: E731
    meets = lambda r, s: r[0] < s[2] and s[0] < r[2] and r[1] < s[3] and s[1] < r[3]  # noqa: E731
    for c in charts:
        for label in c["ticks"] + c["others"]:
            assert inside(label["rect"], c["box"]), (c["id"], label["text"], "runs off its panel")
        ticks = sorted(c["ticks"], key=lambda t: t["x"])
        for a, b in zip(ticks, ticks[1:], strict=False):
            gap = abs(b["x"] - a["x"])
            turn = abs(math.sin(math.radians(a["angle"])))
            # flat labels need their width side by side; turned ones their height across the slant
            room = gap >= (a["width"] + b["width"]) / 2 if turn < 0.01 else gap * turn >= 0.9 * max(a["height"], b["height"])
            assert room, (c["id"], a["text"], b["text"], a["angle"], gap)
        for legend in c["legend"]:
            for t in ticks:
                assert not meets(legend["rect"], t["rect"]), (c["id"], legend["text"], "covers", t["text"])
