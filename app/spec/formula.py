"""What a computed field's formula means (``fields.formula``): its type, what it reads and the
roll-ups it takes over records that link here. Pure analysis of a parsed :class:`Expr` against
the Spec; the workbook check turns a :class:`FormulaError` into a located message, the runtime
(:mod:`app.record.computed`) reads :func:`dependencies` to know what to recompute when.

A formula reads the record's own fields (``quantity * unit_price``), fields of linked records
(``customer.region``: a lookup), and aggregates over the records whose link points here
(``count(service_call where status == 'closed')``, ``max(follow_up.done_on)``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from .expr import AGGREGATES, Expr, _dotted
from .model import NUMERIC_TYPES, Entity, Field, Spec

# functions SQL cannot work out for a stored column (the working calendar lives in Python; changed()
# is about a save) — usable in computed defaults, which are worked out in Python when a record is made
PYTHON_ONLY = ("working_days", "working_hours", "changed")
BASE_KINDS = {"id": "number", "created_on": "datetime", "changed_on": "datetime"}
FUNCTION_KINDS = {"today": "date", "now": "datetime", "days_since": "number", "days_until": "number", "hours_since": "number",
                  "len": "number", "year": "number", "month": "number", "count": "number", "is_blank": "bool",
                  "lower": "text", "concat": "text", "working_hours": "number"}


class FormulaError(ValueError):
    """A formula that cannot be a stored field: ``code`` names the problem, ``detail`` the part."""

    def __init__(self, code: str, detail: str = "", hint: str = ""):
        self.code, self.detail, self.hint = code, detail, hint
        super().__init__(f"{code}: {detail}")


@dataclass(frozen=True)
class Rollup:
    """``func(child.field where condition)`` over the ``child`` records whose ``link`` is this record."""

    func: str
    child: str
    link: str  # the child's link field pointing here
    field: str  # "" for count
    condition: ast.expr | None


def kind_of_field(f: Field) -> str:
    if f.type in NUMERIC_TYPES:
        return "number"
    if f.type in ("date", "datetime"):
        return f.type
    if f.type == "boolean":
        return "bool"
    if f.type in ("link", "user", "file"):
        return "record"
    return "text"


def links_back(spec: Spec, entity: Entity, child: str) -> list[Field]:
    """The link fields of entity ``child`` that point at ``entity``."""
    target = spec.entity(child)
    return [] if target is None else [f for f in target.fields if f.type == "link" and f.link == entity.name]


def rollup_of(spec: Spec, entity: Entity, node: ast.Call) -> Rollup | None:
    """The roll-up a call is, or None when it is a plain function (``max(a, b)`` of own values).
    Raises FormulaError when it names records that do not link here."""
    assert isinstance(node.func, ast.Name)
    name = node.func.id
    if name not in AGGREGATES or not node.args:
        return None
    path = _dotted(node.args[0])
    if path is None:
        if name in ("count", "sum", "avg"):
            raise FormulaError("rollup_target", ast.unparse(node.args[0]))
        return None
    root, _, rest = path.partition(".")
    if name in ("min", "max") and (entity.field(root) is not None or root in BASE_KINDS):
        return None  # min/max of the record's own values
    if len(node.args) > 2:
        raise FormulaError("rollup_args", ast.unparse(node))
    if spec.entity(root) is None:
        raise FormulaError("rollup_unknown", root)
    back = links_back(spec, entity, root)
    if not back:
        raise FormulaError("rollup_not_back", root)
    if len(back) > 1:
        raise FormulaError("rollup_ambiguous", root, ", ".join(f.name for f in back))
    child = spec.entity(root)
    assert child is not None
    if name == "count":
        if rest:
            raise FormulaError("count_field", path)
    else:
        if not rest or "." in rest:
            raise FormulaError("rollup_field", path)
        f = child.field(rest)
        if f is None:
            raise FormulaError("unknown_path", path)
        kind = kind_of_field(f)
        if name in ("sum", "avg") and kind != "number" or kind in ("record", "bool"):
            raise FormulaError("rollup_type", path, name)
    return Rollup(name, root, back[0].name, rest if name != "count" else "", node.args[1] if len(node.args) > 1 else None)


def _path_field(spec: Spec, entity: Entity, path: str) -> Field | None:
    current: Entity | None = entity
    f: Field | None = None
    for part in path.split("."):
        if current is None:
            return None
        f = current.field(part)
        if f is None:
            return None
        current = spec.entity(f.link) if f.type == "link" else None
    return f


class _Analyser:
    """Works out the kind of every part, raising FormulaError at the first thing that is wrong."""

    def __init__(self, spec: Spec, entity: Entity, stored: bool):
        self.spec, self.entity, self.stored = spec, entity, stored
        self.rollups: list[Rollup] = []
        self.paths: list[str] = []

    def kind(self, node: ast.AST) -> str:  # noqa: C901 - one case per construct of the language
        if isinstance(node, ast.Constant):
            v = node.value
            return "none" if v is None else "bool" if isinstance(v, bool) else "number" if isinstance(v, int | float) else "text"
        if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
            return "none" if node.id == "None" else "bool"
        if isinstance(node, ast.Name | ast.Attribute):
            path = _dotted(node) or ""
            if path in BASE_KINDS:
                return BASE_KINDS[path]
            f = _path_field(self.spec, self.entity, path)
            if f is None:
                raise FormulaError("unknown_path", path)
            self.paths.append(path)
            return kind_of_field(f)
        if isinstance(node, ast.BoolOp | ast.Compare) or isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.kind(child)
            return "bool"
        if isinstance(node, ast.UnaryOp):
            k = self.kind(node.operand)
            if k not in ("number", "none"):
                raise FormulaError("type_arith", ast.unparse(node))
            return "number"
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return "list"
        if isinstance(node, ast.Call):
            return self.call(node)
        raise FormulaError("unsupported", ast.unparse(node))

    def binop(self, node: ast.BinOp) -> str:
        a, b = self.kind(node.left), self.kind(node.right)
        pair = {a, b}
        if pair <= {"number", "none"}:
            return "number"
        if isinstance(node.op, ast.Add | ast.Sub) and "days" in pair and pair & {"date", "datetime"}:
            if isinstance(node.op, ast.Sub) and b != "days":
                raise FormulaError("type_days", ast.unparse(node))
            return a if a != "days" else b
        if pair <= {"days", "number"} and isinstance(node.op, ast.Mult):
            return "days"
        if pair & {"date", "datetime"}:
            raise FormulaError("type_date_arith", ast.unparse(node))
        raise FormulaError("type_arith", ast.unparse(node))

    def call(self, node: ast.Call) -> str:
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        if self.stored and name in PYTHON_ONLY:
            raise FormulaError("python_only", name)
        rollup = rollup_of(self.spec, self.entity, node)
        if rollup is not None:
            if not self.stored:
                raise FormulaError("rollup_in_default", name)
            self.rollups.append(rollup)
            child = self.spec.entity(rollup.child)
            assert child is not None
            if rollup.condition is not None:
                inner = _Analyser(self.spec, child, True)
                inner.kind(rollup.condition)
                if inner.rollups:
                    raise FormulaError("rollup_nested", ast.unparse(node))
            if name == "count":
                return "number"
            return "number" if name in ("sum", "avg") else kind_of_field(child.field(rollup.field))  # type: ignore[arg-type]
        kinds = [self.kind(a) for a in node.args]
        if name in ("count", "sum", "avg"):
            raise FormulaError("rollup_target", ast.unparse(node))
        if name == "if_":
            then, other = kinds[1], kinds[2]
            if "none" in (then, other):
                return other if then == "none" else then
            if then != other:
                raise FormulaError("type_if", ast.unparse(node), f"{then} / {other}")
            return then
        if name == "round":
            if kinds[0] not in ("number", "none") or len(kinds) > 1 and kinds[1] != "number":
                raise FormulaError("type_arith", ast.unparse(node))
            return "number"
        if name == "days":
            if kinds[0] not in ("number", "none"):
                raise FormulaError("type_arith", ast.unparse(node))
            return "days"
        if name in ("min", "max", "abs"):
            known = [k for k in kinds if k != "none"]
            return known[0] if known else "none"
        if name == "working_days":
            return kinds[0] if kinds[0] in ("date", "datetime") else "date"
        return FUNCTION_KINDS.get(name, "none")


def _fits(kind: str, f: Field) -> bool:
    want = kind_of_field(f)
    if kind in ("none", want):
        return True
    if f.type == "datetime" and kind == "date" or f.type == "date" and kind == "datetime":
        return True
    return f.type == "choice" and kind == "text"


@dataclass(frozen=True)
class Analysis:
    kind: str
    paths: tuple[str, ...]  # own fields and lookups through links (``customer.region``)
    rollups: tuple[Rollup, ...]
    functions: tuple[str, ...]

    @property
    def time_dependent(self) -> bool:
        """Its value moves with the clock (``today()``, ``days_since``…): the scheduler refreshes it."""
        return bool({"today", "now", "days_since", "days_until", "hours_since"} & set(self.functions))


def analyse(spec: Spec, entity: Entity, f: Field, expr: Expr, stored: bool = True) -> Analysis:
    """What ``expr`` (the formula of ``f``, or its computed default when ``stored`` is false) reads
    and gives; raises FormulaError when it cannot be ``f``'s value."""
    a = _Analyser(spec, entity, stored)
    kind = a.kind(expr.tree)
    if kind == "days":
        raise FormulaError("type_days_alone", expr.source)
    if not _fits(kind, f):
        raise FormulaError("type_result", kind, f.type)
    for rollup in a.rollups:  # a where-condition's own functions
        if rollup.condition is not None:
            for node in ast.walk(rollup.condition):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PYTHON_ONLY:
                    raise FormulaError("python_only", node.func.id)
    return Analysis(kind, tuple(dict.fromkeys(a.paths)), tuple(a.rollups), expr.functions)


def dependencies(spec: Spec, entity: Entity, analysis: Analysis) -> set[tuple[str, str]]:
    """The (entity, field) pairs a formula's value depends on: its own fields, each field along a
    lookup path, and the children's fields a roll-up reads (with their link)."""
    out: set[tuple[str, str]] = set()
    for path in analysis.paths:
        current: Entity | None = entity
        for part in path.split("."):
            if current is None:
                break
            out.add((current.name, part))
            f = current.field(part)
            current = spec.entity(f.link) if f is not None and f.type == "link" else None
    for r in analysis.rollups:
        out.add((r.child, r.link))
        if r.field:
            out.add((r.child, r.field))
        child = spec.entity(r.child)
        if r.condition is not None and child is not None:
            inner = _Analyser(spec, child, True)
            inner.kind(r.condition)
            out.update((r.child, p.split(".")[0]) for p in inner.paths)
    return out
