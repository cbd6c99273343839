"""The ``effects`` column of the workflows sheet: each effect of a step parsed by the kernel
(:mod:`app.spec.effects`) and checked against the workbook — the link and field it writes, the
entity it creates and the required fields it must give, the values' types, ``created`` only after
a ``create`` — every problem located on the cell with a hint.

Effects cannot run in a cycle: a created record starts in its entity's first state and effects run
only when a person takes a step, so a create never sets off another step's effects.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from app.spec import expr as expr_mod
from app.spec.effects import CREATED, Effect, parse_effect, split_effects
from app.spec.exprtypes import Kind, Resolve, comparison_problems, field_kind, field_kinds
from app.spec.model import Choice, Entity, Field, field_at

from ..problems import did_you_mean, hint, msg
from ..read import Cell
from .conditions import _worded
from .context import Context, entity_ctx, resolve_path

Say = Callable[..., None]  # (message code, hint, **params): a problem of the effect being checked


def effects(v: Context, cell: Cell, e: Entity, emap: dict[str, Entity], state_fields: dict[str, set[str]]) -> tuple[str, ...]:
    """The sound effects of a step's cell, each as written; every problem reported on ``cell``.
    ``state_fields``: entity → its workflow state fields (moved only by its own steps)."""
    out: list[str] = []
    created: Entity | None = None  # the entity the last create of the cell makes
    for text in split_effects(cell.text):
        try:
            effect = parse_effect(text)
        except expr_mod.ExprError as exc:
            v.p.add(cell.ref, msg("effect", value=text, error=str(exc)), hint("effect_forms"), entity_ctx(e.name))
            continue
        made = emap.get(effect.entity) if effect.kind == "create" else None
        if _check(v, cell, effect, e, emap, state_fields, created):
            out.append(effect.source)
        if effect.kind == "create":
            created = made
    return tuple(out)


def _check(v: Context, cell: Cell, effect: Effect, e: Entity, emap: dict[str, Entity], state_fields: dict[str, set[str]],
           created: Entity | None) -> bool:
    """Report what is wrong with one parsed effect; True when nothing is."""
    before = len(v.p.items)

    def problem(code: str, hint_: Any = None, **params: Any) -> None:
        v.p.add(cell.ref, msg(code, value=effect.source, **params), hint_, entity_ctx(e.name))

    if effect.uses_created and created is None:
        problem("effect_created", hint("effect_created"))
        return False
    resolve = _resolver(v, e, emap, created)
    for x in effect.expressions():
        for path in x.names:
            if path == CREATED or path.startswith(CREATED + "."):
                bad = resolve_path(created, path[len(CREATED) + 1:], emap) if "." in path and created is not None else None
            else:
                bad = resolve_path(e, path, emap)
            if bad:
                problem("effect", did_you_mean(bad[0], bad[1]), error=f"unknown field '{bad[0]}'")
                return False
    if effect.guard:
        for m in comparison_problems(expr_mod.parse(effect.guard).tree, resolve):  # a condition: said as one
            problem("effect", hint(m.hint, **m.hint_params), error=msg(m.code, value=effect.guard, **_worded(m)).render("en"))
    if effect.kind == "create":
        _check_create(v, cell, effect, e, emap, state_fields, resolve, problem)
    else:
        _check_set(effect, e, emap, state_fields, resolve, problem, created, v.choice_lists)
    return len(v.p.items) == before


def _resolver(v: Context, e: Entity, emap: dict[str, Entity], created: Entity | None) -> Resolve:
    """Kinds of this record's paths, and of ``created.…`` the created record's."""
    own = field_kinds(e, emap, v.choice_lists)
    made = field_kinds(created, emap, v.choice_lists) if created is not None else None

    def resolve(path: str) -> Kind | None:
        if made is not None and path.startswith(CREATED + "."):
            return made(path[len(CREATED) + 1:])
        return own(path)

    return resolve


def _unwritable(f: Field, target: Entity, state_fields: dict[str, set[str]]) -> tuple[str, str] | None:
    """Why an effect may not write ``f`` of ``target`` (zh, en), or None when it may."""
    if f.name in state_fields.get(target.name, set()):
        return "它是流程的状态字段,只由该记录自己的流程按钮改变", "it is a workflow state, moved only by that record's own steps"
    if f.readonly:
        return "它是只读字段,只由系统填写", "it is read-only, filled by the system"
    if f.type == "file":
        return "附件只能在表单上传", "files are uploaded on a form"
    return None


def _check_set(effect: Effect, e: Entity, emap: dict[str, Entity], state_fields: dict[str, set[str]], resolve: Resolve,
               say: Say, created: Entity | None, choice_lists: dict[str, tuple[Choice, ...]]) -> None:
    target: Entity | None = e
    if effect.link:
        link = e.field(effect.link)
        if link is None:
            say("effect", did_you_mean(effect.link, [f.name for f in e.fields]), error=f"unknown field '{effect.link}'")
            return
        if link.type != "link":
            say("effect_not_link", hint("effect_forms"), link=link.name)
            return
        target = emap.get(link.link)
    assert target is not None
    f = target.field(effect.field)
    if f is None:
        say("unknown_field_effect", did_you_mean(effect.field, [x.name for x in target.fields]), entity=target.name, field=effect.field)
        return
    why = _unwritable(f, target, state_fields)
    if why is not None:
        say("effect_unwritable", None, field=f"{target.name}.{f.name}", why=why[0], why_en=why[1])
        return
    _check_value(effect.value, f, effect.target, emap, resolve, say, e, created, choice_lists)


def _check_create(v: Context, cell: Cell, effect: Effect, e: Entity, emap: dict[str, Entity], state_fields: dict[str, set[str]],
                  resolve: Resolve, say: Say) -> None:
    made = emap.get(effect.entity)
    if made is None:
        v.p.add(cell.ref, msg("unknown_entity", value=effect.entity), did_you_mean(effect.entity, emap), entity_ctx(e.name))
        return
    for name, value in effect.mapping:
        f = made.field(name)
        if f is None:
            say("unknown_field_effect", did_you_mean(name, [x.name for x in made.fields]), entity=made.name, field=name)
            continue
        why = _unwritable(f, made, state_fields)
        if why is not None:
            say("effect_unwritable", None, field=f"{made.name}.{f.name}", why=why[0], why_en=why[1])
            continue
        _check_value(value, f, f"{made.name}.{name}", emap, resolve, say, e, None, v.choice_lists)
    given = {k for k, _v in effect.mapping}
    filled = {made.owner_field, *state_fields.get(made.name, set())} | ({"code"} if made.numbering else set())
    missing = [f.name for f in made.fields if f.required and f.default in (None, "") and f.name not in given | filled]
    if missing:
        say("effect_required", hint("effect_map", example=", ".join(f"{n} = …" for n in missing)), entity=made.name,
            fields=", ".join(missing))


def _check_value(text: str, f: Field, target: str, emap: dict[str, Entity], resolve: Resolve, report: Say, e: Entity,
                 created: Entity | None, choice_lists: dict[str, tuple[Choice, ...]]) -> None:
    """The value written into ``f`` (named ``target`` in messages) has its type: a record of the
    link's entity, a person, or a value of the field's kind (a choice among its choices)."""
    tree = expr_mod.parse(text).tree
    if f.type in ("link", "user"):
        path = ast.unparse(tree) if isinstance(tree, ast.Name | ast.Attribute) else ""
        if isinstance(tree, ast.Constant) and tree.value is None:
            return
        if f.type == "link" and path == CREATED:
            if created is not None and created.name != f.link:
                report("effect_link_value", hint("effect_link_value", entity=f.link), field=target, entity=f.link)
            return
        source = _path_field(e, created, path, emap)
        if source is None or source.type != f.type or (f.type == "link" and source.link != f.link):
            report("effect_link_value" if f.type == "link" else "effect_user_value",
                   hint("effect_link_value" if f.type == "link" else "effect_user_value", entity=f.link), field=target, entity=f.link)
        return
    compare = ast.Compare(left=_path_node(target), ops=[ast.Eq()], comparators=[tree])
    written = field_kind(f, choice_lists.get(f.choices, ()))

    def kinds(path: str) -> Kind | None:  # the field written, however it is named, and the value's paths
        return written if path == target else resolve(path)

    for m in comparison_problems(compare, kinds):
        report("effect_" + m.code[len("expr_"):], _assigned(m.hint, m.hint_params), **_worded(m))


def _assigned(code: str, params: dict[str, str]) -> Any:
    """A comparison's hint said of an assignment: ``field = '5'``, not ``field == '5'``."""
    if code == "same_type":
        return hint("effect_same_type")
    return hint(code, **{k: v.replace(" == ", " = ") for k, v in params.items()})


def _path_node(path: str) -> ast.expr:
    node: ast.expr = ast.Name(id=path.split(".")[0], ctx=ast.Load())
    for part in path.split(".")[1:]:
        node = ast.Attribute(value=node, attr=part, ctx=ast.Load())
    return node


def _path_field(e: Entity, created: Entity | None, path: str, emap: dict[str, Entity]) -> Field | None:
    if path.startswith(CREATED + ".") and created is not None:
        return field_at(created, path[len(CREATED) + 1:], emap)
    return field_at(e, path, emap) if path else None
