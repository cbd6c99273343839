"""A list narrowed to a count of the home page or to a digest of the inbox: ``?_work=<key>`` and
``?_digest=<id>`` on an entity's list (and its export) become the very SQL the count was made of
(``app.reports.work``) or the records the digest gathers — so the link under "逾期 3" or
"跟进计划已逾期 12 条" opens exactly those records, within the person's row scope as ever."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app, g, request, url_for
from flask_appbuilder.models.filters import BaseFilter

from app.web.i18n import pick

WORK_ARG, DIGEST_ARG = "_work", "_digest"


class WorkFilter(BaseFilter):
    """FAB filter of ``?_work=``: ``value`` is the work key; an unknown key lists nothing."""

    name = "Work"
    arg_name = "crm_work"

    def apply(self, query: Any, value: Any) -> Any:
        from app.reports.work import Work

        clause = Work(current_app.extensions["crm"], g.user).clause(value)
        return query.filter(clause if clause is not None else sa.false())


class DigestFilter(BaseFilter):
    """FAB filter of ``?_digest=``: the records of one of the signed-in person's digests."""

    name = "Digest"
    arg_name = "crm_digest"

    def apply(self, query: Any, value: Any) -> Any:
        from app.messaging.digest import digest_records

        session = current_app.extensions["crm"].db.session
        return query.filter(self.model.id.in_(digest_records(session, value, getattr(g.user, "id", None))))


def narrow(filters: Any, endpoint: str) -> Any:
    """``filters`` with the home page's or the inbox's narrowing when this list's address asks for it."""
    if request.endpoint not in (f"{endpoint}.list", f"{endpoint}.export"):
        return filters
    work = request.args.get(WORK_ARG, "")[:200]
    if work:
        filters = filters.add_filter("id", WorkFilter, work)
    digest = request.args.get(DIGEST_ARG, type=int)
    if digest is not None:
        filters = filters.add_filter("id", DigestFilter, digest)
    return filters


def banner(endpoint: str) -> dict[str, Any] | None:
    """What the list says above its rows when narrowed (and how to see the whole list again)."""
    if request.endpoint != f"{endpoint}.list" or not (request.args.get(WORK_ARG) or request.args.get(DIGEST_ARG)):
        return None
    text = pick("仅显示首页或消息中点开的记录", "Only the records opened from the home page or a message")
    if request.args.get(DIGEST_ARG, type=int) is not None:
        from app.record.tables import Notification

        notes = Notification.__table__
        session = current_app.extensions["crm"].db.session
        title = session.execute(sa.select(notes.c.title).where(notes.c.id == request.args.get(DIGEST_ARG, type=int),
                                                                notes.c.user_id == g.user.id)).scalar()
        text = title or text
    kept: dict[str, Any] = {k: v for k, v in request.args.lists()
                            if k not in (WORK_ARG, DIGEST_ARG) and not k.startswith(("page_", "_after_"))}
    return {"text": text, "clear": url_for(endpoint + ".list", **kept)}


def list_url(entity: str, **args: Any) -> str | None:
    """The list screen of ``entity`` with ``args``, or None when the person may not list it."""
    crm = current_app.extensions["crm"]
    for name, view, *_rest in crm.generated.views.REGISTRY:
        if name == entity:
            permission = getattr(view, "class_permission_name", None) or name
            if not crm.appbuilder.sm.has_access("can_list", permission):
                return None
            return url_for(f"{view.__name__}.list", **args)
    return None
