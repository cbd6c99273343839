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

from .expr import Expr
from .formula import rollup_of
from .model import Entity, Spec


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
            moved = self._date_shift(node)
            if moved is not None:
                return moved
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
            rollup = rollup_of(self.spec, self.entity, node)
            if rollup is not None:
                return self._rollup(rollup)
            return self.call(node.func.id, node.args)  # type: ignore[attr-defined]  # parse() allows plain names only
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
            fn: dict[str, Any] = ({"min": sa.func.min, "max": sa.func.max} if self.dialect == "sqlite"
                                  else {"min": sa.func.least, "max": sa.func.greatest})
            return fn[name](*values)
        if name == "if_":
            return sa.case((self.test(args[0]), self.value(args[1])), else_=self.value(args[2]))
        if name == "round":
            places = self.value(args[1]) if len(args) > 1 else sa.literal(0)
            return sa.func.round(sa.cast(self.value(args[0]), sa.Numeric(18, 4)), places)
        if name == "concat":
            parts = [sa.func.coalesce(sa.cast(self.value(a), sa.String), "") for a in args]
            joined: Any = parts[0]
            for p in parts[1:]:
                joined = joined.op("||")(p)
            return sa.type_coerce(joined, sa.String)
        if name in ("year", "month"):
            return sa.cast(sa.extract(name, self.value(args[0])), sa.Integer)
        if name == "is_blank":
            v = self.value(args[0])
            return sa.case((sa.or_(v.is_(None), sa.cast(v, sa.String) == ""), sa.true()), else_=sa.false())
        raise NotCompilable(name)

    # -- formulas: dates moved by days, roll-ups over the records that link here ----------------
    def _date_shift(self, node: ast.BinOp) -> Any:
        """``d + days(n)``, ``days(n) + d``, ``d - days(n)`` as the dialect's date arithmetic."""
        if not isinstance(node.op, ast.Add | ast.Sub):
            return None
        left, right = node.left, node.right
        if _is_call(left, "days") and isinstance(node.op, ast.Add):
            left, right = right, left
        if not _is_call(right, "days"):
            return None
        assert isinstance(right, ast.Call)
        n: Any = sa.cast(self.value(right.args[0]), sa.Integer)
        if isinstance(node.op, ast.Sub):
            n = -n
        base = self.value(left)
        is_datetime = self._is_datetime(left)
        if self.dialect == "sqlite":
            shift = sa.cast(n, sa.String).concat(" days")
            return sa.func.datetime(base, shift) if is_datetime else sa.type_coerce(sa.func.date(base, shift), sa.Date)
        if is_datetime:
            return base + sa.func.make_interval(0, 0, 0, n)
        return sa.type_coerce(sa.cast(base, sa.Date) + n, sa.Date)

    def _is_datetime(self, node: ast.AST) -> bool:
        if _is_call(node, "now"):
            return True
        if isinstance(node, ast.Name | ast.Attribute):
            f = self._field(_dotted(node))
            return f is not None and f.type == "datetime" or _dotted(node) in ("created_on", "changed_on")
        return False

    def _rollup(self, r: Any) -> Any:
        child = self.spec.entity(r.child)
        assert child is not None
        link = child.field(r.link)
        assert link is not None
        rows = self.tables[r.child].alias()
        inner = _Compiler(self.spec, child, rows, self.tables, self.now, self.dialect)  # type: ignore[arg-type]  # an alias serves as its table
        measure = sa.func.count() if r.func == "count" else getattr(sa.func, r.func)(rows.c[child.field(r.field).column])  # type: ignore[union-attr]
        query = sa.select(measure).where(rows.c[link.column] == self.table.c.id)
        if r.condition is not None:
            query = query.where(inner.test(r.condition))
        value = query.scalar_subquery()
        return sa.func.coalesce(value, 0) if r.func in ("count", "sum") else value

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
        ranged = self._date_range(op, left_node, right_node)
        if ranged is not None:
            return ranged
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

    # -- days_since(d) >= -7 as a range on d, so an index on d serves it -------------------------
    FLIP = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Eq: ast.Eq}

    def _date_range(self, op: ast.cmpop, left: ast.expr, right: ast.expr) -> Any:
        """``days_since(d) OP k`` (or ``days_until``, either side) on a date/datetime column of
        this table, with a whole-number constant ``k``, as the equivalent range on ``d``; None
        when the comparison has another shape. Same truth as the Python evaluation, NULL false."""
        if type(op) not in self.FLIP:
            return None
        if not _is_days_call(left):
            if not _is_days_call(right):
                return None
            left, right, op = right, left, self.FLIP[type(op)]()
        k = _int_constant(right)
        call = left
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
        arg = call.args[0]
        if k is None or not isinstance(arg, ast.Name):
            return None
        f = self.entity.field(arg.id)
        if f is None or f.type not in ("date", "datetime"):
            return None
        if call.func.id == "days_until":  # days_until(d) = -days_since(d)
            k, op = -k, self.FLIP[type(op)]()
        # days_since(d) OP k  <=>  date(d) (reversed OP) today - k
        day = self.now.date() - dt.timedelta(days=k)
        column = self.table.c[f.column]
        if f.type == "date":
            bounds = {ast.Gt: column < day, ast.GtE: column <= day, ast.Lt: column > day, ast.LtE: column >= day, ast.Eq: column == day}
        else:  # date(d) compared with a day: a range of instants
            start, end = dt.datetime.combine(day, dt.time()), dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
            bounds = {ast.Gt: column < start, ast.GtE: column < end, ast.Lt: column >= end, ast.LtE: column >= start,
                      ast.Eq: sa.and_(column >= start, column < end)}
        return sa.and_(column.is_not(None), bounds[type(op)])

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


def _is_call(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _is_days_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("days_since", "days_until")
            and len(node.args) == 1)


def _int_constant(node: ast.AST) -> int | None:
    """A whole-number literal, also negative (``-7``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _int_constant(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    return None


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


def compile_value(expr: Expr, spec: Spec, entity: Entity, table: sa.Table, tables: dict[str, sa.Table],
                  now: dt.datetime, dialect: str) -> Any:
    """The SQL value of a formula for rows of ``table`` (raises NotCompilable)."""
    return _Compiler(spec, entity, table, tables, now, dialect).value(expr.tree)


def compile_path(spec: Spec, entity: Entity, table: sa.Table, tables: dict[str, sa.Table], dotted: str,
                 now: dt.datetime, dialect: str) -> Any:
    """The SQL value of a field path (``amount``, ``customer.region``) for rows of ``table``."""
    return _Compiler(spec, entity, table, tables, now, dialect).path(dotted)
