"""Telling people about a workflow action: the ``notify`` column of the workflows sheet names
roles (every active user holding one) and/or ``owner`` (the record's owner user), such as
``owner; 质量主管``; a person named twice is told once.

It runs in the caller's transaction, after the state change is flushed and before it commits: a
save that fails tells nobody, and a transition is taken once (the state has moved on, and the
version column refuses a concurrent second save), so nobody is told twice.

* in-app: a row in each recipient's inbox (``crm_notification``) at once, linking to the record page;
* e-mail: when mail is set up (``CRM_SMTP_HOST``), one outbox row per recipient with an address,
  under a unique key, sent by the outbox like every reminder. Without a mail server the in-app
  message is the notice (mail kept for a server configured months later would only be stale).

A role's members are told when their row scope reaches the record (``Recipients``: a team-scope
manager of another department is not). A member may still not see all of it (hidden fields), so
a message carries only the record's title (withheld too when the title field is hidden from the
recipient), the action, who took it and the comment. The person who acted is not told about
their own action.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import selectinload

from app.access.accounts import display_name
from app.access.scope import hidden_fields
from app.messaging.channels import SmtpSettings
from app.messaging.links import Links, Recipients
from app.messaging.outbox import enqueue
from app.messaging.schedules import message_key
from app.record.tables import Notification
from app.spec.model import Entity, Spec, Transition


def notify(session: Any, spec: Spec, entity: Entity, obj: Any, t: Transition, row: Any, actor: Any, admin_role: str) -> int:
    """Write the messages of transition ``t`` just taken (history row ``row``); returns how many
    people are told. Does not commit."""
    told = tuple(n for n in t.recipients if n != "owner" or entity.owner_field)
    if not told:
        return 0
    actor_id = getattr(actor, "id", None)
    people = [r for r in Recipients(spec, session).resolve(entity, obj, told, "email")
              if r.user_id is not None and r.user_id != actor_id]
    if not people:
        return 0
    from flask_appbuilder.security.sqla.models import User

    app = current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]
    links = Links(app) if app is not None else None
    mail = app is not None and SmtpSettings.from_config(app.config) is not None
    now = dt.datetime.now().replace(microsecond=0)
    lines = [f"操作人:{display_name(actor) or '—'}", f"时间:{now:%Y-%m-%d %H:%M}"]
    if row.comment:
        lines.append(f"意见:{row.comment}")
    body = "\n".join(lines)
    source, occurrence = f"workflow:{entity.name}", f"t{row.id}"
    notes, mails = [], []
    users = {u.id: u for u in session.execute(sa.select(User).options(selectinload(User.roles))
                                                .where(User.id.in_({r.user_id for r in people}))).scalars()}
    for r in people:
        user = users.get(r.user_id)
        shown = entity.title_field and entity.title_field not in hidden_fields(spec, entity, user, admin_role)
        title = f"{entity.label}「{obj if shown else f'#{obj.id}'}」:{t.action}"
        notes.append({"user_id": r.user_id, "title": title, "body": body, "created_on": now,
                      "link": links.path(entity.name, obj.id) if links else None})
        if mail and r.address:
            link = links.record(entity.name, obj.id) if links else ""
            mails.append({"key": message_key(source, obj.id, occurrence, 0, r.token), "source": source, "entity": entity.name,
                          "record_id": obj.id, "occurrence": occurrence, "step": 0, "channel": "email",
                          "recipient_user_id": r.user_id, "recipient_address": r.address, "subject": title,
                          "body": f"{body}\n{link}".strip(), "link": link, "next_attempt_at": now, "created_on": now})
    session.execute(sa.insert(Notification.__table__), notes)
    enqueue(session, mails)
    return len(people)
