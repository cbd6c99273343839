"""One row of the fields sheet: its name and type (written in English or Chinese), the choice list or
entity its type needs, min/max/pattern, and a default that passes its own field's checks."""

from __future__ import annotations

import ast
import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.spec.expr import ExprError
from app.spec.expr import parse as expr_parse
from app.spec.model import EMAIL_PATTERN, FIELD_TYPES, NUMERIC_TYPES, PHONE_PATTERN, TEXT_TYPES, Choice, Entity, Field

from ..problems import did_you_mean, hint, msg
from ..read import Cell
from .context import Context, entity_ctx
from .reader import FALSE, TRUE

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
# field types as the office may write them in Chinese (headers and yes/no cells take Chinese too)
TYPE_NAMES = {"文本": "string", "字符串": "string", "长文本": "text", "多行文本": "text", "整数": "integer", "小数": "decimal",
              "数值": "decimal", "金额": "money", "是否": "boolean", "日期": "date", "日期时间": "datetime", "选项": "choice",
              "关联": "link", "邮箱": "email", "电话": "phone", "文件": "file", "附件": "file", "人员": "user", "用户": "user"}


def unfillable(f: Field, e: Entity) -> bool:
    """A required field no one could leave out of a new record: no default, not the owner (the
    recorder), not a numbered code."""
    return f.required and f.default in (None, "") and f.name != e.owner_field and not (f.name == "code" and e.numbering)


def build_field(v: Context, ent: str, c: Any, heads: dict[str, Any], choices: dict[str, tuple[Choice, ...]]) -> Field | None:
    name = v.r.ident(c("name"), ("字段名", "field name"), RESERVED_FIELDS, entity_ctx(ent))
    ctx = entity_ctx(ent, name or c("name").text)
    tcell = c("type")
    ftype = TYPE_NAMES.get(tcell.text.strip(), tcell.text.lower())
    if not ftype:
        v.p.add(tcell.ref, msg("required", what="类型", what_en="type"), hint("one_of", values=", ".join(FIELD_TYPES)), ctx)
        return None
    if ftype not in FIELD_TYPES:
        v.p.add(
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
            v.p.add(c("choices").ref, msg("choices_needed"), hint("one_of", values=", ".join(choices) or "—"), ctx)
            return None
        if list_name not in choices:
            v.p.add(
                c("choices").ref,
                msg("unknown_list", value=list_name),
                did_you_mean(list_name, choices) or hint("define_list", value=list_name),
                ctx,
            )
            return None
    if ftype == "link":
        if not link:
            v.p.add(c("link").ref, msg("link_needed"), hint("one_of", values=", ".join(heads)), ctx)
            return None
        if link not in heads:
            v.p.add(c("link").ref, msg("unknown_entity", value=link), did_you_mean(link, heads), ctx)
            return None
    lo, hi = v.r.number(c("min")), v.r.number(c("max"))
    if (lo is not None or hi is not None) and ftype not in NUMERIC_TYPES + TEXT_TYPES:
        v.p.add(c("min").ref if lo is not None else c("max").ref, msg("min_max_type", type=ftype), context=ctx)
    if lo is not None and hi is not None and lo > hi:
        v.p.add(c("min").ref, msg("min_max", min=c("min").text, max=c("max").text), hint("swap"), ctx)
    elif ftype in TEXT_TYPES and hi is not None and (hi <= 0 or hi != int(hi)):
        v.p.add(c("max").ref, msg("length_max", max=c("max").text), context=ctx)
    pattern = c("pattern").text
    if pattern:
        if ftype not in TEXT_TYPES:
            v.p.add(c("pattern").ref, msg("pattern_type", type=ftype), context=ctx)
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                v.p.add(c("pattern").ref, msg("bad_regex", error=str(exc)), hint("regex"), ctx)
    encrypted = v.r.boolean(c("encrypted"))
    if encrypted and ftype not in ("text", "string"):
        v.p.add(c("encrypted").ref, msg("encrypted_type"), context=ctx)
    elif encrypted:
        for key, zh, en in (("unique", "唯一", "unique"), ("search", "可搜索", "searchable"), ("filter", "可筛选", "a filter")):
            if v.r.boolean(c(key)):
                v.p.add(c(key).ref, msg("encrypted_use", what=zh, what_en=en), context=ctx)
    formula = c("formula").text.strip()
    default_formula = ""
    if formula:
        v.formula_cells[(ent, name)] = c("formula")
        for key, code in (("default", "formula_default"), ("required", "formula_required")):
            if not c(key).blank and (key == "default" or v.r.boolean(c(key))):
                v.p.add(c(key).ref, msg(code, value=name), hint("formula_alone"), ctx)
        if encrypted:
            v.p.add(c("formula").ref, msg("formula_encrypted", value=name), hint("formula_alone"), ctx)
        if ftype in ("link", "user", "file"):
            v.p.add(c("formula").ref, msg("formula_type", type=ftype), hint("formula_types"), ctx)
        default = None
    elif computed_default(c("default"), ftype):
        default, default_formula = None, c("default").text.strip()
        v.formula_cells[(ent, name)] = c("default")
    else:
        default = field_default(v, c("default"), ftype, choices.get(list_name, ()), ctx, list_name)
    if default is not None:
        check_default(v, c("default"), ftype, default, lo, hi, pattern, ctx)
    prev = c("previous_name").text
    if prev:
        v.r.ident(c("previous_name"), ("原名称", "previous name"), ctx=ctx)
    return Field(
        name=name,
        label=c("label").text or name,
        type=ftype,
        label_en=c("label_en").text,
        required=v.r.boolean(c("required")),
        unique=v.r.boolean(c("unique")),
        default=default,
        choices=list_name if ftype == "choice" else "",
        link=link if ftype == "link" else "",
        min=lo,
        max=hi,
        pattern=pattern,
        help=c("help").text,
        list=v.r.boolean(c("list")),
        search=v.r.boolean(c("search")),
        filter=v.r.boolean(c("filter")),
        readonly=v.r.boolean(c("readonly")) or bool(formula),  # a computed field is kept by the system alone
        encrypted=encrypted,
        previous_name=prev,
        ref=c("name").ref,
        formula=formula,
        default_formula=default_formula,
    )


COMPUTABLE_DEFAULTS = ("date", "datetime", "integer", "decimal", "money")


def computed_default(cell: Cell, ftype: str) -> bool:
    """Whether a default cell holds an expression of the other fields (``received_on + 30 days``)
    rather than a value: a date or number field's default that is not a date or number, nor
    today/now, but reads a field or calls a function."""
    if cell.blank or ftype not in COMPUTABLE_DEFAULTS or isinstance(cell.value, int | float | dt.date):
        return False
    text = cell.text.strip()
    if text.lower() in ("today", "now", "今天", "现在"):
        return False
    try:
        if ftype in ("date", "datetime"):
            dt.datetime.fromisoformat(text)
        else:
            Decimal(text.replace(",", ""))
        return False
    except (ValueError, InvalidOperation):
        pass
    try:
        parsed = expr_parse(text)
    except ExprError:
        return False
    # a bare word (``many``) is a wrong value, not an expression: an expression computes something
    return bool(parsed.functions) or not isinstance(parsed.tree, ast.Name | ast.Constant)


def field_default(v: Context, cell: Cell, ftype: str, options: tuple[Choice, ...], ctx: str, list_name: str) -> Any:
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
            v.p.add(cell.ref, bad, context=ctx)
    elif ftype in ("decimal", "money"):
        try:
            d = Decimal(text.replace(",", ""))
            if not math.isfinite(float(d)):  # nan, inf, and 1e999 (which no float holds)
                raise InvalidOperation
            return float(d)
        except (InvalidOperation, ValueError):  # ValueError: a signalling NaN
            v.p.add(cell.ref, bad, context=ctx)
    elif ftype == "boolean":
        t = text.lower()
        if t in TRUE or t in FALSE:
            return t in TRUE
        v.p.add(cell.ref, bad, hint("bool"), ctx)
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
            v.p.add(cell.ref, bad, hint("for_example", values="2026-01-31, today"), ctx)
    elif ftype == "choice":
        values = [o.value for o in options]
        labels = {o.label: o.value for o in options}
        if text in values:
            return text
        if text in labels:
            return labels[text]
        v.p.add(
            cell.ref,
            msg("unknown_choice", value=text, list=list_name),
            did_you_mean(text, values) or hint("one_of", values=", ".join(values)),
            ctx,
        )
    elif ftype in ("link", "user", "file"):
        v.p.add(cell.ref, bad, context=ctx)
    else:
        return text
    return None


def check_default(v: Context, cell: Cell, ftype: str, value: Any, lo: float | None, hi: float | None, pattern: str, ctx: str) -> None:
    """A default must pass the checks its own field makes on every value a form, the API or an
    import saves (min/max, length, pattern, e-mail, phone, the column's size): else each new
    record would start out invalid, or fail to save."""
    fix = hint("fix_default")
    if ftype in NUMERIC_TYPES and isinstance(value, int | float):
        if lo is not None and value < lo:
            v.p.add(cell.ref, msg("default_min", value=cell.text, min=f"{lo:g}"), fix, ctx)
        if hi is not None and value > hi:
            v.p.add(cell.ref, msg("default_max", value=cell.text, max=f"{hi:g}"), fix, ctx)
        amount = Decimal(cell.text.replace(",", ""))
        if ftype == "money" and amount != amount.quantize(Decimal("0.01")):
            v.p.add(cell.ref, msg("default_cents", value=cell.text), fix, ctx)
    if ftype not in TEXT_TYPES or not isinstance(value, str):
        return
    column = {"string": int(hi) if hi is not None and hi >= 1 else 255, "email": 254, "phone": 40}.get(ftype)
    if lo is not None and len(value) < lo:
        v.p.add(cell.ref, msg("default_short", value=value, min=f"{lo:g}"), fix, ctx)
    for limit in (hi, column):
        if limit is not None and len(value) > limit:
            v.p.add(cell.ref, msg("default_long", value=value if len(value) <= 20 else value[:20] + "…", max=f"{limit:g}"), fix, ctx)
            break
    if pattern:
        try:
            matches = re.match(pattern, value) is not None
        except re.error:  # reported on the pattern cell
            matches = True
        if not matches:
            v.p.add(cell.ref, msg("default_pattern", value=value, pattern=pattern), fix, ctx)
    if ftype == "email" and not re.match(EMAIL_PATTERN, value):
        v.p.add(cell.ref, msg("default_email", value=value), hint("example", value="name@example.com"), ctx)
    if ftype == "phone" and not re.match(PHONE_PATTERN, value):
        v.p.add(cell.ref, msg("default_phone", value=value), hint("example", value="021-12345678 / 13800138000"), ctx)
