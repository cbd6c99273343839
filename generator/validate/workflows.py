"""The workflows sheet: each transition of a choice field's states (action, roles, condition, who is
told, the fields it stamps), with no two buttons alike and every state reachable."""

from __future__ import annotations

import re
from collections import defaultdict

from app.spec.model import Choice, Entity, Permission, Transition, split_names

from ..problems import did_you_mean, hint, msg
from ..read import Cell
from .conditions import condition
from .context import Context, entity_ctx
from .effects import effects
from .reader import LIST_SEPARATORS


def build_workflows(v: Context, emap: dict[str, Entity], choices: dict[str, tuple[Choice, ...]], role_names: set[str],
                    permissions: tuple[Permission, ...] = (), admins: set[str] | None = None) -> tuple[Transition, ...]:
    result: list[Transition] = []
    state_fields: dict[str, set[str]] = defaultdict(set)  # moved only by their own steps: no effect writes them
    for _row, c in v.rows("workflows"):
        state_fields[c("entity").text].add(c("state_field").text)
    for _row, c in v.rows("workflows"):
        e = v.entity_of(c("entity"), emap)
        if e is None:
            continue
        f = v.field_of(c("state_field"), e)
        if f is None:
            continue
        if f.type != "choice":
            v.p.add(c("state_field").ref, msg("state_field", value=f.name), context=entity_ctx(e.name, f.name))
            continue
        values = [ch.value for ch in choices.get(f.choices, ())]
        states = []
        for key in ("from", "to"):
            s = c(key).text
            if s not in values:
                v.p.add(
                    c(key).ref,
                    msg("unknown_choice", value=s, list=f.choices),
                    did_you_mean(s, values) or hint("one_of", values=", ".join(values)),
                    entity_ctx(e.name, f.name),
                )
            states.append(s)
        if states[0] == states[1] and states[0] in values:
            v.p.add(c("to").ref, msg("same_state", value=states[0]), context=entity_ctx(e.name, f.name))
        action = c("action").text
        if not action:
            v.p.add(c("action").ref, msg("required", what="操作名", what_en="action"))
        roles = v.roles_of(c("roles"), role_names)
        notify = c("notify").text
        for who in split_names(notify):
            if who != "owner" and who not in role_names:
                v.p.add(c("notify").ref, msg("recipient", value=who), did_you_mean(who, list(role_names) + ["owner"]))
            elif who != "owner" and who not in (admins or set()) and not any(p.entity == e.name and p.role == who for p in permissions):
                # told only when their row scope reaches the record: without a right, never
                v.p.add(c("notify").ref, msg("notify_unseen", value=who, entity=e.name), warning=True)
        cond = condition(v, c("condition"), e, emap)
        twin = next((t for t in result if (t.entity, t.state_field, t.source, t.action) == (e.name, f.name, states[0], action)), None)
        if action and twin is not None:  # one button, two targets: the last row would win
            v.p.add(c("action").ref, msg("duplicate", what="操作", what_en="action", value=f"{states[0]}: {action}", first=twin.ref),
                    hint("rename"))
            continue
        same_way = next((t for t in result if (t.entity, t.state_field, t.source, t.target) == (e.name, f.name, states[0], states[1])), None)
        if same_way is not None:  # two buttons, one move: the record page could not tell them apart
            v.p.add(c("to").ref, msg("duplicate", what="流转", what_en="transition", value=f"{states[0]} → {states[1]}",
                                     first=same_way.ref), hint("one_transition"))
            continue
        action_en = c("action_en").text
        # the buttons shown together, and the names the API takes for them, in either language
        shown = {n: t for t in result if (t.entity, t.source) == (e.name, states[0]) for n in (t.action, t.action_en) if n}
        clash = shown.get(action_en) if action_en else None
        if clash is None and action in shown:
            clash = shown[action]
        if clash is not None:
            v.p.add(c("action_en").ref if action_en and action_en in shown else c("action").ref,
                    msg("duplicate", what="操作", what_en="action", value=f"{states[0]}: {action_en if action_en in shown else action}",
                        first=clash.ref), hint("rename"))
            continue
        result.append(
            Transition(
                e.name, f.name, states[0], states[1], action, roles, cond, v.r.boolean(c("require_comment")), notify, c("action").ref,
                stamps(v, c("stamp"), e), action_en, asks(v, c("asks"), e, f.name), effects(v, c("effects"), e, emap, state_fields),
            )
        )
    check_reachable(v, result, emap)
    return tuple(result)


def stamps(v: Context, cell: Cell, e: Entity) -> tuple[str, ...]:
    """The fields a transition fills: a person field (who took it) or a date/time field (when),
    each read-only, or a form could write over what the action recorded."""
    names = []
    for name in (n.strip() for n in re.split(LIST_SEPARATORS, cell.text) if n.strip()):
        f = e.field(name) or next((x for x in e.fields if x.label == name), None)
        if f is None:
            v.p.add(cell.ref, msg("unknown_field", value=name, entity=e.name), did_you_mean(name, [x.name for x in e.fields]),
                    entity_ctx(e.name))
        elif f.type not in ("user", "date", "datetime"):
            v.p.add(cell.ref, msg("stamp_type", value=f.name, type=f.type), context=entity_ctx(e.name, f.name))
        elif not f.readonly:
            v.p.add(cell.ref, msg("stamp_readonly", value=f.name), hint("set_readonly", field=f.name), entity_ctx(e.name, f.name))
        else:
            names.append(f.name)
    return tuple(names)


def asks(v: Context, cell: Cell, e: Entity, state_field: str) -> tuple[str, ...]:
    """The fields a step's dialog asks for (names or labels), each one a person may type: not the
    state (only the step moves it), not a read-only field (only the system writes it), not a file."""
    names: list[str] = []
    for name in (n.strip() for n in re.split(LIST_SEPARATORS, cell.text) if n.strip()):
        f = e.field(name) or next((x for x in e.fields if x.label == name), None)
        if f is None:
            v.p.add(cell.ref, msg("unknown_field", value=name, entity=e.name), did_you_mean(name, [x.name for x in e.fields]),
                    entity_ctx(e.name))
            continue
        why = (("它是流程的状态字段,只由流程按钮改变", "it is the workflow's state, moved by the step itself") if f.name == state_field
               else ("它是只读字段,只由系统填写", "it is read-only, filled by the system") if f.readonly
               else ("附件只能在编辑表单上传", "files are uploaded on the edit form") if f.type == "file" else None)
        if why is not None:
            v.p.add(cell.ref, msg("asks_unwritable", value=f.name, why=why[0], why_en=why[1]), context=entity_ctx(e.name, f.name))
        elif f.name not in names:
            names.append(f.name)
    return tuple(names)


def check_reachable(v: Context, transitions: list[Transition], emap: dict[str, Entity]) -> None:
    by_key: dict[tuple[str, str], list[Transition]] = defaultdict(list)
    for t in transitions:
        by_key[(t.entity, t.state_field)].append(t)
    for (ent, fname), ts in by_key.items():
        f = emap[ent].field(fname)
        start = f.default if f is not None and f.default else ts[0].source
        reached = {start}
        changed = True
        while changed:
            changed = False
            for t in ts:
                if t.source in reached and t.target not in reached:
                    reached.add(t.target)
                    changed = True
        for t in ts:
            if t.source not in reached:
                v.p.add(t.ref, msg("unreachable", value=t.source), context=entity_ctx(ent, fname))
                reached.add(t.source)
