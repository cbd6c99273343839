"""Authoring help for the configuration workbooks: a blank workbook with every sheet, comments and
dropdowns (``crm sheets new``); a plain-text dump in stable order for reviewing changes in a diff
(``crm sheets dump``); and the running configuration written back as a workbook
(``crm sheets export``), so the workbook and the system never drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from app.spec.model import CHANNELS, CHARTS, FIELD_TYPES, PERIODS, RIGHTS, SCOPES, VIEWS, Spec

from .read import read_workbook
from .sheets import SHEETS, sheet_format

YES_NO = ("yes", "no")
BOOL_COLUMNS = {"required", "unique", "list", "search", "filter", "readonly", "encrypted", "audit", "collapsed", "admin", "see_rules",
                "require_comment", *RIGHTS}
DROPDOWNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("fields", "type"): FIELD_TYPES, ("forms", "view"): VIEWS, ("permissions", "scope"): SCOPES,
    ("schedules", "channel"): CHANNELS, ("templates", "channel"): CHANNELS, ("reports", "chart"): CHARTS,
    ("reports", "period"): PERIODS,
}
HEADER = PatternFill("solid", fgColor="DDEBF7")


def write_sheets(path: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    """A workbook with every sheet of the format (headers, comments, dropdowns) holding ``rows``."""
    wb = Workbook()
    wb.remove(wb.active)
    for fmt in SHEETS:
        ws = wb.create_sheet(fmt.name)
        ws.freeze_panes = "A2"
        for i, col in enumerate(fmt.columns, start=1):
            cell = ws.cell(row=1, column=i, value=col.name)
            cell.fill = HEADER
            cell.font = Font(bold=col.required)
            aliases = "、".join(col.aliases)
            cell.comment = Comment(f"{col.doc or col.name}\n中文表头也可写作:{aliases}" + ("\n必填列" if col.required else ""), "crm")
            letter = cell.column_letter
            ws.column_dimensions[letter].width = max(12, len(col.name) + 4)
            options = YES_NO if col.name in BOOL_COLUMNS else DROPDOWNS.get((fmt.name, col.name))
            if options:
                dv = DataValidation(type="list", formula1='"' + ",".join(options) + '"', allow_blank=True)
                ws.add_data_validation(dv)
                dv.add(f"{letter}2:{letter}2000")
            elif col.name in ("entity", "link") and fmt.name != "entities":
                dv = DataValidation(type="list", formula1="=entities!$A$2:$A$500", allow_blank=True)
                ws.add_data_validation(dv)
                dv.add(f"{letter}2:{letter}2000")
        for row in rows.get(fmt.name, []):
            ws.append([_cell(row.get(c.name)) for c in fmt.columns])
    wb.save(path)


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value) or None
    if value == "" or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def spec_rows(spec: Spec) -> dict[str, list[dict[str, Any]]]:
    """The sheets' rows that describe ``spec`` (the inverse of validation)."""
    rows: dict[str, list[dict[str, Any]]] = {fmt.name: [] for fmt in SHEETS}
    for e in spec.entities:
        rows["entities"].append({"name": e.name, "label": e.label, "label_en": e.label_en, "menu": e.menu, "menu_en": e.menu_en, "title_field": e.title_field,
                                 "numbering": e.numbering, "owner_field": e.owner_field, "audit": e.audit, "description": e.description})
        for f in e.fields:
            rows["fields"].append({"entity": e.name, "name": f.name, "label": f.label, "label_en": f.label_en, "type": f.type,
                                   "required": f.required, "unique": f.unique, "default": _default(f.default), "choices": f.choices,
                                   "link": f.link, "min": f.min, "max": f.max, "pattern": f.pattern, "help": f.help, "list": f.list,
                                   "search": f.search, "filter": f.filter, "readonly": f.readonly, "encrypted": f.encrypted})
    for name, options in spec.choices.items():
        for c in options:
            rows["choices"].append({"list": name, "value": c.value, "label": c.label, "label_en": c.label_en, "order": c.order,
                                    "color": c.color})
    for r in spec.grading:
        rows["grading"].append({"entity": r.entity, "field": r.field, "grade": r.grade, "order": r.order, "condition": r.condition,
                                "note": r.note})
    for i in spec.forms:
        rows["forms"].append({"entity": i.entity, "view": i.view, "section": i.section, "field": i.field, "order": i.order,
                              "collapsed": i.collapsed})
    for role in spec.roles:
        rows["roles"].append({"role": role.name, "label": role.label, "description": role.description, "admin": role.admin,
                               "see_rules": role.see_rules})
    for p in spec.permissions:
        rows["permissions"].append({"role": p.role, "entity": p.entity, **{r: r in p.rights for r in RIGHTS}, "scope": p.scope,
                                    "hidden_fields": p.hidden_fields, "readonly_fields": p.readonly_fields})
    for t in spec.workflows:
        rows["workflows"].append({"entity": t.entity, "state_field": t.state_field, "from": t.source, "to": t.target, "action": t.action,
                                  "action_en": t.action_en, "roles": t.roles, "condition": t.condition, "require_comment": t.require_comment,
                                  "notify": t.notify, "stamp": t.stamp, "asks": t.asks,
                                  "effects": "; ".join(t.effects)})
    for s in spec.schedules:
        rows["schedules"].append({"name": s.name, "entity": s.entity, "when": s.when, "condition": s.condition, "recipients": s.recipients,
                                  "template": s.template, "channel": s.channel, "escalate_after": s.escalate_after,
                                  "escalate_to": s.escalate_to, "digest": s.digest})
    for q in spec.surveys:
        rows["surveys"].append({"survey": q.survey, "question": q.question, "scale": q.scale, "labels": q.labels, "order": q.order,
                                "trigger": q.trigger})
    for m in spec.templates:
        rows["templates"].append({"name": m.name, "channel": m.channel, "subject": m.subject, "body": m.body})
    st = spec.settings
    for key, value in (("app_name", st.app_name), ("language", st.language), ("timezone", st.timezone),
                       ("working_days", st.working_days), ("working_hours", ",".join(f"{a}-{b}" for a, b in st.working_hours)),
                       ("holidays", st.holidays), ("extra_working_days", st.extra_working_days), ("currency", st.currency),
                       ("catch_up_days", st.catch_up_days), *st.extra):
        rows["settings"].append({"key": key, "value": value})
    for v in spec.validations:
        rows["validations"].append({"entity": v.entity, "condition": v.condition, "message": v.message})
    for panel in spec.reports:
        rows["reports"].append({"name": panel.name, "label": panel.label, "label_en": panel.label_en, "entity": panel.entity,
                                "group_by": panel.group_by, "measure": panel.measure, "period": panel.period,
                                "condition": panel.condition, "chart": panel.chart, "roles": panel.roles, "order": panel.order})
    return rows


def _default(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def dump(path: Path) -> str:
    """The workbook as text: sheets in format order, one line per row, ``column=value`` pairs in
    column order, empty cells left out — stable, so two dumps diff line by line."""
    book = read_workbook(path)
    out: list[str] = []
    for problem in book.problems:
        out.append(f"! {problem.ref}: {problem.text('en')}")
    by_format = {}
    for title, sheet in book.sheets.items():
        fmt = sheet_format(title)
        by_format[fmt.name if fmt else title] = (fmt, sheet)
    for name in [f.name for f in SHEETS] + sorted(set(by_format) - {f.name for f in SHEETS}):
        if name not in by_format:
            continue
        fmt, sheet = by_format[name]
        out.append(f"## {name}")
        for row in sheet.rows:
            pairs = []
            for header, cell in row.cells.items():
                if cell.blank:
                    continue
                col = fmt.column(header) if fmt else None
                pairs.append((col.name if col else header, cell.text.replace("\n", "\\n")))
            order = {c.name: i for i, c in enumerate(fmt.columns)} if fmt else {}
            pairs.sort(key=lambda kv: (order.get(kv[0], 999), kv[0]))
            out.append(f"{row.number}: " + "; ".join(f"{k}={v}" for k, v in pairs))
    return "\n".join(out) + "\n"
