"""Turn the rows of a workbook into a frozen :class:`~app.spec.model.Spec`, collecting every problem.

Nothing here raises on bad input and nothing touches the disk: ``validate_workbook`` returns the
Spec (``None`` when there are errors) and the list of problems, each with its cell and a hint.
"""

from __future__ import annotations

import datetime as dt
import difflib
import keyword
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal, InvalidOperation
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from app.spec import expr as expr_mod
from app.spec.exprtypes import BASE_KINDS, Mismatch, comparison_problems, field_kinds
from app.spec.model import (
    CHANNELS,
    CHARTS,
    EMAIL_PATTERN,
    FIELD_TYPES,
    NUMERIC_TYPES,
    PERIODS,
    PHONE_PATTERN,
    RIGHTS,
    SCOPES,
    TEXT_TYPES,
    VIEWS,
    Choice,
    Entity,
    Field,
    FormItem,
    GradingRule,
    Permission,
    Report,
    Role,
    Schedule,
    Settings,
    Spec,
    SurveyQuestion,
    Template,
    Transition,
    Validation,
    field_at,
    parse_measure,
    split_measures,
    split_names,
    template_environment,
)
from app.spec.when import MAX_YEARS, ladder_parts, parse_duration, parse_when

from .problems import Problem, Problems, did_you_mean, hint, msg
from .read import Cell, Row, Workbook
from .sheets import SHEETS, sheet_format

IDENT = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
MAX_IDENT = 40
RESERVED_FIELDS = {
    "id",
    "version",
    "created_on",
    "changed_on",
    "created_by",
    "changed_by",
    "created_by_fk",
    "changed_by_fk",
    "metadata",
    "query",
    "registry",
    "self",
    "cls",
}
RESERVED_ENTITIES = {
    "user",
    "role",
    "permission",
    "view_menu",
    "permission_view",
    "register_user",
    "api_key",
    "group",
    "alembic_version",
    "model",
    "base",
    "app",
    "db",
}
RESERVED_PREFIXES = ("ab_", "crm_")
# class names the generated modules already use (an entity's class is its CamelCase name)
RESERVED_CLASSES = {
    "Boolean",
    "Column",
    "Date",
    "DateTime",
    "ForeignKey",
    "Integer",
    "Numeric",
    "String",
    "Text",
    "User",
    "CrmRecord",
    "Model",
    "None",
    "True",
    "False",
    "L",
    "SQLAInterface",
    "Decimal",
}
# the screens and APIs the application has besides the entities' own: an entity whose
# <Class>View or <Class>Api is one of these would take its name (the app would not start)
RESERVED_VIEWS = frozenset({
    # Flask-AppBuilder's
    "ApiKeyApi", "AuthDBView", "AuthLDAPView", "AuthOAuthView", "AuthRemoteUserView", "AuthSAMLView", "AuthView",
    "ChartView", "DirectByChartView", "DirectChartView", "GroupApi", "GroupByChartView", "IndexView", "LocaleView",
    "MasterDetailView", "MenuApi", "ModelView", "MultipleView", "OpenApi", "PermissionApi", "PermissionModelView",
    "PermissionView", "PermissionViewMenuApi", "PermissionViewModelView", "PublicFormView", "RegisterUserDBView",
    "RegisterUserModelView", "RegisterUserOAuthView", "ResetMyPasswordView", "ResetPasswordView", "RoleApi",
    "RoleModelView", "SecurityApi", "SimpleFormView", "SwaggerView", "TimeChartView", "UserApi", "UserDBModelView",
    "UserGroupModelView", "UserInfoEditView", "UserLDAPModelView", "UserModelView", "UserOAuthModelView",
    "UserRemoteUserModelView", "UserSAMLModelView", "UserStatsChartView", "UtilView", "ViewMenuApi", "ViewMenuModelView",
    "BaseView", "BaseApi",
    # the CRM's own
    "AuditLogView", "CrmIndexView", "DashboardView", "InboxView", "OutboxView", "RecordView",
})
TRUE = {"yes", "y", "true", "1", "是", "√", "✓", "x", "on"}
FALSE = {"no", "n", "false", "0", "否", "off"}
TEMPLATE_NAMES = {"record", "due", "link", "recipient", "app_name", "now", "survey", "escalation", "step"}
SETTING_KEYS = ("app_name", "language", "timezone", "working_days", "working_hours", "holidays", "extra_working_days", "currency",
                "catch_up_days")
CATCH_UP_DAYS = (1, 3650)
EXTRA_SETTING_KEYS = ("survey_followup_role",)  # read by the runtime from Settings.extra
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# field types as the office may write them in Chinese (headers and yes/no cells take Chinese too)
TYPE_NAMES = {"文本": "string", "字符串": "string", "长文本": "text", "多行文本": "text", "整数": "integer", "小数": "decimal",
              "数值": "decimal", "金额": "money", "是否": "boolean", "日期": "date", "日期时间": "datetime", "选项": "choice",
              "关联": "link", "邮箱": "email", "电话": "phone", "文件": "file", "附件": "file", "人员": "user", "用户": "user"}
WEEKDAY_NAMES = {name: name[:3] for name in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
# Separators of a list in one cell, full-width ones (， ； 、) as escapes so no editor turns them into ASCII:
# names that may hold spaces (roles: 质量 主管) split on punctuation only; words and dates on spaces too.
LIST_SEPARATORS = r"[,\uff0c\u3001;\uff1b\s]+"
NUMBERING_TOKEN = re.compile(r"\{([^{}]*)\}")


PUBLIC_ROLE = "Public"  # Flask-AppBuilder's role of everyone not signed in (AUTH_ROLE_PUBLIC)


def _unfillable(f: Field, e: Entity) -> bool:
    """A required field no one could leave out of a new record: no default, not the owner (the
    recorder), not a numbered code."""
    return f.required and f.default in (None, "") and f.name != e.owner_field and not (f.name == "code" and e.numbering)


# what each kind of value (a value written in the condition, or a field) is called in a message (zh, en)
KIND_NAMES = {
    "number": ("数字", "a number"),
    "text": ("文本", "text"),
    "choice": ("选项", "a choice"),
    "bool": ("是/否值", "a yes/no value"),
    "date": ("日期", "a date"),
    "datetime": ("日期时间", "a date and time"),
}
FIELD_KIND_NAMES = {
    "number": ("数字字段", "a number field"),
    "text": ("文本字段", "a text field"),
    "choice": ("选项字段", "a choice field"),
    "bool": ("是/否字段", "a yes/no field"),
    "date": ("日期字段", "a date field"),
    "datetime": ("日期时间字段", "a date-and-time field"),
}


def _worded(m: Mismatch) -> dict[str, str]:
    """The params of a comparison problem with each side's kind in words: ``pages`` is "a number
    field (integer)", ``'100'`` is "text"."""
    params = dict(m.params)
    for side in ("left", "right"):
        if f"{side}_kind" not in params:
            continue
        kind, ftype = params.pop(f"{side}_kind"), params.pop(f"{side}_type")
        zh, en = FIELD_KIND_NAMES[kind] if ftype else KIND_NAMES[kind]
        params[f"{side}_kind"], params[f"{side}_kind_en"] = (f"{zh}({ftype})", f"{en} ({ftype})") if ftype else (zh, en)
    return params


def _entity_ctx(entity: str, field: str = "") -> str:
    return f"entity {entity}, field {field}" if field else f"entity {entity}"


class _Reader:
    """Value conversion helpers that record a problem instead of raising."""

    def __init__(self, problems: Problems):
        self.p = problems

    def ident(self, cell: Cell, what: tuple[str, str], reserved: Iterable[str] = (), ctx: str = "") -> str | None:
        value = cell.text
        if not value:
            self.p.add(cell.ref, msg("required", what=what[0], what_en=what[1]), context=ctx)
            return None
        if keyword.iskeyword(value) or keyword.issoftkeyword(value):
            self.p.add(cell.ref, msg("keyword", value=value), hint("rename"), ctx)
            return None
        if not IDENT.match(value):
            suggestion = re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")
            h = hint("did_you_mean", value=suggestion) if IDENT.match(suggestion) else hint("identifier")
            self.p.add(cell.ref, msg("identifier", value=value), h, ctx)
            return None
        if len(value) > MAX_IDENT:
            self.p.add(cell.ref, msg("identifier_long", value=value, limit=MAX_IDENT), context=ctx)
            return None
        if value in reserved or value.startswith(RESERVED_PREFIXES):
            self.p.add(cell.ref, msg("reserved", value=value), hint("rename"), ctx)
            return None
        return value

    def boolean(self, cell: Cell, default: bool = False) -> bool:
        t = cell.text.lower()
        if not t:
            return default
        if isinstance(cell.value, bool):
            return cell.value
        if t in TRUE:
            return True
        if t in FALSE:
            return False
        self.p.add(cell.ref, msg("bool", value=cell.text), hint("bool"))
        return default

    def number(self, cell: Cell) -> float | None:
        """The cell as a finite float; ``nan``, ``inf`` and ``1e999`` are problems, not numbers."""
        if cell.blank:
            return None
        try:
            if isinstance(cell.value, int | float) and not isinstance(cell.value, bool):
                n = float(cell.value)
            else:
                n = float(cell.text.replace(",", ""))
        except (ValueError, OverflowError):
            self.p.add(cell.ref, msg("number", value=cell.text))
            return None
        if not math.isfinite(n):
            self.p.add(cell.ref, msg("number", value=cell.text), hint("finite"))
            return None
        return n

    def one_of(self, cell: Cell, options: Iterable[str], code: str, default: str = "", **params: Any) -> str | None:
        """``cell`` lowercased when it is one of ``options``; else a problem ``code`` (with ``params``
        for messages that name more than the value, such as ``setting_value``'s key)."""
        value = cell.text.lower()
        if not value:
            return default
        opts = list(options)
        if value in opts:
            return value
        self.p.add(
            cell.ref, msg(code, value=cell.text, **params), did_you_mean(value, opts) or hint("one_of", values=", ".join(opts))
        )
        return None


@dataclass
class _Sheets:
    """The sheets of a workbook by canonical name, with what their header rows left unreadable."""

    rows: dict[str, list[dict[str, Cell]]] = dataclass_field(default_factory=dict)  # rows keyed by canonical column
    titles: dict[str, str] = dataclass_field(default_factory=dict)  # canonical name → title as written
    broken: set[str] = dataclass_field(default_factory=set)  # a required column or required sheet is missing


def _map_sheets(book: Workbook, p: Problems) -> _Sheets:
    """Map sheet titles and headers to the format's names. A misspelt header with a close match is
    reported once and read as the column it most likely is, so its rows are checked for real
    mistakes instead of each repeating the header's; a sheet missing a required column is
    ``broken`` (its rows cannot be read)."""
    result = _Sheets()
    all_names = [s.name for s in SHEETS] + [a for s in SHEETS for a in s.aliases]
    for title, sheet in book.sheets.items():
        fmt = sheet_format(title)
        if fmt is None:
            p.add(f"{title}!A1", msg("sheet_unknown", sheet=title), did_you_mean(title.lower(), all_names), warning=True)
            continue
        if fmt.name in result.rows:
            p.add(f"{title}!A1", msg("duplicate", what="工作表", what_en="sheet", value=fmt.name, first=fmt.name))
            continue
        mapping: dict[str, str] = {}
        unknown: list[tuple[str, str]] = []
        for header, letter in sheet.headers.items():
            col = fmt.column(header)
            if col is None:
                unknown.append((header, letter))
            elif col.name in mapping.values():
                p.add(f"{title}!{letter}1", msg("column_duplicate", column=col.name))
            else:
                mapping[header] = col.name
        for header, letter in unknown:  # after the known ones: a guess never takes a column that is there
            options = [c.name for c in fmt.columns if c.name not in mapping.values()]
            options += [a for c in fmt.columns if c.name not in mapping.values() for a in c.aliases]
            close = difflib.get_close_matches(header.lower(), options, n=1, cutoff=0.6)
            if not close:
                taken = did_you_mean(header.lower(), [c.name for c in fmt.columns] + [a for c in fmt.columns for a in c.aliases])
                p.add(f"{title}!{letter}1", msg("column_unknown", column=header), taken, warning=taken is None)
                continue
            guess = fmt.column(close[0])
            assert guess is not None
            mapping[header] = guess.name
            p.add(f"{title}!{letter}1", msg("column_unknown", column=header), hint("read_as", value=close[0], column=guess.name))
        for col in fmt.columns:
            if col.required and col.name not in mapping.values():
                p.add(f"{title}!A1", msg("column_missing", column=col.name), hint("add_column", column=col.name))
                result.broken.add(fmt.name)
        result.rows[fmt.name] = [_canonical(row, mapping) for row in sheet.rows]
        result.titles[fmt.name] = title
    for fmt in SHEETS:
        if fmt.required and fmt.name not in result.rows:
            p.add(book.filename, msg("sheet_missing", sheet=fmt.name), hint("add_sheet", sheet=fmt.name))
            result.broken.add(fmt.name)
    return result


def _canonical(row: Row, mapping: dict[str, str]) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}
    for header, cell in row.cells.items():
        if header in mapping:
            cells[mapping[header]] = cell
    cells["__row__"] = Cell(row.number, row.ref)
    return cells


def _cell(row: dict[str, Cell], key: str, sheet: str) -> Cell:
    if key in row:
        return row[key]
    # an absent optional column: point at the row (sheet as written) so messages have a place
    return Cell(None, row["__row__"].ref)


def workbook_language(book: Workbook) -> str:
    """settings.language of a workbook even when it does not validate ('zh' by default)."""
    for title, sheet in book.sheets.items():
        fmt = sheet_format(title)
        if fmt is None or fmt.name != "settings":
            continue
        for row in sheet.rows:
            cells = list(row.cells.values())
            if len(cells) >= 2 and cells[0].text == "language" and cells[1].text in ("zh", "en"):
                return cells[1].text
    return "zh"


def validate_workbook(book: Workbook) -> tuple[Spec | None, list[Problem]]:
    """Build the Spec of ``book``; return ``(spec, problems)`` where spec is None on any error."""
    p = Problems(list(book.problems))
    if p.errors and not book.sheets:
        return None, p.items
    v = _Validator(book.filename, _map_sheets(book, p), p)
    spec = v.run()
    return (None if p.errors else spec), p.items


class _Validator:
    def __init__(self, filename: str, sheets: _Sheets, p: Problems):
        self.filename = filename
        self.sheets = sheets.rows
        self.p = p
        self.r = _Reader(p)
        self.skipped = self.unreadable(sheets, p)

    @staticmethod
    def unreadable(sheets: _Sheets, p: Problems) -> set[str]:
        """The broken sheets and every sheet that refers to one (through ``needs``, transitively).
        Their rows are not checked: each would report the same root cause again (no field 'x',
        unknown entity …) while the header or sheet it comes from is reported once already. A
        warning says which sheets wait for the fix."""
        skipped = set(sheets.broken)
        changed = True
        while changed:
            changed = False
            for fmt in SHEETS:
                if fmt.name not in skipped and skipped & set(fmt.needs):
                    skipped.add(fmt.name)
                    changed = True
        for fmt in SHEETS:
            if fmt.name in skipped and fmt.name not in sheets.broken and sheets.rows.get(fmt.name):
                causes = ", ".join(n for n in sorted(skipped & set(fmt.needs)) if n in sheets.broken) or \
                    ", ".join(sorted(sheets.broken))
                p.add(f"{sheets.titles[fmt.name]}!A1", msg("sheet_not_checked", sheet=sheets.titles[fmt.name], cause=causes),
                      warning=True)
        return skipped

    def rows(self, sheet: str) -> list[tuple[dict[str, Cell], Any]]:
        if sheet in self.skipped:
            return []
        return [(row, lambda k, row=row: _cell(row, k, sheet)) for row in self.sheets.get(sheet, [])]

    # -- the whole workbook ------------------------------------------------------------------
    def run(self) -> Spec:
        settings = self.settings()
        choices = self.choices()
        self.choice_lists = choices
        entities = self.entities(choices)
        emap = {e.name: e for e in entities}
        roles = self.roles()
        role_names = {r.name for r in roles}
        spec = Spec(
            workbook=self.filename,
            entities=tuple(entities),
            choices=choices,
            grading=self.grading(emap, choices),
            forms=self.forms(emap),
            roles=tuple(roles),
            permissions=(permissions := self.permissions(emap, role_names)),
            workflows=self.workflows(emap, choices, role_names, permissions, {r.name for r in roles if r.admin}),
            schedules=(),
            surveys=self.surveys(emap),
            templates=(),
            validations=self.validations(emap),
            reports=self.reports(emap, role_names, choices),
            settings=settings,
        )
        graded = {(g.entity, g.field) for g in spec.grading}
        for e in entities:
            for f in e.fields:
                if f.readonly and _unfillable(f, e) and (e.name, f.name) not in graded:
                    self.p.add(f.ref, msg("readonly_required", entity=e.name, value=f.name), hint("readonly_required"),
                               _entity_ctx(e.name, f.name))
        templates = self.templates()
        self.template_paths_checked: set[tuple[str, str]] = set()
        schedules = self.schedules(emap, role_names, {t.name: t for t in templates})
        return Spec(**{**spec.__dict__, "templates": tuple(templates), "schedules": tuple(schedules)})

    # -- settings ----------------------------------------------------------------------------
    def settings(self) -> Settings:
        values: dict[str, Any] = {}
        extra: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        for _row, c in self.rows("settings"):
            key = c("key").text
            value = c("value").text
            if not key:
                continue
            if key in seen:  # the last one would win, silently (a second timezone moves every deadline)
                self.p.add(c("key").ref, msg("duplicate", what="设置", what_en="setting", value=key, first=seen[key]),
                           hint("keep_one"))
                continue
            seen[key] = c("key").ref
            if key in EXTRA_SETTING_KEYS:
                extra.append((key, value))
                continue
            if key not in SETTING_KEYS:
                known = SETTING_KEYS + EXTRA_SETTING_KEYS
                self.p.add(c("key").ref, msg("setting_unknown", value=key), did_you_mean(key, known) or hint("one_of", values=", ".join(known)))
                continue
            if key == "language":
                lang = self.r.one_of(c("value"), ("zh", "en"), "setting_value", key=key)
                if lang:
                    values["language"] = lang
            elif key == "working_days":
                days, bad = [], False
                for part in re.split(LIST_SEPARATORS, value):
                    day = WEEKDAY_NAMES.get(part.lower(), part.lower())
                    if day in WEEKDAYS:
                        days.append(day)
                    elif part:
                        bad = True
                        self.p.add(
                            c("value").ref,
                            msg("setting_value", key=key, value=part),
                            did_you_mean(day, WEEKDAYS) or hint("one_of", values=",".join(WEEKDAYS)),
                        )
                if not days and not bad:
                    self.p.add(c("value").ref, msg("setting_value", key=key, value=value), hint("one_of", values=",".join(WEEKDAYS)))
                elif not bad:
                    values["working_days"] = tuple(dict.fromkeys(days))
            elif key == "working_hours":
                spans: list[tuple[str, str]] = []
                for part in re.split(r"[,\uff0c\u3001]+", value):
                    m = re.match(r"^\s*(\d{1,2}):([0-5]\d)\s*[-\u2013~\uff5e]\s*(\d{1,2}):([0-5]\d)\s*$", part)
                    start, end = (f"{int(m.group(1)):02d}:{m.group(2)}", f"{int(m.group(3)):02d}:{m.group(4)}") if m else ("", "")
                    # times of one day (00:00-23:59), in order, each span after the one before
                    if not m or end > "23:59" or start >= end or (spans and start < spans[-1][1]):
                        spans = []
                        break
                    spans.append((start, end))
                if spans:
                    values["working_hours"] = tuple(spans)
                else:
                    self.p.add(c("value").ref, msg("setting_value", key=key, value=value), hint("for_example", values="09:00-12:00,13:00-18:00"))
            elif key in ("holidays", "extra_working_days"):
                days = []
                for part in re.split(LIST_SEPARATORS, value):
                    if not part:
                        continue
                    try:
                        days.append(dt.date.fromisoformat(part).isoformat())
                    except ValueError:
                        self.p.add(c("value").ref, msg("setting_value", key=key, value=part), hint("for_example", values="2026-10-01"))
                values[key] = tuple(sorted(set(days)))
            elif key == "catch_up_days":
                low, high = CATCH_UP_DAYS
                if re.fullmatch(r"\s*\d{1,4}\s*", value) and low <= int(value) <= high:
                    values[key] = int(value)
                else:
                    self.p.add(c("value").ref, msg("setting_value", key=key, value=value), hint("whole_number_between", low=low, high=high))
            elif key == "timezone":
                from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

                try:
                    ZoneInfo(value)
                    values["timezone"] = value
                except (ZoneInfoNotFoundError, ValueError):
                    self.p.add(c("value").ref, msg("setting_value", key=key, value=value), hint("for_example", values="Asia/Shanghai"))
            elif value:
                values[key] = value
        return Settings(**values, extra=tuple(extra))

    # -- choices -----------------------------------------------------------------------------
    def choices(self) -> dict[str, tuple[Choice, ...]]:
        lists: dict[str, list[Choice]] = defaultdict(list)
        seen: dict[tuple[str, str], str] = {}
        for _row, c in self.rows("choices"):
            name = self.r.ident(c("list"), ("选项列表名", "list name"), ctx="")
            value = c("value").text
            if not value:
                self.p.add(c("value").ref, msg("required", what="选项值", what_en="choice value"))
                continue
            if name is None:
                continue
            if (name, value) in seen:
                self.p.add(c("value").ref, msg("duplicate", what="选项值", what_en="choice value", value=value, first=seen[(name, value)]))
                continue
            seen[(name, value)] = c("value").ref
            if len(value) > 64:
                self.p.add(c("value").ref, msg("identifier_long", value=value, limit=64))
                continue
            order = self.r.number(c("order"))
            color = self.r.one_of(c("color"), ("green", "blue", "orange", "red", "grey", "purple", "yellow"), "unknown_value") or ""
            lists[name].append(
                Choice(
                    value,
                    c("label").text or value,
                    c("label_en").text,
                    order if order is not None else len(lists[name]),
                    color,
                    c("previous_value").text,
                )
            )
        return {k: tuple(sorted(v, key=lambda ch: ch.order)) for k, v in lists.items()}

    # -- entities and fields -----------------------------------------------------------------
    def entities(self, choices: dict[str, tuple[Choice, ...]]) -> list[Entity]:
        heads: dict[str, dict[str, Any]] = {}
        classes: dict[str, dict[str, Any]] = {}  # program (class) name → the entity row that has it
        for _row, c in self.rows("entities"):
            name = self.r.ident(c("name"), ("实体名", "entity name"), RESERVED_ENTITIES)
            if name is None:
                continue
            class_name = "".join(part.capitalize() for part in name.split("_"))
            if class_name in RESERVED_CLASSES or {f"{class_name}View", f"{class_name}Api"} & RESERVED_VIEWS:
                self.p.add(c("name").ref, msg("reserved", value=name), hint("rename"))
                continue
            if name in heads:
                self.p.add(
                    c("name").ref, msg("duplicate", what="实体", what_en="entity", value=name, first=heads[name]["ref"]), hint("rename")
                )
                continue
            twin = classes.get(class_name)
            if twin is not None:  # x_1 and x1 would be one model class and one screen
                self.p.add(c("name").ref, msg("class_clash", value=name, other=twin["name"], first=twin["ref"]), hint("rename"))
                continue
            heads[name] = {
                "name": name,
                "label": c("label").text or name,
                "label_en": c("label_en").text,
                "menu": c("menu").text,
                "menu_en": c("menu_en").text,
                "title_field": c("title_field").text,
                "numbering": c("numbering").text,
                "owner_field": c("owner_field").text,
                "audit": self.r.boolean(c("audit"), True),
                "description": c("description").text,
                "previous_name": (self.r.ident(c("previous_name"), ("原名称", "previous name")) or "") if c("previous_name").text else "",
                "previous_ref": c("previous_name").ref,
                "ref": c("name").ref,
                "cells": c,
            }
            classes[class_name] = heads[name]
        named: dict[str, tuple[str, str]] = {}  # menu group → its English name, and where it was given first
        for h in heads.values():
            if h["menu_en"]:
                first = named.setdefault(h["menu"], (h["menu_en"], h["cells"]("menu_en").ref))
                if first[0] != h["menu_en"]:  # one group in the menu, one name
                    self.p.add(h["cells"]("menu_en").ref, msg("menu_en", menu=h["menu"] or "—", value=h["menu_en"], other=first[0],
                                                              first=first[1]), hint("menu_en", value=first[0]))
        for h in heads.values():  # a row that leaves it blank is in the same group all the same
            h["menu_en"] = h["menu_en"] or named.get(h["menu"], ("", ""))[0]
        if "entities" in self.sheets and not heads and not self.p.errors:
            self.p.add("entities!A2", msg("no_entities"))
        self.check_previous_names(
            [(h["previous_name"], h["previous_ref"], _entity_ctx(n)) for n, h in heads.items() if h["previous_name"]],
            set(heads),
            ("实体", "entity"),
        )
        fields: dict[str, list[Field]] = defaultdict(list)
        field_refs: dict[tuple[str, str], str] = {}
        previous_refs: dict[tuple[str, str], str] = {}
        for _row, c in self.rows("fields"):
            ent_cell = c("entity")
            ent = ent_cell.text
            if not ent:
                self.p.add(ent_cell.ref, msg("required", what="实体", what_en="entity"))
                continue
            if ent not in heads:
                self.p.add(ent_cell.ref, msg("unknown_entity", value=ent), did_you_mean(ent, heads))
                continue
            f = self.field(ent, c, heads, choices)
            if f is None:
                continue
            if (ent, f.name) in field_refs:
                self.p.add(
                    c("name").ref,
                    msg("duplicate", what="字段", what_en="field", value=f.name, first=field_refs[(ent, f.name)]),
                    hint("rename"),
                    _entity_ctx(ent, f.name),
                )
                continue
            field_refs[(ent, f.name)] = f.ref
            previous_refs[(ent, f.name)] = c("previous_name").ref
            fields[ent].append(f)
        result = []
        for name, h in heads.items():
            fs = fields.get(name, [])
            self.check_columns(name, fs)
            self.check_previous_names(
                [(f.previous_name, previous_refs[(name, f.name)], _entity_ctx(name, f.name)) for f in fs if f.previous_name],
                {f.name for f in fs},
                ("字段", "field"),
            )
            result.append(self.entity_head(h, fs))
        return result

    def field(self, ent: str, c: Any, heads: dict[str, Any], choices: dict[str, tuple[Choice, ...]]) -> Field | None:
        name = self.r.ident(c("name"), ("字段名", "field name"), RESERVED_FIELDS, _entity_ctx(ent))
        ctx = _entity_ctx(ent, name or c("name").text)
        tcell = c("type")
        ftype = TYPE_NAMES.get(tcell.text.strip(), tcell.text.lower())
        if not ftype:
            self.p.add(tcell.ref, msg("required", what="类型", what_en="type"), hint("one_of", values=", ".join(FIELD_TYPES)), ctx)
            return None
        if ftype not in FIELD_TYPES:
            self.p.add(
                tcell.ref,
                msg("unknown_type", value=tcell.text),
                did_you_mean(ftype, [*FIELD_TYPES, *TYPE_NAMES]) or hint("one_of", values=", ".join(FIELD_TYPES)),
                ctx,
            )
            return None
        if name is None:
            return None
        list_name = c("choices").text
        link = c("link").text
        if ftype == "choice":
            if not list_name:
                self.p.add(c("choices").ref, msg("choices_needed"), hint("one_of", values=", ".join(choices) or "—"), ctx)
                return None
            if list_name not in choices:
                self.p.add(
                    c("choices").ref,
                    msg("unknown_list", value=list_name),
                    did_you_mean(list_name, choices) or hint("define_list", value=list_name),
                    ctx,
                )
                return None
        if ftype == "link":
            if not link:
                self.p.add(c("link").ref, msg("link_needed"), hint("one_of", values=", ".join(heads)), ctx)
                return None
            if link not in heads:
                self.p.add(c("link").ref, msg("unknown_entity", value=link), did_you_mean(link, heads), ctx)
                return None
        lo, hi = self.r.number(c("min")), self.r.number(c("max"))
        if (lo is not None or hi is not None) and ftype not in NUMERIC_TYPES + TEXT_TYPES:
            self.p.add(c("min").ref if lo is not None else c("max").ref, msg("min_max_type", type=ftype), context=ctx)
        if lo is not None and hi is not None and lo > hi:
            self.p.add(c("min").ref, msg("min_max", min=c("min").text, max=c("max").text), hint("swap"), ctx)
        elif ftype in TEXT_TYPES and hi is not None and (hi <= 0 or hi != int(hi)):
            self.p.add(c("max").ref, msg("length_max", max=c("max").text), context=ctx)
        pattern = c("pattern").text
        if pattern:
            if ftype not in TEXT_TYPES:
                self.p.add(c("pattern").ref, msg("pattern_type", type=ftype), context=ctx)
            else:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    self.p.add(c("pattern").ref, msg("bad_regex", error=str(exc)), hint("regex"), ctx)
        encrypted = self.r.boolean(c("encrypted"))
        if encrypted and ftype not in ("text", "string"):
            self.p.add(c("encrypted").ref, msg("encrypted_type"), context=ctx)
        elif encrypted:
            for key, zh, en in (("unique", "唯一", "unique"), ("search", "可搜索", "searchable"), ("filter", "可筛选", "a filter")):
                if self.r.boolean(c(key)):
                    self.p.add(c(key).ref, msg("encrypted_use", what=zh, what_en=en), context=ctx)
        default = self.default(c("default"), ftype, choices.get(list_name, ()), ctx, list_name)
        if default is not None:
            self.check_default(c("default"), ftype, default, lo, hi, pattern, ctx)
        prev = c("previous_name").text
        if prev:
            self.r.ident(c("previous_name"), ("原名称", "previous name"), ctx=ctx)
        return Field(
            name=name,
            label=c("label").text or name,
            type=ftype,
            label_en=c("label_en").text,
            required=self.r.boolean(c("required")),
            unique=self.r.boolean(c("unique")),
            default=default,
            choices=list_name if ftype == "choice" else "",
            link=link if ftype == "link" else "",
            min=lo,
            max=hi,
            pattern=pattern,
            help=c("help").text,
            list=self.r.boolean(c("list")),
            search=self.r.boolean(c("search")),
            filter=self.r.boolean(c("filter")),
            readonly=self.r.boolean(c("readonly")),
            encrypted=encrypted,
            previous_name=prev,
            ref=c("name").ref,
        )

    def default(self, cell: Cell, ftype: str, options: tuple[Choice, ...], ctx: str, list_name: str) -> Any:
        if cell.blank:
            return None
        text, value = cell.text, cell.value
        bad = msg("default_type", value=text, type=ftype)
        if ftype in ("integer",):
            try:
                n = Decimal(text.replace(",", ""))
                if not n.is_finite() or n != n.to_integral_value():
                    raise InvalidOperation
                return int(n)
            except InvalidOperation:
                self.p.add(cell.ref, bad, context=ctx)
        elif ftype in ("decimal", "money"):
            try:
                d = Decimal(text.replace(",", ""))
                if not math.isfinite(float(d)):  # nan, inf, and 1e999 (which no float holds)
                    raise InvalidOperation
                return float(d)
            except (InvalidOperation, ValueError):  # ValueError: a signalling NaN
                self.p.add(cell.ref, bad, context=ctx)
        elif ftype == "boolean":
            t = text.lower()
            if t in TRUE or t in FALSE:
                return t in TRUE
            self.p.add(cell.ref, bad, hint("bool"), ctx)
        elif ftype in ("date", "datetime"):
            if text.lower() in ("today", "now", "今天", "现在"):
                return "today" if ftype == "date" else "now"
            if isinstance(value, dt.datetime | dt.date):
                return value.isoformat()[: 10 if ftype == "date" else 19]
            try:
                if ftype == "date":
                    return dt.date.fromisoformat(text).isoformat()
                return dt.datetime.fromisoformat(text).isoformat()
            except ValueError:
                self.p.add(cell.ref, bad, hint("for_example", values="2026-01-31, today"), ctx)
        elif ftype == "choice":
            values = [o.value for o in options]
            labels = {o.label: o.value for o in options}
            if text in values:
                return text
            if text in labels:
                return labels[text]
            self.p.add(
                cell.ref,
                msg("unknown_choice", value=text, list=list_name),
                did_you_mean(text, values) or hint("one_of", values=", ".join(values)),
                ctx,
            )
        elif ftype in ("link", "user", "file"):
            self.p.add(cell.ref, bad, context=ctx)
        else:
            return text
        return None

    def check_default(self, cell: Cell, ftype: str, value: Any, lo: float | None, hi: float | None, pattern: str, ctx: str) -> None:
        """A default must pass the checks its own field makes on every value a form, the API or an
        import saves (min/max, length, pattern, e-mail, phone, the column's size): else each new
        record would start out invalid, or fail to save."""
        fix = hint("fix_default")
        if ftype in NUMERIC_TYPES and isinstance(value, int | float):
            if lo is not None and value < lo:
                self.p.add(cell.ref, msg("default_min", value=cell.text, min=f"{lo:g}"), fix, ctx)
            if hi is not None and value > hi:
                self.p.add(cell.ref, msg("default_max", value=cell.text, max=f"{hi:g}"), fix, ctx)
            amount = Decimal(cell.text.replace(",", ""))
            if ftype == "money" and amount != amount.quantize(Decimal("0.01")):
                self.p.add(cell.ref, msg("default_cents", value=cell.text), fix, ctx)
        if ftype not in TEXT_TYPES or not isinstance(value, str):
            return
        column = {"string": int(hi) if hi is not None and hi >= 1 else 255, "email": 254, "phone": 40}.get(ftype)
        if lo is not None and len(value) < lo:
            self.p.add(cell.ref, msg("default_short", value=value, min=f"{lo:g}"), fix, ctx)
        for limit in (hi, column):
            if limit is not None and len(value) > limit:
                self.p.add(cell.ref, msg("default_long", value=value if len(value) <= 20 else value[:20] + "…", max=f"{limit:g}"), fix, ctx)
                break
        if pattern:
            try:
                matches = re.match(pattern, value) is not None
            except re.error:  # reported on the pattern cell
                matches = True
            if not matches:
                self.p.add(cell.ref, msg("default_pattern", value=value, pattern=pattern), fix, ctx)
        if ftype == "email" and not re.match(EMAIL_PATTERN, value):
            self.p.add(cell.ref, msg("default_email", value=value), hint("example", value="name@example.com"), ctx)
        if ftype == "phone" and not re.match(PHONE_PATTERN, value):
            self.p.add(cell.ref, msg("default_phone", value=value), hint("example", value="021-12345678 / 13800138000"), ctx)

    def check_previous_names(self, renames: list[tuple[str, str, str]], present: set[str], what: tuple[str, str]) -> None:
        """Each ``(previous_name, cell, context)`` names something gone from the sheet, and only one
        thing was renamed from it: the upgrade would otherwise rename a live table or column, or
        rename one twice."""
        first: dict[str, str] = {}
        for old, ref, ctx in renames:
            if old in present:
                self.p.add(ref, msg("previous_present", value=old, what=what[0], what_en=what[1]), hint("previous_name"), ctx)
            elif old in first:
                self.p.add(
                    ref,
                    msg("duplicate", what="原名称", what_en="previous name", value=old, first=first[old]),
                    hint("previous_name"),
                    ctx,
                )
            else:
                first[old] = ref

    def check_columns(self, entity: str, fields: list[Field]) -> None:
        columns: dict[str, Field] = {}
        for f in fields:
            if f.column in columns or (f.is_relation and f.column in {x.name for x in fields}):
                other = columns.get(f.column) or next(x for x in fields if x.name == f.column)
                self.p.add(
                    f.ref, msg("name_clash", value=f.name, other=other.name, column=f.column), hint("rename"), _entity_ctx(entity, f.name)
                )
            columns[f.column] = f
            if f.column in RESERVED_FIELDS:
                self.p.add(f.ref, msg("reserved", value=f.column), hint("rename"), _entity_ctx(entity, f.name))

    def entity_head(self, h: dict[str, Any], fields: list[Field]) -> Entity:
        c = h["cells"]
        name = h["name"]
        by_name = {f.name: f for f in fields}
        if not fields:
            self.p.add(h["ref"], msg("no_fields", entity=name), context=_entity_ctx(name))
        title = h["title_field"]
        if title and (title not in by_name or by_name[title].type not in TEXT_TYPES + ("integer",)):
            self.p.add(c("title_field").ref, msg("title_field", value=title), did_you_mean(title, by_name), _entity_ctx(name))
            title = ""
        elif title and by_name[title].encrypted:  # a title is searched in every link's dropdown
            self.p.add(c("title_field").ref, msg("encrypted_use", what="标题字段", what_en="the title field"), context=_entity_ctx(name))
            title = ""
        if not title:
            title = next((f.name for f in fields if f.type in ("string",) and not f.encrypted), "")
        owner = h["owner_field"]
        if owner and (owner not in by_name or by_name[owner].type != "user"):
            self.p.add(
                c("owner_field").ref,
                msg("owner_field", value=owner),
                did_you_mean(owner, [f.name for f in fields if f.type == "user"]),
                _entity_ctx(name),
            )
            owner = ""
        numbering = h["numbering"]
        if numbering:
            tokens = _numbering_tokens(numbering)
            counters = [t for t in tokens if re.fullmatch(r"#+", t)]
            unknown = [t for t in tokens if t not in ("YYYY", "YY", "MM", "DD") and not re.fullmatch(r"#+", t)]
            if unknown:
                self.p.add(
                    c("numbering").ref,
                    msg("numbering_token", value=numbering, token="{" + unknown[0] + "}"),
                    hint("counter"),
                    _entity_ctx(name),
                )
            elif len(counters) != 1:
                self.p.add(c("numbering").ref, msg("numbering_counter", value=numbering), hint("counter"), _entity_ctx(name))
            code = by_name.get("code")
            if code is None or code.type != "string":
                self.p.add(c("numbering").ref, msg("numbering_field"), hint("add_code"), _entity_ctx(name))
        return Entity(
            name=name,
            label=h["label"],
            fields=tuple(fields),
            label_en=h["label_en"],
            menu=h["menu"],
            menu_en=h["menu_en"],
            title_field=title,
            numbering=numbering,
            owner_field=owner,
            audit=h["audit"],
            description=h["description"],
            previous_name=h["previous_name"],
            ref=h["ref"],
        )

    # -- helpers for the sheets that refer to entities ---------------------------------------
    def entity_of(self, cell: Cell, emap: dict[str, Entity]) -> Entity | None:
        name = cell.text
        if not name:
            self.p.add(cell.ref, msg("required", what="实体", what_en="entity"))
            return None
        if name not in emap:
            self.p.add(cell.ref, msg("unknown_entity", value=name), did_you_mean(name, emap))
            return None
        return emap[name]

    def field_of(self, cell: Cell, entity: Entity, required: bool = True) -> Field | None:
        name = cell.text
        if not name:
            if required:
                self.p.add(cell.ref, msg("required", what="字段", what_en="field"), context=_entity_ctx(entity.name))
            return None
        f = entity.field(name)
        if f is None:
            self.p.add(
                cell.ref,
                msg("unknown_field", entity=entity.name, value=name),
                did_you_mean(name, [x.name for x in entity.fields]),
                _entity_ctx(entity.name),
            )
        return f

    def condition(self, cell: Cell, entity: Entity, emap: dict[str, Entity], required: bool = False, on_save: bool = False) -> str:
        """A condition's text when it is sound; ``on_save``: a validation, checked as a record is
        saved, which may ask whether the save changes a field (``changed(…)``)."""
        text = cell.text
        if not text:
            if required:
                self.p.add(cell.ref, msg("required", what="条件", what_en="condition"), context=_entity_ctx(entity.name))
            return ""
        try:
            parsed = expr_mod.parse(text)
        except expr_mod.ExprError as exc:
            self.p.add(cell.ref, msg("expr", value=text, error=str(exc)), context=_entity_ctx(entity.name))
            return ""
        used = [name for name in parsed.functions if name in expr_mod.SAVE_ONLY]
        if used and not on_save:
            self.p.add(cell.ref, msg("save_only", value=text, function=used[0]),
                       hint("save_only_instead"), _entity_ctx(entity.name))
            return ""
        system = [n for n in parsed.changed_names if entity.field(n) is None and n in BASE_KINDS]
        if system:  # id, created_on …: no save changes them, so the rule would never hold back anything
            self.p.add(cell.ref, msg("expr", value=text, error=f"changed({system[0]}) is never true: only fields of the fields sheet change"),
                       context=_entity_ctx(entity.name))
            return ""
        for path in parsed.names:
            problem = resolve_path(entity, path, emap)
            if problem:
                bad, options = problem
                self.p.add(
                    cell.ref, msg("expr", value=text, error=f"unknown field '{bad}'"), did_you_mean(bad, options), _entity_ctx(entity.name)
                )
                return ""
        found = comparison_problems(parsed.tree, field_kinds(entity, emap, self.choice_lists))
        for m in found:
            self.p.add(cell.ref, msg(m.code, value=text, **_worded(m)), hint(m.hint, **m.hint_params), _entity_ctx(entity.name))
        return "" if found else text

    def roles_of(self, cell: Cell, role_names: set[str]) -> tuple[str, ...]:
        roles = split_names(cell.text)
        for r in roles:
            if r not in role_names:
                self.p.add(cell.ref, msg("unknown_role", value=r), did_you_mean(r, role_names))
        return roles

    # -- the optional sheets -----------------------------------------------------------------
    def grading(self, emap: dict[str, Entity], choices: dict[str, tuple[Choice, ...]]) -> tuple[GradingRule, ...]:
        rules = []
        for i, (_row, c) in enumerate(self.rows("grading")):
            e = self.entity_of(c("entity"), emap)
            if e is None:
                continue
            f = self.field_of(c("field"), e)
            if f is None:
                continue
            if f.type != "choice":
                self.p.add(c("field").ref, msg("grade_field", value=f.name), context=_entity_ctx(e.name, f.name))
                continue
            grade = c("grade").text
            values = [ch.value for ch in choices.get(f.choices, ())]
            if grade not in values:
                self.p.add(
                    c("grade").ref,
                    msg("unknown_choice", value=grade, list=f.choices),
                    did_you_mean(grade, values) or hint("one_of", values=", ".join(values)),
                    _entity_ctx(e.name, f.name),
                )
                continue
            order = self.r.number(c("order"))
            cond = self.condition(c("condition"), e, emap)
            rules.append(GradingRule(e.name, f.name, grade, order if order is not None else i, cond, c("note").text, c("grade").ref))
        return tuple(sorted(rules, key=lambda r: (r.entity, r.field, r.order)))

    def forms(self, emap: dict[str, Entity]) -> tuple[FormItem, ...]:
        items = []
        for i, (_row, c) in enumerate(self.rows("forms")):
            e = self.entity_of(c("entity"), emap)
            if e is None:
                continue
            view = self.r.one_of(c("view"), VIEWS, "view_value")
            f = self.field_of(c("field"), e)
            if f is None or not view:
                if not c("view").text:
                    self.p.add(c("view").ref, msg("required", what="视图", what_en="view"), hint("one_of", values=", ".join(VIEWS)))
                continue
            order = self.r.number(c("order"))
            items.append(
                FormItem(e.name, view, c("section").text, f.name, order if order is not None else i, self.r.boolean(c("collapsed")))
            )
        return tuple(items)

    def roles(self) -> list[Role]:
        roles: dict[str, Role] = {}
        refs: dict[str, str] = {}
        for _row, c in self.rows("roles"):
            name = c("role").text
            if not name:
                self.p.add(c("role").ref, msg("required", what="角色名", what_en="role name"))
                continue
            if len(name) > 64 or any(ch in name for ch in "\r\n\t"):
                self.p.add(c("role").ref, msg("identifier_long", value=name[:20], limit=64))
                continue
            if name in roles:
                self.p.add(c("role").ref, msg("duplicate", what="角色", what_en="role", value=name, first=refs[name]))
                continue
            if name == PUBLIC_ROLE:  # Flask-AppBuilder gives this role's rights to everyone not signed in
                self.p.add(c("role").ref, msg("public_role", value=name), hint("rename"))
                continue
            if split_names(name) != (name,):  # a list cell (roles, recipients) could never name it
                self.p.add(c("role").ref, msg("role_separator", value=name), hint("rename"))
                continue
            refs[name] = c("role").ref
            roles[name] = Role(name, c("label").text, c("description").text, self.r.boolean(c("admin")))
        return list(roles.values())

    def permissions(self, emap: dict[str, Entity], role_names: set[str]) -> tuple[Permission, ...]:
        perms = []
        seen: dict[tuple[str, str], str] = {}
        for _row, c in self.rows("permissions"):
            role = c("role").text
            if not role:
                self.p.add(c("role").ref, msg("required", what="角色", what_en="role"))
            elif role not in role_names:
                self.p.add(c("role").ref, msg("unknown_role", value=role), did_you_mean(role, role_names))
                role = ""
            e = self.entity_of(c("entity"), emap)
            if e is None or not role:
                continue
            if (role, e.name) in seen:
                self.p.add(
                    c("entity").ref,
                    msg("duplicate", what="权限", what_en="permission", value=f"{role}/{e.name}", first=seen[(role, e.name)]),
                )
                continue
            seen[(role, e.name)] = c("entity").ref
            rights = tuple(r for r in RIGHTS if self.r.boolean(c(r)))
            scope = self.r.one_of(c("scope"), SCOPES, "scope_value", "all") or "all"
            if scope != "all" and not e.owner_field:
                self.p.add(
                    c("scope").ref, msg("owner_scope", entity=e.name, value=scope), hint("one_of", values="all"), _entity_ctx(e.name)
                )
            hidden = []
            for name in (h.strip() for h in re.split(LIST_SEPARATORS, c("hidden_fields").text)):
                f = self.field_of(Cell(name, c("hidden_fields").ref), e) if name else None
                if f is None:
                    continue
                if "add" in rights and _unfillable(f, e):  # the role adds records but could never fill it
                    self.p.add(c("hidden_fields").ref, msg("hidden_required", role=role, entity=e.name, value=f.name),
                               hint("hidden_required"), _entity_ctx(e.name, f.name))
                    continue
                hidden.append(name)
            locked = []
            for name in (h.strip() for h in re.split(LIST_SEPARATORS, c("readonly_fields").text)):
                f = self.field_of(Cell(name, c("readonly_fields").ref), e) if name else None
                if f is None:
                    continue
                if "add" in rights and _unfillable(f, e) and not f.readonly:
                    # the role adds records but could never fill this required field
                    self.p.add(c("readonly_fields").ref, msg("locked_required", role=role, entity=e.name, value=f.name),
                               hint("locked_required"), _entity_ctx(e.name, f.name))
                    continue
                locked.append(f.name)
            perms.append(Permission(role, e.name, rights, scope, tuple(hidden), tuple(locked)))
        return tuple(perms)

    def workflows(self, emap: dict[str, Entity], choices: dict[str, tuple[Choice, ...]], role_names: set[str],
                  permissions: tuple[Permission, ...] = (), admins: set[str] | None = None) -> tuple[Transition, ...]:
        result: list[Transition] = []
        for _row, c in self.rows("workflows"):
            e = self.entity_of(c("entity"), emap)
            if e is None:
                continue
            f = self.field_of(c("state_field"), e)
            if f is None:
                continue
            if f.type != "choice":
                self.p.add(c("state_field").ref, msg("state_field", value=f.name), context=_entity_ctx(e.name, f.name))
                continue
            values = [ch.value for ch in choices.get(f.choices, ())]
            states = []
            for key in ("from", "to"):
                s = c(key).text
                if s not in values:
                    self.p.add(
                        c(key).ref,
                        msg("unknown_choice", value=s, list=f.choices),
                        did_you_mean(s, values) or hint("one_of", values=", ".join(values)),
                        _entity_ctx(e.name, f.name),
                    )
                states.append(s)
            if states[0] == states[1] and states[0] in values:
                self.p.add(c("to").ref, msg("same_state", value=states[0]), context=_entity_ctx(e.name, f.name))
            action = c("action").text
            if not action:
                self.p.add(c("action").ref, msg("required", what="操作名", what_en="action"))
            roles = self.roles_of(c("roles"), role_names)
            notify = c("notify").text
            for who in split_names(notify):
                if who != "owner" and who not in role_names:
                    self.p.add(c("notify").ref, msg("recipient", value=who), did_you_mean(who, list(role_names) + ["owner"]))
                elif who != "owner" and who not in (admins or set()) and not any(p.entity == e.name and p.role == who for p in permissions):
                    # told only when their row scope reaches the record: without a right, never
                    self.p.add(c("notify").ref, msg("notify_unseen", value=who, entity=e.name), warning=True)
            cond = self.condition(c("condition"), e, emap)
            twin = next((t for t in result if (t.entity, t.state_field, t.source, t.action) == (e.name, f.name, states[0], action)), None)
            if action and twin is not None:  # one button, two targets: the last row would win
                self.p.add(c("action").ref, msg("duplicate", what="操作", what_en="action", value=f"{states[0]}: {action}", first=twin.ref),
                           hint("rename"))
                continue
            same_way = next((t for t in result if (t.entity, t.state_field, t.source, t.target) == (e.name, f.name, states[0], states[1])), None)
            if same_way is not None:  # two buttons, one move: the record page could not tell them apart
                self.p.add(c("to").ref, msg("duplicate", what="流转", what_en="transition", value=f"{states[0]} → {states[1]}",
                                            first=same_way.ref), hint("one_transition"))
                continue
            action_en = c("action_en").text
            # the buttons shown together, and the names the API takes for them, in either language
            shown = {n: t for t in result if (t.entity, t.source) == (e.name, states[0]) for n in (t.action, t.action_en) if n}
            clash = shown.get(action_en) if action_en else None
            if clash is None and action in shown:
                clash = shown[action]
            if clash is not None:
                self.p.add(c("action_en").ref if action_en and action_en in shown else c("action").ref,
                           msg("duplicate", what="操作", what_en="action", value=f"{states[0]}: {action_en if action_en in shown else action}",
                               first=clash.ref), hint("rename"))
                continue
            result.append(
                Transition(
                    e.name, f.name, states[0], states[1], action, roles, cond, self.r.boolean(c("require_comment")), notify, c("action").ref,
                    self.stamps(c("stamp"), e), action_en,
                )
            )
        self.check_reachable(result, emap)
        return tuple(result)

    def stamps(self, cell: Cell, e: Entity) -> tuple[str, ...]:
        """The fields a transition fills: a person field (who took it) or a date/time field (when),
        each read-only, or a form could write over what the action recorded."""
        names = []
        for name in (n.strip() for n in re.split(LIST_SEPARATORS, cell.text) if n.strip()):
            f = e.field(name) or next((x for x in e.fields if x.label == name), None)
            if f is None:
                self.p.add(cell.ref, msg("unknown_field", value=name, entity=e.name), did_you_mean(name, [x.name for x in e.fields]),
                           _entity_ctx(e.name))
            elif f.type not in ("user", "date", "datetime"):
                self.p.add(cell.ref, msg("stamp_type", value=f.name, type=f.type), context=_entity_ctx(e.name, f.name))
            elif not f.readonly:
                self.p.add(cell.ref, msg("stamp_readonly", value=f.name), hint("set_readonly", field=f.name), _entity_ctx(e.name, f.name))
            else:
                names.append(f.name)
        return tuple(names)

    def check_reachable(self, transitions: list[Transition], emap: dict[str, Entity]) -> None:
        by_key: dict[tuple[str, str], list[Transition]] = defaultdict(list)
        for t in transitions:
            by_key[(t.entity, t.state_field)].append(t)
        for (ent, fname), ts in by_key.items():
            f = emap[ent].field(fname)
            start = f.default if f is not None and f.default else ts[0].source
            reached = {start}
            changed = True
            while changed:
                changed = False
                for t in ts:
                    if t.source in reached and t.target not in reached:
                        reached.add(t.target)
                        changed = True
            for t in ts:
                if t.source not in reached:
                    self.p.add(t.ref, msg("unreachable", value=t.source), context=_entity_ctx(ent, fname))
                    reached.add(t.source)

    def templates(self) -> list[Template]:
        env = template_environment()
        result = []
        seen: dict[str, str] = {}
        self.template_cells: dict[str, dict[str, str]] = {}  # template → subject/body → its cell
        for _row, c in self.rows("templates"):
            name = self.r.ident(c("name"), ("模板名", "template name"))
            if name is None:
                continue
            if name in seen:
                self.p.add(c("name").ref, msg("duplicate", what="模板", what_en="template", value=name, first=seen[name]))
                continue
            seen[name] = c("name").ref
            self.template_cells[name] = {key: c(key).ref for key in ("subject", "body")}
            channel = self.r.one_of(c("channel"), CHANNELS, "channel", "email") or "email"
            for key in ("subject", "body"):
                try:
                    ast_ = env.parse(c(key).text)
                except TemplateSyntaxError as exc:
                    self.p.add(c(key).ref, msg("placeholder", error=exc.message or "syntax"))
                    continue
                for n in ast_.find_all(nodes.Name):
                    if n.ctx == "load" and n.name not in TEMPLATE_NAMES:
                        self.p.add(
                            c(key).ref,
                            msg("placeholder", error=f"unknown placeholder '{n.name}'"),
                            did_you_mean(n.name, TEMPLATE_NAMES) or hint("one_of", values=", ".join(sorted(TEMPLATE_NAMES))),
                        )
                # unknown filters and tests fail only when the runtime compiles the text: find them now
                for kind, node_type, known in (("filter", nodes.Filter, env.filters), ("test", nodes.Test, env.tests)):
                    for found in ast_.find_all(node_type):
                        if found.name not in known:
                            self.p.add(
                                c(key).ref, msg("placeholder", error=f"unknown {kind} '{found.name}'"), did_you_mean(found.name, known)
                            )
            result.append(Template(name, channel, c("subject").text, c("body").text))
        return result

    def schedules(self, emap: dict[str, Entity], role_names: set[str], templates: dict[str, Template]) -> list[Schedule]:
        env = template_environment()
        result = []
        seen: dict[str, str] = {}
        for _row, c in self.rows("schedules"):
            name = self.r.ident(c("name"), ("名称", "name"))
            e = self.entity_of(c("entity"), emap)
            if name is None or e is None:
                continue
            if name in seen:
                self.p.add(c("name").ref, msg("duplicate", what="提醒", what_en="schedule", value=name, first=seen[name]))
                continue
            seen[name] = c("name").ref
            when = parse_when(c("when").text)
            if when is None:
                self.p.add(c("when").ref, msg("when", value=c("when").text), hint("when"), _entity_ctx(e.name))
            elif any(d is not None and d.too_long for d in (when.every, when.offset)):
                self.p.add(c("when").ref, msg("duration_long", value=c("when").text, years=MAX_YEARS), context=_entity_ctx(e.name))
            elif when.field:
                problem = resolve_path(e, when.field, emap)
                target = field_at(e, when.field, emap)
                if problem or target is None and when.field not in ("created_on", "changed_on"):
                    bad, options = problem or (when.field, [])
                    self.p.add(
                        c("when").ref, msg("unknown_field", entity=e.name, value=bad), did_you_mean(bad, options), _entity_ctx(e.name)
                    )
                elif target is not None and target.type not in ("date", "datetime"):
                    self.p.add(c("when").ref, msg("when_field", value=when.field), context=_entity_ctx(e.name))
            cond = self.condition(c("condition"), e, emap)
            recipients = split_names(c("recipients").text)
            for r in recipients:
                if r == "owner":
                    if not e.owner_field:
                        self.p.add(c("recipients").ref, msg("owner_scope", entity=e.name, value=r))
                elif r in role_names:
                    continue
                elif "." in r or (e.field(r) is not None):
                    target = field_at(e, r, emap)
                    if target is None or target.type not in ("email", "user", "phone"):
                        self.p.add(c("recipients").ref, msg("recipient", value=r), did_you_mean(r, list(role_names) + ["owner"]))
                else:
                    self.p.add(c("recipients").ref, msg("recipient", value=r), did_you_mean(r, list(role_names) + ["owner"]))
            tname = c("template").text
            if tname and tname not in templates:
                self.p.add(c("template").ref, msg("unknown_template", value=tname), did_you_mean(tname, templates))
            elif tname:
                self.check_template_paths(env, templates[tname], e, emap, name)
            channel = self.r.one_of(c("channel"), CHANNELS, "channel", "inapp") or "inapp"
            esc_after, esc_to = c("escalate_after").text, c("escalate_to").text
            delays, targets = ladder_parts(esc_after), ladder_parts(esc_to)
            for d in delays:
                span = parse_duration(d)
                if span is None:
                    self.p.add(c("escalate_after").ref, msg("duration", value=d), hint("for_example", values="2 working hours, 1 day"))
                elif span.too_long:
                    self.p.add(c("escalate_after").ref, msg("duration_long", value=d, years=MAX_YEARS))
            for t in targets:
                if t not in role_names and t != "owner":
                    self.p.add(c("escalate_to").ref, msg("unknown_role", value=t), did_you_mean(t, role_names))
            if len(delays) != len(targets):
                self.p.add(c("escalate_to").ref if delays else c("escalate_after").ref,
                           msg("ladder", after=len(delays), to=len(targets)), hint("ladder"))
            result.append(Schedule(name, e.name, c("when").text, cond, recipients, tname, channel, esc_after, esc_to, c("name").ref))
        return result

    def check_template_paths(self, env: SandboxedEnvironment, t: Template, e: Entity, emap: dict[str, Entity], schedule: str) -> None:
        """``record.x.y`` in a template used for entity ``e`` must be a field path of ``e``. The
        problem is the template's (the subject or body cell that holds the path); the schedule that
        sends it for ``e`` goes in the context. A template is checked once per entity."""
        if (t.name, e.name) in self.template_paths_checked:
            return
        self.template_paths_checked.add((t.name, e.name))
        cells = self.template_cells.get(t.name, {})
        for key, text in (("subject", t.subject), ("body", t.body)):
            try:
                tree = env.parse(text)
            except TemplateSyntaxError:
                continue
            inner = {id(g.node) for g in tree.find_all(nodes.Getattr)}  # record.a of record.a.b: checked with it
            for node in tree.find_all(nodes.Getattr):
                if id(node) in inner:
                    continue
                path = []
                n: nodes.Node = node
                while isinstance(n, nodes.Getattr):
                    path.append(n.attr)
                    n = n.node
                if isinstance(n, nodes.Name) and n.name == "record" and path:
                    dotted = ".".join(reversed(path))
                    problem = resolve_path(e, dotted, emap, allow_base=True)
                    if problem:
                        bad, options = problem
                        parts = dotted.split(".")
                        owner = field_at(e, ".".join(parts[: parts.index(bad)]), emap) if parts.index(bad) else None
                        self.p.add(
                            cells.get(key, t.name),
                            msg("placeholder_field", path=dotted, entity=owner.link if owner and owner.link else e.name, value=bad),
                            did_you_mean(bad, options),
                            f"schedule {schedule}, entity {e.name}",
                        )

    def surveys(self, emap: dict[str, Entity]) -> tuple[SurveyQuestion, ...]:
        result = []
        for i, (_row, c) in enumerate(self.rows("surveys")):
            survey = self.r.ident(c("survey"), ("问卷名", "survey name"))
            question = c("question").text
            if not question:
                self.p.add(c("question").ref, msg("required", what="问题", what_en="question"))
            scale_n = self.r.number(c("scale"))
            scale = int(scale_n) if scale_n is not None else 4
            if scale_n is not None and (scale_n != int(scale_n) or not 2 <= scale_n <= 10):
                self.p.add(c("scale").ref, msg("scale", value=c("scale").text))
            labels = tuple(x.strip() for x in re.split(r"[,\uff0c\u3001]+", c("labels").text) if x.strip())
            if labels and len(labels) != scale:
                self.p.add(c("labels").ref, msg("labels_count", count=len(labels), scale=scale))
            trigger = c("trigger").text
            if trigger:
                ent_name, _, cond = trigger.partition(".")
                e = emap.get(ent_name)
                if e is None:
                    self.p.add(c("trigger").ref, msg("unknown_entity", value=ent_name), did_you_mean(ent_name, emap))
                else:
                    self.condition(Cell(cond, c("trigger").ref), e, emap, required=True)
            order = self.r.number(c("order"))
            if survey and question:
                result.append(SurveyQuestion(survey, question, scale, labels, order if order is not None else i, trigger))
        return tuple(sorted(result, key=lambda q: (q.survey, q.order)))

    def validations(self, emap: dict[str, Entity]) -> tuple[Validation, ...]:
        result = []
        for _row, c in self.rows("validations"):
            e = self.entity_of(c("entity"), emap)
            if e is None:
                continue
            cond = self.condition(c("condition"), e, emap, required=True, on_save=True)
            message = c("message").text
            if not message:
                self.p.add(c("message").ref, msg("required", what="提示信息", what_en="message"))
            if cond and message:
                result.append(Validation(e.name, cond, message, c("condition").ref))
        return tuple(result)

    def measure(self, ref: str, e: Entity, emap: dict[str, Entity], text: str) -> None:
        parsed = parse_measure(text)
        if parsed is None:
            self.p.add(ref, msg("measure", value=text), hint("for_example", values="count, sum(field), avg(field), min(field), max(field)"))
            return
        fn, path = parsed
        if not path:
            return
        target = field_at(e, path, emap)
        if target is None:
            problem = resolve_path(e, path, emap) or (path, [])
            self.p.add(ref, msg("unknown_field", entity=e.name, value=problem[0]), did_you_mean(problem[0], problem[1]))
        elif fn != "count" and target.type not in NUMERIC_TYPES + ("choice",):
            self.p.add(ref, msg("not_numeric", value=path))
        elif fn != "count" and target.type == "choice":
            values = [ch.value for ch in self.choice_lists.get(target.choices, ())]
            if not all(re.fullmatch(r"-?\d+(\.\d+)?", v) for v in values):
                self.p.add(ref, msg("not_numeric", value=path), hint("numeric_choices", value=target.choices))

    def reports(self, emap: dict[str, Entity], role_names: set[str], choices: dict[str, tuple[Choice, ...]]) -> tuple[Report, ...]:
        result = []
        for i, (_row, c) in enumerate(self.rows("reports")):
            name = c("name").text
            e = self.entity_of(c("entity"), emap)
            if not name:
                self.p.add(c("name").ref, msg("required", what="报表名", what_en="report name"))
            if e is None or not name:
                continue
            group_by = c("group_by").text
            if group_by and group_by not in ("created_on", "changed_on"):
                problem = resolve_path(e, group_by, emap)
                if problem:
                    bad, options = problem
                    self.p.add(c("group_by").ref, msg("unknown_field", entity=e.name, value=bad), did_you_mean(bad, options))
            measure = c("measure").text or "count"
            for one in split_measures(measure):
                self.measure(c("measure").ref, e, emap, one)
            period = self.r.one_of(c("period"), PERIODS, "period", "") or ""
            chart = self.r.one_of(c("chart"), CHARTS, "chart", "bar") or "bar"
            if period and group_by and group_by not in ("created_on", "changed_on"):
                target = field_at(e, group_by, emap)
                if target is not None and target.type not in ("date", "datetime"):
                    self.p.add(c("period").ref, msg("period_needs_date", value=group_by), hint("period_needs_date"))
            if chart == "pie" and len(split_measures(measure)) > 1:
                self.p.add(c("chart").ref, msg("pie_one_measure"), hint("one_of", values="bar, line, radar, table"))
            cond = self.condition(c("condition"), e, emap)
            order = self.r.number(c("order"))
            roles = self.roles_of(c("roles"), role_names)
            result.append(Report(name, e.name, group_by, measure, period, cond, chart, roles, order if order is not None else i,
                                 c("label").text, c("label_en").text))
        return tuple(sorted(result, key=lambda r: r.order))


def _numbering_tokens(pattern: str) -> list[str]:
    return NUMBERING_TOKEN.findall(pattern)


BASE_FIELDS = ("id", "created_on", "changed_on", "created_by", "changed_by")


def resolve_path(entity: Entity, path: str, emap: dict[str, Entity], allow_base: bool = True) -> tuple[str, list[str]] | None:
    """None when ``path`` (``a.b.c``) names a field through links; else (bad part, options)."""
    current: Entity | None = entity
    parts = path.split(".")
    for i, part in enumerate(parts):
        if current is None:
            return part, []
        f = current.field(part)
        if f is None:
            if allow_base and part in BASE_FIELDS and (i == len(parts) - 1 or part in ("created_by", "changed_by")):
                if part in ("created_by", "changed_by"):
                    return None
                continue
            return part, [x.name for x in current.fields] + list(BASE_FIELDS)
        if f.type == "link":
            current = emap.get(f.link)
        elif f.type == "user":
            return None  # a user's attributes (email, first_name …) are the login system's
        elif i < len(parts) - 1:
            return parts[i + 1], []
    return None


__all__ = ["validate_workbook", "workbook_language", "resolve_path"]
