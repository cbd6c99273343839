"""Time travel through every schedule of the shipped workbook: a pass before the due moment writes
nothing, a pass after it writes exactly one outbox row per recipient, a second pass nothing more;
escalations; the 6/7 working-hour dispatch rule on the working calendar."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from typing import Any

import pytest
import sqlalchemy as sa
from flask_appbuilder import Model

from app.messaging.jobs import shift
from app.messaging.links import Recipients
from app.messaging.outbox import OUTBOX
from app.messaging.schedules import tick
from app.spec.expr import parse, record_lookup
from app.spec.when import parse_when
from generator import load_spec
from tests.conftest import ROOT, SHIPPED

T0 = dt.datetime(2026, 11, 2, 10, 0)  # a Monday, a working day
MINUTE = dt.timedelta(minutes=1)
_counter = itertools.count(1)
SCHEDULES = [s.name for s in load_spec(str(SHIPPED))[0].schedules]


@pytest.fixture(scope="module")
def world(app: Any) -> dict[str, Any]:
    """One active user per role of the sheet, and one record of every entity (parents for links)."""
    from app.access.accounts import add_user
    from app.ops.demo import _Maker, entity_order

    spec = app.extensions["crm"].spec
    users = {}
    for i, role in enumerate(spec.roles):
        name = f"sched_{i}_{next(_counter)}"
        users[role.name] = add_user(app, name, [role.name], "pw-Sched-123", email=f"{name}@example.cn")
    owner = users[next(r.name for r in spec.roles if not r.admin)]
    maker = _Maker(spec, random.Random(11), T0, [owner])
    with app.app_context():
        session = app.extensions["crm"].db.session
        for e in entity_order(spec):
            maker.ids[e.name] = [insert_row(session, e.name, make_row(maker, e, 0))]
        session.commit()
    return {"spec": spec, "maker": maker, "owner": owner, "users": users}


def make_row(maker: Any, e: Any, i: int) -> dict[str, Any]:
    """A valid row of ``e`` with every e-mail and user field filled (recipients must exist)."""
    from app.record.rules import rules_for

    row = maker.valid_row(e, rules_for(maker.spec, e), i)
    for f in e.fields:
        if f.type == "email":
            row[f.column] = f"{e.name}{next(_counter)}@example.cn"
        elif f.type == "user":
            row[f.column] = maker.users[0]
        elif f.required and row[f.column] is None:
            row[f.column] = {"string": f"{f.name}-{next(_counter)}", "text": "x", "date": T0.date(), "datetime": T0}.get(f.type, 0)
        if f.unique and f.type == "string" and row[f.column] is not None:
            row[f.column] = f"{row[f.column]}-{next(_counter)}"[-(int(f.max) if f.max else 255):]
    if e.numbering:
        row["code"] = f"T-{e.name}-{next(_counter)}"
    return row


def insert_row(session: Any, entity: str, row: dict[str, Any]) -> int:
    table = Model.metadata.tables[entity]
    values = {"created_on": T0, "changed_on": T0, **row}
    return int(session.execute(sa.insert(table).values(**values).returning(table.c.id)).scalar_one())


def make_matching(app: Any, world: dict[str, Any], schedule: Any, fixed: dict[str, Any], at: dt.datetime) -> int:
    """Insert a record of the schedule's entity whose condition holds at ``at`` (found by trying rows)."""
    spec, maker = world["spec"], world["maker"]
    e = spec.entity(schedule.entity)
    cond = parse(schedule.condition) if schedule.condition else None
    for i in range(2000):
        row = make_row(maker, e, 1000 + i)
        row.update(fixed)
        values = {f.name: row.get(f.column) for f in e.fields}
        if cond is None or cond.test(record_lookup(values), at, spec.calendar):
            with app.app_context():
                session = app.extensions["crm"].db.session
                rid = insert_row(session, e.name, row)
                session.commit()
                return rid
    raise AssertionError(f"no row satisfies {schedule.condition}")


def outbox_rows(app: Any, source: str, record_id: int, step: int = 0) -> list[Any]:
    with app.app_context():
        session = app.extensions["crm"].db.session
        q = sa.select(OUTBOX).where(OUTBOX.c.source == source, OUTBOX.c.record_id == record_id, OUTBOX.c.step == step)
        return list(session.execute(q).all())


def due_of(spec: Any, schedule: Any) -> tuple[dict[str, Any], dt.datetime]:
    """Anchor values for a new record and the due moment they give."""
    when = parse_when(schedule.when)
    e = spec.entity(schedule.entity)
    if when.every is not None:
        return {"created_on": T0}, shift(T0, when.every, spec.calendar)
    if when.yearly:
        base = dt.datetime(2026, 11, 20)
        return {when.field: dt.date(1980, 11, 20)}, shift(base, when.offset, spec.calendar) if when.offset else base
    f = e.field(when.field)
    is_date = f is not None and f.type == "date"
    value: Any = T0.date() if is_date else T0
    anchor = dt.datetime.combine(T0.date(), dt.time()) if is_date else T0
    return {f.column if f is not None else when.field: value}, shift(anchor, when.offset, spec.calendar) if when.offset else anchor


def expected_recipients(app: Any, spec: Any, schedule: Any, names: tuple[str, ...] | None = None) -> int:
    """owner / a user field / an address path → 1 each; a role → its active users."""
    with app.app_context():
        r = Recipients(spec, app.extensions["crm"].db.session)
        total = 0
        for name in names or schedule.recipients:
            if name == "owner" or "." in name or spec.entity(schedule.entity).field(name) is not None:
                total += 1
            else:
                total += len(r.role_users(name))
        return total


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_fires_once_when_due(app: Any, world: dict[str, Any], name: str) -> None:
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.name == name)
    anchor, due = due_of(spec, schedule)
    before, after = due - MINUTE, due + MINUTE
    rid = make_matching(app, world, schedule, anchor, after)
    tick(app, before)
    assert outbox_rows(app, name, rid) == [], f"{name}: nothing before {due}"
    tick(app, after)
    rows = outbox_rows(app, name, rid)
    expected = expected_recipients(app, spec, schedule)
    assert expected >= 1
    assert len(rows) == expected, f"{name}: one row per recipient after {due}"
    assert all(r.status == "pending" and r.subject and "{{" not in r.body for r in rows)
    assert len({r.key for r in rows}) == expected
    tick(app, after)
    tick(app, after + MINUTE)
    assert len(outbox_rows(app, name, rid)) == expected, f"{name}: re-ticking never duplicates"


def test_working_hours_dispatch_rule(app: Any, world: dict[str, Any]) -> None:
    """Registered Friday 16:00: Friday 16-18 = 2 h, Monday 9-12 = 3 h, lunch 12:00-13:30, so the
    6th working hour ends Monday 14:30 (urban) and the 7th 15:30 (suburban)."""
    spec = world["spec"]
    friday = dt.datetime(2026, 11, 6, 16, 0)
    assert shift(friday, parse_when("reported_at + 6 working hours").offset, spec.calendar) == dt.datetime(2026, 11, 9, 14, 30)
    assert shift(friday, parse_when("reported_at + 7 working hours").offset, spec.calendar) == dt.datetime(2026, 11, 9, 15, 30)
    for name, area, due in (("service_sla_urban", "urban", dt.datetime(2026, 11, 9, 14, 30)),
                            ("service_sla_suburban", "suburban", dt.datetime(2026, 11, 9, 15, 30))):
        schedule = next(s for s in spec.schedules if s.name == name)
        values = {"reported_at": friday, "area_type": area, "arrived_at": None, "status": "registered"}
        rid = make_matching(app, world, schedule, values, due)
        tick(app, due - MINUTE)
        assert outbox_rows(app, name, rid) == []
        tick(app, due)
        assert len(outbox_rows(app, name, rid)) == expected_recipients(app, spec, schedule)


def test_escalation_after_delay_while_condition_holds(app: Any, world: dict[str, Any]) -> None:
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.name == "service_sla_urban")
    reported = dt.datetime(2026, 11, 10, 9, 0)  # Tuesday: due 16:30 (6 working hours around the lunch break)
    values = {"reported_at": reported, "area_type": "urban", "arrived_at": None, "status": "registered"}
    rid = make_matching(app, world, schedule, values, reported + dt.timedelta(hours=8))
    reminded = dt.datetime(2026, 11, 10, 16, 30)
    tick(app, reminded)
    assert outbox_rows(app, schedule.name, rid)
    tick(app, reminded + dt.timedelta(hours=1))
    assert outbox_rows(app, schedule.name, rid, step=1) == [], "not before the escalation delay"
    escalate_at = dt.datetime(2026, 11, 11, 9, 30)  # 16:30 + 2 working hours (closing 18:00) = next day 09:30
    tick(app, escalate_at - MINUTE)
    assert outbox_rows(app, schedule.name, rid, step=1) == []
    tick(app, escalate_at)
    rows = outbox_rows(app, schedule.name, rid, step=1)
    expected = expected_recipients(app, spec, schedule, (schedule.escalate_to,))
    assert len(rows) == expected >= 1
    assert all(r.subject.startswith("[升级 Escalation]") for r in rows)
    tick(app, escalate_at + dt.timedelta(hours=1))
    assert len(outbox_rows(app, schedule.name, rid, step=1)) == expected


def test_no_escalation_when_condition_stops_holding(app: Any, world: dict[str, Any]) -> None:
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.name == "service_sla_suburban")
    reported = dt.datetime(2026, 11, 12, 9, 0)
    values = {"reported_at": reported, "area_type": "suburban", "arrived_at": None, "status": "registered"}
    rid = make_matching(app, world, schedule, values, reported + dt.timedelta(hours=9))
    tick(app, dt.datetime(2026, 11, 12, 17, 30))
    assert outbox_rows(app, schedule.name, rid)
    with app.app_context():
        session = app.extensions["crm"].db.session
        table = Model.metadata.tables[schedule.entity]
        session.execute(sa.update(table).where(table.c.id == rid).values(arrived_at=dt.datetime(2026, 11, 12, 17, 40)))
        session.commit()
    tick(app, dt.datetime(2026, 11, 16, 12, 0))
    assert outbox_rows(app, schedule.name, rid, step=1) == []


def test_yearly_not_sent_late(app: Any, world: dict[str, Any]) -> None:
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.when.startswith("yearly") and s.channel == "inapp")
    rid = make_matching(app, world, schedule, {"birthday": dt.date(1975, 3, 1)}, dt.datetime(2026, 2, 26, 1))
    tick(app, dt.datetime(2026, 6, 1, 10))
    assert outbox_rows(app, schedule.name, rid) == [], "an anniversary months ago is not sent now"
    tick(app, dt.datetime(2027, 2, 26, 8))
    assert [r.occurrence for r in outbox_rows(app, schedule.name, rid)][:1] == ["Y2027"]


def test_moved_anchor_is_a_new_occurrence_and_old_messages_still_count(app: Any, world: dict[str, Any]) -> None:
    """Done records are skipped in SQL by the anchor each message keeps: a new deadline is a new
    reminder; messages written before anchors were kept (anchor empty) are still never repeated."""
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.name == "follow_up_planned")
    rid = make_matching(app, world, schedule, {"planned_on": dt.date(2026, 11, 20), "status": "planned"}, T0)
    tick(app, dt.datetime(2026, 11, 19, 0, 1))
    first = outbox_rows(app, schedule.name, rid)
    assert len(first) == expected_recipients(app, spec, schedule)
    assert {r.anchor for r in first} == {"2026-11-20"}
    with app.app_context():
        session = app.extensions["crm"].db.session
        session.execute(sa.update(OUTBOX).where(OUTBOX.c.source == schedule.name, OUTBOX.c.record_id == rid).values(anchor=None))
        session.commit()
    tick(app, dt.datetime(2026, 11, 19, 0, 2))
    assert len(outbox_rows(app, schedule.name, rid)) == len(first), "an older message without anchor still counts"
    with app.app_context():
        session = app.extensions["crm"].db.session
        table = Model.metadata.tables[schedule.entity]
        session.execute(sa.update(table).where(table.c.id == rid).values(planned_on=dt.date(2026, 11, 27)))
        session.commit()
    tick(app, dt.datetime(2026, 11, 25, 23, 0))
    assert len(outbox_rows(app, schedule.name, rid)) == len(first), "not before the new due moment"
    tick(app, dt.datetime(2026, 11, 26, 0, 1))
    tick(app, dt.datetime(2026, 11, 26, 0, 2))
    rows = outbox_rows(app, schedule.name, rid)
    assert sorted(r.occurrence for r in rows) == sorted([r.occurrence for r in first] + ["20261126T0000"] * len(first))


def recurring_variant(app: Any, monkeypatch: pytest.MonkeyPatch, name: str, when: str) -> tuple[Any, Any, Any]:
    """The shipped workbook plus a copy of follow_up_grade_a under ``name`` recurring ``when``
    (no escalation): (the shipped spec, follow_up_grade_a, the copy)."""
    import dataclasses

    crm = app.extensions["crm"]
    spec = crm.spec
    schedule = next(s for s in spec.schedules if s.name == "follow_up_grade_a")
    patched = dataclasses.replace(schedule, name=name, when=when, escalate_after="")
    monkeypatch.setattr(crm, "spec", dataclasses.replace(spec, schedules=(*spec.schedules, patched)))
    return spec, schedule, patched


def test_every_n_working_days_counts_on_the_calendar(app: Any, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """``every 3 working days`` from Friday 10:00: not Monday (3 calendar days), but Wednesday
    10:00 (Mon, Tue, Wed), once per period; the next period ends the following Monday 10:00."""
    spec, schedule, patched = recurring_variant(app, monkeypatch, "every_3_working_days", "every 3 working days")
    friday = dt.datetime(2026, 11, 6, 10, 0)
    rid = make_matching(app, world, schedule, {"created_on": friday, "last_contact_on": None}, friday)
    assert spec.calendar.add_working_days(friday, 3) == dt.datetime(2026, 11, 11, 10, 0)
    tick(app, dt.datetime(2026, 11, 9, 12, 0))
    tick(app, dt.datetime(2026, 11, 11, 9, 59))
    assert outbox_rows(app, patched.name, rid) == []
    tick(app, dt.datetime(2026, 11, 11, 10, 0))
    tick(app, dt.datetime(2026, 11, 13, 18, 0))
    rows = outbox_rows(app, patched.name, rid)
    assert {r.occurrence for r in rows} == {"P1"} and len(rows) == expected_recipients(app, spec, schedule)
    assert {r.anchor for r in rows} == {"2026-11-16 10:00:00"}, "the period's end keeps the record out of the next passes"
    tick(app, dt.datetime(2026, 11, 16, 10, 0))
    assert {r.occurrence for r in outbox_rows(app, patched.name, rid)} == {"P1", "P2"}


def test_every_n_months_is_one_message_per_n_months(app: Any, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """``every 3 months`` from 31 January: the first period ends 30 April (the 31st kept where the
    month has one), not at the end of February; the second on 31 July."""
    _spec, schedule, patched = recurring_variant(app, monkeypatch, "every_3_months", "every 3 months")
    created = dt.datetime(2027, 1, 31, 10, 0)
    rid = make_matching(app, world, schedule, {"created_on": created, "last_contact_on": None}, created)
    tick(app, dt.datetime(2027, 2, 28, 12, 0))
    tick(app, dt.datetime(2027, 4, 30, 9, 59))
    assert outbox_rows(app, patched.name, rid) == []
    tick(app, dt.datetime(2027, 4, 30, 10, 0))
    tick(app, dt.datetime(2027, 6, 30, 10, 0))
    rows = outbox_rows(app, patched.name, rid)
    assert {r.occurrence for r in rows} == {"P1"} and {r.anchor for r in rows} == {"2027-07-31 10:00:00"}
    tick(app, dt.datetime(2027, 7, 31, 10, 0))
    assert {r.occurrence for r in outbox_rows(app, patched.name, rid)} == {"P1", "P2"}


def test_birthday_on_29_february_greeted_on_the_28th(app: Any, world: dict[str, Any]) -> None:
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.when == "yearly birthday + 0 days")
    rid = make_matching(app, world, schedule, {"birthday": dt.date(1980, 2, 29)}, dt.datetime(2027, 2, 28, 8))
    tick(app, dt.datetime(2027, 2, 27, 23, 0))
    assert outbox_rows(app, schedule.name, rid) == []
    tick(app, dt.datetime(2027, 2, 28, 8, 0))
    assert {r.occurrence for r in outbox_rows(app, schedule.name, rid)} == {"Y2027"}
    tick(app, dt.datetime(2028, 2, 29, 8, 0))
    assert {r.occurrence for r in outbox_rows(app, schedule.name, rid)} == {"Y2027", "Y2028"}


def test_escalation_ladder_climbs_one_step_at_a_time(app: Any, world: dict[str, Any]) -> None:
    """complaint_overdue: the owner the day after the deadline, 质量主管 one working day later,
    总经理 two working days after that — each step once, none once the complaint is closed."""
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.name == "complaint_overdue")
    assert (schedule.escalate_after, schedule.escalate_to) == ("1 working day; 2 working days", "质量主管; 总经理")
    deadline = dt.date(2026, 11, 16)  # Monday; the reminder is due Tuesday 00:00, written at 09:00
    rid = make_matching(app, world, schedule, {"deadline": deadline, "status": "investigating"}, dt.datetime(2026, 11, 17, 9))
    told = dt.datetime(2026, 11, 17, 9, 0)
    tick(app, told)
    assert outbox_rows(app, schedule.name, rid)
    tick(app, dt.datetime(2026, 11, 18, 8, 59))
    assert outbox_rows(app, schedule.name, rid, step=1) == []
    tick(app, dt.datetime(2026, 11, 18, 9, 0))  # one working day after the reminder
    first = outbox_rows(app, schedule.name, rid, step=1)
    assert len(first) == expected_recipients(app, spec, schedule, ("质量主管",)) >= 1
    tick(app, dt.datetime(2026, 11, 20, 8, 59))
    assert outbox_rows(app, schedule.name, rid, step=2) == []
    tick(app, dt.datetime(2026, 11, 20, 9, 0))  # two working days after the first escalation
    tick(app, dt.datetime(2026, 11, 23, 9, 0))
    second = outbox_rows(app, schedule.name, rid, step=2)
    assert len(second) == expected_recipients(app, spec, schedule, ("总经理",)) >= 1
    assert all(r.subject.startswith("[升级 Escalation 2]") for r in second)
    assert len(outbox_rows(app, schedule.name, rid, step=1)) == len(first), "each step once"


ONE_OFF = [s.name for s in load_spec(str(SHIPPED))[0].schedules if not parse_when(s.when).every and not parse_when(s.when).yearly]


@pytest.mark.parametrize("name", ONE_OFF)
def test_long_past_occurrence_is_not_sent_late(app: Any, world: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first start over imported history, or a beat down for weeks: what fell due longer ago than
    the settings' catch_up_days is not sent (no 2025 holiday greetings, no notice of a contract long
    expired). The same pass with a longer limit sends it: the limit, not the SQL, left it out."""
    import dataclasses

    crm = app.extensions["crm"]
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.name == name)
    days = spec.settings.catch_up_days
    anchor, due = due_of(spec, schedule)
    late = due + dt.timedelta(days=days, minutes=1)
    rid = make_matching(app, world, schedule, anchor, late)
    tick(app, late)
    assert outbox_rows(app, name, rid) == [], f"{name}: due {due}, not sent {days} days late"
    longer = dataclasses.replace(spec.settings, catch_up_days=days + 1)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, settings=longer))
    tick(app, late)
    assert len(outbox_rows(app, name, rid)) == expected_recipients(app, spec, schedule), f"{name}: sent within {days + 1} days"


def test_escalation_outlives_the_catch_up_limit(app: Any, world: dict[str, Any]) -> None:
    """contract_renewal_follow_up escalates 14 days after its reminder, longer than the 7 days
    after which a reminder is no longer sent: the reminder on time still escalates."""
    spec = world["spec"]
    schedule = next(s for s in spec.schedules if s.name == "contract_renewal_follow_up")
    anchor, due = due_of(spec, schedule)
    rid = make_matching(app, world, schedule, anchor, due)
    tick(app, due)
    assert outbox_rows(app, schedule.name, rid)
    tick(app, due + dt.timedelta(days=14, minutes=1))
    assert len(outbox_rows(app, schedule.name, rid, step=1)) == expected_recipients(app, spec, schedule, (schedule.escalate_to,)) >= 1


def test_upper_bound_is_never_shorter_than_the_shift() -> None:
    """The SQL lower limit on anchors rests on it: a shift longer than its bound would hide a
    reminder that is still on time."""
    from app.messaging.jobs import upper_bound
    from app.spec.when import Duration
    from app.spec.workcal import WorkCalendar

    spec = load_spec(str(SHIPPED))[0]
    sparse = WorkCalendar(("wed",), (("10:00", "11:00"),), tuple(f"2026-{m:02d}-{d:02d}" for m in (9, 10) for d in range(1, 29)), ())
    rng = random.Random(5)
    for cal in (spec.calendar, sparse):
        for _ in range(400):
            anchor = dt.datetime(2026, 1, 1) + dt.timedelta(minutes=rng.randrange(60 * 24 * 600))
            unit = rng.choice(("minutes", "hours", "days", "weeks", "months"))
            working = unit != "months" and rng.random() < 0.6
            d = Duration(rng.randint(0 if working and unit in ("hours", "minutes") else -40, 40), unit, working)
            due = shift(anchor, d, cal)
            assert due - anchor <= upper_bound(d, cal), (anchor, d)


def test_a_role_is_told_through_the_members_whose_scope_reaches_the_record(app: Any) -> None:
    """An escalation to 销售经理 reaches the managers of the owner's department, not every one
    (another department's could not open it); a record nobody owns yet, or whose department has
    no such manager, reaches them all rather than nobody."""
    from app.access.accounts import add_user

    ids = {key: add_user(app, f"scope_{key}", [role], "Scope-Pass-123", departments=[dept])
           for key, role, dept in (("east", "业务员", "范围东部"), ("lonely", "业务员", "范围孤岛部"),
                                   ("east_manager", "销售经理", "范围东部"), ("north_manager", "销售经理", "范围北部"))}
    with app.app_context():
        crm = app.extensions["crm"]
        spec, customer = crm.spec, crm.spec.entity("customer")
        model = crm.generated.models.MODELS["customer"]

        def told(owner: int | None) -> set[int]:
            record = model(name="范围客户", owner_id=owner)
            return {r.user_id for r in Recipients(spec, crm.db.session).resolve(customer, record, ("销售经理",), "inapp")}

        assert ids["east_manager"] in told(ids["east"]) and ids["north_manager"] not in told(ids["east"])
        assert {ids["east_manager"], ids["north_manager"]} <= told(None)
        assert {ids["east_manager"], ids["north_manager"]} <= told(ids["lonely"])


def test_deadlines_run_on_the_workbooks_clock_not_the_servers(tmp_path: Any) -> None:
    """On a server whose clock runs in UTC the office's 09:00 is 17:00 Asia/Shanghai: every due
    moment (naive local time) would come 8 hours late. The app runs on the workbook's timezone."""
    import os
    import subprocess
    import sys

    spec, _ = load_spec(str(SHIPPED))
    env = {**os.environ, "TZ": "UTC", "CRM_VAR_DIR": str(tmp_path), "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"}
    code = "from app import create_app; create_app(); import datetime; print(datetime.datetime.now().astimezone().utcoffset())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)  # noqa: S603
    assert spec.settings.timezone == "Asia/Shanghai"
    assert out.stdout.strip().splitlines()[-1] == "8:00:00"
