"""Which column of an import file fills which field: pure functions over the Spec.

A header matches a field by name or by its Chinese/English label (case, spaces and the template's
``*`` ignored). A column whose header matches nothing, or a required field no column fills, makes
the plan *unsure*: the UI then shows a mapping step (each header with a dropdown of the fields,
pre-filled with the best guess) and the CLI takes ``--map 'Header=field'``. Fields the system sets
(read-only, workflow states, the owner for users who may not reassign, the number) are never
written by an import: such columns are ignored with a note, so an export can be imported back.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.access.ownership import can_reassign
from app.access.scope import hidden_fields, locked_fields
from app.io.spreadsheet import column_letter
from app.messages import Joined, msg, place
from app.spec.model import Entity, Field, Spec

IGNORE = ""  # the mapping value of a column that is not imported


@dataclass
class ColumnPlan:
    columns: dict[int, Field] = field(default_factory=dict)  # position in the file → field it fills
    guesses: dict[int, str] = field(default_factory=dict)  # position → best-guess field name ("" none)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unsure: bool = False  # unknown headers or required fields without a column: ask for a mapping


def _norm(text: str) -> str:
    return re.sub(r"[\s*_()()::]+", "", text).lower()


def system_fields(spec: Spec, entity: Entity, user: Any, admin_role: str) -> set[str]:
    """Fields an import never writes: read-only, workflow states, the number, attached files (a cell
    cannot carry one; its text would point at somebody's upload), the owner unless ``user`` may
    reassign records (no user: the CLI's administrator), and what ``user``'s roles may not write."""
    states = {t.state_field for t in spec.workflows if t.entity == entity.name}
    system = {f.name for f in entity.fields if f.readonly or f.type == "file"} | states  # files come through the form
    if entity.numbering:
        system.add("code")
    if entity.owner_field and user is not None and not can_reassign(spec, entity, user, admin_role):
        system.add(entity.owner_field)
    if user is not None:  # what the user's roles see but may not write (readonly_fields), adding or updating
        system |= locked_fields(spec, entity, user, admin_role, "add") | locked_fields(spec, entity, user, admin_role, "edit")
    return system


def importable_fields(spec: Spec, entity: Entity, user: Any, admin_role: str) -> list[Field]:
    """What a file may fill for ``user``: every field that is neither hidden from them nor set by the system."""
    hidden = hidden_fields(spec, entity, user, admin_role) if user is not None else set()
    system = system_fields(spec, entity, user, admin_role)
    return [f for f in entity.fields if f.name not in hidden and f.name not in system]


def required_missing(spec: Spec, entity: Entity, present: set[str], system: set[str]) -> list[Field]:
    """Required fields no column fills and nothing else (default, system) provides."""
    return [f for f in entity.fields if f.required and f.default is None and not f.default_formula and f.name not in system
            and f.name not in present]


def filled_without_a_column(spec: Spec, entity: Entity, user: Any, admin_role: str) -> set[str]:
    """Fields an import fills when its file has no column for them: the system's (number, states,
    read-only), those hidden from ``user``, the grades (computed), and the owner (the importing user)."""
    graded = {r.field for r in spec.grading if r.entity == entity.name}
    hidden = hidden_fields(spec, entity, user, admin_role) if user is not None else set()
    owner = {entity.owner_field} if entity.owner_field else set()
    return system_fields(spec, entity, user, admin_role) | hidden | graded | owner


def required_columns(spec: Spec, entity: Entity, user: Any, admin_role: str) -> list[Field]:
    """The columns an insert by ``user`` cannot do without: what the import page lists as
    required and the template marks with ``*`` — the same rule ``plan_columns`` refuses a file by."""
    return required_missing(spec, entity, set(), filled_without_a_column(spec, entity, user, admin_role))


def header_score(entity: Entity) -> Callable[[list[str]], int]:
    """How many cells of a row name a field of ``entity`` (by name or label, as ``plan_columns``
    matches them): the header row below an office sheet's title rows is the row that scores best."""
    known = {_norm(k) for f in entity.fields for k in (f.name, f.label, f.label_en) if k}
    known |= {"code", "编号"} if entity.numbering else set()

    def score(cells: list[str]) -> int:
        return sum(1 for c in cells if c and _norm(c) in known)

    return score


def guess(header: str, fields: list[Field], taken: set[str]) -> str:
    """The field a header most likely means ("" when nothing is close): exact name/label, then one
    label containing the other, then the closest spelling."""
    text = _norm(header)
    if not text:
        return IGNORE
    keys = {_norm(k): f.name for f in fields if f.name not in taken for k in (f.name, f.label, f.label_en) if k}
    if text in keys:
        return keys[text]
    contained = [name for k, name in keys.items() if len(k) >= 2 and (k in text or text in k)]
    if len(set(contained)) == 1:
        return contained[0]
    close = difflib.get_close_matches(text, list(keys), n=1, cutoff=0.6)
    return keys[close[0]] if close else IGNORE


def plan_columns(spec: Spec, entity: Entity, headers: list[str], user: Any, admin_role: str, mode: str = "insert",
                 key: str | None = None, mapping: dict[str, str] | None = None, header_row: int = 1) -> ColumnPlan:
    """Match ``headers`` (of row ``header_row``) to fields; ``mapping`` (header → field name, "" to
    ignore) overrides matching."""
    plan = ColumnPlan()
    fields = importable_fields(spec, entity, user, admin_role)
    system = system_fields(spec, entity, user, admin_role)
    hidden = hidden_fields(spec, entity, user, admin_role) if user is not None else set()
    key_field = entity.field(key) if key else None
    if key_field is not None and key_field.name not in hidden:
        fields = fields + [key_field] if key_field not in fields else fields
    by_text = {_norm(k): f for f in fields for k in (f.name, f.label, f.label_en) if k}
    visible_system = {_norm(k): f for f in entity.fields if f.name in system and f.name not in hidden
                      for k in (f.name, f.label, f.label_en) if k}
    by_name = {f.name: f for f in fields}
    mapping = {k.strip(): v for k, v in (mapping or {}).items()}
    seen: dict[str, int] = {}
    for i, header in enumerate(headers):
        text = header.replace("*", "").strip()
        if not text:
            continue
        if text in mapping:
            target = mapping[text].strip()
            if target == IGNORE:
                plan.notes.append(msg("列 '%(header)s' 按映射不导入", header=text))
                continue
            f = by_name.get(target) or by_text.get(_norm(target))
            if f is None:
                plan.problems.append(msg("映射 '%(header)s=%(target)s':没有可导入的字段 %(target)s", header=text, target=target))
                continue
        else:
            f = by_text.get(_norm(text))
            if f is None and _norm(text) in visible_system:
                plan.notes.append(msg("列 '%(header)s' 由系统设置,已忽略", header=text))
                continue
            if f is None:
                plan.guesses[i] = guess(text, fields, set(seen))
                where = place("第 %(row)s 行 %(column)s 列 '%(header)s':", row=header_row, column=column_letter(i), header=text)
                hint = (place(";"), msg("是否指"), f" '{by_name[plan.guesses[i]].label}'?") if plan.guesses[i] else ()
                plan.problems.append(Joined(where, msg("未知列", header=text), *hint))
                plan.unsure = True
                continue
        if f.name in seen:
            plan.problems.append(msg("列 '%(header)s' 与第 %(other)s 列都对应字段 %(label)s", header=text, other=seen[f.name] + 1,
                                     label=f.label, field=f.name))
            continue
        seen[f.name] = i
        plan.columns[i] = f
        plan.guesses[i] = f.name
    present = set(seen)
    if mode == "insert" or key_field is None:
        for f in required_missing(spec, entity, present, filled_without_a_column(spec, entity, user, admin_role)):
            plan.problems.append(msg("缺少必填列 %(label)s", label=f.label, field=f.name))
            plan.unsure = True
    if key_field is not None and key_field.name not in present:
        plan.problems.append(msg("缺少键列 %(label)s", label=key_field.label, field=key_field.name))
        plan.unsure = True
    for i, header in enumerate(headers):  # positions still without a guess get one for the mapping step
        if i not in plan.guesses and header.strip() and header.replace("*", "").strip() not in mapping:
            plan.guesses[i] = IGNORE
    return plan


def parse_mapping(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``['表头=field', '备注2=']`` as a mapping; raises ValueError on an item without '='."""
    mapping: dict[str, str] = {}
    for item in items:
        header, sep, target = item.partition("=")
        if not sep or not header.strip():
            raise ValueError(msg("--map '%(item)s':应写成 '表头=字段'", item=item))
        mapping[header.strip()] = target.strip()
    return mapping
