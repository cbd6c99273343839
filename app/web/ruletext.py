"""Rules as each reader may read them.

A grade's reason is stored as the engine wrote it (``C: C级:潜在需求状态。 — 其他情况 [grading!C7]``,
or ``…: area_type == 'urban' and working_hours(…) <= 6 ← area_type=urban, … [grading!E14]``): the
rule's condition, the values it looked at and its cell. Daily users read the rule's own words — its
note from the workbook, else its condition in words (:mod:`.condtext`) — and never an expression or
a ``Sheet!Cell``. The administrator, and roles the workbook grants ``see_rules``, read the whole.
Screens and exports ask the same functions, so what one shows the other writes.
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, g, has_app_context, has_request_context

from app.access.scope import current_user
from app.record.grading import HIDDEN_CONDITION, OTHERWISE, graded_fields, mask_reason
from app.spec.expr import parse
from app.spec.model import Entity, GradingRule, Spec
from app.web.condtext import condition_text
from app.web.i18n import pick

_REF = re.compile(r"\[(?P<ref>[^\[\]]+![A-Z]+\d+)\]\s*$")
_HEAD = re.compile(r"^(?P<grade>[^:]*): (?:(?P<note>.*?) — )?", re.S)


def roles_seeing_rules(spec: Spec, admin_role: str) -> set[str]:
    """The roles that read conditions and cells: the administrator's, and those the workbook grants."""
    return {admin_role} | {r.name for r in spec.roles if r.admin or r.see_rules}


def may_see_rules(user: Any = None) -> bool:
    """Whether ``user`` (the signed-in one by default) reads rules as written. Outside a request
    nobody is asking on anyone's behalf (the CLI, a worker, ``crm regrade``): yes."""
    if user is None:
        if not has_request_context():
            return True
        user = current_user()
    if not has_app_context():
        return True
    crm = current_app.extensions["crm"]
    memo: dict[Any, bool] = g.__dict__.setdefault("_crm_sees_rules", {})
    key = (id(crm.spec), getattr(user, "id", None), frozenset(r.name for r in getattr(user, "roles", []) or []))
    if key not in memo:
        memo[key] = bool(key[2] & roles_seeing_rules(crm.spec, crm.admin_role))
    return memo[key]


def _rule(spec: Spec, entity: Entity, ref: str) -> GradingRule | None:
    return next((r for r in spec.grading if r.ref == ref and r.entity == entity.name), None)


def plain_reason(spec: Spec, entity: Entity, text: Any, hidden: set[str] | frozenset[str] = frozenset()) -> Any:
    """A stored grade reason in the workbook's words: the rule's note, else its condition in
    words (the otherwise rule: 其他情况); no expression, no values, no cell."""
    if not text or not isinstance(text, str):
        return text
    found = _REF.search(text)
    rule = _rule(spec, entity, found["ref"]) if found else None
    if rule is not None:
        if rule.note:
            return rule.note
        if not rule.condition:
            return OTHERWISE.localized()
        if hidden and {n.split(".")[0] for n in parse(rule.condition).names} & set(hidden):
            return HIDDEN_CONDITION
        return condition_text(spec, entity, rule.condition)
    # the workbook changed since the reason was written: its note as stored, else nothing technical
    head = _HEAD.match(text)
    if head and head["note"]:
        return head["note"]
    return pick("依据的规则已变更,保存记录后重新说明", "the rule has changed since; saving the record explains it again")


def reason_text(spec: Spec, entity: Entity, text: Any, hidden: set[str] | frozenset[str] = frozenset(),
                user: Any = None) -> Any:
    """A stored grade reason for ``user`` (the signed-in one by default): whole but for hidden
    values to those who may see rules, in words to everyone else."""
    if may_see_rules(user):  # whole; "其他情况 (otherwise)" is stored in both languages: said in the reader's
        shown = mask_reason(text, hidden)
        if not isinstance(shown, str):
            return shown
        return _grade_said(spec, entity, shown.replace(str(OTHERWISE), OTHERWISE.localized()))
    return plain_reason(spec, entity, text, hidden)


def _grade_said(spec: Spec, entity: Entity, text: str) -> str:
    """The reason's leading grade (``on_time: …``) as its label (``准时: …``), not the stored key."""
    head = _HEAD.match(text)
    if not head or not head["grade"]:
        return text
    for graded in graded_fields(spec, entity):
        f = entity.field(graded.field)
        for c in spec.choices.get(f.choices, ()) if f is not None and f.choices else ():
            if c.value == head["grade"]:
                return pick(c.label, c.label_en) + text[len(head["grade"]):]
    return text


def rule_detail(ref: str, condition: str, user: Any = None) -> str:
    """`` [workflows!G7: status == 'x']`` for readers of rules, else nothing: appended to a refusal."""
    if not (ref or condition) or not may_see_rules(user):
        return ""
    return f" [{': '.join(p for p in (ref, condition) if p)}]"
