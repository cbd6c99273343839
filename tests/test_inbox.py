"""In-app messages: the menu shows the unread count, a person reads them; the outbox screen shows
failures with their error and retries them (administrators only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from app.access.accounts import add_user
from app.record.tables import Notification, OutboxMessage
from tests.conftest import ADMIN_PASSWORD, csrf_token, login

PASSWORD = "inbox-Pass-1"  # noqa: S105 - test-only


def run_sql(app: Any, stmt: Any) -> Any:
    with app.app_context():
        session = app.extensions["crm"].db.session
        result = session.execute(stmt)
        session.commit()
        return result


def test_unread_count_in_the_menu_and_mark_read(app: Any) -> None:
    # a role no workflow step waits for: the top bar's count is then its unread messages alone
    # (app.web.inbox.needs_me adds records waiting for one's step, tests/test_digest.py)
    uid = add_user(app, "inbox_user", ["技术主管"], PASSWORD)
    now = dt.datetime.now()
    run_sql(app, sa.insert(Notification.__table__).values(
        [{"user_id": uid, "title": "满意度调查:最低评价", "body": "请回访客户", "link": "/", "created_on": now},
         {"user_id": uid, "title": "<b>投诉逾期</b>", "body": None, "link": None, "created_on": now}]))
    c = app.test_client()
    login(c, "inbox_user", PASSWORD)
    home = c.get("/", follow_redirects=True).text  # home is the dashboard
    assert "我的消息 (2)" in home
    page = c.get("/inbox/")
    assert page.status_code == 200 and "满意度调查:最低评价" in page.text and "&lt;b&gt;投诉逾期" in page.text
    c.post("/inbox/read/0", data={"csrf_token": csrf_token(page.text)})
    assert "我的消息 (2)" not in c.get("/", follow_redirects=True).text
    left = run_sql(app, sa.select(sa.func.count()).select_from(Notification.__table__).where(
        Notification.__table__.c.user_id == uid, Notification.__table__.c.read_at.is_(None))).scalar()
    assert left == 0


def test_failed_messages_are_visible_and_retried_by_an_administrator(app: Any) -> None:
    t = OutboxMessage.__table__
    now = dt.datetime.now()
    run_sql(app, sa.insert(t).values(key="test.failed.1", source="contract_expiry", entity="x", record_id=1, occurrence="2026-11-01",
                                     step=0, channel="email", recipient_address="a@example.cn", subject="合同到期", status="failed",
                                     attempts=8, next_attempt_at=now, last_error="SMTP refused", created_on=now))
    pk = run_sql(app, sa.select(t.c.id).where(t.c.key == "test.failed.1")).scalar()
    clerk = app.test_client()
    login(clerk, "inbox_user", PASSWORD)
    assert clerk.get("/outbox/list/").status_code in (302, 403)
    admin = app.test_client()
    login(admin, "admin", ADMIN_PASSWORD)
    page = admin.get("/outbox/list/")
    assert page.status_code == 200 and "SMTP refused" in page.text
    r = admin.post("/outbox/action_post", data={"action": "retry", "rowid": [str(pk)], "csrf_token": csrf_token(page.text)})
    assert r.status_code == 302
    row = run_sql(app, sa.select(t.c.status, t.c.attempts).where(t.c.id == pk)).one()
    assert tuple(row) == ("pending", 0)


def test_reminders_link_to_their_record_inside_the_site_and_nowhere_else(app: Any) -> None:
    """A reminder delivered by the outbox carries the absolute link it is mailed with: the inbox
    offers it as a path of this site; links elsewhere are not offered."""
    uid = add_user(app, "inbox_links", ["客服专员"], PASSWORD)
    base = str(app.config["CRM_BASE_URL"]).rstrip("/")
    now = dt.datetime.now()
    run_sql(app, sa.insert(Notification.__table__).values(
        [{"user_id": uid, "title": t, "link": link, "created_on": now} for t, link in
         (("合同到期提醒", f"{base}/contractview/show/7"), ("脚本", "javascript:alert(1)"), ("外站", "https://evil.example/x"),
          ("协议相对", "//evil.example/x"))]))
    c = app.test_client()
    login(c, "inbox_links", PASSWORD)
    page = c.get("/inbox/").text
    assert 'href="/contractview/show/7"' in page
    assert "javascript:" not in page and "evil.example" not in page


def test_every_message_is_reachable_a_page_at_a_time(app: Any) -> None:
    """The inbox showed the newest 200 and nothing older: a busy technician lost the rest. Pages of
    50 go on from the last message shown, so one arriving meanwhile shifts nothing."""
    import re

    from app.web.inbox import INBOX_PAGE

    uid = add_user(app, "inbox_pages", ["客服专员"], PASSWORD)
    start = dt.datetime(2026, 1, 1, 8, 0)
    total = 2 * INBOX_PAGE + 7
    run_sql(app, sa.insert(Notification.__table__).values(
        [{"user_id": uid, "title": f"消息{i:04d}", "created_on": start + dt.timedelta(minutes=i // 2)} for i in range(total)]))
    c = app.test_client()
    login(c, "inbox_pages", PASSWORD)
    seen: list[str] = []
    page = c.get("/inbox/").text
    assert f'class="crm-unread-count">{total}<' in page
    for turn in range(5):
        seen += re.findall(r"<strong>(消息\d{4})</strong>", page)
        older = re.search(r'href="([^"]+)">更早的消息', page)
        if older is None:
            break
        if turn == 0:  # a message arriving between two pages does not shift the older ones
            run_sql(app, sa.insert(Notification.__table__).values(user_id=uid, title="新到消息", created_on=dt.datetime.now()))
        address = older.group(1).replace("&amp;", "&")
        page = c.get(address).text
    assert seen == [f"消息{i:04d}" for i in reversed(range(total))]  # each once, newest first
    note = re.search(r'action="(/inbox/read/\d+)"', page).group(1)  # marking one read on an older page stays there
    back = c.post(note, data={"csrf_token": csrf_token(page), "next": re.search(r'name="next" type="hidden" value="([^"]+)"',
                                                                             page).group(1).replace("&amp;", "&")})
    assert back.status_code == 302 and back.headers["Location"].endswith(address), back.headers["Location"]
    for evil in ("//evil.example/x", "/\\evil.example/x", "https://evil.example/"):
        assert c.post(note, data={"csrf_token": csrf_token(page), "next": evil}).headers["Location"].endswith("/inbox/")
    assert c.get("/inbox/?before=999999999").status_code == 404
    other = add_user(app, "inbox_pages_other", ["客服专员"], PASSWORD)
    run_sql(app, sa.insert(Notification.__table__).values(user_id=other, title="别人的", created_on=start))
    theirs = run_sql(app, sa.select(sa.func.max(Notification.__table__.c.id)).where(Notification.__table__.c.user_id == other)).scalar()
    assert c.get(f"/inbox/?before={theirs}").status_code == 404  # no reading past somebody else's message
