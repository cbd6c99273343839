"""Computed fields (``fields.formula``) and computed defaults (``fields.default`` written as an
expression): each parsed, its paths, functions, roll-ups and type checked against the whole
workbook (:func:`app.spec.formula.analyse`), and no formula reading itself through others."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from app.spec import expr as expr_mod
from app.spec.formula import FormulaError, analyse, dependencies
from app.spec.model import Entity, Field, Spec
from app.spec.sqlexpr import NotCompilable, compile_value

from ..problems import did_you_mean, hint, msg
from .context import Context, entity_ctx

KINDS = {"number": ("数字", "a number"), "text": ("文本", "text"), "bool": ("是/否值", "a yes/no value"),
         "date": ("日期", "a date"), "datetime": ("日期时间", "a date and time"), "days": ("天数", "a number of days"),
         "record": ("记录", "a record"), "list": ("列表", "a list")}
DETAILS = {  # FormulaError code → (zh, en) with {detail} and {hint}
    "type_arith": ("'{detail}' 只能对数字做算术", "'{detail}': arithmetic works on numbers only"),
    "type_date_arith": ("'{detail}':日期只能加减天数,例如 received_on + 30 days",
                        "'{detail}': a date can only be moved by days, e.g. received_on + 30 days"),
    "type_days": ("'{detail}':天数只能加到日期上", "'{detail}': days can only be added to a date"),
    "type_days_alone": ("天数要加到日期上,例如 received_on + 30 days", "days must be added to a date, e.g. received_on + 30 days"),
    "type_if": ("'{detail}':if 的两个结果类型不同({hint})", "'{detail}': the two results of if differ ({hint})"),
    "rollup_type": ("'{detail}' 不是数字,不能 {hint}", "'{detail}' is not a number and cannot be given to {hint}"),
    "rollup_field": ("'{detail}':写成 子实体.字段", "'{detail}': write child.field"),
    "count_field": ("'{detail}':count 数记录,写 count(子实体)", "'{detail}': count counts records, write count(child)"),
    "rollup_target": ("'{detail}':汇总的是关联到本实体的记录", "'{detail}': aggregates take the records that link here"),
    "rollup_args": ("'{detail}':汇总只带一个 where 条件", "'{detail}': an aggregate takes one where condition"),
    "rollup_nested": ("'{detail}':where 条件里不能再汇总", "'{detail}': no aggregate inside a where condition"),
    "rollup_in_default": ("默认值不能汇总其他记录", "a default cannot aggregate other records"),
    "unsupported": ("'{detail}' 不能用在公式中", "'{detail}' cannot be used in a formula"),
}


def check_formulas(v: Context, spec: Spec) -> None:
    """Every formula and computed default of ``spec``; then the cycles through formulas."""
    edges: dict[tuple[str, str], set[tuple[str, str]]] = {}
    tables = _tables(spec)
    for e in spec.entities:
        for f in e.fields:
            cell = v.formula_cells.get((e.name, f.name))
            if cell is None or not (f.formula or f.default_formula):
                continue
            stored = bool(f.formula)
            text = f.formula or f.default_formula
            ctx = entity_ctx(e.name, f.name)
            try:
                parsed = expr_mod.parse(text)
                analysis = analyse(spec, e, f, parsed, stored=stored)
                if stored:
                    for dialect in ("sqlite", "postgresql"):
                        compile_value(parsed, spec, e, tables[e.name], tables, dt.datetime(2000, 1, 1), dialect)
            except expr_mod.ExprError as exc:
                v.p.add(cell.ref, msg("formula_expr", value=text, error=str(exc)), context=ctx)
                continue
            except FormulaError as exc:
                _report(v, cell.ref, text, e, spec, exc, ctx)
                continue
            except NotCompilable as exc:
                v.p.add(cell.ref, msg("formula_python", value=text, function=str(exc)), hint("formula_python"), ctx)
                continue
            if stored:
                edges[(e.name, f.name)] = dependencies(spec, e, analysis)
    _cycles(v, spec, edges)


def _report(v: Context, ref: str, text: str, e: Entity, spec: Spec, exc: FormulaError, ctx: str) -> None:
    if exc.code == "unknown_path":
        bad = exc.detail
        head = bad.split(".")[0]
        options = [f.name for f in e.fields] if "." not in bad else []
        v.p.add(ref, msg("formula_path", value=text, path=bad), did_you_mean(head, options) if options else None, ctx)
    elif exc.code in ("rollup_unknown", "rollup_not_back"):
        v.p.add(ref, msg("formula_rollup", value=text, part=exc.detail, entity=e.name),
                did_you_mean(exc.detail, [x.name for x in spec.entities if any(f.link == e.name for f in x.fields)])
                or hint("formula_rollup"), ctx)
    elif exc.code == "rollup_ambiguous":
        v.p.add(ref, msg("formula_ambiguous", value=text, part=exc.detail, links=exc.hint), context=ctx)
    elif exc.code == "type_result":
        zh, en = KINDS.get(exc.detail, (exc.detail, exc.detail))
        v.p.add(ref, msg("formula_result", value=text, kind=zh, kind_en=en, type=exc.hint), context=ctx)
    elif exc.code == "python_only":
        v.p.add(ref, msg("formula_python", value=text, function=exc.detail), hint("formula_python"), ctx)
    else:
        zh, en = DETAILS.get(exc.code, ("'{detail}'", "'{detail}'"))
        v.p.add(ref, msg("formula_kind", value=text, detail=zh.format(detail=exc.detail, hint=exc.hint),
                         detail_en=en.format(detail=exc.detail, hint=exc.hint)), context=ctx)


def _tables(spec: Spec) -> dict[str, sa.Table]:
    """Stand-in tables of the workbook's entities, enough to compile a formula to SQL."""
    from app.spec.columns import COLUMN_TYPES

    meta = sa.MetaData()
    out = {}
    for e in spec.entities:
        cols: list[sa.Column[Any]] = [sa.Column("id", sa.Integer, primary_key=True), sa.Column("created_on", sa.DateTime), sa.Column("changed_on", sa.DateTime)]
        seen = {"id", "created_on", "changed_on"}
        for f in e.fields:  # a clash of two fields on one column is reported by the fields' check
            if f.column not in seen:
                seen.add(f.column)
                cols.append(sa.Column(f.column, getattr(sa, COLUMN_TYPES[f.type][0])))
        out[e.name] = sa.Table(e.name, meta, *cols)
    return out


def _cycles(v: Context, spec: Spec, edges: dict[tuple[str, str], set[tuple[str, str]]]) -> None:
    """A formula that reads itself through other formulas, reported once per circle."""
    reported: set[frozenset[tuple[str, str]]] = set()
    for start in edges:
        path = _circle(start, edges)
        if path is None or frozenset(path) in reported:
            continue
        reported.add(frozenset(path))
        e = spec.entity(start[0])
        f: Field | None = e.field(start[1]) if e is not None else None
        cell = v.formula_cells.get(start)
        words = " → ".join(f"{a}.{b}" for a, b in [*path, path[0]])
        v.p.add(cell.ref if cell else (f.ref if f else ""), msg("formula_cycle", cycle=words), hint("formula_break_cycle"),
                entity_ctx(start[0], start[1]))


def _circle(start: tuple[str, str], edges: dict[tuple[str, str], set[tuple[str, str]]]) -> list[tuple[str, str]] | None:
    """The computed fields from ``start`` back to itself, or None when it reaches no circle through itself."""
    stack: list[tuple[tuple[str, str], list[tuple[str, str]]]] = [(start, [start])]
    seen: set[tuple[str, str]] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                return path
            if nxt in edges and nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None
