"""Compile a sheet condition into a SQL expression over an entity's table, so rules can run
set-based (one ``UPDATE … CASE`` for a whole table) with the same meaning as in Python:
a missing value never matches a comparison, ``not`` of a missing value is true, and a division
by zero is "no value". Paths through links become correlated sub-selects.
"""

from __future__ import annotations

import ast
import datetime as dt
from typing import Any

import sqlalchemy as sa

from generator.expr import Expr
from generator.spec import Entity, Spec


class NotCompilable(ValueError):
    """The condition uses something SQL cannot express here (e.g. working_hours)."""


class _Compiler:
    def __init__(self, spec: Spec, entity: Entity, table: sa.Table, tables: dict[str, sa.Table], now: dt.datetime, dialect: str):
        self.spec, self.entity, self.table, self.tables = spec, entity, table, tables
        self.now, self.dialect = now, dialect

    # -- values ---------------------------------------------------------------------------
    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return sa.null() if node.value is None else sa.literal(node.value)
        if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
            return {"True": sa.true(), "False": sa.false(), "None": sa.null()}[node.id]
        if isinstance(node, ast.Name | ast.Attribute):
            return self.path(_dotted(node))
        if isinstance(node, ast.BinOp):
            left, right = self.value(node.left), self.value(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                return sa.cast(left, sa.Float) / sa.func.nullif(right, 0)
            if isinstance(node.op, ast.Mod):
                return left % sa.func.nullif(right, 0)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = self.value(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Call):
            return self.call(node.func.id, node.args)  # type: ignore[union-attr]
        if isinstance(node, ast.BoolOp | ast.Compare | ast.UnaryOp):
            return sa.case((self.test(node), sa.true()), else_=sa.false())
        raise NotCompilable(type(node).__name__)

    def path(self, dotted: str) -> Any:
        return self._path(self.entity, self.table, dotted.split("."))

    def _path(self, entity: Entity, table: Any, parts: list[str]) -> Any:
        f = entity.field(parts[0])
        if len(parts) == 1:
            if f is not None:
                return table.c[f.column]
            if parts[0] in ("id", "created_on", "changed_on"):
                return table.c[parts[0]]
            raise NotCompilable(parts[0])
        if f is None or f.type != "link":
            raise NotCompilable(".".join(parts))
        target_entity = self.spec.entity(f.link)
        assert target_entity is not None
        target = self.tables[f.link].alias()
        inner = self._path(target_entity, target, parts[1:])
        return sa.select(inner).where(target.c.id == table.c[f.column]).scalar_subquery()

    def call(self, name: str, args: list[ast.expr]) -> Any:
        if name == "today":
            return sa.literal(self.now.date(), sa.Date)
        if name == "now":
            return sa.literal(self.now, sa.DateTime)
        if name in ("days_since", "days_until"):
            v = self.value(args[0])
            today = self.now.date()
            if self.dialect == "sqlite":
                diff = sa.func.julianday(today.isoformat()) - sa.func.julianday(sa.func.date(v))
                diff = sa.cast(sa.func.round(diff), sa.Integer)
            else:
                diff = sa.literal(today, sa.Date) - sa.cast(v, sa.Date)
            return diff if name == "days_since" else -diff
        if name == "hours_since":
            v = self.value(args[0])
            if self.dialect == "sqlite":
                return (sa.func.julianday(self.now.isoformat(sep=" ")) - sa.func.julianday(v)) * 24
            return sa.extract("epoch", sa.literal(self.now, sa.DateTime) - v) / 3600
        if name == "len":
            return sa.func.coalesce(sa.func.length(self.value(args[0])), 0)
        if name == "abs":
            return sa.func.abs(self.value(args[0]))
        if name == "lower":
            return sa.func.lower(self.value(args[0]))
        if name in ("min", "max"):
            values = [self.value(a) for a in args]
            fn = {"sqlite": {"min": sa.func.min, "max": sa.func.max}}.get(self.dialect, {"min": sa.func.least, "max": sa.func.greatest})
            return fn[name](*values)
        if name == "is_blank":
            v = self.value(args[0])
            return sa.case((sa.or_(v.is_(None), sa.cast(v, sa.String) == ""), sa.true()), else_=sa.false())
        raise NotCompilable(name)

    # -- truth --------------------------------------------------------------------------------
    def test(self, node: ast.AST) -> Any:
        """A SQL condition that is TRUE exactly when Python's ``bool(...)`` would be, never NULL."""
        if isinstance(node, ast.BoolOp):
            parts = [self.test(v) for v in node.values]
            return sa.and_(*parts) if isinstance(node.op, ast.And) else sa.or_(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sa.not_(self.test(node.operand))
        if isinstance(node, ast.Compare):
            parts = []
            left_node = node.left
            for op, comp in zip(node.ops, node.comparators, strict=True):
                parts.append(self.compare(op, left_node, comp))
                left_node = comp
            return sa.and_(*parts)
        if isinstance(node, ast.Constant):
            return sa.true() if node.value else sa.false()
        v = self.value(node)
        if isinstance(node, ast.Name | ast.Attribute):
            f = self._field(_dotted(node))
            if f is not None and f.type == "boolean":
                return sa.func.coalesce(v, sa.false()) == sa.true()
            if f is not None and f.type in ("integer", "decimal", "money"):
                return sa.and_(v.is_not(None), v != 0)
            return sa.and_(v.is_not(None), sa.cast(v, sa.String) != "")
        return sa.func.coalesce(v, sa.false()) == sa.true()

    def compare(self, op: ast.cmpop, left_node: ast.expr, right_node: ast.expr) -> Any:
        left = self.value(left_node)
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right_node, ast.List | ast.Tuple | ast.Set):
                raise NotCompilable("in needs a literal list")
            values = [e.value for e in right_node.elts if isinstance(e, ast.Constant)]
            inside = sa.and_(left.is_not(None), left.in_(values))
            return inside if isinstance(op, ast.In) else sa.and_(left.is_not(None), left.not_in(values))
        right = self.value(right_node)
        none_left = isinstance(left_node, ast.Constant) and left_node.value is None
        none_right = isinstance(right_node, ast.Constant) and right_node.value is None
        if isinstance(op, ast.Eq):
            if none_right:
                return left.is_(None)
            if none_left:
                return right.is_(None)
            return sa.func.coalesce(left == right, sa.false()) == sa.true()
        if isinstance(op, ast.NotEq):
            if none_right:
                return left.is_not(None)
            if none_left:
                return right.is_not(None)
            # Python: None != 'x' is True
            return sa.or_(sa.and_(left.is_(None), right.is_not(None)), sa.and_(left.is_not(None), right.is_(None)),
                          sa.func.coalesce(left != right, sa.false()) == sa.true())
        ops = {ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}
        return sa.and_(left.is_not(None), right.is_not(None), ops[type(op)](left, right))

    def _field(self, dotted: str) -> Any:
        entity: Entity | None = self.entity
        f = None
        for part in dotted.split("."):
            if entity is None:
                return None
            f = entity.field(part)
            if f is None:
                return None
            entity = self.spec.entity(f.link) if f.type == "link" else None
        return f


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    assert isinstance(node, ast.Name)
    parts.append(node.id)
    return ".".join(reversed(parts))


def compile_condition(expr: Expr, spec: Spec, entity: Entity, table: sa.Table, tables: dict[str, sa.Table],
                      now: dt.datetime, dialect: str) -> Any:
    """The SQL truth of ``expr`` for rows of ``table`` (raises NotCompilable)."""
    return _Compiler(spec, entity, table, tables, now, dialect).test(expr.tree)
