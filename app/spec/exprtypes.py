"""Static checks of a condition's comparisons against the types of the fields it names.

A condition runs in two places: in Python when a record is saved (:mod:`app.spec.expr`) and as
SQL for the nightly regrade, reminders and dashboards (``app.spec.sqlexpr``). The two agree
only when both sides of a comparison have the same type: ``pages > '100'`` is always false in
Python (an int and a str do not compare) but true in SQL for 200 pages (the database converts the
text); ``title == 5`` is false in Python, compared as text in SQLite and an error in PostgreSQL; a
date against a datetime raises in Python and compares in SQL. And a choice field holds the
choice's *value*, so ``grade == 'A级'`` (a label, or a typo) never matches.

:func:`comparison_problems` finds these before anything runs, each a :class:`Mismatch`: what is
wrong and how to fix it as codes with their facts. Putting them in words is the generator's job.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

from .model import NUMERIC_TYPES, Choice, Entity, Field, field_at

KINDS = ("number", "text", "choice", "bool", "date", "datetime")
# kinds that compare with each other the same way in Python and in SQL
_FAMILY = {"number": "number", "text": "text", "choice": "text", "bool": "bool", "date": "date", "datetime": "datetime"}
_NUMBER_FUNCTIONS = ("days_since", "days_until", "hours_since", "len", "working_hours")
BASE_KINDS = {"id": "number", "created_on": "datetime", "changed_on": "datetime"}


@dataclass(frozen=True)
class Kind:
    """The type of one side of a comparison; ``field`` and ``choices`` when it is a field path."""

    base: str  # one of KINDS, or "none" for the literal None
    field: Field | None = None
    choices: tuple[Choice, ...] = ()


def field_kind(f: Field, choices: tuple[Choice, ...]) -> Kind | None:
    """The kind of a field's value as conditions see it; None for links and users (records)."""
    if f.type in NUMERIC_TYPES:
        return Kind("number", f)
    if f.type == "choice":
        return Kind("choice", f, choices)
    if f.type == "boolean":
        return Kind("bool", f)
    if f.type in ("date", "datetime"):
        return Kind(f.type, f)
    if f.type in ("link", "user"):
        return None
    return Kind("text", f)


Resolve = Callable[[str], Kind | None]  # dotted field path → its kind (None: unknown, not checked)


def field_kinds(entity: Entity, emap: dict[str, Entity], choice_lists: dict[str, tuple[Choice, ...]]) -> Resolve:
    """The kind of each field path of ``entity`` (through links), and of the base columns
    (``id``, ``created_on`` …); None for what is not a value (a link, a user, an unknown path)."""

    def kind(path: str) -> Kind | None:
        f = field_at(entity, path, emap)
        if f is None:
            return Kind(BASE_KINDS[path]) if path in BASE_KINDS else None
        return field_kind(f, choice_lists.get(f.choices, ()))

    return kind


@dataclass(frozen=True)
class Mismatch:
    """One comparison Python and SQL would not agree on, as codes and facts for a message.

    ``code`` is ``expr_type`` (``params``: ``left``, ``right`` as written, ``left_kind``,
    ``right_kind`` one of :data:`KINDS`, ``left_type``, ``right_type`` the field's type or ``""``
    for a value) or ``expr_choice`` (``choice``, ``field``, ``list``); ``hint`` is how to fix it,
    with ``hint_params``."""

    code: str
    params: dict[str, str]
    hint: str
    hint_params: dict[str, str]


def comparison_problems(tree: ast.expr, resolve: Resolve) -> list[Mismatch]:
    """Every comparison in ``tree`` whose sides cannot be compared (``expr_type``), and every quoted
    value compared with a choice field that is not one of its choices (``expr_choice``)."""
    found: list[Mismatch] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if isinstance(right, ast.List | ast.Tuple | ast.Set):
                    for element in right.elts:
                        found.extend(_pair(left, element, resolve, _rewrite(left, op, right, element)))
            else:
                found.extend(_pair(left, right, resolve, _rewrite(left, op, right)))
            left = right
    return found


Rewrite = Callable[[ast.expr, ast.expr], str]  # the comparison as text with one side replaced


def _rewrite(left: ast.expr, op: ast.cmpop, right: ast.expr, element: ast.expr | None = None) -> Rewrite:
    """How to show the fixed comparison: ``left op right`` with ``old`` replaced by ``new``
    (for ``in``, the list element ``element``)."""

    def show(old: ast.expr, new: ast.expr) -> str:
        def swap(n: ast.expr) -> ast.expr:
            return new if n is old else n

        if element is not None and isinstance(right, ast.List | ast.Tuple | ast.Set):
            items = [swap(e) for e in right.elts]
            values = ast.Set(elts=items) if isinstance(right, ast.Set) else type(right)(elts=items, ctx=ast.Load())
            return ast.unparse(ast.Compare(swap(left), [op], [values]))
        return ast.unparse(ast.Compare(swap(left), [op], [swap(right)]))

    return show


def _pair(left: ast.expr, right: ast.expr, resolve: Resolve, rewrite: Rewrite) -> list[Mismatch]:
    lk, rk = _kind(left, resolve), _kind(right, resolve)
    if lk is None or rk is None or "none" in (lk.base, rk.base):
        return []
    for field_side, kind, other in ((left, lk, right), (right, rk, left)):
        if kind.base == "choice" and kind.choices and isinstance(other, ast.Constant) and isinstance(other.value, str):
            problem = _choice_problem(ast.unparse(field_side), kind, other.value)
            return [problem] if problem else []
    if _FAMILY[lk.base] == _FAMILY[rk.base]:
        return []
    params = {"left": ast.unparse(left), "right": ast.unparse(right), **_describe(lk, "left"), **_describe(rk, "right")}
    return [Mismatch("expr_type", params, *_type_hint(left, lk, right, rk, rewrite))]


def _choice_problem(path: str, kind: Kind, literal: str) -> Mismatch | None:
    values = [c.value for c in kind.choices]
    if literal in values:
        return None
    assert kind.field is not None
    facts = {"choice": literal, "field": path, "list": kind.field.choices}
    by_label = {c.label: c.value for c in kind.choices} | {c.label_en: c.value for c in kind.choices if c.label_en}
    if literal in by_label:
        return Mismatch("expr_choice", facts, "choice_label", {"value": by_label[literal], "label": literal})
    candidates = {v: v for v in values} | by_label
    close = difflib.get_close_matches(literal, list(candidates), n=1, cutoff=0.6)
    if close:
        return Mismatch("expr_choice", facts, "did_you_mean", {"value": candidates[close[0]]})
    lowered = literal.lower()  # never suggest the very value that was refused
    close = difflib.get_close_matches(lowered, [v for v in values if v != lowered], n=1, cutoff=0.6)
    if close:
        return Mismatch("expr_choice", facts, "did_you_mean", {"value": close[0]})
    return Mismatch("expr_choice", facts, "one_of", {"values": ", ".join(values)})


def _describe(kind: Kind, side: str) -> dict[str, str]:
    return {f"{side}_kind": kind.base, f"{side}_type": kind.field.type if kind.field is not None else ""}


def _type_hint(left: ast.expr, lk: Kind, right: ast.expr, rk: Kind, rewrite: Rewrite) -> tuple[str, dict[str, str]]:
    kinds = {lk.base, rk.base}
    if kinds & {"date", "datetime"}:
        return "compare_dates", {}
    if "bool" in kinds:
        return "compare_bool", {}
    # a number written in quotes, or a text/choice value written without them: show the fix
    for side, kind, other_kind in ((right, rk, lk), (left, lk, rk)):
        if not isinstance(side, ast.Constant):
            continue
        fixed: ast.Constant | None = None
        if kind.base == "text" and other_kind.base == "number" and _as_number(side.value) is not None:
            fixed = ast.Constant(_as_number(side.value))
            code = "unquote"
        elif kind.base == "number" and _FAMILY[other_kind.base] == "text":
            fixed = ast.Constant(str(side.value))
            code = "quote"
        if fixed is not None:
            return code, {"example": rewrite(side, fixed)}
    return "same_type", {}


def _as_number(value: object) -> int | float | None:
    if not isinstance(value, str):
        return None
    try:
        n = float(value.replace(",", "").strip())
    except ValueError:
        return None
    if not math.isfinite(n):
        return None
    return int(n) if n.is_integer() and "." not in value else n


def _kind(node: ast.expr, resolve: Resolve) -> Kind | None:
    if isinstance(node, ast.Constant):
        v = node.value
        if v is None:
            return Kind("none")
        if isinstance(v, bool):
            return Kind("bool")
        if isinstance(v, int | float):
            return Kind("number")
        return Kind("text") if isinstance(v, str) else None
    if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
        return Kind("none") if node.id == "None" else Kind("bool")
    if isinstance(node, ast.Name | ast.Attribute):
        path = ast.unparse(node)
        return resolve(path)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return Kind("bool")
        inner = _kind(node.operand, resolve)
        return Kind("number") if inner is not None and inner.base == "number" else None
    if isinstance(node, ast.BinOp):
        kinds = {k.base if k else None for k in (_kind(node.left, resolve), _kind(node.right, resolve))}
        return Kind("number") if kinds == {"number"} else None
    if isinstance(node, ast.Compare):
        return Kind("bool")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name == "today":
            return Kind("date")
        if name == "now":
            return Kind("datetime")
        if name in _NUMBER_FUNCTIONS:
            return Kind("number")
        if name == "lower":
            return Kind("text")
        if name in ("is_blank", "changed"):
            return Kind("bool")
        args = [_kind(a, resolve) for a in node.args]
        bases = {a.base if a else None for a in args}
        if name in ("abs", "min", "max") and len(bases) == 1 and None not in bases:
            return Kind(str(bases.pop()))
    return None


__all__ = ["BASE_KINDS", "KINDS", "Kind", "Mismatch", "comparison_problems", "field_kind", "field_kinds"]
