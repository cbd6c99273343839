"""Step effects: what a workflow step does beyond its own record (``workflows.effects``).

One cell holds one or more effects, separated by ``;`` or new lines, each in the condition
language's style and parsed with its kernel (never ``eval``):

- ``customer.status = 'frozen'`` — set a field of the record a link points at; the value is an
  expression of this record (``customer.credit_limit = requested_limit``);
- ``create customer(name = proposed_name, owner = requested_by)`` — create a record of another
  entity with those fields (its numbering, defaults, rules and grading apply as to any new record);
- ``customer = created`` / ``customer_code = created.code`` — fill a field of this record, here
  from the record the step created;
- any of them followed by ``if <condition>``: done only when the condition holds (one last approval
  serving several kinds of request: ``customer.status = 'frozen' if request_type == 'freeze'``).

Effects run in the order written; a value naming ``created`` reads the record created before it
(an effect naming it when the step created nothing is skipped: it is about that record).
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass

from .expr import AST_LOCK, Expr, ExprError, _normalise, parse

CREATED = "created"  # the name a value gives the record this step created


@dataclass(frozen=True)
class Effect:
    """One effect as written: ``kind`` is ``set`` (``target`` = ``link.field`` of a linked record or
    ``field`` of this one, ``value`` its expression), or ``create`` (``entity``, ``mapping`` of field
    → expression); ``guard`` the condition after ``if`` ("" always)."""

    source: str
    kind: str
    target: str = ""
    value: str = ""
    entity: str = ""
    mapping: tuple[tuple[str, str], ...] = ()
    guard: str = ""

    @property
    def link(self) -> str:
        """The link of this record a ``set`` effect reaches through ("" for one of its own fields)."""
        return self.target.split(".")[0] if "." in self.target else ""

    @property
    def field(self) -> str:
        return self.target.split(".")[-1]

    def expressions(self) -> list[Expr]:
        """Every expression of the effect, parsed (values, mapping, guard)."""
        texts = [self.value] if self.kind == "set" else [v for _k, v in self.mapping]
        return [parse(t) for t in texts + ([self.guard] if self.guard else [])]

    @property
    def uses_created(self) -> bool:
        return any(n == CREATED or n.startswith(CREATED + ".") for e in self.expressions() for n in e.names)


def split_effects(text: str) -> list[str]:
    """The effects of a cell: split at ``;`` and new lines outside quotes and brackets."""
    out: list[str] = []
    current: list[str] = []
    quote, depth = "", 0
    for ch in _normalise(text or "").replace("\uff1b", ";"):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch in ";\n\r" and depth == 0:
            out.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    out.append("".join(current).strip())
    return [e for e in out if e]


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    try:
        return [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT)]
    except (tokenize.TokenError, SyntaxError, ValueError):
        raise ExprError("cannot be read: check its quotes and brackets") from None


def _top_level(tokens: list[tokenize.TokenInfo], wanted: tuple[int, str]) -> int | None:
    """The character offset of the first token ``wanted`` (type, text) outside brackets."""
    depth = 0
    for t in tokens:
        if t.type == tokenize.OP and t.string in "([{":
            depth += 1
        elif t.type == tokenize.OP and t.string in ")]}":
            depth -= 1
        elif depth == 0 and (t.type, t.string) == wanted:
            return t.start[1]
    return None


def parse_effect(text: str) -> Effect:
    """One effect; :class:`ExprError` with a short reason when it is not one."""
    source = _normalise(text.strip())
    if "\n" in source:
        raise ExprError("one effect per line")
    tokens = _tokens(source)
    body, guard = source, ""
    at = _top_level(tokens, (tokenize.NAME, "if"))
    if at is not None:
        body, guard = source[:at].strip(), source[at + 2:].strip()
        if not guard:
            raise ExprError("'if' needs a condition after it")
        parse(guard)
    first = tokens[0] if tokens else None
    if first is not None and first.type == tokenize.NAME and first.string == "create":
        return _create(source, body[len("create"):].strip(), guard)
    eq = _top_level(_tokens(body), (tokenize.OP, "="))
    if eq is None:
        raise ExprError("write 'link.field = value', 'field = created' or 'create entity(field = value, …)'")
    target, value = body[:eq].strip(), body[eq + 1:].strip()
    parts = target.split(".")
    if not 1 <= len(parts) <= 2 or not all(p.isidentifier() for p in parts):
        raise ExprError(f"'{target}' is not a field or 'link.field' of this record")
    if not value:
        raise ExprError(f"'{target} =' needs a value")
    parse(value)
    return Effect(source, "set", target=target, value=value, guard=guard)


def _create(source: str, call: str, guard: str) -> Effect:
    try:
        with AST_LOCK:
            node = ast.parse(call, mode="eval").body
    except SyntaxError:
        raise ExprError("write create entity(field = value, …)") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
        raise ExprError("write create entity(field = value, …): each field named, then = and its value")
    mapping: list[tuple[str, str]] = []
    for kw in node.keywords:
        if kw.arg is None:
            raise ExprError("write create entity(field = value, …): each field named, then = and its value")
        if any(k == kw.arg for k, _v in mapping):
            raise ExprError(f"field '{kw.arg}' is given twice")
        value = ast.get_source_segment(call, kw.value) or ""
        parse(value)
        mapping.append((kw.arg, value))
    return Effect(source, "create", entity=node.func.id, mapping=tuple(mapping), guard=guard)


def parse_effects(text: str) -> list[Effect]:
    """Every effect of a cell, in order (raises on the first that is not one)."""
    return [parse_effect(e) for e in split_effects(text)]
