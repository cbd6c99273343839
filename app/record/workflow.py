"""Workflows from the ``workflows`` sheet: which transitions a user may take on a record now, and
taking one (role, condition and comment checked; an append-only history row written, naming who
acted and when; the transition's ``notify`` told — all in the transaction of the state change)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.access.accounts import person_name
from app.messages import msg
from app.messaging.wfnotify import notify
from app.record import effects as step_effects
from app.record import versions
from app.record.rules import STATE_KEY
from app.record.tables import Transition as TransitionRow
from app.spec.expr import parse, record_lookup
from app.spec.model import Entity, Spec, Transition
from app.web.condtext import condition_text
from app.web.i18n import choice_text, pick
from app.web.ruletext import rule_detail


class WorkflowError(Exception):
    """A transition that cannot be taken; ``status`` is the HTTP answer (403, 404, 409, 422)."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Option:
    transition: Transition
    key: str
    allowed: bool
    reason: str  # why not, when not allowed

    @property
    def label(self) -> str:
        return action_label(self.transition)


def action_label(t: Transition) -> str:
    """The action as the user reads it: its English name in English when the workbook gives one."""
    return pick(t.action, t.action_en)


def transition_key(t: Transition) -> str:
    return f"{t.state_field}:{t.source}:{t.target}"


def user_roles(user: Any) -> set[str]:
    return {r.name for r in getattr(user, "roles", []) or []}


def options(spec: Spec, entity: Entity, obj: Any, user: Any, admin_role: str, now: dt.datetime | None = None) -> list[Option]:
    """Transitions leaving the record's current state(s), each with whether ``user`` may take it."""
    roles = user_roles(user)
    result = []
    for t in spec.workflows:
        if t.entity != entity.name or getattr(obj, t.state_field, None) != t.source:
            continue
        allowed, reason = True, ""
        if t.roles and admin_role not in roles and not roles & set(t.roles):
            allowed, reason = False, msg("需要角色:%(roles)s", roles="、".join(t.roles), roles_en=", ".join(t.roles)).localized()
        elif t.condition and not parse(t.condition).test(record_lookup(obj), now, spec.calendar):
            # in words; its expression and cell only to those who may read rules
            said = condition_text(spec, entity, t.condition) + rule_detail(t.ref, t.condition, user)
            allowed, reason = False, msg("条件不满足:%(condition)s", condition=said).localized()
        result.append(Option(t, transition_key(t), allowed, reason))
    return result


def perform(session: Any, spec: Spec, entity: Entity, obj: Any, key: str, user: Any, admin_role: str,
            comment: str = "") -> TransitionRow:
    """Take transition ``key`` on ``obj`` for ``user``; commits. Raises WorkflowError, or
    ``versions.StaleRecord`` when another save of the record came first."""
    found = [o for o in options(spec, entity, obj, user, admin_role) if o.key == key]
    if not found:
        known = any(transition_key(t) == key for t in spec.workflows if t.entity == entity.name)
        raise WorkflowError(409 if known else 404, msg("当前状态下不能执行此操作") if known else msg("没有这个流程操作"))
    option = found[0]
    if not option.allowed:
        raise WorkflowError(403, option.reason)
    t = option.transition
    comment = (comment or "").strip()
    if t.require_comment and not comment:
        raise WorkflowError(422, msg("此操作需要填写意见"))
    setattr(obj, STATE_KEY, True)
    at = dt.datetime.now()
    try:
        # the UPDATE asks for the version read here: of two actions taken at once, one wins (StaleRecord)
        with versions.refused(session, obj):
            setattr(obj, t.state_field, t.target)
            stamp(entity, obj, t, user, at)
            row = TransitionRow(entity=entity.name, record_id=obj.id, field=t.state_field, from_state=t.source,
                                to_state=t.target, action=t.action, comment=comment or None,
                                user_id=getattr(user, "id", None), at=at)
            session.add(row)
            session.flush()  # the state change checked by the rules and the row's id, before anyone is told
            # the effects after the state's version-checked UPDATE: of two takes of this step at once,
            # the second waits for the first's row lock and is refused as stale, its effects never run
            _effects(session, spec, entity, obj, t, row)
            notify(session, spec, entity, obj, t, row, user, admin_role)
            session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        setattr(obj, STATE_KEY, False)
    return row


def _effects(session: Any, spec: Spec, entity: Entity, obj: Any, t: Transition, row: TransitionRow) -> None:
    """Run the step's effects (``workflows.effects``) in its transaction; one refused refuses the step (422)."""
    if not t.effects:
        return
    step = f"{entity.label} {step_effects.title_of(entity, obj)} · {t.action}"
    try:
        done = step_effects.run(session, spec, entity, obj, t, step)
    except step_effects.EffectRefused as exc:
        raise WorkflowError(422, msg("%(action)s未执行:%(reason)s", action=action_label(t), reason=exc.message)) from None
    if done:
        row.effects = json.dumps(done, ensure_ascii=False, default=str)  # type: ignore[assignment]  # a mapped column


def effects_said(spec: Spec, stored: Any) -> list[dict[str, Any]]:
    """What a step's effects did (a history row's ``effects``), in the reader's words: ``text``, ``url``."""
    return step_effects.said(spec, json.loads(stored)) if stored else []


def stamp(entity: Entity, obj: Any, t: Transition, user: Any, at: dt.datetime) -> None:
    """Fill the fields the workbook has the action record (``stamp``): a person field gets who
    took it, a date field the day, a datetime field the moment (read-only fields: only this writes them)."""
    for name in t.stamp:
        f = entity.field(name)
        if f is None:
            continue
        if f.type == "user":
            setattr(obj, f.column, getattr(user, "id", None))
        else:
            setattr(obj, f.name, at.date() if f.type == "date" else at.replace(microsecond=0))


def state_label(spec: Spec, entity: Entity, field: str, value: Any) -> str:
    """A state as users read it: its choice label in their language (the code when it has none)."""
    return "" if value is None else str(choice_text(spec, entity.field(field), value))


def action_names(spec: Spec, entity: Entity) -> dict[tuple[str, Any, Any, str], str]:
    """(state field, from, to, action as recorded) → the action as the user reads it."""
    return {(t.state_field, t.source, t.target, t.action): action_label(t) for t in spec.workflows if t.entity == entity.name}


def history(session: Any, spec: Spec, entity: Entity, record_id: int) -> list[dict[str, Any]]:
    """The record's transitions, oldest first: the stored codes plus who acted (``user``, a
    display name), the action and the states as the user reads them (``action_label``,
    ``from_label``, ``to_label``)."""
    from flask_appbuilder.security.sqla.models import User

    table, users = TransitionRow.__table__, User.__table__
    q = (sa.select(table, users.c.username, users.c.first_name, users.c.last_name)
         .select_from(table.outerjoin(users, users.c.id == table.c.user_id))
         .where(table.c.entity == entity.name, table.c.record_id == record_id).order_by(table.c.at, table.c.id))
    names = action_names(spec, entity)
    out = []
    for r in session.execute(q).mappings():
        row = {c.name: r[c.name] for c in table.columns}
        actor = person_name(r["username"], r["first_name"], r["last_name"]) if r["username"] else ""
        said = names.get((row["field"], row["from_state"], row["to_state"], row["action"]), row["action"])  # as recorded
        out.append({**row, "user": actor, "action_label": said, "from_label": state_label(spec, entity, row["field"], row["from_state"]),
                    "to_label": state_label(spec, entity, row["field"], row["to_state"]),
                    "effects_said": effects_said(spec, row["effects"])})
    return out
