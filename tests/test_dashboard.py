"""Dashboard numbers checked against an independent pandas computation over the same rows, row
scope and hidden fields on every panel, drill-down totals, exports with native charts, and
labels/data that cannot inject script."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from app.access.accounts import add_user
from app.ops.demo import make_demo_data
from app.reports.panels import WINDOW, period_key, period_start
from app.spec.expr import parse, record_lookup
from app.spec.model import Report, field_at
from tests.conftest import login

PASSWORD = "dash-Pass-123"  # noqa: S105 - test-only


@pytest.fixture(scope="module")
def rows(app: Any) -> None:
    make_demo_data(app, 150, seed=5)
    add_user(app, "dash_sales", ["业务员"], PASSWORD)
    add_user(app, "dash_tech", ["技术员"], PASSWORD)
    add_user(app, "dash_brand", ["品牌经理"], PASSWORD)
    add_user(app, "dash_super", ["服务主任"], PASSWORD)


def _panel(client: Any, name: str) -> dict[str, Any]:
    r = client.get(f"/dashboard/panel/{name}")
    assert r.status_code == 200, (name, r.status_code)
    return dict(r.json)


def _expected(app: Any, report: Report, owner_id: int | None = None) -> dict[str, list[float | None]]:
    """The panel computed another way: ORM rows, the condition evaluated in Python, pandas
    group-by — keyed like the panel's categories."""
    crm = app.extensions["crm"]
    spec = crm.spec
    entity = spec.entity(report.entity)
    emap = {e.name: e for e in spec.entities}
    model = crm.generated.models.MODELS[entity.name]
    now = dt.datetime.now()
    with app.app_context():
        objs = crm.db.session.query(model).all()
        if owner_id is not None:
            objs = [o for o in objs if getattr(o, f"{entity.owner_field}_id") == owner_id]
        if report.condition:
            expr = parse(report.condition)
            objs = [o for o in objs if expr.test(record_lookup(o), now, spec.calendar)]
        data: dict[str, list[Any]] = {"key": []}
        for i in range(len(report.measures)):
            data[f"m{i}"] = []
        for o in objs:
            data["key"].append(_key(o, report, entity, emap, now))
            for i, (_fn, path) in enumerate(report.measures):
                v = getattr(o, path) if path else 1
                data[f"m{i}"].append(float(v) if v is not None else None)
    frame = pd.DataFrame(data)
    frame = frame[frame["key"] != "__outside__"]
    out: dict[str, list[float | None]] = {}
    for key, group in frame.groupby("key", dropna=False):
        values: list[float | None] = []
        for i, (fn, path) in enumerate(report.measures):
            col = group[f"m{i}"]
            if fn == "count":
                v = float(len(group)) if not path else float(col.notna().sum())
            else:
                v = {"sum": col.sum, "avg": col.mean, "min": col.min, "max": col.max}[fn]()
                v = None if pd.isna(v) else float(v)
            values.append(None if v is None else round(v, 2))
        out[str(key)] = values
    return out


def _key(o: Any, report: Report, entity: Any, emap: dict[str, Any], now: dt.datetime) -> str:
    if not report.group_by:
        return ""
    f = field_at(entity, report.group_by, emap)
    column = f"{report.group_by}_id" if f is not None and f.type in ("link", "user") else report.group_by
    v = getattr(o, column)
    dated = report.group_by in ("created_on", "changed_on") or (f is not None and f.type in ("date", "datetime"))
    if v is None:
        return "__outside__" if dated else "__none__"  # a trend shows dated rows of its window only
    if dated:
        period = report.period or "day"
        day = v.date() if isinstance(v, dt.datetime) else v
        if not period_start(now.date(), period, WINDOW[period] - 1) <= day < period_start(now.date(), period, -WINDOW[period]):
            return "__outside__"
        return period_key(period_start(day, period), period)
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def _compare(panel: dict[str, Any], expected: dict[str, list[float | None]], report: Report) -> None:
    zero = [0.0 if fn in ("count", "sum") else None for fn, _p in report.measures]
    shown = {c["key"]: [s[i] for s in panel["series"]] for i, c in enumerate(panel["categories"])}
    for key, values in shown.items():
        want = expected.get(key, zero)
        for got, exp in zip(values, want, strict=True):
            assert (got is None and exp is None) or (got is not None and exp is not None and abs(got - exp) < 0.011), \
                (report.name, key, values, want)
    if len(shown) < 30 and report.chart != "radar":  # nothing with rows is left out (top-N panels aside)
        assert {k for k, v in expected.items() if any(x for x in v)} <= set(shown), report.name


def test_every_panel_matches_an_independent_pandas_computation(app: Any, client: Any, rows: None) -> None:
    login(client, "admin", "admin-Pass-123")
    spec = app.extensions["crm"].spec
    assert len(spec.reports) >= 20
    for report in spec.reports:
        panel = _panel(client, report.name)
        assert not panel["denied"]
        _compare(panel, _expected(app, report), report)


def test_a_salesperson_sees_only_own_rows_and_allowed_panels(app: Any, client: Any, rows: None) -> None:
    crm = app.extensions["crm"]
    with app.app_context():
        from flask_appbuilder.security.sqla.models import User

        me = crm.db.session.query(User).filter_by(username="dash_sales").one()
        model = crm.generated.models.MODELS["follow_up"]
        ids = [r.id for r in crm.db.session.query(model).filter(model.status == "planned").limit(3)]
        crm.db.session.execute(sa.update(model.__table__).where(model.__table__.c.id.in_(ids))
                               .values(owner_id=me.id, planned_on=dt.date.today() + dt.timedelta(days=2),
                                       next_follow_on=None))  # the rows stay valid (next ≥ planned), as a form would insist
        crm.db.session.commit()
        my_id = me.id
    login(client, "dash_sales", PASSWORD)
    page = client.get("/dashboard/").text
    names = set(re.findall(r'data-panel="([a-z0-9_]+)"', page))  # the sheet's panels (survey panels have dashes)
    visible = {r.name for r in crm.spec.reports if "业务员" in r.roles}
    assert names == visible and "follow_ups_due_this_week" in names
    report = next(r for r in crm.spec.reports if r.name == "follow_ups_due_this_week")
    panel = _panel(client, report.name)
    assert [c["key"] for c in panel["categories"]] == [str(my_id)]
    assert panel["series"][0] == [_expected(app, report, owner_id=my_id)[str(my_id)][0]]
    assert client.get("/dashboard/panel/customers_by_grade").status_code == 404
    assert client.get("/dashboard/export/customers_by_grade").status_code == 404
    drill = client.get(f"/dashboard/drill/follow_ups_due_this_week?key={my_id}")
    assert drill.status_code == 200 and "共 3 条" in drill.text


def test_a_panel_on_a_hidden_field_is_withheld(app: Any, client: Any, rows: None, monkeypatch: pytest.MonkeyPatch) -> None:
    crm = app.extensions["crm"]
    secret = Report("amount_for_service", "customer", "grade", "sum(annual_amount)", roles=("服务主任",), label="金额")
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, reports=(*crm.spec.reports, secret)))
    login(client, "dash_super", PASSWORD)
    panel = _panel(client, "amount_for_service")
    assert panel["denied"] and panel["series"] == []
    assert client.get("/dashboard/export/amount_for_service").status_code == 403
    assert client.get("/dashboard/drill/amount_for_service?key=A").status_code == 403


def test_drill_down_total_equals_the_panel_value(app: Any, client: Any, rows: None) -> None:
    login(client, "admin", "admin-Pass-123")
    panel = _panel(client, "open_complaints_by_severity")
    for i, c in enumerate(panel["categories"]):
        page = client.get(f"/dashboard/drill/open_complaints_by_severity?key={c['key']}")
        assert page.status_code == 200
        assert f"共 {int(panel['series'][0][i])} 条" in page.text
    trend = _panel(client, "new_customers_monthly")
    last = trend["categories"][-1]
    page = client.get(f"/dashboard/drill/new_customers_monthly?key={last['key']}")
    assert f"共 {int(trend['series'][0][-1])} 条" in page.text
    assert client.get("/dashboard/drill/new_customers_monthly?key=not-a-month").status_code == 400


def test_export_is_a_workbook_with_the_numbers_and_a_native_chart(app: Any, client: Any, rows: None) -> None:
    login(client, "admin", "admin-Pass-123")
    panel = _panel(client, "survey_dimensions_by_technician")
    r = client.get("/dashboard/export/survey_dimensions_by_technician")
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    ws = load_workbook(io.BytesIO(r.data)).active
    values = [list(row) for row in ws.iter_rows(values_only=True)]
    header = values.index(["分类", *panel["measures"]])
    assert [row[0] for row in values[header + 1:]] == [c["label"] for c in panel["categories"]]
    assert [row[1] for row in values[header + 1:]] == panel["series"][0]
    assert len(ws._charts) == 1 and type(ws._charts[0]).__name__ == "RadarChart"


def test_labels_and_data_cannot_inject_script(app: Any, client: Any, rows: None, monkeypatch: pytest.MonkeyPatch) -> None:
    crm = app.extensions["crm"]
    evil = Report("evil", "customer", "source_channel", "count", chart="table", label="<script>alert(1)</script>")
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, reports=(evil,)))
    with app.app_context():
        model = crm.generated.models.MODELS["customer"]
        first = crm.db.session.query(model).order_by(model.id).first()
        crm.db.session.execute(sa.update(model.__table__).where(model.__table__.c.id == first.id)
                               .values(source_channel="</script><script>alert(2)</script>"))
        crm.db.session.commit()
    login(client, "admin", "admin-Pass-123")
    page = client.get("/dashboard/").text
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("workers", [4, 1])
def test_the_dashboard_computes_its_panels_in_the_viewers_language(app: Any, client: Any, rows: None, workers: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's panels, computed side by side in threads (or one by one), say what the same panel
    asked for alone in the viewer's request says: titles, measures, category labels, notes."""
    monkeypatch.setitem(app.config, "CRM_DASHBOARD_WORKERS", workers)
    login(client, "admin", "admin-Pass-123")

    def on_the_page() -> dict[str, dict[str, Any]]:
        page = client.get("/dashboard/").text
        found = re.search(r'<script type="application/json" id="crm-panels">(.*?)</script>', page, re.S)
        assert found, page[:500]
        return {p["name"]: p for p in json.loads(found.group(1))}

    chinese = on_the_page()
    assert len(chinese) >= 20
    for name, panel in chinese.items():
        assert panel == _panel(client, name), name
    client.get("/lang/en")
    try:
        english = on_the_page()
        for name, panel in english.items():
            assert panel == _panel(client, name), name
    finally:
        client.get("/lang/zh")
    assert english.keys() == chinese.keys()
    assert all(english[n]["title"] != chinese[n]["title"] for n in chinese)
    assert any(re.search(r"[\u4e00-\u9fff]", c["label"]) for p in chinese.values() for c in p["categories"])
    assert not any(re.search(r"[\u4e00-\u9fff]", p["title"] + p["note"]) for p in english.values())  # survey questions stay as asked


def test_people_without_panels_get_an_explained_empty_page(app: Any, client: Any, rows: None) -> None:
    login(client, "dash_brand", PASSWORD)  # approves master data: no report is opened to the role
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/dashboard/")
    page = client.get("/dashboard/").text
    assert "暂无可查看的统计" in page and 'data-panel="' not in page


def test_survey_panels_count_invitations_and_answers_from_the_real_pipeline(app: Any, client: Any, rows: None,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Invitations written by a scheduling pass, some answered on the public page: the dashboard's
    response rate and per-owner averages equal a pandas computation over the outbox and answers."""
    from app.messaging.jobs import survey_sources, surveys_of
    from app.messaging.outbox import OUTBOX
    from app.messaging.schedules import tick
    from app.messaging.surveys import ANSWERS

    crm = app.extensions["crm"]
    survey = next(iter(surveys_of(crm.spec).values()))
    source = survey_sources(crm.spec)[survey.name]
    # the demo calls closed over past months: invite for all of them, not only the last week's
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, settings=dataclasses.replace(crm.spec.settings, catch_up_days=3650)))
    tick(app, dt.datetime.now())
    with app.app_context():
        unanswered = OUTBOX.c.record_id.not_in(sa.select(ANSWERS.c.record_id).where(ANSWERS.c.survey == survey.name))
        invites = crm.db.session.execute(sa.select(OUTBOX).where(OUTBOX.c.source == source, OUTBOX.c.step == 0, unanswered)).all()
    assert len(invites) >= 4
    public = app.test_client()
    for n, invite in enumerate(invites[:4]):
        path = re.search(r"(/survey/[A-Za-z0-9_.\-]+)", f"{invite.body} {invite.link}").group(1)
        page = public.get(path)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {f"q{int(q.order)}": str(1 + (n + int(q.order)) % q.scale) for q in survey.questions}
        assert public.post(path, data={**form, "csrf_token": token}).status_code == 200
    login(client, "admin", "admin-Pass-123")
    rate = _panel(client, f"survey-rate-{survey.name}")
    radar = _panel(client, f"survey-radar-{survey.name}")
    with app.app_context():
        outbox = pd.read_sql(sa.select(OUTBOX.c.record_id, OUTBOX.c.created_on).where(OUTBOX.c.source == source, OUTBOX.c.step == 0),
                             crm.db.session.connection())
        answers = pd.read_sql(sa.select(ANSWERS).where(ANSWERS.c.survey == survey.name), crm.db.session.connection())
        model = crm.generated.models.MODELS[survey.entity]
        entity = crm.spec.entity(survey.entity)
        owners = {r.id: getattr(r, f"{entity.owner_field}_id") for r in crm.db.session.query(model).all()}
    outbox["month"] = pd.to_datetime(outbox["created_on"]).dt.strftime("%Y-%m")
    outbox["answered"] = outbox["record_id"].isin(set(answers["record_id"]))
    by_month = outbox.drop_duplicates("record_id").groupby("month")["answered"].agg(["size", "sum"])
    shown = {c["key"]: rate["series"][0][i] for i, c in enumerate(rate["categories"])}
    for month, row in by_month.iterrows():
        assert shown[month] == round(100 * row["sum"] / row["size"], 1)
    answers["owner"] = answers["record_id"].map(owners)
    expected = answers.groupby(["owner", "question_order"])["value"].mean().round(2)
    assert radar["categories"] and len(radar["series"]) == len(survey.questions)
    for i, c in enumerate(radar["categories"]):
        for m, q in enumerate(survey.questions):
            assert radar["series"][m][i] == expected[(int(c["key"]), int(q.order))]
    assert client.get(f"/dashboard/export/survey-radar-{survey.name}").status_code == 200
    assert client.get(f"/dashboard/drill/survey-rate-{survey.name}").status_code == 404  # nothing to drill into
    tech = app.test_client()
    login(tech, "dash_tech", PASSWORD)  # a technician (own scope) who owns none of the surveyed calls
    mine = _panel(tech, f"survey-rate-{survey.name}")
    assert all(v is None for v in mine["series"][0]) and "邀请 0" in mine["note"]
    assert _panel(tech, f"survey-radar-{survey.name}")["categories"] == []


def test_a_report_page_shows_the_chart_and_every_number(app: Any, client: Any, rows: None) -> None:
    login(client, "admin", "admin-Pass-123")
    panel = _panel(client, "customers_by_grade")
    page = client.get("/dashboard/report/customers_by_grade").text
    assert 'id="chart-customers_by_grade"' in page and "crm-panel-table" in page
    for i, c in enumerate(panel["categories"]):
        if panel["series"][0][i]:
            assert c["label"] in page and f"{int(panel['series'][0][i]):,}" in page
    assert client.get("/dashboard/report/no_such_report").status_code == 404
