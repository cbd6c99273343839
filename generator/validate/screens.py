"""What the screens show besides each record's fields: the forms sheet (which fields the add, edit
and show forms lay out, in sections) and the reports sheet (the dashboard's panels: group,
measures, period, chart, who sees them)."""

from __future__ import annotations

import re

from app.spec.model import CHARTS, NUMERIC_TYPES, PERIODS, VIEWS, Choice, Entity, FormItem, Report, field_at, parse_measure, split_measures

from ..problems import did_you_mean, hint, msg
from .conditions import condition
from .context import Context, resolve_path


def build_forms(v: Context, emap: dict[str, Entity]) -> tuple[FormItem, ...]:
    items = []
    for i, (_row, c) in enumerate(v.rows("forms")):
        e = v.entity_of(c("entity"), emap)
        if e is None:
            continue
        view = v.r.one_of(c("view"), VIEWS, "view_value")
        f = v.field_of(c("field"), e)
        if f is None or not view:
            if not c("view").text:
                v.p.add(c("view").ref, msg("required", what="视图", what_en="view"), hint("one_of", values=", ".join(VIEWS)))
            continue
        order = v.r.number(c("order"))
        items.append(
            FormItem(e.name, view, c("section").text, f.name, order if order is not None else i, v.r.boolean(c("collapsed")))
        )
    return tuple(items)


def check_measure(v: Context, ref: str, e: Entity, emap: dict[str, Entity], text: str) -> None:
    parsed = parse_measure(text)
    if parsed is None:
        v.p.add(ref, msg("measure", value=text), hint("for_example", values="count, sum(field), avg(field), min(field), max(field)"))
        return
    fn, path = parsed
    if not path:
        return
    target = field_at(e, path, emap)
    if target is None:
        problem = resolve_path(e, path, emap) or (path, [])
        v.p.add(ref, msg("unknown_field", entity=e.name, value=problem[0]), did_you_mean(problem[0], problem[1]))
    elif fn != "count" and target.type not in NUMERIC_TYPES + ("choice",):
        v.p.add(ref, msg("not_numeric", value=path))
    elif fn != "count" and target.type == "choice":
        values = [ch.value for ch in v.choice_lists.get(target.choices, ())]
        if not all(re.fullmatch(r"-?\d+(\.\d+)?", v) for v in values):
            v.p.add(ref, msg("not_numeric", value=path), hint("numeric_choices", value=target.choices))


def build_reports(v: Context, emap: dict[str, Entity], role_names: set[str], choices: dict[str, tuple[Choice, ...]]) -> tuple[Report, ...]:
    result = []
    for i, (_row, c) in enumerate(v.rows("reports")):
        name = c("name").text
        e = v.entity_of(c("entity"), emap)
        if not name:
            v.p.add(c("name").ref, msg("required", what="报表名", what_en="report name"))
        if e is None or not name:
            continue
        group_by = c("group_by").text
        if group_by and group_by not in ("created_on", "changed_on"):
            problem = resolve_path(e, group_by, emap)
            if problem:
                bad, options = problem
                v.p.add(c("group_by").ref, msg("unknown_field", entity=e.name, value=bad), did_you_mean(bad, options))
        measure = c("measure").text or "count"
        for one in split_measures(measure):
            check_measure(v, c("measure").ref, e, emap, one)
        period = v.r.one_of(c("period"), PERIODS, "period", "") or ""
        chart = v.r.one_of(c("chart"), CHARTS, "chart", "bar") or "bar"
        if period and group_by and group_by not in ("created_on", "changed_on"):
            target = field_at(e, group_by, emap)
            if target is not None and target.type not in ("date", "datetime"):
                v.p.add(c("period").ref, msg("period_needs_date", value=group_by), hint("period_needs_date"))
        if chart == "pie" and len(split_measures(measure)) > 1:
            v.p.add(c("chart").ref, msg("pie_one_measure"), hint("one_of", values="bar, line, radar, table"))
        cond = condition(v, c("condition"), e, emap)
        order = v.r.number(c("order"))
        roles = v.roles_of(c("roles"), role_names)
        result.append(Report(name, e.name, group_by, measure, period, cond, chart, roles, order if order is not None else i,
                             c("label").text, c("label_en").text))
    return tuple(sorted(result, key=lambda r: r.order))
