"""Home pages by role: each person's own work first (overdue, due today, steps waiting for them,
their open records, their records by grade), each count opening exactly its records, then only the
panels they may read — for every role of the shipped workbook and of a second-domain workbook.

The records behind each count are found a second way here: ORM objects, the workbook's conditions
evaluated in Python, deadlines moved record by record on the working calendar — and compared with
the ids the count's link lists."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.access.scope import hidden_fields, scope_clause, user_scope
from app.messaging.jobs import shift
from app.ops.demo import DEMO_PASSWORD, make_demo_data
from app.spec.expr import as_datetime, parse, record_lookup
from app.spec.when import parse_when
from tests.conftest import ADMIN_PASSWORD, login
from tests.probes import run_probe
from tests.workbooks import LIBRARY_REPORTS, library_sheets, write_workbook


@pytest.fixture(scope="module")
def demo(app: Any) -> Any:
    make_demo_data(app, 80, seed=25)
    return app


def demo_login(app: Any, role: str) -> str:
    """The first demo login of ``role`` (in demo department 1), as ``crm demo-data`` prints it."""
    from app.ops.demo import demo_logins

    with app.app_context():
        return next(login.username for login in demo_logins(app) if login.role == role)


def signed_in(app: Any, username: str, password: str = DEMO_PASSWORD) -> Any:
    c = app.test_client()
    login(c, username, password)
    return c


def home(client: Any) -> tuple[str, dict[str, tuple[int, str]], list[dict[str, Any]]]:
    """The home page: its text, each count (key → number, link) and its panels."""
    page = client.get("/dashboard/")
    assert page.status_code == 200
    cards = {m.group(2): (int(m.group(3).replace(",", "")), m.group(1).replace("&amp;", "&")) for m in re.finditer(
        r'href="([^"]+)" data-work="([^"]+)">\s*<span class="crm-work-count">([\d,]+)</span>', page.text)}
    panels = json.loads(re.search(r'<script type="application/json" id="crm-panels">(.*?)</script>', page.text, re.S).group(1))
    return page.text, cards, panels


def listed(client: Any, url: str) -> set[int]:
    """Every record id a list address shows, page after page (100 a page)."""
    view = re.match(r"/(\w+)/list/", url).group(1)  # type: ignore[union-attr]
    name = _view_class(client, view)
    ids: set[int] = set()
    for page in range(50):
        text = client.get(f"{url}&psize_{name}=100&page_{name}={page}").text
        found = {int(i) for i in re.findall(rf"/{view}/show/(\d+)", text)}
        if not found - ids:
            break
        ids |= found
    return ids


def _view_class(client: Any, route: str) -> str:
    crm = client.application.extensions["crm"]
    return next(v.__name__ for _n, v, *_r in crm.generated.views.REGISTRY if v.__name__.lower() == route)


# -- the oracle: the records a count must hold, found another way ---------------------------------------

class Oracle:
    def __init__(self, app: Any, username: str, now: dt.datetime):
        self.app, self.now = app, now
        self.crm = app.extensions["crm"]
        self.spec = self.crm.spec
        self.today = dt.datetime.combine(now.date(), dt.time())
        with app.app_context():
            self.user = self.crm.appbuilder.sm.find_user(username=username)
            self.uid = self.user.id
            self.roles = {r.name for r in self.user.roles}

    def objects(self, entity: str) -> list[Any]:
        model = self.crm.generated.models.MODELS[entity]
        e = self.spec.entity(entity)
        with self.app.app_context():
            q = self.crm.db.session.query(model)
            scope = scope_clause(self.spec, e, model, self.user, self.crm.admin_role)
            return (q.filter(scope) if scope is not None else q).all()

    def owned(self, entity: str, obj: Any) -> bool:
        e = self.spec.entity(entity)
        return getattr(obj, f"{e.owner_field}_id") == self.uid

    def expected(self, key: str) -> set[int]:
        kind, entity, rest = key.split(":", 2)
        objs = self.objects(entity)
        if kind in ("overdue", "today"):
            return {o.id for o in objs if self.owned(entity, o) and self._due(entity, rest, o, kind)}
        if kind == "step":
            field, state = rest.split(":")
            return {o.id for o in objs if getattr(o, field) == state and not self.owned(entity, o)}
        if kind == "open":
            final = self._final(entity, rest)
            return {o.id for o in objs if self.owned(entity, o) and getattr(o, rest) not in final}
        field, value = rest.split(":")
        return {o.id for o in objs if self.owned(entity, o) and getattr(o, field) == value}

    def _due(self, entity: str, field: str, obj: Any, kind: str) -> bool:
        rows = [(s, parse_when(s.when)) for s in self.spec.schedules if s.entity == entity and "owner" in s.recipients]
        rows = [(s, w) for s, w in rows if w and not w.every and not w.yearly and w.field == field]
        anchor = as_datetime(getattr(obj, field, None))
        if anchor is None or not any(not s.condition or parse(s.condition).test(record_lookup(obj), self.now, self.spec.calendar)
                                     for s, _w in rows):
            return False
        offsets = [w.offset for _s, w in rows]
        if all(o is not None and o.amount > 0 for o in offsets):
            deadline = min(shift(anchor, o, self.spec.calendar) for o in offsets)  # type: ignore[arg-type]
        else:
            deadline = anchor
        if kind == "overdue":
            return deadline < self.today
        return self.today <= deadline < self.today + dt.timedelta(days=1)

    def _final(self, entity: str, field: str) -> set[Any]:
        steps = [t for t in self.spec.workflows if t.entity == entity and t.state_field == field]
        order = list(dict.fromkeys(s for t in steps for s in (t.source, t.target)))
        return set(order) - {t.source for t in steps if order.index(t.target) > order.index(t.source)}

    def allowed_panels(self) -> set[str]:
        out = set()
        for r in self.spec.reports:
            e = self.spec.entity(r.entity)
            used = {r.group_by.split(".")[0]} | {p.split(".")[0] for _f, p in r.measures if p}
            if (not r.roles or self.roles & set(r.roles)) and user_scope(self.spec, e, self.user, self.crm.admin_role) != "none" \
                    and not used & hidden_fields(self.spec, e, self.user, self.crm.admin_role):
                out.add(r.name)
        return out


def _survey_entities(spec: Any) -> dict[str, str]:
    from app.messaging.jobs import surveys_of

    return {name: s.entity for name, s in surveys_of(spec).items()}


# -- the shipped workbook: every role -------------------------------------------------------------------

def test_a_salesperson_lands_on_their_own_overdue_follow_ups_and_the_link_lists_exactly_them(demo: Any) -> None:
    user = demo_login(demo, "业务员")
    crm = demo.extensions["crm"]
    table = crm.generated.models.MODELS["follow_up"].__table__
    today = dt.date.today()
    with demo.app_context():
        session = crm.db.session
        uid = crm.appbuilder.sm.find_user(username=user).id
        mine = session.execute(sa.select(table.c.id).where(table.c.owner_id == uid).order_by(table.c.id)).scalars().all()
        theirs = session.execute(sa.select(table.c.id).where(table.c.owner_id != uid).order_by(table.c.id).limit(1)).scalars().all()
        assert len(mine) >= 4 and theirs
        # two overdue and one due today of the salesperson's, one done (not work), one overdue of someone else's
        for pk, status, day in ((mine[0], "planned", -3), (mine[1], "planned", -1), (mine[2], "planned", 0), (mine[3], "done", -2),
                                (theirs[0], "planned", -4)):
            session.execute(sa.update(table).where(table.c.id == pk).values(status=status, planned_on=today + dt.timedelta(days=day),
                                                                            done_on=today if status == "done" else None))
        session.commit()
    c = signed_in(demo, user)
    assert c.get("/", follow_redirects=True).request.path == "/dashboard/"  # the home link lands here
    text, cards, panels = home(c)
    oracle = Oracle(demo, user, dt.datetime.now())
    overdue = oracle.expected("overdue:follow_up:planned_on")
    assert {mine[0], mine[1]} <= overdue and mine[2] not in overdue and mine[3] not in overdue and theirs[0] not in overdue
    count, link = cards["overdue:follow_up:planned_on"]
    assert count == len(overdue) and listed(c, link) == overdue
    count, link = cards["today:follow_up:planned_on"]
    assert mine[2] in oracle.expected("today:follow_up:planned_on") and listed(c, link) == oracle.expected("today:follow_up:planned_on")
    assert text.index("crm-work") < text.index("crm-home-panels")  # own work first, then the panels
    # only the panels the salesperson may read; no survey panels about other people's service calls
    assert {p["name"] for p in panels} <= oracle.allowed_panels()
    assert not [p for p in panels if p["name"].startswith("survey-")]


ROLES = ["业务员", "销售经理", "客服专员", "服务主任", "技术员", "质量主管", "技术主管", "数据中心", "品牌经理", "总经理"]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_its_own_work_counted_exactly_and_no_panel_it_cannot_read(demo: Any, role: str) -> None:
    user = demo_login(demo, role)
    c = signed_in(demo, user)
    _text, cards, panels = home(c)
    oracle = Oracle(demo, user, dt.datetime.now())
    for key, (count, link) in cards.items():
        expected = oracle.expected(key)
        assert count == len(expected), (role, key, count, len(expected))
        assert listed(c, link) == expected, (role, key)
    names = {p["name"] for p in panels}
    surveys = _survey_entities(demo.extensions["crm"].spec)
    reports = {p for p in names if not p.startswith("survey-")}
    assert reports <= oracle.allowed_panels(), (role, reports - oracle.allowed_panels())
    for p in names - reports:  # a survey's panels: only for roles that can list the surveyed entity
        entity = demo.extensions["crm"].spec.entity(surveys[p.split("-", 2)[2]])
        assert user_scope(oracle.spec, entity, oracle.user, oracle.crm.admin_role) != "none"
    assert all(not p["denied"] for p in panels)


def test_each_role_with_owner_reminders_has_overdue_work_on_its_home(demo: Any) -> None:
    """Every role whose records a reminder to ``owner`` watches gets an overdue count (demo data
    holds such records for each), and a service supervisor the service calls waiting for dispatch."""
    crm = demo.extensions["crm"]
    seen = {}
    for role in ("业务员", "技术主管"):
        _t, cards, _p = home(signed_in(demo, demo_login(demo, role)))
        seen[role] = sorted(k for k in cards if k.startswith("overdue:"))
    assert "overdue:follow_up:planned_on" in seen["业务员"] and "overdue:complaint:deadline" in seen["业务员"]
    _t, cards, _p = home(signed_in(demo, demo_login(demo, "服务主任")))
    with demo.app_context():
        table = crm.generated.models.MODELS["service_call"].__table__
        waiting = crm.db.session.execute(sa.select(sa.func.count()).select_from(table).where(table.c.status == "registered")).scalar()
    assert waiting and cards["step:service_call:status:registered"][0] == waiting


def test_a_count_link_cannot_be_bent_to_show_more(demo: Any) -> None:
    """An unknown or foreign work key lists nothing; row scope holds under it."""
    c = signed_in(demo, demo_login(demo, "业务员"))
    text = c.get("/followupview/list/", query_string={"_work": "step:follow_up:status:planned"}).text
    assert not re.findall(r"/followupview/show/(\d+)", text)
    text = c.get("/followupview/list/", query_string={"_work": "nonsense"}).text
    assert not re.findall(r"/followupview/show/(\d+)", text) and "crm-narrowed" in text


def test_the_administrator_home_groups_its_many_panels(demo: Any) -> None:
    c = signed_in(demo, "admin", ADMIN_PASSWORD)
    text, _cards, panels = home(c)
    assert len(panels) > 8 and text.count('<details class="crm-panel-group">') >= 3
    assert '<details class="crm-panel-group" open' not in text  # collapsed: the page stays short


def test_money_is_said_in_yuan_wan_and_yi(app: Any) -> None:
    from app.reports.dashboard import money

    with app.test_request_context():
        assert [money(v) for v in (8500, 800_000, 1_234_567.8, 120_000_000, 0)] == ["8,500 元", "80 万", "123.46 万", "1.2 亿", "0 元"]


def test_a_panel_with_nothing_to_show_says_so_in_one_line(demo: Any) -> None:
    from app.reports.panels import PanelData

    empty = PanelData("x", "t", "bar", "e", ["n"], series=[[0.0, None]])
    assert empty.empty and not PanelData("x", "t", "bar", "e", ["n"], series=[[0.0, 3.0]]).empty
    c = signed_in(demo, demo_login(demo, "业务员"))
    text, _cards, panels = home(c)
    for p in panels:
        if p["empty"]:
            block = text.split(f'data-panel="{p["name"]}"', 1)[1].split('<div class="col-', 1)[0]
            assert "crm-panel-empty" in block and f'id="chart-{p["name"]}"' not in block


# -- a second domain ----------------------------------------------------------------------------------

def test_a_second_domain_workbook_gets_its_own_roles_homes(tmp_path: Path) -> None:
    from generator import generate

    sheets = library_sheets()
    sheets["fields"].append({"entity": "member", "name": "card_expires", "label": "借书证到期", "type": "date", "list": "yes"})
    sheets["schedules"] = [{"name": "card_renewal", "entity": "member", "when": "card_expires - 7 days", "recipients": "owner",
                            "channel": "inapp"}]
    sheets["reports"] = LIBRARY_REPORTS
    for grant in sheets["permissions"]:
        if (grant["role"], grant["entity"]) == ("馆员", "member"):
            grant["scope"] = "own"
    workbook = write_workbook(tmp_path / "library.xlsx", sheets)
    out = tmp_path / "library_app"
    generate(workbook, out)
    env = {"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(out), "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'library.sqlite'}"}
    r = run_probe("library_homes", env)
    made, librarian, volunteer = r["made"], r["librarian"], r["volunteer"]
    assert librarian["cards"] == {"overdue:member:card_expires": 2, "today:member:card_expires": 1}
    assert librarian["listed"] == {"overdue:member:card_expires": sorted([made["过期甲"], made["过期乙"]]),
                                   "today:member:card_expires": [made["今天丙"]]}
    assert librarian["panels"] == ["books_by_genre", "loans_due"]
    assert volunteer["cards"] == {} and volunteer["panels"] == ["books_by_genre"]  # loans are not the volunteer's to see


def test_the_top_bar_counts_what_needs_the_person(demo: Any) -> None:
    """Unread messages (a digest is one) plus the records waiting for one's step — the steps the
    home page lists under 待我处理."""
    from app.record.tables import Notification

    user = demo_login(demo, "服务主任")
    c = signed_in(demo, user)
    _text, cards, _panels = home(c)
    waiting = sum(n for key, (n, _link) in cards.items() if key.startswith("step:"))
    crm = demo.extensions["crm"]
    notes = Notification.__table__
    with demo.app_context():
        uid = crm.appbuilder.sm.find_user(username=user).id
        unread = crm.db.session.execute(sa.select(sa.func.count()).select_from(notes)
                                        .where(notes.c.user_id == uid, notes.c.read_at.is_(None))).scalar()
    shown = re.search(r"我的消息 \((\d+)\)", c.get("/inbox/").text)
    assert waiting > 0 and shown and int(shown.group(1)) == waiting + unread, (shown and shown.group(1), waiting, unread)
