"""The satisfaction survey: invitation written by the tick with a signed link; the public page
asks the questions; an answer is stored once; reused, tampered and expired links get a clear page
and change nothing; a lowest answer notifies the follow-up role; the monthly rollup."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa

from app.messaging.jobs import surveys_of
from app.messaging.links import make_token
from app.messaging.outbox import NOTIFICATION, OUTBOX
from app.messaging.schedules import tick
from app.messaging.surveys import ANSWERS, followup_roles, monthly_rollup, register_surveys
from tests.test_schedules import make_matching, world  # noqa: F401 - the shared fixture

SURVEY = "service_satisfaction"


@pytest.fixture(scope="module")
def survey_app(app: Any) -> Any:
    """The session app with the survey blueprint (create_app will register it once wired)."""
    if "crm_survey" not in app.blueprints:
        started = app._got_first_request
        app._got_first_request = False  # test-only: other tests may have served requests already
        try:
            register_surveys(app)
        finally:
            app._got_first_request = started
    return app


def invitation(app: Any, world: dict[str, Any], closed_at: dt.datetime) -> tuple[int, Any]:  # noqa: F811
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.name == "service_survey")
    rid = make_matching(app, world, schedule, {"status": "closed", "closed_at": closed_at}, closed_at + dt.timedelta(days=3))
    tick(app, closed_at + dt.timedelta(hours=1))
    with app.app_context():
        q = sa.select(OUTBOX).where(OUTBOX.c.source == schedule.name, OUTBOX.c.record_id == rid)
        assert app.extensions["crm"].db.session.execute(q).all() == [], "not before the next working day"
    tick(app, closed_at + dt.timedelta(days=3))
    with app.app_context():
        rows = app.extensions["crm"].db.session.execute(q).all()
    assert len(rows) == 1 and rows[0].channel == "email"
    return rid, rows[0]


def answers(app: Any, rid: int) -> list[Any]:
    with app.app_context():
        q = sa.select(ANSWERS.c.question_order, ANSWERS.c.value).where(ANSWERS.c.record_id == rid, ANSWERS.c.survey == SURVEY)
        return sorted(app.extensions["crm"].db.session.execute(q).all())


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def test_survey_round_trip(survey_app: Any, world: dict[str, Any]) -> None:  # noqa: F811
    app = survey_app
    rid, row = invitation(app, world, dt.datetime(2026, 11, 4, 15, 0))
    path = re.search(r"(/survey/[A-Za-z0-9_.\-]+)", row.body).group(1)
    assert row.link.endswith(path)
    client = app.test_client()
    page = client.get(path)
    assert page.status_code == 200
    questions = surveys_of(app.extensions["crm"].spec)[SURVEY].questions
    assert all(q.question in page.text for q in questions) and "很满意" in page.text
    spec = app.extensions["crm"].spec
    assert f"<title>{spec.settings.app_name} · 满意度调查" in page.text and SURVEY not in page.text, "no sheet identifiers for customers"
    assert spec.entity("service_call").label in page.text
    form = {f"q{int(q.order)}": "3" for q in questions} | {"csrf_token": csrf(page.text)}
    assert client.post(path, data={**form, "q1": "9"}).status_code == 400, "out-of-scale answer refused"
    assert answers(app, rid) == []
    done = client.post(path, data=form)
    assert done.status_code == 200 and "感谢" in done.text
    assert answers(app, rid) == [(int(q.order), 3) for q in questions]

    again = client.get(path)
    assert again.status_code == 409 and "已经回答" in again.text
    assert client.post(path, data={**form, "q2": "1"}).status_code == 409
    assert answers(app, rid) == [(int(q.order), 3) for q in questions], "a reused link changes nothing"


def test_tampered_and_expired_links(survey_app: Any, world: dict[str, Any]) -> None:  # noqa: F811
    app = survey_app
    client = app.test_client()
    token = make_token(app, SURVEY, "service_call", 999_999)
    bad = client.get(f"/survey/{token[:-3]}abc")
    assert bad.status_code == 400 and "无效" in bad.text
    forged = client.get("/survey/" + make_token(app, SURVEY, "service_call", 1).replace(".", "x.", 1))
    assert forged.status_code == 400
    rid = make_matching(app, world, next(s for s in world["spec"].schedules if s.name == "service_survey"),
                        {"status": "closed", "closed_at": dt.datetime(2026, 11, 4)}, dt.datetime(2026, 11, 6))
    valid = make_token(app, SURVEY, "service_call", rid)
    old = app.config.get("CRM_SURVEY_MAX_AGE_DAYS")
    app.config["CRM_SURVEY_MAX_AGE_DAYS"] = -1
    try:
        with app.test_client() as c:
            expired = c.get(f"/survey/{valid}")
            assert expired.status_code == 410 and "过期" in expired.text
            assert c.post(f"/survey/{valid}", data={"q1": "1"}).status_code in (400, 410)
    finally:
        app.config["CRM_SURVEY_MAX_AGE_DAYS"] = old
    assert answers(app, rid) == []


def test_lowest_answer_notifies_followup_role_and_rollup(survey_app: Any, world: dict[str, Any]) -> None:  # noqa: F811
    app = survey_app
    rid, row = invitation(app, world, dt.datetime(2026, 11, 18, 11, 0))
    path = re.search(r"(/survey/[A-Za-z0-9_.\-]+)", row.body).group(1)
    client = app.test_client()
    page = client.get(path)
    questions = surveys_of(app.extensions["crm"].spec)[SURVEY].questions
    form = {f"q{int(q.order)}": "4" for q in questions} | {"q2": "1", "csrf_token": csrf(page.text)}
    assert client.post(path, data=form).status_code == 200
    spec = app.extensions["crm"].spec
    roles = followup_roles(spec, "service_call")
    assert roles and spec.admin_role not in roles
    followers = {world["users"][r] for r in roles}
    with app.app_context():
        notes = app.extensions["crm"].db.session.execute(
            sa.select(NOTIFICATION.c.user_id, NOTIFICATION.c.body)
            .where(NOTIFICATION.c.link.like(f"%/servicecallview/show/{rid}"))).all()  # this call's, not another entity's #rid
    assert followers <= {n.user_id for n in notes}
    assert all(questions[1].question in n.body for n in notes)

    rows = monthly_rollup(app, SURVEY, dt.date(2026, 11, 1))
    owner = next(r for r in rows if r["owner_id"] == world["owner"])
    assert owner["invited"] >= 2 and owner["responses"] >= 2 and 0 < owner["response_rate"] <= 1
    assert set(owner["averages"]) == {str(int(q.order)) for q in questions}
    assert 1 <= owner["averages"]["2"] < owner["averages"]["1"] <= 4


def test_rollup_as_a_page_and_a_workbook(survey_app: Any, world: dict[str, Any]) -> None:  # noqa: F811
    import io

    from openpyxl import load_workbook

    from tests.conftest import ADMIN_PASSWORD, login

    app = survey_app
    invitation(app, world, dt.datetime(2026, 11, 18, 11, 0))
    client = app.test_client()
    login(client, "admin", ADMIN_PASSWORD)
    page = client.get(f"/survey-rollup/{SURVEY}?month=2026-11&format=html")
    assert page.status_code == 200 and "crm-rollup" in page.text
    r = client.get(f"/survey-rollup/{SURVEY}?month=2026-11&format=xlsx")
    assert r.status_code == 200
    headers = next(load_workbook(io.BytesIO(r.data)).active.iter_rows(values_only=True))
    assert "invited" in headers and any(str(h).startswith("averages_") for h in headers)
    assert app.test_client().get(f"/survey-rollup/{SURVEY}?format=xlsx").status_code == 401


def test_followup_roles_split_on_full_width_separators() -> None:
    from app.spec.model import Settings, Spec

    settings = Settings(extra=(("survey_followup_role", "客服专员\uff0c质量主管\u3001总经理\uff1b技术员"),))  # ， 、 ；
    spec = Spec(workbook="w.xlsx", entities=(), choices={}, grading=(), forms=(), roles=(), permissions=(), workflows=(),
                schedules=(), surveys=(), templates=(), validations=(), reports=(), settings=settings)
    assert followup_roles(spec, "any") == ["客服专员", "质量主管", "总经理", "技术员"]


def test_a_link_sent_before_the_entity_was_renamed_still_opens(survey_app: Any, world: dict[str, Any],  # noqa: F811
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The signed link names the entity; after a rename (previous_name in the workbook) a customer's
    unanswered invitation still opens, and the answer is kept under the entity's new name."""
    import dataclasses

    app = survey_app
    crm = app.extensions["crm"]
    rid = make_matching(app, world, next(s for s in world["spec"].schedules if s.name == "service_survey"),
                        {"status": "closed", "closed_at": dt.datetime(2026, 11, 4)}, dt.datetime(2026, 11, 6))
    renamed = tuple(dataclasses.replace(e, previous_name="repair_call") if e.name == "service_call" else e for e in crm.spec.entities)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, entities=renamed))
    client = app.test_client()
    path = "/survey/" + make_token(app, SURVEY, "repair_call", rid)
    page = client.get(path)
    assert page.status_code == 200, page.text
    questions = surveys_of(crm.spec)[SURVEY].questions
    done = client.post(path, data={f"q{int(q.order)}": "4" for q in questions} | {"csrf_token": csrf(page.text)})
    assert done.status_code == 200 and "感谢" in done.text
    assert answers(app, rid) == [(int(q.order), 4) for q in questions]
    assert client.get("/survey/" + make_token(app, SURVEY, "no_such_entity", rid)).status_code == 404


def test_a_corrected_closing_time_does_not_invite_the_customer_again(survey_app: Any, world: dict[str, Any]) -> None:  # noqa: F811
    app = survey_app
    closed = dt.datetime(2026, 11, 10, 16, 0)
    rid, row = invitation(app, world, closed)
    with app.app_context():
        session = app.extensions["crm"].db.session
        session.execute(sa.text("UPDATE service_call SET closed_at = :t WHERE id = :i"), {"t": closed - dt.timedelta(hours=1), "i": rid})
        session.commit()
    tick(app, closed + dt.timedelta(days=3, minutes=10))
    with app.app_context():
        q = sa.select(OUTBOX.c.id).where(OUTBOX.c.source == row.source, OUTBOX.c.record_id == rid)
        assert len(app.extensions["crm"].db.session.execute(q).all()) == 1, "one invitation per service call"
