"""What the administrative screens (the outbox, import jobs) show for the keys they store: a
channel as 站内信/邮件/短信, a schedule by its words in the workbook, an entity by its label, a
status in words, nothing as —. Never ``inapp``, ``master_data_pending`` or ``None``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import current_app

from app.spec.model import Spec
from app.web.i18n import pick

BLANK = "—"
CHANNELS = {"inapp": ("站内信", "In-app"), "email": ("邮件", "E-mail"), "sms": ("短信", "SMS")}
OUTBOX_STATUSES = {"pending": ("待发送", "Pending"), "sending": ("发送中", "Sending"), "sent": ("已发送", "Sent"),
                   "failed": ("发送失败", "Failed"), "skipped": ("已跳过(无接收人)", "Skipped (no recipient)"),
                   "recorded": ("已记录(未发送)", "Recorded (not sent)")}
WHERE = {"import": ("导入", "Import"), "cli/task": ("命令行或后台任务", "Command line or background task")}
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def _spec() -> Spec:
    return current_app.extensions["crm"].spec  # type: ignore[no-any-return]


def blank(value: Any) -> Any:
    """None and empty as —."""
    return BLANK if value is None or value == "" else value


def moment(value: Any) -> Any:
    """A date and time to the minute, as the record pages show them (not ``04:03:57.951956``)."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return blank(value)


def where_label(value: Any) -> str:
    """Where a change came from: an address as it is, the import and the command line in words."""
    if value in WHERE:
        return pick(*WHERE[value])
    return str(blank(value))


def channel_label(value: Any) -> str:
    if value in CHANNELS:
        return pick(*CHANNELS[value])
    return str(blank(value))


def status_label(value: Any) -> str:
    if value in OUTBOX_STATUSES:
        return pick(*OUTBOX_STATUSES[value])
    return str(blank(value))


def entity_label(value: Any) -> str:
    e = _spec().entity(str(value)) if value else None
    return pick(e.label, e.label_en) if e is not None else str(blank(value))


def template_words(spec: Spec, name: str) -> str:
    """A template by its own words: its subject without placeholders (``主数据申请待处理:{{ record.code }}``
    → 主数据申请待处理)."""
    t = next((t for t in spec.templates if t.name == name), None)
    if t is None:
        return ""
    return _PLACEHOLDER.sub("", t.subject).strip(" \t:：-—–|/,，、()（）")


def source_label(value: Any) -> str:
    """What wrote an outbox row, in words: a schedule by its template's subject (the workbook's
    words for it), a survey, a workflow step's notice."""
    spec = _spec()
    text = str(value or "")
    kind, _, rest = text.partition(":")
    if kind == "survey" and rest:
        return pick("满意度调查", "Satisfaction survey")
    if kind == "workflow" and rest:
        return pick(f"流程通知:{entity_label(rest)}", f"Workflow notice: {entity_label(rest)}")
    schedule = next((s for s in spec.schedules if s.name == text), None)
    if schedule is None:
        return str(blank(value)) if not text else pick("已删除的提醒", "a reminder no longer in the workbook")
    words = template_words(spec, schedule.template)
    e = spec.entity(schedule.entity)
    about = pick(e.label, e.label_en) if e is not None else ""
    return words or pick(f"{about}提醒", f"{about} reminder")


def person_name(user_id: Any) -> str:
    """A person by name, not by number."""
    from flask_appbuilder.security.sqla.models import User

    from app.access.accounts import display_name

    user = current_app.extensions["crm"].db.session.get(User, user_id) if user_id is not None else None
    return display_name(user) if user is not None else BLANK
