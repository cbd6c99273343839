"""Numbers behind the dashboard: one ``GROUP BY`` query per panel of the ``reports`` sheet.

A report names an entity, what to group by (a field or a path through links; dates bucketed by
``period``), one or more measures (``count``, ``sum(f)``, ``avg(f)``, ``min(f)``, ``max(f)``) and a
condition in the sheet's expression language. :class:`Reporter` turns it into a single set-based
query that carries the viewer's row scope, so a salesperson's "due this week" panel counts only
their own records, and returns :class:`PanelData`: categories (with labels and colours from the
choices sheet), one series per measure, and the key of every category for drill-down.

Periods show a trailing window (the last 12 months, 13 weeks, …) with empty buckets filled, so a
trend line has no holes, continued into the future as far as planned dates reach (at most as far
again). Hidden fields are respected: a panel grouped or measured by a field the
viewer may not see is withheld.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User

from app.access.scope import hidden_fields, scope_clause, user_scope
from app.messages import msg
from app.messaging.channels import user_name
from app.spec.expr import parse
from app.spec.model import NUMERIC_TYPES, Entity, Field, Report, Spec, field_at
from app.spec.sqlexpr import NotCompilable, compile_condition, compile_path
from app.web.i18n import pick, speaking

WINDOW = {"day": 31, "week": 13, "month": 12, "quarter": 8, "year": 5}
WINDOW_LABEL = {"day": ("近31天", "last 31 days"), "week": ("近13周", "last 13 weeks"), "month": ("近12个月", "last 12 months"),
                "quarter": ("近8个季度", "last 8 quarters"), "year": ("近5年", "last 5 years")}
MAX_CATEGORIES = 30
MAX_POLYGONS = 8  # a radar with one polygon per category stays readable up to about this many
BASE_DATES = ("created_on", "changed_on")
NONE_KEY = "__none__"


@dataclass
class Category:
    key: Any  # what drill-down filters on: the stored value ('' = no grouping, NONE_KEY = empty value)
    label: str
    color: str = ""


@dataclass
class PanelData:
    name: str
    title: str
    chart: str
    entity: str
    measures: list[str]  # labels, one per series
    categories: list[Category] = field(default_factory=list)
    series: list[list[float | None]] = field(default_factory=list)  # series[m][c]
    note: str = ""
    denied: bool = False
    drill: bool = True
    money: list[bool] = field(default_factory=list)  # per measure: amounts of money (shown in 元/万/亿)

    @property
    def empty(self) -> bool:
        """Nothing to show: no category, or every number blank or zero (said in one line, no empty chart)."""
        return not self.denied and not any(v for s in self.series for v in s)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "chart": self.chart, "entity": self.entity, "measures": self.measures,
                "categories": [c.__dict__ for c in self.categories], "series": self.series, "note": self.note,
                "denied": self.denied, "drill": self.drill, "money": self.money, "empty": self.empty}

    def rows(self) -> list[list[Any]]:
        """The panel as a table: one row per category, one column per measure."""
        return [[c.label, *(s[i] for s in self.series)] for i, c in enumerate(self.categories)]


def _number(value: Any) -> float | None:
    if value is None:
        return None
    return round(float(value), 2)


class Viewer:
    """What the reports need of a person (id, role names), detached from any database session so
    panels can be computed in worker threads."""

    def __init__(self, user: Any):
        self.id = getattr(user, "id", None)
        self.roles = [_Role(r.name) for r in getattr(user, "roles", []) or []]


@dataclass(frozen=True)
class _Role:
    name: str


def compute_panels(app: Any, user: Any, reports: list[Any], language: str, workers: int = 4) -> list[PanelData]:
    """Every panel of ``reports`` (reports or survey panels) for ``user`` in ``language`` (``zh``/``en``), computed side
    by side (one query each, on their own connections; SQLite and PostgreSQL both serve concurrent reads), in the given
    order."""
    from concurrent.futures import ThreadPoolExecutor

    viewer = Viewer(user)

    def one(report: Any) -> PanelData:
        # an application context of its own per thread (its own database session), in the viewer's language
        with app.app_context(), speaking(language):
            return Reporter(app.extensions["crm"], viewer).compute(report)

    if workers <= 1 or len(reports) <= 1:
        return [one(r) for r in reports]
    with ThreadPoolExecutor(max_workers=min(workers, len(reports))) as pool:
        return list(pool.map(one, reports))


class Reporter:
    """Computes panels for one viewer at one moment (``now``) over the app's database."""

    def __init__(self, crm: Any, user: Any, now: dt.datetime | None = None):
        self.crm, self.spec, self.user = crm, crm.spec, user
        self.session = crm.db.session
        self.now = now or dt.datetime.now()
        self.dialect = self.session.get_bind().dialect.name
        self.tables = dict(Model.metadata.tables)
        self.models = crm.generated.models.MODELS

    # -- who sees what ------------------------------------------------------------------------
    def _roles(self) -> set[str]:
        return {r.name for r in getattr(self.user, "roles", []) or []}

    def visible_reports(self) -> list[Report]:
        """Reports whose roles include one of the viewer's (all for administrators) and whose
        entity the viewer may list."""
        roles, admin = self._roles(), self.crm.admin_role in self._roles()
        out = []
        for r in self.spec.reports:
            entity = self.spec.entity(r.entity)
            if entity is None or (not admin and r.roles and not roles & set(r.roles)):
                continue
            if not admin and user_scope(self.spec, entity, self.user, self.crm.admin_role) == "none":
                continue
            out.append(r)
        return out

    def report(self, name: str) -> Report | None:
        return next((r for r in self.visible_reports() if r.name == name), None)

    def sources(self) -> list[Report | SurveyPanel]:
        """Everything the viewer's dashboard shows: the reports sheet's panels, then each survey's."""
        return [*self.visible_reports(), *SurveyReporter(self).visible()]

    def source(self, name: str) -> Report | SurveyPanel | None:
        return next((s for s in self.sources() if s.name == name), None)

    def compute(self, source: Report | SurveyPanel) -> PanelData:
        return SurveyReporter(self).panel(source) if isinstance(source, SurveyPanel) else self.panel(source)

    # -- one panel ------------------------------------------------------------------------------
    def panel(self, report: Report) -> PanelData:
        entity = self.spec.entity(report.entity)
        assert entity is not None
        data = PanelData(report.name, report_title(self.spec, report), report.chart, entity.name,
                         [self.measure_label(entity, fn, path) for fn, path in report.measures])
        data.money = [fn != "count" and (f := self.field(entity, path)) is not None and f.type == "money" for fn, path in report.measures]
        if self._touches_hidden(entity, report):
            data.denied, data.drill = True, False
            data.note = msg("无权查看此统计所用的字段").localized()
            return data
        key, group = self._group(entity, report)
        table = self.tables[entity.name]
        aggs = [self._aggregate(entity, table, fn, path).label(f"m{i}") for i, (fn, path) in enumerate(report.measures)]
        q = sa.select(key.label("k"), *aggs) if key is not None else sa.select(*aggs)
        q = q.select_from(table).where(*self.where(entity, report))
        if key is not None:
            q = q.group_by(key)
        result = self.session.execute(q).all()
        raw = {(row[0] if key is not None else ""): [_number(v) for v in (row[1:] if key is not None else row)] for row in result}
        categories = group.categories(self, raw)
        if group.sort_by_value:
            categories.sort(key=lambda c: -(raw.get(c.key, [None])[0] or 0))
            limit = MAX_POLYGONS if report.chart == "radar" and len(report.measures) > 1 else MAX_CATEGORIES
            if len(categories) > limit:
                data.note = msg("仅显示前 %(limit)s 项(共 %(n)s 项)", limit=limit, n=len(categories)).localized()
                categories = categories[:limit]
        if group.window:
            data.note = pick(*WINDOW_LABEL[group.window])
        empty = [0.0 if fn in ("count", "sum") else None for fn, _p in report.measures]
        data.categories = [Category(group.url_key(c.key), c.label, c.color) for c in categories]
        data.series = [[(raw.get(c.key) or empty)[m] for c in categories] for m in range(len(report.measures))]
        return data

    def where(self, entity: Entity, report: Report) -> list[Any]:
        """Row scope and the report's condition, as SQL (a condition SQL cannot express —
        ``working_hours`` — is evaluated in Python over the scoped rows)."""
        model, table = self.models[entity.name], self.tables[entity.name]
        clauses = []
        scope = scope_clause(self.spec, entity, model, self.user, self.crm.admin_role)
        if scope is not None:
            clauses.append(scope)
        if report.condition:
            expr = parse(report.condition)
            try:
                clauses.append(compile_condition(expr, self.spec, entity, table, self.tables, self.now, self.dialect))
            except NotCompilable:
                clauses.append(table.c.id.in_(self._python_matches(entity, expr, scope)))
        group_range = self._window(entity, report)
        if group_range is not None:
            clauses.append(group_range)
        return clauses

    def _python_matches(self, entity: Entity, expr: Any, scope: Any) -> list[int]:
        from app.spec.expr import record_lookup

        model = self.models[entity.name]
        q = self.session.query(model)
        if scope is not None:
            q = q.filter(scope)
        return [obj.id for obj in q.yield_per(1000) if expr.test(record_lookup(obj), self.now, self.spec.calendar)]

    def _touches_hidden(self, entity: Entity, report: Report) -> bool:
        hidden = hidden_fields(self.spec, entity, self.user, self.crm.admin_role)
        used = {report.group_by.split(".")[0]} | {path.split(".")[0] for _fn, path in report.measures if path}
        return bool(hidden & used)

    # -- pieces -----------------------------------------------------------------------------------
    def value(self, entity: Entity, path: str) -> Any:
        return compile_path(self.spec, entity, self.tables[entity.name], self.tables, path, self.now, self.dialect)

    def field(self, entity: Entity, path: str) -> Field | None:
        return field_at(entity, path, {e.name: e for e in self.spec.entities})

    def measure_label(self, entity: Entity, fn: str, path: str) -> str:
        if fn == "count":
            return pick("数量", "Count")
        f = self.field(entity, path)
        name = pick(f.label, f.label_en) if f else path
        words = {"sum": ("合计", "total"), "avg": ("平均", "average"), "min": ("最小", "minimum"), "max": ("最大", "maximum")}[fn]
        return pick(f"{name}({words[0]})", f"{name} ({words[1]})")

    def _aggregate(self, entity: Entity, table: Any, fn: str, path: str) -> Any:
        if fn == "count":
            return sa.func.count(self.value(entity, path)) if path else sa.func.count()
        value = self.value(entity, path)
        f = self.field(entity, path)
        if f is not None and f.type not in NUMERIC_TYPES:
            value = sa.cast(value, sa.Float)  # numeric choice values ('1'…'4'), checked by `crm check`
        return getattr(sa.func, fn)(value)

    def _group(self, entity: Entity, report: Report) -> tuple[Any, Group]:
        path = report.group_by
        if not path:
            return None, Group()
        f = self.field(entity, path) if path not in BASE_DATES else None
        column = self.value(entity, path)
        if path in BASE_DATES or (f is not None and f.type in ("date", "datetime")):
            period = report.period or "day"
            return bucket(column, period, self.dialect), PeriodGroup(period, self.now)
        if f is not None and f.type == "choice":
            return column, ChoiceGroup(self.spec, f)
        if f is not None and f.type == "link":
            return column, LinkGroup(f.link)
        if f is not None and f.type == "user":
            return column, UserGroup()
        if f is not None and f.type == "boolean":
            return column, BoolGroup()
        return column, Group(sort_by_value=True)

    def _window(self, entity: Entity, report: Report) -> Any:
        """Periods look back a fixed window from today."""
        path = report.group_by
        if not path:
            return None
        f = self.field(entity, path) if path not in BASE_DATES else None
        if not (path in BASE_DATES or (f is not None and f.type in ("date", "datetime"))):
            return None
        period = report.period or "day"
        start = period_start(self.now.date(), period, WINDOW[period] - 1)
        end = period_start(self.now.date(), period, -WINDOW[period])
        column = self.value(entity, path)
        if f is not None and f.type == "date":
            return sa.and_(column >= start, column < end)
        return sa.and_(column >= dt.datetime.combine(start, dt.time()), column < dt.datetime.combine(end, dt.time()))

    # -- drill-down -------------------------------------------------------------------------------
    def drill_clause(self, entity: Entity, report: Report, key: str) -> Any:
        """The rows behind one category of a panel (``key`` as the panel gave it)."""
        path = report.group_by
        if not path or key == "":
            return sa.true()
        column = self.value(entity, path)
        if key == NONE_KEY:
            return column.is_(None)
        f = self.field(entity, path) if path not in BASE_DATES else None
        if path in BASE_DATES or (f is not None and f.type in ("date", "datetime")):
            start, end = period_range(key, report.period or "day")
            if f is not None and f.type == "date":
                return sa.and_(column >= start, column < end)
            return sa.and_(column >= dt.datetime.combine(start, dt.time()), column < dt.datetime.combine(end, dt.time()))
        if f is not None and f.type in ("link", "user", "integer"):
            try:
                return column == int(key)
            except ValueError:
                return sa.false()
        if f is not None and f.type == "boolean":
            return column == (key == "1")
        return column == key


# -- groups: how stored keys become categories ---------------------------------------------------------

class Group:
    """No grouping (one total), or plain values ordered by the first measure."""

    window = ""

    def __init__(self, sort_by_value: bool = False):
        self.sort_by_value = sort_by_value

    def categories(self, reporter: Reporter, raw: dict[Any, Any]) -> list[Category]:
        if not self.sort_by_value:
            return [Category("", pick("合计", "Total"))]
        return [Category(k, str(k) if k not in (None, "") else pick("(空)", "(blank)")) for k in raw]

    def url_key(self, key: Any) -> str:
        return NONE_KEY if key is None else str(key)


class ChoiceGroup(Group):
    def __init__(self, spec: Spec, f: Field):
        super().__init__()
        self.options = spec.choices.get(f.choices, ())

    def categories(self, reporter: Reporter, raw: dict[Any, Any]) -> list[Category]:
        out = [Category(c.value, pick(c.label, c.label_en), c.color) for c in self.options]
        known = {c.value for c in self.options}
        out += [Category(k, str(k) if k is not None else pick("(空)", "(blank)")) for k in raw if k not in known]
        return out


class BoolGroup(Group):
    def categories(self, reporter: Reporter, raw: dict[Any, Any]) -> list[Category]:
        out = [Category(True, pick("是", "Yes")), Category(False, pick("否", "No"))]
        return out + ([Category(None, pick("(空)", "(blank)"))] if None in raw else [])

    def url_key(self, key: Any) -> str:
        return NONE_KEY if key is None else ("1" if key else "0")


class LinkGroup(Group):
    """Linked records by their title; titles of records outside the viewer's scope stay hidden."""

    def __init__(self, target: str):
        super().__init__(sort_by_value=True)
        self.target = target

    def categories(self, reporter: Reporter, raw: dict[Any, Any]) -> list[Category]:
        entity = reporter.spec.entity(self.target)
        model = reporter.models[self.target]
        ids = [k for k in raw if k is not None]
        q = reporter.session.query(model).filter(model.id.in_(ids)) if ids else None
        scope = scope_clause(reporter.spec, entity, model, reporter.user, reporter.crm.admin_role) if entity else None
        if q is not None and scope is not None:
            q = q.filter(scope)
        titles = {obj.id: str(obj) for obj in (q.all() if q is not None else [])}
        return [Category(k, titles.get(k, f"#{k}") if k is not None else pick("(空)", "(blank)")) for k in raw]


class UserGroup(Group):
    def __init__(self) -> None:
        super().__init__(sort_by_value=True)

    def categories(self, reporter: Reporter, raw: dict[Any, Any]) -> list[Category]:
        ids = [k for k in raw if k is not None]
        users = {u.id: user_name(u) for u in reporter.session.query(User).filter(User.id.in_(ids)).all()} if ids else {}
        return [Category(k, users.get(k, f"#{k}") if k is not None else pick("(未指定)", "(nobody)")) for k in raw]


class PeriodGroup(Group):
    """Date buckets of the trailing window, oldest first, empty ones included."""

    def __init__(self, period: str, now: dt.datetime):
        super().__init__()
        self.window, self.period, self.today = period, period, now.date()

    def categories(self, reporter: Reporter, raw: dict[Any, Any]) -> list[Category]:
        """The window up to this period, continued to the last future period that has rows
        (planned dates: care events next month, contracts ending next quarter)."""
        n = WINDOW[self.period]
        keys = [period_key(period_start(self.today, self.period, back), self.period) for back in range(n - 1, -n, -1)]
        last = max([keys[n - 1], *(k for k in raw if k is not None and k in keys)])
        return [Category(k, period_label(k, self.period)) for k in keys if k <= last]


# -- periods ----------------------------------------------------------------------------------------------

def bucket(column: Any, period: str, dialect: str) -> Any:
    """SQL text key of the period a date falls in: 2026-11-22 (day, and the Monday of a week),
    2026-11 (month), 2026-Q4 (quarter), 2026 (year)."""
    if dialect == "sqlite":
        if period == "week":
            return sa.func.date(column, "weekday 0", "-6 days")
        if period == "quarter":
            month = sa.cast(sa.func.strftime("%m", column), sa.Integer)
            return sa.func.strftime("%Y", column) + "-Q" + sa.cast((month + 2) / 3, sa.String)
        # dates and datetimes are stored as ISO text: the key is a prefix (cheaper than strftime)
        return sa.func.substr(column, 1, {"day": 10, "month": 7, "year": 4}[period])
    if period == "week":
        return sa.func.to_char(sa.func.date_trunc("week", column), "YYYY-MM-DD")
    return sa.func.to_char(column, {"day": "YYYY-MM-DD", "month": "YYYY-MM", "quarter": 'YYYY-"Q"Q', "year": "YYYY"}[period])


def period_start(today: dt.date, period: str, back: int = 0) -> dt.date:
    """The first day of the period ``back`` periods before the one ``today`` is in."""
    if period == "day":
        return today - dt.timedelta(days=back)
    if period == "week":
        return today - dt.timedelta(days=today.weekday() + 7 * back)
    if period == "year":
        return dt.date(today.year - back, 1, 1)
    months = 3 if period == "quarter" else 1
    first = (today.month - 1) // months * months  # 0-based month starting the period
    index = today.year * 12 + first - back * months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_key(start: dt.date, period: str) -> str:
    if period in ("day", "week"):
        return start.isoformat()
    if period == "month":
        return start.strftime("%Y-%m")
    if period == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return str(start.year)


def period_range(key: str, period: str) -> tuple[dt.date, dt.date]:
    """[start, end) of the period a key names; ValueError for a malformed key."""
    if period == "day":
        start = dt.date.fromisoformat(key)
        return start, start + dt.timedelta(days=1)
    if period == "week":
        start = dt.date.fromisoformat(key)
        return start, start + dt.timedelta(days=7)
    if period == "month":
        year, month = (int(x) for x in key.split("-"))
        start = dt.date(year, month, 1)
        return start, start + dt.timedelta(days=calendar.monthrange(year, month)[1])
    if period == "quarter":
        y, q = key.split("-Q")
        start = dt.date(int(y), (int(q) - 1) * 3 + 1, 1)
        end_index = start.year * 12 + start.month - 1 + 3
        return start, dt.date(end_index // 12, end_index % 12 + 1, 1)
    return dt.date(int(key), 1, 1), dt.date(int(key) + 1, 1, 1)


def period_label(key: str, period: str) -> str:
    """Chinese the Chinese way (2026年11月, 2026年第4季度), English otherwise."""
    if period == "month":
        year, month = key.split("-")
        return pick(f"{year}年{int(month)}月", dt.date(int(year), int(month), 1).strftime("%b %Y"))
    if period == "quarter":
        year, q = key.split("-Q")
        return pick(f"{year}年第{q}季度", f"Q{q} {year}")
    if period == "year":
        return pick(f"{key}年", key)
    day = dt.date.fromisoformat(key)
    if period == "week":
        return pick(f"{day.month}月{day.day}日当周", f"week of {day:%d %b}")
    return pick(f"{day.month}月{day.day}日", f"{day:%d %b}")


def report_title(spec: Spec, report: Report) -> str:
    """A report's title: its name in the sheet is an identifier, so the title is built from the
    entity, the grouping and the measure in the viewer's language."""
    if report.label:
        return pick(report.label, report.label_en)
    entity = spec.entity(report.entity)
    assert entity is not None
    emap = {e.name: e for e in spec.entities}
    parts_zh, parts_en = [entity.label], [entity.label_en or entity.name]
    if report.group_by:
        f = field_at(entity, report.group_by, emap)
        base = {"created_on": ("创建时间", "created"), "changed_on": ("修改时间", "changed")}.get(report.group_by)
        zh, en = (f.label, f.label_en or f.name) if f else base or (report.group_by, report.group_by)
        per = {"day": ("日", "day"), "week": ("周", "week"), "month": ("月", "month"), "quarter": ("季度", "quarter"),
               "year": ("年", "year")}.get(report.period or "", ("", ""))
        parts_zh.append(f"按{zh}{'(' + per[0] + ')' if per[0] else ''}")
        parts_en.append(f"by {en}{' (' + per[1] + ')' if per[1] else ''}")
    return pick(" ".join(parts_zh), " ".join(parts_en))


# -- surveys: response rate and answers from the surveys sheet -----------------------------------------

@dataclass(frozen=True)
class SurveyPanel:
    """A panel every survey of the ``surveys`` sheet gets: ``rate`` (invitations answered, per
    month) or ``radar`` (each question's average per owner of the surveyed records)."""

    survey: str
    kind: str  # "rate" | "radar"

    @property
    def name(self) -> str:
        return f"survey-{self.kind}-{self.survey}"


class SurveyReporter:
    """Numbers of the surveys (invitations in the outbox, answers in ``crm_survey_answer``) for one
    viewer: only records of the surveyed entity in the viewer's row scope count."""

    def __init__(self, reporter: Reporter):
        from app.messaging.jobs import survey_sources, surveys_of

        self.r = reporter
        self.surveys = surveys_of(reporter.spec)
        self.sources = survey_sources(reporter.spec)

    def visible(self) -> list[SurveyPanel]:
        admin = self.r.crm.admin_role in self.r._roles()
        out = []
        roles = self.r._roles()
        for name, survey in self.surveys.items():
            entity = self.r.spec.entity(survey.entity)
            if entity is None or not admin and not self._concerns(entity, roles):
                continue
            out += [SurveyPanel(name, "rate"), SurveyPanel(name, "radar")]
        return out

    def _concerns(self, entity: Entity, roles: set[str]) -> bool:
        """A survey's panels are for those it is about or who watch its entity: roles owning the surveyed
        records (scope own: a technician's own ratings), or given a panel on that entity in the reports sheet
        (a salesperson who may merely look up service calls gets none)."""
        scope = user_scope(self.r.spec, entity, self.r.user, self.r.crm.admin_role)
        if scope == "none":
            return False
        watched = any(r.entity == entity.name and roles & set(r.roles) for r in self.r.spec.reports)
        return scope == "own" or watched

    def _records(self, entity: Entity) -> Any:
        """Ids of the surveyed entity's records the viewer may see (None: all)."""
        model = self.r.models[entity.name]
        scope = scope_clause(self.r.spec, entity, model, self.r.user, self.r.crm.admin_role)
        return None if scope is None else sa.select(model.id).where(scope)

    def panel(self, p: SurveyPanel) -> PanelData:
        from app.record.tables import OutboxMessage, SurveyAnswer

        survey = self.surveys[p.survey]
        entity = self.r.spec.entity(survey.entity)
        assert entity is not None
        title = pick(f"{entity.label}满意度调查", f"{entity.label_en or entity.name} survey")
        ob, answers = OutboxMessage.__table__, SurveyAnswer.__table__
        start = dt.datetime.combine(period_start(self.r.now.date(), "month", WINDOW["month"] - 1), dt.time())
        visible = self._records(entity)
        if p.kind == "rate":
            return self._rate(p, title, entity, ob, answers, start, visible)
        return self._radar(p, title, survey, entity, answers, start, visible)

    def _rate(self, p: SurveyPanel, title: str, entity: Entity, ob: Any, answers: Any, start: dt.datetime, visible: Any) -> PanelData:
        month = bucket(ob.c.created_on, "month", self.r.dialect)
        answered = sa.exists().where(answers.c.survey == p.survey, answers.c.entity == entity.name,
                                     answers.c.record_id == ob.c.record_id)
        q = (sa.select(month, sa.func.count(sa.distinct(ob.c.record_id)),
                       sa.func.count(sa.distinct(sa.case((answered, ob.c.record_id)))))
             .where(ob.c.source == self.sources.get(p.survey, ""), ob.c.step == 0, ob.c.entity == entity.name, ob.c.created_on >= start)
             .group_by(month))
        if visible is not None:
            q = q.where(ob.c.record_id.in_(visible))
        counts = {k: (int(n), int(a)) for k, n, a in self.r.session.execute(q).all()}
        group = PeriodGroup("month", self.r.now)
        categories = group.categories(self.r, counts)
        invited = sum(n for n, _a in counts.values())
        got = sum(a for _n, a in counts.values())
        data = PanelData(p.name, title + pick(":问卷回收率(%)", ": response rate (%)"), "line", entity.name,
                         [pick("回收率(%)", "Response rate (%)")], drill=False)
        data.categories = categories
        data.series = [[round(100 * counts[c.key][1] / counts[c.key][0], 1) if counts.get(c.key, (0, 0))[0] else None
                        for c in categories]]
        data.note = msg("近12个月:邀请 %(invited)s,回收 %(answered)s", invited=invited, answered=got).localized()
        return data

    def _radar(self, p: SurveyPanel, title: str, survey: Any, entity: Entity, answers: Any, start: dt.datetime, visible: Any) -> PanelData:
        table = self.r.tables[entity.name]
        owner = table.c[f"{entity.owner_field}_id"] if entity.owner_field else sa.literal(None)
        q = (sa.select(owner, answers.c.question_order, sa.func.avg(answers.c.value), sa.func.count(sa.distinct(answers.c.record_id)))
             .select_from(answers.join(table, table.c.id == answers.c.record_id))
             .where(answers.c.survey == p.survey, answers.c.entity == entity.name, answers.c.submitted_at >= start)
             .group_by(owner, answers.c.question_order))
        if visible is not None:
            q = q.where(answers.c.record_id.in_(visible))
        averages: dict[Any, dict[int, float]] = {}
        responses: dict[Any, int] = {}
        for who, order, avg, n in self.r.session.execute(q).all():
            averages.setdefault(who, {})[int(order)] = round(float(avg), 2)
            responses[who] = max(responses.get(who, 0), int(n))
        questions = list(survey.questions)
        data = PanelData(p.name, title + pick(":各题平均分(按负责人)", ": average per question by owner"), "radar", entity.name,
                         [_short(q.question) for q in questions], drill=False)
        top = sorted(responses, key=lambda k: -responses[k])[:MAX_POLYGONS]
        data.categories = UserGroup().categories(self.r, {k: None for k in top}) if entity.owner_field else [Category("", pick("全部", "All"))]
        data.series = [[averages.get(c.key, {}).get(int(q.order)) for c in data.categories] for q in questions]
        data.categories = [Category(UserGroup().url_key(c.key), c.label, c.color) for c in data.categories]
        scale = max((q.scale for q in questions), default=0)
        data.note = msg("近12个月,满分 %(scale)s", scale=scale).localized()
        if len(responses) > MAX_POLYGONS:
            data.note += msg(";仅显示回收最多的 %(n)s 位", n=MAX_POLYGONS).localized()
        return data


def _short(question: str, size: int = 14) -> str:
    """A question as an axis label: its text up to the first punctuation, at most ``size`` chars."""
    text = question.strip().rstrip("?？。.")
    return text if len(text) <= size else text[: size - 1] + "…"
