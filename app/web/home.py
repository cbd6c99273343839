"""The home page: a person's own work first (``app.reports.work``: overdue, due today, steps
waiting for them, their open records, their records by grade — each a count whose link opens
exactly those records), then the dashboard panels their roles may see. Someone who sees many
panels (the administrator) gets them in collapsed groups, one per menu of the workbook, instead of
a page several screens long."""

from __future__ import annotations

from typing import Any

from flask import current_app, g

from app.reports.panels import compute_panels
from app.reports.work import Work, WorkItem
from app.web.i18n import current_language, pick
from app.web.workfilter import WORK_ARG, list_url

FLAT_PANELS = 8  # more than this many panels are grouped and collapsed
SECTIONS = (("overdue", "已逾期", "Overdue", "danger"), ("today", "今天到期", "Due today", "warning"),
            ("step", "待我处理", "Waiting for me", "primary"), ("open", "我负责的未结记录", "My open records", "info"),
            ("grade", "我的记录(按等级)", "My records by grade", "default"))


def work_sections(items: list[WorkItem]) -> list[dict[str, Any]]:
    """The work, one section per kind that has any, each count with the link to its records."""
    out = []
    for kind, zh, en, tone in SECTIONS:
        cards = [{"count": i.count, "label": i.label, "detail": i.detail, "url": list_url(i.entity, **{WORK_ARG: i.key}),
                  "key": i.key} for i in items if i.kind == kind]
        cards = [c for c in cards if c["url"]]
        if cards:
            out.append({"kind": kind, "title": pick(zh, en), "tone": tone, "cards": cards})
    return out


def panel_groups(crm: Any, panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels by the menu of their entity, in the workbook's order (only when there are many)."""
    groups: dict[str, dict[str, Any]] = {}
    for p in panels:
        e = crm.spec.entity(p["entity"])
        menu = pick(e.menu, e.menu_en or e.menu) if e is not None and e.menu else pick("其他", "Other")
        group = groups.setdefault(menu, {"title": menu, "panels": [], "with_data": 0})
        group["panels"].append(p)
        group["with_data"] += not p["empty"]
    return list(groups.values())


def home_context() -> dict[str, Any]:
    crm = current_app.extensions["crm"]
    from app.reports.panels import Reporter

    work = Work(crm, g.user)
    sources = Reporter(crm, g.user).sources()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    computed = compute_panels(app, g.user, sources, current_language(), app.config.get("CRM_DASHBOARD_WORKERS", 4))
    panels = [p.as_dict() for p in computed if not p.denied]  # a panel on fields the person may not see is not drawn
    panels.sort(key=lambda p: p["empty"])  # panels with something to show first; the empty ones each say so in a line
    grouped = len(panels) > FLAT_PANELS
    groups = panel_groups(crm, panels) if grouped else []
    if groups and crm.admin_role not in {r.name for r in g.user.roles}:
        groups[0]["open"] = True  # a daily user's first group stays open; the administrator's page is an index
    return {"sections": work_sections(work.items()), "panels": panels, "groups": groups, "grouped": grouped}
