"""Screens of the things that happen later: a person's in-app messages (a menu entry with the
unread count; mark read), and for administrators the outbox — every reminder, escalation and
invitation with its status, failures visible with their error and a retry action."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import LazyString

from app.messages import later, msg
from app.messaging.digest import digest_examples
from app.record.tables import Notification, OutboxMessage
from app.reports.work import Work
from app.web.actions import ScopedActions
from app.web.adminlabels import BLANK, blank, channel_label, entity_label, moment, person_name, source_label, status_label
from app.web.home import work_sections
from app.web.i18n import L, pick
from app.web.workfilter import DIGEST_ARG, list_url

NOTES = Notification.__table__
INBOX_PAGE = 50  # messages on one inbox page; 更早的消息 goes on from the last one shown


def unread_count(session: Any, user_id: int | None) -> int:
    if user_id is None:
        return 0
    q = sa.select(sa.func.count()).select_from(NOTES).where(NOTES.c.user_id == user_id, NOTES.c.read_at.is_(None))
    return int(session.execute(q).scalar_one())


def is_local(path: str | None) -> bool:
    """A path inside this site: not another host (``//host``, ``/\\host``), nor ``javascript:``."""
    return path is not None and path.startswith("/") and path[1:2] not in ("/", "\\")


def local_link(link: str | None, base: str) -> str | None:
    """A message's link as a path inside this site, or None: reminders written by the scheduler
    carry absolute links (they are mailed too) under ``CRM_BASE_URL``; anything pointing
    elsewhere is not offered."""
    if link and base and link.startswith(base + "/"):
        link = link[len(base):]
    return link if is_local(link) else None


class InboxView(BaseView):
    """The signed-in person's messages: newest first, unread marked, read one or all."""

    route_base = "/inbox"
    default_view = "index"
    base_permissions = ["can_index", "can_read"]

    @expose("/")
    @has_access
    def index(self) -> Any:
        """Newest first, a page at a time: ``?before=<id>`` goes on after that message (keyset on
        (created_on, id): a message arriving meanwhile does not shift the older pages)."""
        session = self.appbuilder.session
        mine = NOTES.c.user_id == g.user.id
        q = sa.select(NOTES).where(mine)
        before = request.args.get("before", type=int)
        if before is not None:
            last = session.execute(sa.select(NOTES.c.created_on, NOTES.c.id).where(mine, NOTES.c.id == before)).first()
            if last is None:
                abort(404)
            q = q.where(sa.or_(NOTES.c.created_on < last.created_on,
                               sa.and_(NOTES.c.created_on == last.created_on, NOTES.c.id < last.id)))
        rows = session.execute(q.order_by(NOTES.c.created_on.desc(), NOTES.c.id.desc()).limit(INBOX_PAGE + 1)).mappings().all()
        notes = [_shown(n) for n in rows[:INBOX_PAGE]]
        examples = digest_examples(session, [n["id"] for n in notes if n["digest_key"]])
        for n in notes:
            n["examples"] = examples.get(n["id"], [])
        older = url_for("InboxView.index", before=notes[-1]["id"]) if len(rows) > INBOX_PAGE else None
        waiting = work_sections(Work(current_app.extensions["crm"], g.user).items(("step",)))
        return self.render_template("crm/inbox.html", title=pick("我的消息", "My messages"), notes=notes, older=older,
                                    first_page=before is None, unread=current_unread(session), waiting=waiting)

    @expose("/read/<int:note_id>", methods=["POST"])
    @has_access
    def read(self, note_id: int) -> Any:
        session = self.appbuilder.session
        mine = (NOTES.c.user_id == g.user.id) & (NOTES.c.read_at.is_(None))
        where = mine if note_id == 0 else mine & (NOTES.c.id == note_id)
        session.execute(sa.update(NOTES).where(where).values(read_at=dt.datetime.now()))
        session.commit()
        target = request.form.get("next", "")
        return redirect(target if is_local(target) else url_for("InboxView.index"))


URL = re.compile(r"\s*(?:https?://\S+|(?:(?<=\s)|^)/[\w-]+/\S*)")  # an address in a message's text (older messages carry them)


def _shown(note: Any) -> dict[str, Any]:
    """A message as the inbox shows it: its 查看 (a digest's: the list of exactly its records) and
    its text without raw addresses."""
    base = str(current_app.config.get("CRM_BASE_URL") or "").rstrip("/")
    n = dict(note)
    if n["digest_key"] and n["entity"]:
        n["href"] = list_url(n["entity"], **{DIGEST_ARG: n["id"]})
    else:
        n["href"] = local_link(n["link"], base)
    n["body"] = URL.sub("", n["body"] or "").strip()
    return n


class OutboxView(ScopedActions, ModelView):
    """Administrators: what the scheduler wrote and what became of it; failed rows can be retried."""

    datamodel = SQLAInterface(OutboxMessage)
    route_base = "/outbox"
    list_title = L("消息发送队列", "Outbox")
    base_permissions = ["can_list", "can_show", "can_retry"]
    base_order = ("id", "desc")
    list_columns = ["created_on", "source", "entity", "record_id", "channel", "recipient_address", "subject", "status", "attempts",
                    "next_attempt_at", "last_error"]
    show_columns = [*list_columns, "recipient_user_id", "body", "link", "sent_on"]  # not its unique key: machinery
    # the stored keys in words (adminlabels), nothing as —
    formatters_columns = {**{c: blank for c in [*list_columns, *show_columns]}, "source": source_label, "entity": entity_label,
                          "channel": channel_label, "status": status_label, "recipient_user_id": person_name,
                          "record_id": lambda v: f"#{v}" if v is not None else BLANK,
                          **{c: moment for c in ("created_on", "next_attempt_at", "sent_on")}}
    search_columns = ["status", "source", "entity", "channel", "subject"]
    label_columns = {"created_on": L("创建时间", "Created"), "source": L("来源", "Source"), "entity": L("实体", "Entity"),
                     "record_id": L("记录", "Record"), "channel": L("渠道", "Channel"), "recipient_address": L("地址", "Address"),
                     "subject": L("主题", "Subject"), "status": L("状态", "Status"), "attempts": L("尝试次数", "Attempts"),
                     "next_attempt_at": L("下次尝试", "Next attempt"), "last_error": L("最近错误", "Last error"),
                     "key": L("唯一键", "Key"), "recipient_user_id": L("接收人", "Recipient"), "body": L("正文", "Body"),
                     "link": L("链接", "Link"), "sent_on": L("发送时间", "Sent on")}

    @action("retry", later("重新发送"), later("重新发送选中的失败消息?"), "fa-repeat")
    def retry(self, items: Any) -> Any:
        items = items if isinstance(items, list) else [items]
        ids = [i.id for i in items if i.status == "failed"]
        if ids:
            table = OutboxMessage.__table__
            self.datamodel.session.execute(sa.update(table).where(table.c.id.in_(ids), table.c.status == "failed").values(
                status="pending", attempts=0, next_attempt_at=dt.datetime.now(), last_error=None))
            self.datamodel.session.commit()
        flash(msg("%(n)s 条消息将重新发送", n=len(ids)).localized(), "success" if ids else "warning")
        if not ids and not items:
            abort(404)
        return redirect(url_for("OutboxView.list"))


def current_unread(session: Any) -> int:
    """The signed-in person's unread messages (0 when nobody is): one query per request, however
    often the menu asks."""
    n = getattr(g, "crm_unread", None)
    if n is None:
        user = getattr(g, "user", None)
        n = unread_count(session, getattr(user, "id", None)) if getattr(user, "is_authenticated", False) else 0
        g.crm_unread = n
    return n


def needs_me(session: Any) -> int:
    """What the top bar counts: unread messages (a digest is one) and records waiting for a step of
    the person's (approvals) — not every reminder ever written. Once per request."""
    n = getattr(g, "crm_needs_me", None)
    if n is None:
        user = getattr(g, "user", None)
        n = current_unread(session)
        if getattr(user, "is_authenticated", False):
            n += Work(current_app.extensions["crm"], user).needs_me()
        g.crm_needs_me = n
    return n


def _inbox_label(session_getter: Any) -> LazyString:
    def text() -> str:
        n = needs_me(session_getter())
        base = pick("我的消息", "My messages")
        return f"{base} ({n})" if n else base

    return LazyString(text)


def register_inbox(appbuilder: Any) -> None:
    """Menus: the inbox for everybody signed in; the outbox under the security menu for admins."""
    appbuilder.add_view(InboxView, "inbox", label=_inbox_label(lambda: appbuilder.session), icon="fa-envelope")
    appbuilder.add_view(OutboxView, "outbox", label=L("消息发送队列", "Outbox"), icon="fa-paper-plane", category="Security")
