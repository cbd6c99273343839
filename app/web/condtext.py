"""A workbook condition as the people it stops read it: its fields by their labels, its choice
values by theirs, its operators in words — "已交考勤管理员为是 且 已填写走访结果" for
``attendance_filed and result`` — for the reason a workflow button is greyed out."""

from __future__ import annotations

import ast
from typing import Any

from app.spec.expr import parse
from app.spec.model import Entity, Field, Spec, field_at
from app.web.i18n import choice_text, pick

_COMPARE = {ast.Eq: "=", ast.NotEq: "≠", ast.Lt: "<", ast.LtE: "≤", ast.Gt: ">", ast.GtE: "≥"}


_ARITHMETIC = {ast.Add: "+", ast.Sub: "−", ast.Mult: "×", ast.Div: "÷", ast.FloorDiv: "÷", ast.Mod: "%"}
# the language's functions as a sentence says them: (Chinese, English), the arguments in {0}, {1}, {all}
_FUNCTIONS = {
    "today": ("今天", "today"),
    "now": ("现在", "now"),
    "days_since": ("距{0}的天数", "days since {0}"),
    "days_until": ("距{0}还有的天数", "days until {0}"),
    "hours_since": ("距{0}的小时数", "hours since {0}"),
    "len": ("{0}的长度", "length of {0}"),
    "abs": ("{0}的绝对值", "{0} without its sign"),
    "min": ("{all}中较小者", "the least of {all}"),
    "max": ("{all}中较大者", "the greatest of {all}"),
    "lower": ("{0}", "{0}"),
    "is_blank": ("{0}未填写", "{0} is blank"),
    "working_hours": ("{0}至{1}的工作小时数", "working hours from {0} to {1}"),
    "changed": ("{0}已修改", "{0} changed"),
}
# columns every record has, though no sheet row declares them
_SYSTEM = {"id": ("记录号", "record number"), "created_on": ("创建时间", "created on"), "changed_on": ("修改时间", "changed on"),
           "code": ("编号", "number"), "version": ("版本", "version")}
UNREADABLE = ("工作簿规定的条件", "the workbook's condition")


def condition_text(spec: Spec, entity: Entity, source: str) -> str:
    """``source`` in words, never the expression itself: when it cannot be read (it passed
    ``crm check``, so only a workbook changed under a running app), a plain phrase."""
    try:
        return _Words(spec, entity).text(parse(source).tree)
    except Exception:  # noqa: BLE001 - a reason is never worth a failed page
        return pick(*UNREADABLE)


class _Words:
    def __init__(self, spec: Spec, entity: Entity):
        self.spec, self.entity = spec, entity
        self.emap = {e.name: e for e in spec.entities}

    def field(self, node: ast.AST) -> Field | None:
        return field_at(self.entity, ast.unparse(node), self.emap)

    def name(self, node: ast.AST) -> str:
        f = self.field(node)
        if f is not None:
            return pick(f.label, f.label_en or f.label)
        path = ast.unparse(node)
        if path in _SYSTEM:
            return pick(*_SYSTEM[path])
        if isinstance(node, ast.Attribute):  # a link's system column (customer.created_on): the link's words first
            return f"{self.name(node.value)}{pick('的', ' ')}{self.name(ast.Name(node.attr))}"
        return path.replace("_", " ")

    def value(self, node: ast.AST, about: Field | None) -> str:
        if isinstance(node, ast.Constant):
            if node.value is None:
                return pick("空", "blank")
            if isinstance(node.value, bool):
                return pick("是", "yes") if node.value else pick("否", "no")
            shown = choice_text(self.spec, about, node.value)
            return f"「{shown}」" if isinstance(shown, str) else str(shown)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return "、".join(self.value(e, about) for e in node.elts)
        return self.text(node)

    def text(self, node: ast.AST, inner: bool = False) -> str:  # noqa: C901 - one branch per kind of node
        if isinstance(node, ast.BoolOp):
            joined = pick(" 且 ", " and ") if isinstance(node.op, ast.And) else pick(" 或 ", " or ")
            words = joined.join(self.text(v, inner=True) for v in node.values)
            return f"({words})" if inner else words
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            if isinstance(node.operand, ast.Name | ast.Attribute):
                f = self.field(node.operand)
                if f is not None and f.type == "boolean":
                    return pick(f"{self.name(node.operand)}为否", f"{self.name(node.operand)} is no")
                return pick(f"{self.name(node.operand)}未填写", f"{self.name(node.operand)} is blank")
            return pick(f"并非({self.text(node.operand)})", f"not ({self.text(node.operand)})")
        if isinstance(node, ast.Name | ast.Attribute):
            f = self.field(node)
            if f is not None and f.type == "boolean":
                return pick(f"{self.name(node)}为是", f"{self.name(node)} is yes")
            return pick(f"已填写{self.name(node)}", f"{self.name(node)} is filled in")
        if isinstance(node, ast.Compare):
            left, about = self.side(node.left)
            parts = [left]
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.In | ast.NotIn):
                    word = pick("属于" if isinstance(op, ast.In) else "不属于", "in" if isinstance(op, ast.In) else "not in")
                    parts.append(f" {word} {self.value(right, about)}")
                else:
                    parts.append(f" {_COMPARE[type(op)]} {self.value(right, about) if about else self.side(right)[0]}")
            return "".join(parts)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = [self.side(a)[0] for a in node.args]
            zh, en = _FUNCTIONS.get(node.func.id, UNREADABLE)
            return pick(zh, en).format(*args, all=pick("、", ", ").join(args))
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            words = f"{self.side(node.left)[0]} {_ARITHMETIC[type(node.op)]} {self.side(node.right)[0]}"
            return f"({words})" if inner else words
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return f"−{self.side(node.operand)[0]}"
        if isinstance(node, ast.Constant):
            return self.value(node, None)
        return pick(*UNREADABLE)

    def side(self, node: ast.AST) -> tuple[str, Any]:
        if isinstance(node, ast.Name | ast.Attribute):
            return self.name(node), self.field(node)
        return self.text(node, inner=True), None
