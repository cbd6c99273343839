"""Everyday flows in a real browser (Debian's Chromium, headless, only localhost reachable): a
workflow transition button on a record page, the public survey page a customer opens from the
invitation, and an import watched through its progress bar. Screenshots are kept as test artifacts."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.ops.demo import make_demo_data
from tests.test_browser import ARTIFACTS, browser, page, server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow: Chromium


@pytest.fixture(scope="module", autouse=True)
def demo_rows(app: Any) -> Iterator[None]:
    make_demo_data(app, 60, seed=17)
    yield


def _route(app: Any, entity: str) -> str:
    crm = app.extensions["crm"]
    view = next(v for n, v, *_rest in crm.generated.views.REGISTRY if n == entity)
    return "/" + view.__name__.lower()


def test_workflow_button_moves_the_record_and_records_history(app: Any, page: Any, server: str) -> None:  # noqa: F811
    crm = app.extensions["crm"]
    spec = crm.spec
    # the first transition of the sheet that an administrator may take on some record
    with app.app_context():
        for t in spec.workflows:
            model = crm.generated.models.MODELS[t.entity]
            for obj in crm.db.session.query(model).filter(getattr(model, t.state_field) == t.source).limit(20):
                page.goto(f"{server}{_route(app, t.entity)}/show/{obj.id}")
                button = page.locator(".crm-steps .crm-step button.btn-primary", has_text=t.action)
                if button.count():
                    break
            else:
                continue
            break
        else:
            pytest.fail("no transition of the shipped workbook can be taken by an administrator")
    if "crm-step-open" in (button.first.get_attribute("class") or ""):  # a step with something to ask: its dialog
        button.first.click()
        dialog = page.locator("dialog[open]")
        dialog.locator("textarea[name=comment]").fill("浏览器测试意见")
        with page.expect_navigation():
            dialog.locator(".crm-step-submit").click()
    else:  # one click, with the page's comment box
        page.fill("#crm-step-comment", "浏览器测试意见")
        button.first.click()
    page.wait_for_load_state("networkidle")
    with app.app_context():
        crm.db.session.expire_all()
        moved = crm.db.session.get(crm.generated.models.MODELS[t.entity], obj.id)
        assert getattr(moved, t.state_field) == t.target
    assert t.action in page.locator(".crm-history").inner_text()
    page.screenshot(path=str(ARTIFACTS / "workflow-transition.png"), full_page=True)


def test_public_survey_page_takes_an_answer_once(app: Any, browser: Any, server: str,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from app.messaging.outbox import OUTBOX
    from app.messaging.schedules import tick
    from app.messaging.surveys import ANSWERS

    crm = app.extensions["crm"]  # the demo calls closed over past months: invite for all of them
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, settings=dataclasses.replace(crm.spec.settings, catch_up_days=3650)))
    tick(app, dt.datetime.now())
    with app.app_context():
        session = app.extensions["crm"].db.session
        answered = sa.select(ANSWERS.c.record_id)
        invite = session.execute(sa.select(OUTBOX).where(OUTBOX.c.source.like("%survey%"), OUTBOX.c.step == 0,
                                                         OUTBOX.c.record_id.not_in(answered))).first()
    assert invite is not None
    path = re.search(r"(/survey/[A-Za-z0-9_.\-]+)", f"{invite.body} {invite.link}").group(1)
    context = browser.new_context(viewport={"width": 900, "height": 900}, locale="zh-CN")  # no login: a customer
    pg = context.new_page()
    pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    pg.goto(f"{server}{path}")
    groups = sorted({n for n in pg.locator("input[type=radio]").evaluate_all("els => els.map(e => e.name)")})
    assert len(groups) >= 4
    for name in groups:
        pg.locator(f"input[name={name}]").last.check()
    pg.screenshot(path=str(ARTIFACTS / "survey-page.png"), full_page=True)
    with pg.expect_navigation():  # the answer's page, not the form while it is left
        pg.click("button[type=submit]")
    assert "感谢" in pg.content()
    pg.goto(f"{server}{path}")
    assert "已经回答" in pg.content()
    context.close()
    with app.app_context():
        values = app.extensions["crm"].db.session.execute(sa.select(ANSWERS.c.value).where(ANSWERS.c.record_id == invite.record_id)).scalars()
        assert len(list(values)) == len(groups)


def test_import_shows_a_live_progress_bar_then_the_summary(app: Any, page: Any, server: str, tmp_path: Any,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Upload in the browser; a worker (here a thread running the task's body, started a moment
    later) imports while the page polls; the page turns into the summary by itself."""
    import threading
    import time

    from openpyxl import Workbook

    from app.io import importjobs

    def worker_soon(target_app: Any, job_id: int) -> bool:
        real = target_app._get_current_object()  # the view passes current_app

        def work() -> None:
            time.sleep(1.5)  # the page shows the queued job first
            with real.app_context():  # as the Celery task runs it
                importjobs.run_job(real, job_id)

        threading.Thread(target=work, daemon=True).start()
        return True

    monkeypatch.setattr(importjobs, "dispatch", worker_soon)
    crm = app.extensions["crm"]
    entity = next(e for e in crm.spec.entities if e.name == "customer")
    name = entity.field(entity.title_field)
    wb = Workbook()
    wb.active.append([name.label, "需求迫切程度"])
    for i in range(3000):
        wb.active.append([f"浏览器导入客户{i:04d}", "normal"])
    path = tmp_path / "browser-import.xlsx"
    wb.save(path)

    page.goto(f"{server}{_route(app, entity.name)}/import/")
    page.set_input_files("input[type=file]", str(path))
    page.click("form.crm-import button[type=submit]")
    page.wait_for_selector(".crm-progress")
    page.screenshot(path=str(ARTIFACTS / "import-progress.png"), full_page=True)
    page.wait_for_selector(".crm-import-result", timeout=60_000)  # the page reloads itself when the job is done
    assert "3000" in page.locator(".crm-import-result").inner_text()
    page.screenshot(path=str(ARTIFACTS / "import-done.png"), full_page=True)
    with app.app_context():
        model = crm.generated.models.MODELS[entity.name]
        assert crm.db.session.query(model).filter(getattr(model, name.name).like("浏览器导入客户%")).count() == 3000
