"""A calm inbox: a person's in-app reminders of one kind on one day are ONE entry ("跟进计划已逾期 5
条") that opens the list of exactly those records; a reminder arriving after it was read updates it
and marks it unread; delivery stays exactly-once; mark read, mark all read; no raw addresses; the
top bar counts what needs the person. The workbook's ``digest`` column (汇总) says which schedules digest."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.access.accounts import add_user
from app.messaging.digest import add_to_digest, digest_words
from app.messaging.jobs import jobs_for
from app.messaging.outbox import OUTBOX, Channels, deliver_due
from app.messaging.schedules import _Pass
from app.ops.demo import make_demo_data
from app.record.tables import Notification, NotificationItem
from generator import WorkbookError, load_spec
from tests.conftest import csrf_token, login
from tests.workbooks import library_sheets, write_workbook

PASSWORD = "digest-Pass-123"  # noqa: S105 - test-only
NOTES, ITEMS = Notification.__table__, NotificationItem.__table__


@pytest.fixture(scope="module")
def seller(app: Any) -> dict[str, Any]:
    """A salesperson owning six follow-ups (five overdue, one planned for tomorrow) and one more to
    become overdue later."""
    make_demo_data(app, 20, seed=31)
    uid = add_user(app, "digest_sales", ["业务员"], PASSWORD)
    crm = app.extensions["crm"]
    table = crm.generated.models.MODELS["follow_up"].__table__
    today = dt.date.today()
    with app.app_context():
        session = crm.db.session
        ids = session.execute(sa.select(table.c.id).order_by(table.c.id.desc()).limit(7)).scalars().all()
        for i, pk in enumerate(ids):
            planned = today - dt.timedelta(days=2) if i < 5 else today + dt.timedelta(days=1) if i == 5 else today + dt.timedelta(days=30)
            session.execute(sa.update(table).where(table.c.id == pk).values(owner_id=uid, status="planned", planned_on=planned, done_on=None))
        session.commit()
    return {"uid": uid, "overdue": sorted(ids[:5]), "tomorrow": ids[5], "later": ids[6], "table": table}


def run_schedules(app: Any, names: tuple[str, ...]) -> None:
    """One scheduling pass of these schedules now, then delivery (the worker's two halves)."""
    crm = app.extensions["crm"]
    with app.app_context():
        session = crm.db.session
        runner = _Pass(app, crm.spec, session, dt.datetime.now().replace(microsecond=0))
        for job in jobs_for(crm.spec):
            if job.source in names:
                runner.run(job)
        session.commit()
        deliver_due(session, 100_000, dt.datetime.now() + dt.timedelta(seconds=1), Channels())


def entries(app: Any, uid: int) -> list[Any]:
    with app.app_context():
        return list(app.extensions["crm"].db.session.execute(sa.select(NOTES).where(NOTES.c.user_id == uid).order_by(NOTES.c.id)))


def listed(client: Any, href: str) -> list[int]:
    return sorted({int(i) for i in re.findall(r"/followupview/show/(\d+)", client.get(href.replace("&amp;", "&")).text)})


def test_reminders_of_one_kind_on_one_day_are_one_entry_opening_exactly_their_records(app: Any, seller: dict[str, Any]) -> None:
    run_schedules(app, ("follow_up_overdue", "follow_up_planned"))
    notes = entries(app, seller["uid"])
    # eleven reminders, two entries: the day-before reminder went out (late, within catch_up_days) for
    # the five overdue ones too
    assert sorted(n.title for n in notes) == ["明日跟进计划 6 条", "跟进计划已逾期 5 条"]
    c = app.test_client()
    login(c, "digest_sales", PASSWORD)
    page = c.get("/inbox/").text
    assert page.count('class="info crm-unread crm-digest"') == 2
    overdue = next(n for n in notes if n.title.startswith("跟进计划已逾期"))
    href = re.search(rf'data-note="{overdue.id}".*?href="([^"]+)"', page, re.S).group(1)  # type: ignore[union-attr]
    assert listed(c, href) == seller["overdue"]
    planned = next(n for n in notes if n.title.startswith("明日"))
    href_planned = re.search(rf'data-note="{planned.id}".*?href="([^"]+)"', page, re.S).group(1)  # type: ignore[union-attr]
    assert listed(c, href_planned) == sorted([*seller["overdue"], seller["tomorrow"]])
    assert "跟进计划已逾期 5 条" in c.get(href.replace("&amp;", "&")).text  # the list says what it shows
    # no raw address in any message: only the 查看 link
    assert not re.search(r">[^<]*(https?://|/followupview/)", page)
    # the top bar: two unread entries (a salesperson has no step waiting on others' records)
    assert "我的消息 (2)" in page
    # another person cannot open this digest's records
    other = app.test_client()
    add_user(app, "digest_other", ["业务员"], PASSWORD)
    login(other, "digest_other", PASSWORD)
    assert listed(other, href) == []


def test_mark_read_then_a_late_reminder_reopens_and_updates_the_entry(app: Any, seller: dict[str, Any]) -> None:
    c = app.test_client()
    login(c, "digest_sales", PASSWORD)
    notes = {n.title.split(" ")[0]: n for n in entries(app, seller["uid"])}
    page = c.get("/inbox/").text
    c.post(f"/inbox/read/{notes['跟进计划已逾期'].id}", data={"csrf_token": csrf_token(page), "next": "/inbox/"})
    after = {n.id: n for n in entries(app, seller["uid"])}
    assert after[notes["跟进计划已逾期"].id].read_at is not None and after[notes["明日跟进计划"].id].read_at is None
    assert "我的消息 (1)" in c.get("/inbox/").text
    # a sixth follow-up falls overdue the same day: the same entry, recounted and unread again
    crm = app.extensions["crm"]
    with app.app_context():
        crm.db.session.execute(sa.update(seller["table"]).where(seller["table"].c.id == seller["later"])
                               .values(planned_on=dt.date.today() - dt.timedelta(days=2)))
        crm.db.session.commit()
    run_schedules(app, ("follow_up_overdue",))
    again = {n.id: n for n in entries(app, seller["uid"])}
    entry = again[notes["跟进计划已逾期"].id]
    assert len(again) == 2 and entry.title == "跟进计划已逾期 6 条" and entry.read_at is None
    page = c.get("/inbox/").text
    href = re.search(rf'data-note="{entry.id}".*?href="([^"]+)"', page, re.S).group(1)  # type: ignore[union-attr]
    assert listed(c, href) == sorted([*seller["overdue"], seller["later"]])
    # mark all read: nothing left unread, the top bar shows no count
    c.post("/inbox/read/0", data={"csrf_token": csrf_token(page)})
    assert all(n.read_at is not None for n in entries(app, seller["uid"]))
    assert "我的消息 (" not in c.get("/inbox/").text


def test_a_digest_neither_loses_nor_duplicates_a_reminder(app: Any, seller: dict[str, Any]) -> None:
    """Delivering again, or gathering the same outbox row twice, changes nothing; each outbox row
    is one item of exactly one digest."""
    run_schedules(app, ("follow_up_overdue", "follow_up_planned"))
    crm = app.extensions["crm"]
    with app.app_context():
        session = crm.db.session
        rows = session.execute(sa.select(OUTBOX).where(OUTBOX.c.recipient_user_id == seller["uid"], OUTBOX.c.channel == "inapp")).all()
        assert rows and all(r.status == "sent" and r.digest for r in rows)
        entry = session.execute(sa.select(NOTES.c.id).where(NOTES.c.user_id == seller["uid"], NOTES.c.title.like("跟进计划已逾期%"))).scalar_one()
        add_to_digest(session, next(r for r in rows if r.source == "follow_up_overdue"), dt.datetime.now())
        session.commit()
        items = session.execute(sa.select(ITEMS.c.outbox_key).join(NOTES, NOTES.c.id == ITEMS.c.notification_id)
                                .where(NOTES.c.user_id == seller["uid"])).scalars().all()
        title = session.execute(sa.select(NOTES.c.title).where(NOTES.c.id == entry)).scalar_one()
    assert sorted(items) == sorted(r.key for r in rows) and title == "跟进计划已逾期 6 条"


def test_digest_words_come_from_the_template_subject() -> None:
    assert digest_words("跟进计划已逾期:{{ record.subject }}") == "跟进计划已逾期"
    assert digest_words("技术员日报待核阅") == "技术员日报待核阅"
    assert digest_words("Overdue: {{ record.code }}") == "Overdue"


def test_the_workbook_says_which_schedules_digest(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["fields"].append({"entity": "member", "name": "card_expires", "label": "借书证到期", "type": "date"})
    sheets["schedules"] = [
        {"name": "plain", "entity": "member", "when": "card_expires - 7 days", "recipients": "owner", "channel": "inapp"},
        {"name": "one_by_one", "entity": "member", "when": "card_expires - 1 day", "recipients": "owner", "channel": "inapp", "汇总": "否"},
        {"name": "mail", "entity": "member", "when": "card_expires - 1 day", "recipients": "email", "channel": "email"},
    ]
    spec, _warnings = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    assert {s.name: s.digest for s in spec.schedules} == {"plain": True, "one_by_one": False, "mail": False}
    sheets["schedules"][2]["汇总"] = "是"
    sheets["schedules"][1]["汇总"] = "maybe"
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    problems = [p.format("bad.xlsx", "en") for p in err.value.problems]
    assert len(problems) == 2 and "schedules!" in problems[0]
    assert any("only in-app reminders can be digested" in p for p in problems)


def test_a_schedule_that_does_not_digest_sends_one_message_each(app: Any, seller: dict[str, Any]) -> None:
    """Without ``digest`` the outbox row carries no digest words and becomes a message of its own."""
    from app.messaging.outbox import enqueue

    crm = app.extensions["crm"]
    now = dt.datetime.now()
    with app.app_context():
        session = crm.db.session
        enqueue(session, [{"key": f"nodigest.{i}", "source": "nodigest", "entity": "follow_up", "record_id": seller["overdue"][i],
                           "occurrence": "X", "channel": "inapp", "recipient_user_id": seller["uid"], "subject": f"提醒 {i}",
                           "body": "请处理", "link": "/followupview/show/1", "next_attempt_at": now} for i in range(3)])
        session.commit()
        deliver_due(session, 100_000, now + dt.timedelta(seconds=1), Channels())
        titles = session.execute(sa.select(NOTES.c.title).where(NOTES.c.user_id == seller["uid"], NOTES.c.title.like("提醒%"))).scalars().all()
    assert sorted(titles) == ["提醒 0", "提醒 1", "提醒 2"]


@pytest.mark.postgres
def test_digests_on_postgres_gather_once_under_their_unique_key(tmp_path: Path) -> None:
    """PostgreSQL's ON CONFLICT on the digest's unique key and the item's outbox key: three reminders,
    one entry; gathering one again, or two deliveries at once, neither adds nor loses one."""
    from concurrent.futures import ThreadPoolExecutor

    from app import create_app
    from app.access.accounts import create_first_admin
    from app.messaging.outbox import enqueue
    from app.migrate.create import create_schema
    from tests.conftest import ADMIN_PASSWORD
    from tests.migration_helpers import database

    with database("postgres", tmp_path) as url:
        application = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "RATELIMIT_ENABLED": False})
        try:
            create_schema(application)
            create_first_admin(application, "admin", ADMIN_PASSWORD)
            uid = add_user(application, "pg_digest", ["业务员"], PASSWORD)
            now = dt.datetime.now().replace(microsecond=0)
            with application.app_context():
                session = application.extensions["crm"].db.session
                enqueue(session, [{"key": f"pgd.{i}", "source": "follow_up_overdue", "entity": "follow_up", "record_id": 100 + i,
                                   "occurrence": "X", "channel": "inapp", "recipient_user_id": uid, "subject": f"跟进计划已逾期:第{i}条",
                                   "digest": "跟进计划已逾期", "next_attempt_at": now, "created_on": now} for i in range(6)])
                session.commit()

            def deliver() -> int:
                with application.app_context():
                    return deliver_due(application.extensions["crm"].db.session, 3, now + dt.timedelta(seconds=1), Channels()).sent

            with ThreadPoolExecutor(2) as pool:  # two workers at once, three rows each
                sent = sum(pool.map(lambda _i: deliver(), range(2)))
            with application.app_context():
                session = application.extensions["crm"].db.session
                row = session.execute(sa.select(OUTBOX).where(OUTBOX.c.key == "pgd.0")).one()
                add_to_digest(session, row, now)
                session.commit()
                notes = session.execute(sa.select(NOTES.c.title).where(NOTES.c.user_id == uid)).scalars().all()
                items = session.execute(sa.select(ITEMS.c.outbox_key)).scalars().all()
            assert sent == 6 and notes == ["跟进计划已逾期 6 条"] and sorted(items) == [f"pgd.{i}" for i in range(6)]
        finally:
            with application.app_context():
                application.extensions["crm"].db.session.remove()
                application.extensions["crm"].db.engine.dispose()
