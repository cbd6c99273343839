"""The condition language of the sheets: a small, safe subset of Python expressions.

``annual_demand >= 500000 and urgency == 'urgent'`` or ``days_since(last_contact_on) > 7``.
Parsed with :mod:`ast` and checked against a whitelist; evaluated by walking the tree — never
``eval``. Names are field names of the entity, dotted paths go through links
(``customer.grade``).
"""

from __future__ import annotations

import ast
import datetime as dt
import io
import threading
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .workcal import WorkCalendar

FUNCTIONS: dict[str, int | None] = {  # name → number of arguments (None: any ≥ 1)
    "today": 0,
    "now": 0,
    "days_since": 1,
    "days_until": 1,
    "hours_since": 1,
    "len": 1,
    "abs": 1,
    "min": None,
    "max": None,
    "lower": 1,
    "is_blank": 1,
    "working_hours": 2,
    "changed": 1,
    # for formulas and computed defaults (fields.formula, fields.default), usable in conditions too
    "if_": 3,  # written if(condition, then, otherwise): ``if`` is a Python keyword, so read as if_
    "round": None,
    "concat": None,
    "days": 1,
    "year": 1,
    "month": 1,
    "working_days": 2,
    # roll-ups over the records that link here (formulas only): count(child [where …]),
    # sum/avg/min/max(child.field [where …]); min/max of plain values stay the functions above
    "count": None,
    "sum": None,
    "avg": None,
}
AGGREGATES = ("count", "sum", "avg", "min", "max")
SAVE_ONLY = ("changed",)  # about the save being made: validations only, never a stored record's SQL
MAX_LENGTH = 2000
MAX_DEPTH = 40

_COMPARE = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Mod: lambda a, b: a % b,
}


class ExprError(ValueError):
    """A condition that cannot be parsed or refers to something that does not exist."""


@dataclass(frozen=True)
class Expr:
    source: str
    tree: ast.expr
    names: tuple[str, ...]  # dotted names referenced, in order of appearance

    def evaluate(self, lookup: Callable[[str], Any], now: dt.datetime | None = None, calendar: WorkCalendar | None = None,
                 changed: Callable[[str], bool] | None = None) -> Any:
        """Evaluate with ``lookup(dotted_name)`` giving field values and ``changed(field)`` whether
        the save being checked changes a field of an existing record (none given: nothing changes)."""
        return _Evaluator(lookup, now or dt.datetime.now(), calendar or WorkCalendar(), changed).visit(self.tree)

    def test(self, lookup: Callable[[str], Any], now: dt.datetime | None = None, calendar: WorkCalendar | None = None,
             changed: Callable[[str], bool] | None = None) -> bool:
        """True when the condition holds; None values and data errors count as False."""
        try:
            return bool(self.evaluate(lookup, now, calendar, changed))
        except (TypeError, ValueError, ArithmeticError):
            return False

    @property
    def functions(self) -> tuple[str, ...]:
        """The functions this condition calls."""
        return tuple(dict.fromkeys(node.func.id for node in ast.walk(self.tree)
                                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)))

    @property
    def changed_names(self) -> tuple[str, ...]:
        """The fields this condition asks ``changed(…)`` about."""
        return tuple(dict.fromkeys(a.id for node in ast.walk(self.tree) if isinstance(node, ast.Call)
                                   and isinstance(node.func, ast.Name) and node.func.id == "changed"
                                   for a in node.args if isinstance(a, ast.Name)))

    @property
    def ties(self) -> tuple[str, str, str] | None:
        """``(link, through, other)`` when this condition says no more than: once ``link`` and
        ``other`` are filled in, ``link.through == other`` — written ``link.through == other``,
        optionally after ``not link or`` / ``not other or``. A form then offers for ``link`` only
        the records whose ``through`` is the chosen ``other`` (a customer's own contacts)."""
        node = self.tree
        parts = node.values if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) else [node]
        guards = [p.operand.id for p in parts if isinstance(p, ast.UnaryOp) and isinstance(p.op, ast.Not) and isinstance(p.operand, ast.Name)]
        equal = [p for p in parts if isinstance(p, ast.Compare) and len(p.ops) == 1 and isinstance(p.ops[0], ast.Eq)]
        if len(equal) != 1 or len(guards) + 1 != len(parts):
            return None
        a, b = equal[0].left, equal[0].comparators[0]
        for x, y in ((a, b), (b, a)):
            if isinstance(x, ast.Attribute) and isinstance(x.value, ast.Name) and isinstance(y, ast.Name) \
                    and set(guards) <= {x.value.id, y.id}:
                return x.value.id, x.attr, y.id
        return None


# CPython 3.11 (3.11.7 here) shares ast.parse's recursion counter between threads: two threads
# parsing at once can fail with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython#106905; seen here with the dashboard's panels computed side by side). Every
# ast.parse of the project takes this lock.
AST_LOCK = threading.Lock()


def parse(source: str) -> Expr:
    """Parse and whitelist-check ``source``; raise :class:`ExprError` with a short reason."""
    text = (source or "").strip()
    if not text:
        raise ExprError("empty")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"longer than {MAX_LENGTH} characters")
    text = _sugar(_normalise(text))
    try:
        with AST_LOCK:
            tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        advice = ": write == to compare, not =" if _lone_equals(text) else ""
        if "never closed" in str(exc.msg):
            raise ExprError(f"the bracket at column {exc.offset} is never closed: add a )") from None
        if not exc.offset:  # Python places a condition that stops too early at column 0
            raise ExprError(f"it ends too early after '{text.split()[-1]}': finish it or remove that word{advice}") from None
        raise ExprError(f"syntax error at column {exc.offset}{advice}") from None
    except (ValueError, MemoryError, RecursionError):
        raise ExprError("cannot be parsed") from None
    names: list[str] = []
    _check(tree.body, names, 0)
    return Expr(source, tree.body, tuple(names))


# Full-width characters an input method types, written as escapes so an editor cannot turn them
# back into ASCII: （ ） ， ＜ ＞ ＝ ！, the curly quotes ‘ ’ “ ”, and ≥ ≤ ≠.
_FULL_WIDTH = str.maketrans(
    {
        "\uff08": "(",
        "\uff09": ")",
        "\uff0c": ",",
        "\uff1c": "<",
        "\uff1e": ">",
        "\uff1d": "=",
        "\uff01": "!",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2265": ">=",
        "\u2264": "<=",
        "\u2260": "!=",
    }
)


def _normalise(text: str) -> str:
    """Accept the spellings office users type: full-width operators and quotes. Text inside quotes
    keeps its characters (``note == '已办，待回访'`` compares with the full-width comma), only curly
    quotes that open or close it become ASCII. (A lone ``=`` stays an error, whose message says to
    write ``==``.)"""
    out: list[str] = []
    quote, escaped = "", False
    for ch in text:
        if not quote:
            ch = ch.translate(_FULL_WIDTH)
            quote = ch if ch in ("'", '"') else ""
        elif escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch.translate(_FULL_WIDTH) == quote:
            ch, quote = quote, ""
        out.append(ch)
    return "".join(out)


_DAY_WORDS = ("day", "days", "天")


def _sugar(text: str) -> str:
    """The two spellings of formulas that are not Python: ``count(call where status == 'closed')``
    (``where`` inside a call separates the records from their condition: becomes ``,``) and
    ``received_on + 30 days`` (a number of days: becomes ``days(30)``). Text in quotes is kept."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return text  # the parser says what is wrong
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    edits: list[tuple[int, int, str]] = []
    depth = 0
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.NAME and tok.string == "where" and depth > 0:
            edits.append((offset(tok.start), offset(tok.end), ","))
        elif tok.type == tokenize.NAME and tok.string == "if" and i + 1 < len(tokens) and tokens[i + 1].string == "(":
            edits.append((offset(tok.start), offset(tok.end), "if_"))
        elif tok.type == tokenize.NUMBER and i + 1 < len(tokens) and tokens[i + 1].type == tokenize.NAME \
                and tokens[i + 1].string in _DAY_WORDS:
            edits.append((offset(tok.start), offset(tokens[i + 1].end), f"days({tok.string})"))
    for start, end, new in reversed(edits):
        text = text[:start] + new + text[end:]
    return text


def _lone_equals(text: str) -> bool:
    """True when ``text`` compares with a lone ``=`` (``grade = 'A'``): an operator token, never text
    inside quotes, and not the ``=`` of a keyword argument ``f(x=1)``."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return False
    calls: list[bool] = []  # per open bracket: is it a call's parentheses?
    previous: tokenize.TokenInfo | None = None
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in "([{":
            calls.append(tok.string == "(" and previous is not None and previous.type == tokenize.NAME)
        elif tok.type == tokenize.OP and tok.string in ")]}":
            if calls:
                calls.pop()
        elif tok.type == tokenize.OP and tok.string == "=" and not (calls and calls[-1]):
            return True
        previous = tok
    return False


def _check(node: ast.AST, names: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ExprError("too deeply nested")
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, names, depth + 1)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
        _check(node.operand, names, depth + 1)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, names, depth + 1)
        _check(node.right, names, depth + 1)
    elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        _check(node.left, names, depth + 1)
        for c in node.comparators:
            _check(c, names, depth + 1)
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ExprError(f"{node.id} is a function: write {node.id}(…)")
        if node.id in ("True", "False", "None"):
            return
        names.append(node.id)
    elif isinstance(node, ast.Attribute):
        path = _dotted(node)
        if path is None:
            raise ExprError("only field paths (a link, a dot, the linked record's field) may use '.'")
        names.append(path)
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise ExprError("unsupported literal")
        if isinstance(node.value, int) and abs(node.value) > 10**15:
            raise ExprError("number too large")
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        for e in node.elts:
            if not isinstance(e, ast.Constant):
                raise ExprError("lists may only hold literal values")
            _check(e, names, depth + 1)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise ExprError("method calls such as x.f() are not allowed")
        if node.func.id not in FUNCTIONS:
            raise ExprError(f"unknown function {node.func.id}; allowed: {', '.join(FUNCTIONS).replace('if_', 'if')}")
        if node.keywords:
            raise ExprError("functions take no keyword arguments")
        arity = FUNCTIONS[node.func.id]
        if arity is not None and len(node.args) != arity:
            raise ExprError(f"{node.func.id.rstrip('_')} takes {arity} argument(s)")
        if arity is None and not node.args:
            raise ExprError(f"{node.func.id} needs arguments")
        if node.func.id == "round" and len(node.args) > 2:
            raise ExprError("round takes a number and optionally how many decimals: round(x, 2)")
        if node.func.id == "changed" and not (isinstance(node.args[0], ast.Name) and node.args[0].id not in ("True", "False", "None")):
            raise ExprError("changed() takes a field of the record itself, such as changed(visit_at)")
        for a in node.args:
            _check(a, names, depth + 1)
    else:
        raise ExprError(_not_allowed(node))


# what an office user wrote, in their words, when it is not part of the condition language
_OPERATORS = {ast.Pow: "**", ast.FloorDiv: "//", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
              ast.RShift: ">>", ast.MatMult: "@", ast.Invert: "~", ast.Is: "is", ast.IsNot: "is not"}
_CONSTRUCTS = {ast.ListComp: "a list comprehension [… for …]", ast.SetComp: "a comprehension {… for …}",
               ast.DictComp: "a comprehension {…: … for …}", ast.GeneratorExp: "a generator (… for …)",
               ast.Lambda: "lambda", ast.IfExp: "… if … else …", ast.Subscript: "indexing a[…]", ast.Dict: "a dictionary {…: …}",
               ast.Starred: "*…", ast.NamedExpr: ":=", ast.JoinedStr: "an f-string", ast.Await: "await", ast.Yield: "yield"}


def _not_allowed(node: ast.AST) -> str:
    op = getattr(node, "op", None) or next(iter(getattr(node, "ops", [])), None)
    if op is not None and type(op) in _OPERATORS:
        return (f"'{_OPERATORS[type(op)]}' is not allowed: arithmetic is + - * / %, comparisons == != < <= > >= in, "
                "logic and or not")
    return f"{_CONSTRUCTS.get(type(node), repr(type(node).__name__))} is not allowed"


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _as_date(v: Any) -> dt.date | None:
    if v is None or v == "":
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v)[:10])


def as_datetime(v: Any) -> dt.datetime | None:
    """A value as a naive datetime (a date counts from 00:00); None stays None."""
    if v is None or v == "":
        return None
    if isinstance(v, dt.datetime):
        return v.replace(tzinfo=None)
    if isinstance(v, dt.date):
        return dt.datetime.combine(v, dt.time())
    return dt.datetime.fromisoformat(str(v)).replace(tzinfo=None)


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


class _Evaluator:
    def __init__(self, lookup: Callable[[str], Any], now: dt.datetime, calendar: WorkCalendar,
                 changed: Callable[[str], bool] | None = None):
        self.lookup = lookup
        self.now = now
        self.calendar = calendar
        self.changed = changed

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                result: Any = True
                for v in node.values:
                    result = self.visit(v)
                    if not result:
                        return result
                return result
            result = False
            for v in node.values:
                result = self.visit(v)
                if result:
                    return result
            return result
        if isinstance(node, ast.UnaryOp):
            v = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return not v
            if v is None:
                return None
            return -v if isinstance(node.op, ast.USub) else +v
        if isinstance(node, ast.BinOp):
            a, b = self.visit(node.left), self.visit(node.right)
            if a is None or b is None:
                return None
            return _BINARY[type(node.op)](a, b)
        if isinstance(node, ast.Compare):
            left = self.visit(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = self.visit(comp)
                if (left is None or right is None) and not isinstance(op, ast.Eq | ast.NotEq):
                    return False
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            return _num(self.lookup(node.id))
        if isinstance(node, ast.Attribute):
            return _num(self.lookup(_dotted(node) or ""))
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [self.visit(e) for e in node.elts]
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            if node.func.id == "changed":  # about the field itself, not its value
                assert isinstance(node.args[0], ast.Name)
                return self.changed is not None and bool(self.changed(node.args[0].id))
            if node.func.id == "if_":  # only the branch taken is worked out
                return self.visit(node.args[1] if self.visit(node.args[0]) else node.args[2])
            args = [self.visit(a) for a in node.args]
            return self.call(node.func.id, args)
        raise ExprError(type(node).__name__)  # unreachable after _check

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "today":
            return self.now.date()
        if name == "now":
            return self.now
        if name == "days_since":
            d = _as_date(args[0])
            return None if d is None else (self.now.date() - d).days
        if name == "days_until":
            d = _as_date(args[0])
            return None if d is None else (d - self.now.date()).days
        if name == "hours_since":
            t = as_datetime(args[0])
            return None if t is None else (self.now - t).total_seconds() / 3600
        if name == "len":
            return 0 if args[0] is None else len(args[0])
        if name == "abs":
            return None if args[0] is None else abs(args[0])
        if name in ("min", "max"):
            vals = [a for a in args if a is not None]
            return (min if name == "min" else max)(vals) if vals else None
        if name == "lower":
            return None if args[0] is None else str(args[0]).lower()
        if name == "is_blank":
            return args[0] is None or args[0] == ""
        if name == "round":
            if args[0] is None:
                return None
            places = int(args[1]) if len(args) > 1 and args[1] is not None else 0
            # half away from zero, as SQL's round() (Python's round() goes to the even neighbour)
            return float(Decimal(str(args[0])).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
        if name == "concat":
            return "".join("" if a is None else str(a) for a in args)
        if name == "days":
            return None if args[0] is None else dt.timedelta(days=args[0])
        if name in ("year", "month"):
            d = _as_date(args[0])
            return None if d is None else (d.year if name == "year" else d.month)
        if name == "working_days":
            start = as_datetime(args[0])
            if start is None or args[1] is None:
                return None
            moved = self.calendar.add_working_days(start, int(args[1]))
            return moved.date() if not isinstance(args[0], dt.datetime) else moved
        if name in ("count", "sum", "avg"):
            raise ExprError(f"{name}(…) is worked out by the database, over the records that link here")
        if name == "working_hours":
            start, end = as_datetime(args[0]), as_datetime(args[1])
            if start is None or end is None:
                return None
            return self.calendar.working_hours_between(start, end)
        raise ExprError(name)


def record_lookup(record: Any) -> Callable[[str], Any]:
    """A lookup over an object or mapping, following dotted paths through attributes."""

    def lookup(path: str) -> Any:
        value = record
        for part in path.split("."):
            if value is None:
                return None
            value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
        return value

    return lookup


def names_in(node: ast.AST) -> list[str]:
    """The field names and dotted paths a part of a checked condition refers to, in order."""
    names: list[str] = []
    _check(node, names, 0)
    return names
