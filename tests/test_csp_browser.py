"""Every kind of page under the strict Content-Security-Policy in a real browser (Debian's Chromium,
headless, only localhost reachable): no inline script runs without the response's nonce, and the
pages' scripts still work — a dropdown opens, Select2 and a lookup answer, a tab switches, a chart
is drawn, the import's bar follows its job, Swagger draws the API. Each page is watched for
``securitypolicyviolation`` events, console errors and uncaught exceptions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.ops.demo import make_demo_data
from tests.conftest import ADMIN_PASSWORD
from tests.test_browser import ARTIFACTS, browser, server  # noqa: F401 - fixtures
from tests.test_security import script_sources

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow: Chromium

WATCH = """() => {
    document.addEventListener('securitypolicyviolation', e => window.crmViolation(
        `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber} ${e.sample}`));
}"""
# the one console error a page may log: the error page's own status (404) for its document
OWN_STATUS = "Failed to load resource: the server responded with a status of 404"


@pytest.fixture(scope="module", autouse=True)
def demo_rows(app: Any) -> Iterator[None]:
    make_demo_data(app, 30, seed=23)
    yield


class Watched:
    """A signed-out browser tab that records what the policy refused and what went wrong."""

    def __init__(self, browser: Any, server: str, width: int = 1440) -> None:  # noqa: F811 - the fixture
        self.server = server
        self.context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.context.expose_function("crmViolation", lambda text: self.problems.append(f"CSP: {text}"))
        self.context.add_init_script(script=f"({WATCH})()")
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        self.page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def open(self, path: str, status: int = 200) -> Any:
        """Load a page, check its policy is the strict one, and let its scripts settle."""
        response = self.page.goto(f"{self.server}{path}")
        assert response is not None and response.status == status, (path, response and response.status)
        sources = script_sources(response.headers["content-security-policy"])
        assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, (path, sources)
        self.page.wait_for_load_state("networkidle")
        return response

    def check(self, what: str, allowed: tuple[str, ...] = ()) -> None:
        """Nothing refused or broken since the last check (``allowed``: console lines expected)."""
        problems = [p for p in self.problems if not any(a in p for a in allowed)]
        self.problems.clear()
        assert problems == [], (what, problems)

    def sign_in(self) -> None:
        self.open("/login/")
        assert self.page.evaluate("() => typeof jQuery === 'function' && typeof jQuery.fn.select2 === 'function'"
                                  " && typeof jQuery.fn.tab === 'function'")  # the layout's scripts all ran
        self.page.fill("#username", "admin")
        self.page.fill("#password", ADMIN_PASSWORD)
        self.page.click("input[type=submit], button[type=submit]")
        self.page.wait_for_load_state("networkidle")
        assert "/login" not in self.page.url
        self.check("login")


@pytest.fixture
def tab(browser: Any, server: str) -> Iterator[Watched]:  # noqa: F811 - the fixtures
    watched = Watched(browser, server)
    watched.sign_in()
    yield watched
    watched.context.close()


def _route(app: Any, entity: str) -> str:
    view = next(v for n, v, *_rest in app.extensions["crm"].generated.views.REGISTRY if n == entity)
    return "/" + view.__name__.lower()


def _first_id(app: Any, entity: str) -> int:
    with app.app_context():
        crm = app.extensions["crm"]
        model = crm.generated.models.MODELS[entity]
        return int(crm.db.session.execute(sa.select(model.id).order_by(model.id)).scalars().first())


def test_lists_records_forms_and_dashboard_run_under_the_strict_policy(tab: Watched, app: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    page = tab.page
    tab.open("/dashboard/all/")
    page.wait_for_selector(".crm-chart[data-drawn='1'] svg.main-svg")  # Plotly drew
    tab.check("dashboard")
    tab.open("/dashboard/")  # the home page: a group opened draws its panels
    page.locator("details.crm-panel-group summary").first.click()
    page.wait_for_selector("details.crm-panel-group[open] .crm-chart[data-drawn='1'] svg.main-svg")
    tab.check("home")

    customers = _route(app, "customer")
    tab.open(f"{customers}/list/")
    assert page.evaluate("() => window.modelActions !== undefined")  # FAB's nonced inline block ran
    page.click("a.accordion-toggle[href='#accordion1_href']")  # Bootstrap opens the search panel,
    page.locator("#accordion1_href.in").wait_for()
    page.click("#filter_form .dropdown-toggle")  # its dropdown, then ab_filters.js adds the filter
    page.click("#filter_form a.filter[name='name']")
    assert page.locator("#filter_form table.filters tr").count() == 1
    assert page.locator("#filter_form select.filter-op").input_value() == "2"  # crm/search.js: "contains"
    tab.check("list")

    pk = _first_id(app, "customer")
    tab.open(f"{customers}/show/{pk}")
    tabs = page.locator(".nav-tabs a[data-toggle='tab']")
    assert tabs.count() >= 2
    target = tabs.nth(1).get_attribute("href")
    tabs.nth(1).click()
    page.locator(f".tab-content {target}.active").wait_for()  # Bootstrap switched the tab
    tab.check("record page with tabs")

    tab.open(f"{customers}/add")
    page.locator("select.my_select2 + .select2").first.wait_for(state="attached")  # FAB's ab.js set Select2 up
    closed = page.locator(".panel-collapse.collapse:not(.in)").first.get_attribute("id")
    page.click(f".panel-heading a[href='#{closed}']")
    page.locator(f"[id='{closed}'].in").wait_for()  # Bootstrap opened the collapsed section
    tab.check("add form")

    tab.open(f"{customers}/edit/{pk}")
    page.locator("select.my_select2 + .select2").first.wait_for(state="attached")
    tab.check("edit form")

    monkeypatch.setitem(app.config, "CRM_LINK_LOOKUP_THRESHOLD", 0)  # every link asks as the user types
    tab.open(f"{_route(app, 'contact')}/add")
    page.locator("select[name=customer] + .select2 .select2-selection").click()  # crm/linkfield.js
    found = page.locator(".select2-results__option[aria-selected]:not(.loading-results)").first
    found.wait_for(timeout=10_000)  # the lookup answered
    found.click()
    assert page.locator("select[name=customer]").input_value() != ""
    tab.check("link field")

    tab.open(f"{_route(app, 'visit_request')}/add")
    assert page.locator("input[type=datetime-local]").count() >= 1  # the browser's own date picker
    tab.check("date field")


def test_inbox_audit_log_survey_and_error_page_run_under_the_strict_policy(tab: Watched, app: Any) -> None:
    from app.messaging.jobs import surveys_of
    from app.messaging.links import make_token
    from app.messaging.surveys import ANSWERS

    page = tab.page
    tab.open("/inbox/")
    menu = page.locator(".navbar .dropdown-toggle").first
    menu.click()
    assert "open" in (menu.locator("xpath=..").get_attribute("class") or "")  # Bootstrap's dropdown
    tab.check("inbox")

    tab.open("/auditlog/")
    assert page.locator(".crm-auditlog").count() == 1
    tab.check("audit log")

    survey = next(iter(surveys_of(app.extensions["crm"].spec).values()))
    with app.app_context():
        crm = app.extensions["crm"]
        model = crm.generated.models.MODELS[survey.entity]
        answered = sa.select(ANSWERS.c.record_id).where(ANSWERS.c.survey == survey.name)
        record_id = crm.db.session.execute(sa.select(model.id).where(model.id.not_in(answered))).scalars().first()
    token = make_token(app, survey.name, survey.entity, record_id)
    tab.open(f"/survey/{token}")
    assert page.locator("input[type=radio]").count() >= 2
    tab.check("survey page")

    tab.open("/auditlog/")
    tab.open("/no-such-page/", status=404)
    page.click("a.crm-back")  # crm/back.js: the browser's history
    page.wait_for_url("**/auditlog/")
    tab.check("error page", allowed=(OWN_STATUS,))


# FAB's OpenAPI document warns about its own schemas' names (warnings are errors in the tests)
@pytest.mark.filterwarnings("ignore:Multiple schemas resolved:UserWarning")
def test_swagger_ui_runs_under_the_strict_policy(tab: Watched) -> None:
    tab.open("/swagger/v1")
    tab.page.locator(".swagger-ui .info .title").wait_for(timeout=20_000)  # Swagger UI drew the API
    tab.page.locator(".swagger-ui .opblock").first.wait_for(timeout=20_000)
    tab.check("swagger")


def test_the_import_progress_bar_runs_under_the_strict_policy(tab: Watched, app: Any, tmp_path: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar's script (crm/import.js) polls the job and the page turns into the summary by itself."""
    from openpyxl import Workbook

    from app.io import importjobs

    def worker_soon(target_app: Any, job_id: int) -> bool:
        real = target_app._get_current_object()

        def work() -> None:
            time.sleep(1.5)  # the page shows the queued job first
            with real.app_context():
                importjobs.run_job(real, job_id)

        threading.Thread(target=work, daemon=True).start()
        return True

    monkeypatch.setattr(importjobs, "dispatch", worker_soon)
    entity = app.extensions["crm"].spec.entity("customer")
    wb = Workbook()
    wb.active.append([entity.field(entity.title_field).label, "需求迫切程度"])
    for i in range(20):
        wb.active.append([f"策略导入客户{i:02d}", "normal"])
    path = tmp_path / "csp-import.xlsx"
    wb.save(path)

    page = tab.page
    tab.open(f"{_route(app, 'customer')}/import/")
    page.set_input_files("input[type=file]", str(path))
    with page.expect_response(lambda r: r.url.endswith("/progress"), timeout=10_000):  # the bar asks its job
        page.click("form.crm-import button[type=submit]")
    page.wait_for_selector(".crm-import-result", timeout=60_000)  # and reloads the page when it ended
    assert "20" in page.locator(".crm-import-result").inner_text()
    tab.check("import")


@pytest.mark.parametrize("width", [1440, 390])
def test_screenshots_under_the_strict_policy(browser: Any, server: str, app: Any, width: int) -> None:  # noqa: F811
    """The dashboard and a form as a desk and a phone show them, kept to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    watched = Watched(browser, server, width)
    watched.sign_in()
    page = watched.page
    watched.open("/dashboard/all/")
    page.wait_for_selector(".crm-chart[data-drawn='1'] svg.main-svg")
    page.wait_for_timeout(500)  # the later panels' relayout
    page.screenshot(path=str(ARTIFACTS / f"csp-dashboard-{width}.png"), full_page=True)
    watched.open(f"{_route(app, 'customer')}/add")
    page.locator("select.my_select2 + .select2").first.wait_for(state="attached")
    page.screenshot(path=str(ARTIFACTS / f"csp-form-{width}.png"), full_page=True)
    watched.check(f"screenshots at {width} px")
    watched.context.close()
