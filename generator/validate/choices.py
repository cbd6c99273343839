"""The choices sheet (lists of values, each with labels, order and colour) and the grading sheet,
which picks one of a choice field's values by condition."""

from __future__ import annotations

from collections import defaultdict

from app.spec.model import Choice, Entity, GradingRule

from ..problems import did_you_mean, hint, msg
from .conditions import condition
from .context import Context, entity_ctx


def build_choices(v: Context) -> dict[str, tuple[Choice, ...]]:
    lists: dict[str, list[Choice]] = defaultdict(list)
    seen: dict[tuple[str, str], str] = {}
    for _row, c in v.rows("choices"):
        name = v.r.ident(c("list"), ("选项列表名", "list name"), ctx="")
        value = c("value").text
        if not value:
            v.p.add(c("value").ref, msg("required", what="选项值", what_en="choice value"))
            continue
        if name is None:
            continue
        if (name, value) in seen:
            v.p.add(c("value").ref, msg("duplicate", what="选项值", what_en="choice value", value=value, first=seen[(name, value)]))
            continue
        seen[(name, value)] = c("value").ref
        if len(value) > 64:
            v.p.add(c("value").ref, msg("identifier_long", value=value, limit=64))
            continue
        order = v.r.number(c("order"))
        color = v.r.one_of(c("color"), ("green", "blue", "orange", "red", "grey", "purple", "yellow"), "unknown_value") or ""
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


def build_grading(v: Context, emap: dict[str, Entity], choices: dict[str, tuple[Choice, ...]]) -> tuple[GradingRule, ...]:
    rules = []
    for i, (_row, c) in enumerate(v.rows("grading")):
        e = v.entity_of(c("entity"), emap)
        if e is None:
            continue
        f = v.field_of(c("field"), e)
        if f is None:
            continue
        if f.type != "choice":
            v.p.add(c("field").ref, msg("grade_field", value=f.name), context=entity_ctx(e.name, f.name))
            continue
        grade = c("grade").text
        values = [ch.value for ch in choices.get(f.choices, ())]
        if grade not in values:
            v.p.add(
                c("grade").ref,
                msg("unknown_choice", value=grade, list=f.choices),
                did_you_mean(grade, values) or hint("one_of", values=", ".join(values)),
                entity_ctx(e.name, f.name),
            )
            continue
        order = v.r.number(c("order"))
        cond = condition(v, c("condition"), e, emap)
        rules.append(GradingRule(e.name, f.name, grade, order if order is not None else i, cond, c("note").text, c("grade").ref))
    return tuple(sorted(rules, key=lambda r: (r.entity, r.field, r.order)))
