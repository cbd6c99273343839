"""Workflow steps as one dialog: what a step asks for, and taking it with those values.

A step's button opens a small dialog when the step has something to ask: the fields its
condition names (or the workbook's ``workflows.asks``) that the person may write, and the comment
when the step requires one. One submit saves those values and takes the step in ONE transaction,
through the save lifecycle every other path uses (field checks here; cross-field validations,
locks, link scope, grading and audit in the flush hooks of :mod:`app.record.rules` and
:mod:`app.record.audit`; the version check of :mod:`app.record.versions`): all or nothing. The
record page and the REST API both call :func:`take`, so they refuse the same things alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import User

from app.access.ownership import can_reassign, may_own
from app.access.scope import hidden_fields, locked_fields, visible
from app.messages import Text, msg
from app.record import versions, workflow
from app.record.convert import check_field, convert, same_value
from app.record.rules import RuleViolation, record_errors
from app.record.tables import Transition as TransitionRow
from app.spec.expr import parse, record_lookup
from app.spec.model import Entity, Field, Spec, Transition
from app.web.condtext import condition_text
from app.web.i18n import pick

STRING_LENGTH = 255  # a string field without ``max`` is a VARCHAR(255) (app.spec.columns)


@dataclass(frozen=True)
class Step:
    """A transition leaving the record's state, as one person sees it on the record page."""

    option: workflow.Option
    asks: tuple[Field, ...]  # the fields its dialog asks for, in the workbook's order
    comment_required: bool
    blocked: str  # why this person cannot take it, even through its dialog ("" when they can)
    unmet: bool  # its condition does not hold yet: what the dialog asks must make it hold

    @property
    def key(self) -> str:
        return self.option.key

    @property
    def label(self) -> str:
        return self.option.label

    @property
    def transition(self) -> Transition:
        return self.option.transition

    @property
    def dialog(self) -> bool:
        """Whether the button opens a dialog: it has fields to ask or a comment to require."""
        return not self.blocked and (bool(self.asks) or self.comment_required)


def may_take(t: Transition, user: Any, admin_role: str) -> bool:
    """Whether ``user``'s roles let them take ``t`` (its condition aside)."""
    roles = workflow.user_roles(user)
    return not t.roles or admin_role in roles or bool(roles & set(t.roles))


def writable(spec: Spec, entity: Entity, user: Any, admin_role: str) -> set[str]:
    """The fields ``user`` may write on a stored record of ``entity``, as the edit form and the API
    allow them: with the edit right, not hidden from them, not read-only for their roles or for
    everyone, not a workflow state, not a file; the owner only for who may reassign records."""
    roles = workflow.user_roles(user)
    if admin_role not in roles and not any(p.entity == entity.name and p.role in roles and "edit" in p.rights
                                           for p in spec.permissions):
        return set()
    shut = hidden_fields(spec, entity, user, admin_role) | locked_fields(spec, entity, user, admin_role, "edit")
    shut |= {t.state_field for t in spec.workflows if t.entity == entity.name}
    if entity.owner_field and not can_reassign(spec, entity, user, admin_role):
        shut.add(entity.owner_field)
    return {f.name for f in entity.fields if not f.readonly and f.type != "file" and f.name not in shut}


def condition_fields(entity: Entity, t: Transition) -> list[Field]:
    """The record's own fields a transition's condition names (a path through a link: the link is
    not asked, what it points at is another record's)."""
    if not t.condition:
        return []
    states = {t.state_field}
    out: list[Field] = []
    for name in parse(t.condition).names:
        f = entity.field(name) if "." not in name else None
        if f is not None and f.name not in states and f not in out:
            out.append(f)
    return out


def _blank(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str) and not value.strip())


def _condition_holds(spec: Spec, t: Transition, obj: Any, now: dt.datetime | None = None) -> bool:
    return not t.condition or parse(t.condition).test(record_lookup(obj), now, spec.calendar)


def steps(spec: Spec, entity: Entity, obj: Any, user: Any, admin_role: str, now: dt.datetime | None = None) -> list[Step]:
    """The steps leaving the record's current state(s), each with what its dialog asks ``user``
    and, when they cannot take it, why in words."""
    may_write = writable(spec, entity, user, admin_role)
    out = []
    for option in workflow.options(spec, entity, obj, user, admin_role, now):
        t = option.transition
        if not may_take(t, user, admin_role):
            out.append(Step(option, (), t.require_comment, option.reason, False))
            continue
        unmet = not _condition_holds(spec, t, obj, now)
        named = condition_fields(entity, t)
        wanted = [f for f in (entity.field(n) for n in t.asks) if f is not None] if t.asks else (named if unmet else [])
        asks = tuple(f for f in wanted if f.name in may_write)
        blocked = ""
        if unmet:
            # what the condition needs that the dialog does not ask for (and is not filled already)
            beyond = [f for f in named if f not in asks and _blank(getattr(obj, f.name, None))]
            if beyond or not asks:
                blocked = msg("条件不满足:%(condition)s", condition=condition_text(spec, entity, t.condition)).localized()
                shut = [pick(f.label, f.label_en) for f in beyond if f.name not in may_write]
                first = [pick(f.label, f.label_en) for f in beyond if f.name in may_write]
                if shut:
                    blocked += " — " + msg("您的角色不能填写%(fields)s", fields="、".join(shut), fields_en=", ".join(shut)).localized()
                if first:
                    blocked += " — " + msg("请先在编辑页填写%(fields)s", fields="、".join(first), fields_en=", ".join(first)).localized()
        out.append(Step(option, asks, t.require_comment, blocked, unmet))
    return out


def find(spec: Spec, entity: Entity, obj: Any, key: str, user: Any, admin_role: str) -> Step:
    """The step ``key`` of ``obj`` for ``user``; WorkflowError 404 (no such action), 409 (not
    from the record's state) or 403 (not theirs to take)."""
    found = [s for s in steps(spec, entity, obj, user, admin_role) if s.key == key]
    if not found:
        known = any(workflow.transition_key(t) == key for t in spec.workflows if t.entity == entity.name)
        raise workflow.WorkflowError(409 if known else 404, msg("当前状态下不能执行此操作") if known else msg("没有这个流程操作"))
    if not may_take(found[0].transition, user, admin_role):
        raise workflow.WorkflowError(403, found[0].option.reason)
    return found[0]


def take(session: Any, spec: Spec, entity: Entity, obj: Any, key: str, user: Any, admin_role: str,
         values: Mapping[str, Any] | None = None, comment: str = "", version: Any = None) -> TransitionRow:
    """Save ``values`` (field name → value as typed or as JSON) and take step ``key``, in one
    transaction; commits. ``version`` is the record's version the person read (needed with
    values). Raises WorkflowError, RuleViolation (field → messages) or ``versions.StaleRecord``;
    whatever is refused, nothing is saved."""
    values = dict(values or {})
    try:
        step = find(spec, entity, obj, key, user, admin_role)
        read = _read_version(obj, version, bool(values))
        if values:
            _apply(session, spec, entity, obj, step, values, user, admin_role)
            errors = record_errors(spec, entity, obj)  # the workbook's validations, said on their fields
            if errors:
                raise RuleViolation(errors)
            if not _condition_holds(spec, step.transition, obj):
                said = condition_text(spec, entity, step.transition.condition)
                raise workflow.WorkflowError(422, msg("条件不满足:%(condition)s", condition=said))
        if read is not None:  # the UPDATE asks for the version the person read: of two saves on it, one wins
            versions.based_on(obj, read)
        return workflow.perform(session, spec, entity, obj, key, user, admin_role, comment)
    except Exception:
        session.rollback()  # whatever was set on the record goes back to what is stored
        raise


def _read_version(obj: Any, version: Any, needed: bool) -> int | None:
    """The version the person read, checked against the record's: StaleRecord when it moved on."""
    if version is None or version == "":
        if needed:
            raise RuleViolation({"version": [msg("请附上读取时的 version")]})
        return None
    text = str(version).strip()
    read = int(text) if text.isdigit() and len(text) < 19 else 0
    if read != obj.version:
        raise versions.StaleRecord(getattr(obj, "__entity__", ""), obj.id, read)
    return read


def _apply(session: Any, spec: Spec, entity: Entity, obj: Any, step: Step, values: dict[str, Any], user: Any,
           admin_role: str) -> None:
    """Check every value and set them on ``obj``, or raise RuleViolation with every problem and set none."""
    asked = {f.name: f for f in step.asks}
    errors: dict[str, list[str]] = {}
    checked: list[tuple[Field, Any]] = []
    for name, raw in values.items():
        f = asked.get(name)
        if f is None:  # not this step's to write: hidden, read-only, or just not asked
            known = entity.field(name) is not None
            errors[name] = [msg("此操作不能修改此字段") if known and name not in hidden_fields(spec, entity, user, admin_role)
                            else msg("无权修改此字段")]
            continue
        try:
            checked.append((f, _value(session, spec, entity, f, raw, user, admin_role)))
        except ValueError as exc:  # the message as raised (a catalogue message: said in the reader's language)
            errors[name] = [exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)]
    if errors:
        raise RuleViolation(errors)
    for f, value in checked:
        if not same_value(value, getattr(obj, f.name, None)):  # the same value again is no change (audit, ``changed``)
            setattr(obj, f.name, value)


def _value(session: Any, spec: Spec, entity: Entity, f: Field, raw: Any, user: Any, admin_role: str) -> Any:
    """``raw`` (a form's text or a JSON value) as ``f`` stores it, checked as the edit form checks
    it; for a link or person field, the record or user. Raises ValueError saying what is wrong."""
    if isinstance(raw, list | dict):
        raise ValueError(msg("'%(value)s' 格式不正确", value=type(raw).__name__))
    if f.type == "boolean":
        if raw in (None, ""):
            return False
        value = convert(raw, "boolean")
    elif raw is None or (isinstance(raw, str) and not raw.strip()):
        value = None
    elif f.type == "choice":
        allowed = [c.value for c in spec.choices.get(f.choices, ())]
        if str(raw) not in allowed:
            raise ValueError(msg("'%(value)s' 不是可选值", value=raw, choices=f.choices))
        value = str(raw)
    elif f.type in ("link", "user"):
        return _linked(session, spec, entity, f, raw, user, admin_role)
    elif f.type == "datetime" and isinstance(raw, str) and "T" in raw:
        try:
            moment = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(msg("'%(value)s' 格式不正确", value=raw)) from None
        value = moment.astimezone().replace(tzinfo=None) if moment.tzinfo is not None else moment
    else:
        try:
            value = convert(raw, f.type, (int(f.max) if f.max else STRING_LENGTH) if f.type in ("string", "email", "phone") else None)
        except ValueError as exc:
            said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
            raise ValueError(said if isinstance(said, Text) else msg("'%(value)s' 格式不正确", value=raw)) from None
        check_field(f, value)
    if value is None and f.required:
        raise ValueError(msg("必填"))
    return value


def _linked(session: Any, spec: Spec, entity: Entity, f: Field, raw: Any, user: Any, admin_role: str) -> Any:
    """The record (link) or user (person field) a value names by id; none when blank."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if f.required:
            raise ValueError(msg("必填"))
        return None
    text = str(raw).strip().lstrip("#")
    if isinstance(raw, bool) or not text.isdigit() or len(text) > 10:
        raise ValueError(msg("'%(value)s' 格式不正确", value=raw))
    pk = int(text)
    if f.type == "user":
        person = session.get(User, pk)
        if person is None or not person.active:
            raise ValueError(msg("找不到用户 '%(value)s',请填写登录名、邮箱或姓名", value=raw))
        if f.name == entity.owner_field and not may_own(session, spec, entity, pk, user, admin_role):
            raise ValueError(msg("负责人须是可分配的在职用户"))
        return person
    from flask import current_app

    model = current_app.extensions["crm"].generated.models.MODELS[f.link]
    linked = session.get(model, pk)
    if linked is None or not visible(f.link, model, pk):  # as the form's link field says it
        raise ValueError(msg("所选记录不存在或您无权选择"))
    return linked


def people(session: Any, spec: Spec, entity: Entity, f: Field, user: Any, admin_role: str) -> list[Any]:
    """Whom a person field of a step's dialog offers: for the owner, whom the record may be given
    to by ``user`` (as 调整负责人); for another, every active user."""
    from app.access.ownership import candidates

    if f.name == entity.owner_field:
        return candidates(session, spec, entity, user, admin_role)
    return list(session.execute(sa.select(User).where(User.active.is_(True)).order_by(User.username)).scalars())
