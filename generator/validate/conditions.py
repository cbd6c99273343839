"""Conditions as the sheets write them (grading, workflows, schedules, surveys, reports and
validations): parsed, their field paths resolved, their comparisons' types checked by the kernel
and put in words; and the validations sheet, conditions each with its message."""

from __future__ import annotations

from app.spec import expr as expr_mod
from app.spec.exprtypes import BASE_KINDS, Mismatch, comparison_problems, field_kinds
from app.spec.model import Entity, Validation

from ..problems import did_you_mean, hint, msg
from ..read import Cell
from .context import Context, entity_ctx, resolve_path

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


def condition(v: Context, cell: Cell, entity: Entity, emap: dict[str, Entity], required: bool = False, on_save: bool = False) -> str:
    """A condition's text when it is sound; ``on_save``: a validation, checked as a record is
    saved, which may ask whether the save changes a field (``changed(…)``)."""
    text = cell.text
    if not text:
        if required:
            v.p.add(cell.ref, msg("required", what="条件", what_en="condition"), context=entity_ctx(entity.name))
        return ""
    try:
        parsed = expr_mod.parse(text)
    except expr_mod.ExprError as exc:
        v.p.add(cell.ref, msg("expr", value=text, error=str(exc)), context=entity_ctx(entity.name))
        return ""
    used = [name for name in parsed.functions if name in expr_mod.SAVE_ONLY]
    if used and not on_save:
        v.p.add(cell.ref, msg("save_only", value=text, function=used[0]),
                hint("save_only_instead"), entity_ctx(entity.name))
        return ""
    system = [n for n in parsed.changed_names if entity.field(n) is None and n in BASE_KINDS]
    if system:  # id, created_on …: no save changes them, so the rule would never hold back anything
        v.p.add(cell.ref, msg("expr", value=text, error=f"changed({system[0]}) is never true: only fields of the fields sheet change"),
                context=entity_ctx(entity.name))
        return ""
    for path in parsed.names:
        problem = resolve_path(entity, path, emap)
        if problem:
            bad, options = problem
            v.p.add(
                cell.ref, msg("expr", value=text, error=f"unknown field '{bad}'"), did_you_mean(bad, options), entity_ctx(entity.name)
            )
            return ""
    found = comparison_problems(parsed.tree, field_kinds(entity, emap, v.choice_lists))
    for m in found:
        v.p.add(cell.ref, msg(m.code, value=text, **_worded(m)), hint(m.hint, **m.hint_params), entity_ctx(entity.name))
    return "" if found else text


def build_validations(v: Context, emap: dict[str, Entity]) -> tuple[Validation, ...]:
    result = []
    for _row, c in v.rows("validations"):
        e = v.entity_of(c("entity"), emap)
        if e is None:
            continue
        cond = condition(v, c("condition"), e, emap, required=True, on_save=True)
        message = c("message").text
        if not message:
            v.p.add(c("message").ref, msg("required", what="提示信息", what_en="message"))
        if cond and message:
            result.append(Validation(e.name, cond, message, c("condition").ref))
    return tuple(result)
