"""Step effects at run time: what a workflow step does to other records (``workflows.effects``,
parsed by :mod:`app.spec.effects`), inside the step's transaction.

Effects are the workbook's rules, so they run with the step's authority: a person who may take the
step may have it set a field of a linked record they could not edit by hand. But every record an
effect touches must be within their row scope (a linked record they cannot see refuses the step),
and every write goes through the one save lifecycle — the flush hooks of :mod:`app.record.rules`
(numbering, defaults, ownership, grading, the validations sheet and its locks, link scope), the
version check of every UPDATE, and the audit trail, whose rows name the step. The first effect
refused (:class:`EffectRefused`, with the reason in words) refuses the step as a whole: the
caller rolls everything back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.access.scope import visible
from app.messages import Joined, Text, msg
from app.record.convert import check_field, convert
from app.record.rules import RuleViolation
from app.spec.effects import CREATED, Effect, parse_effect
from app.spec.expr import ExprError, parse, record_lookup
from app.spec.model import Entity, Field, Spec, Transition

STEP_KEY = "crm_step"  # session.info: the step whose effects are being saved (the audit rows name it)
STRING_LENGTH = 255


class EffectRefused(Exception):
    """An effect that cannot be done; ``message`` says why, naming the record."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def _models() -> dict[str, Any]:
    return current_app.extensions["crm"].generated.models.MODELS  # type: ignore[no-any-return]


def title_of(entity: Entity, record: Any) -> str:
    """How a record is named in the history: its number and its title (``KH-202612-0001 华诚机械``)."""
    parts = [str(getattr(record, "code", "") or "")] if entity.numbering else []
    title = getattr(record, entity.title_field, None) if entity.title_field and entity.title_field != "code" else None
    parts.append("" if title is None else str(title))
    return " ".join(p for p in parts if p) or f"#{record.id}"


def run(session: Any, spec: Spec, entity: Entity, obj: Any, t: Transition, step: str) -> list[dict[str, Any]]:
    """Do the effects of step ``t`` taken on ``obj``, in order, flushed one by one; what each did
    (for the history: kind, entity, id, title, field, value). Raises :class:`EffectRefused`."""
    done: list[dict[str, Any]] = []
    created: tuple[Entity, Any] | None = None
    session.info[STEP_KEY] = step
    try:
        for text in t.effects:
            effect = parse_effect(text)
            lookup = _lookup(obj, created[1] if created else None)
            if effect.uses_created and created is None:
                continue  # about the record this step creates: it created none (its create's condition did not hold)
            if effect.guard and not parse(effect.guard).test(lookup, None, spec.calendar):
                continue
            if effect.kind == "create":
                made = spec.entity(effect.entity)
                assert made is not None  # crm check saw to it
                created = (made, _create(session, spec, made, effect, lookup))
                done.append({"kind": "create", "entity": made.name, "id": created[1].id, "title": title_of(made, created[1])})
            else:
                done.append(_set(session, spec, entity, obj, effect, lookup))
        _flush(session, f"{_label(entity)} {title_of(entity, obj)}")  # this record's own fields: one save for them all
    finally:
        session.info.pop(STEP_KEY, None)
    return done


def _lookup(obj: Any, created: Any) -> Callable[[str], Any]:
    """Paths of this record; ``created`` and ``created.…`` the record this step created."""
    own, made = record_lookup(obj), record_lookup(created)

    def lookup(path: str) -> Any:
        if path == CREATED:
            return created
        if path.startswith(CREATED + "."):
            return made(path[len(CREATED) + 1:])
        return own(path)

    return lookup


def _value(spec: Spec, f: Field, text: str, lookup: Callable[[str], Any], where: str) -> Any:
    """An effect's value for ``f``, as the field stores it; EffectRefused saying what is wrong."""
    try:
        value = parse(text).evaluate(lookup, None, spec.calendar)
    except (ExprError, TypeError, ValueError, ArithmeticError):
        raise EffectRefused(msg("无法算出%(record)s的%(field)s", record=where, field=_label(f))) from None
    if f.type in ("link", "user"):
        return value
    try:
        allowed = tuple(c.value for c in spec.choices.get(f.choices, ())) if f.type == "choice" else ()
        length = (int(f.max) if f.max else STRING_LENGTH) if f.type in ("string", "email", "phone") else None
        value = convert(value, f.type, length, allowed)
        check_field(f, value)
    except ValueError as exc:
        said = exc.args[0] if exc.args and isinstance(exc.args[0], Text) else str(exc)
        raise EffectRefused(msg("%(record)s的%(field)s不能设为“%(value)s”:%(reason)s", record=where, field=_label(f),
                                value=value, reason=said)) from None
    return value


def _create(session: Any, spec: Spec, made: Entity, effect: Effect, lookup: Callable[[str], Any]) -> Any:
    """A new record of ``made`` with the effect's mapping, saved (numbered, defaulted, graded, checked)."""
    record = _models()[made.name]()
    label = _label(made)
    for name, text in effect.mapping:
        f = made.field(name)
        assert f is not None
        value = _value(spec, f, text, lookup, label)
        setattr(record, f.name, value)
    session.add(record)
    _flush(session, label)
    if not visible(made.name, type(record), record.id):  # every record touched within the person's scope, the new one too
        raise EffectRefused(msg("%(record)s不在您的数据范围内", record=f"{label} {title_of(made, record)}"))
    return record


def _set(session: Any, spec: Spec, entity: Entity, obj: Any, effect: Effect, lookup: Callable[[str], Any]) -> dict[str, Any]:
    """Set a field of the linked record (or of ``obj`` itself) and save it."""
    target_entity, target = entity, obj
    if effect.link:
        link = entity.field(effect.link)
        assert link is not None and link.type == "link"
        target_entity = spec.entity(link.link)  # type: ignore[assignment]
        target = getattr(obj, link.name, None)
        if target is None:  # said in words: which link is empty, which of its fields the step would set
            written = target_entity.field(effect.field)
            raise EffectRefused(msg("%(link)s为空,无法设置其%(field)s", link=_label(link), field=_label(written) if written else effect.field))
        if not visible(link.link, type(target), target.id):
            raise EffectRefused(msg("%(record)s不在您的数据范围内", record=f"{_label(target_entity)} {title_of(target_entity, target)}"))
    f = target_entity.field(effect.field)
    assert f is not None
    where = f"{_label(target_entity)} {title_of(target_entity, target)}"
    value = _value(spec, f, effect.value, lookup, where)
    if f.type == "user" and value is not None:
        setattr(target, f.column, getattr(value, "id", value))
    else:
        setattr(target, f.name, value)
    if target is not obj:
        _flush(session, where)
    shown = title_of(spec.entity(f.link), value) if f.type == "link" and value is not None else (  # type: ignore[arg-type]
        _person(value) if f.type == "user" else value)
    return {"kind": "set", "entity": target_entity.name, "id": target.id, "own": target is obj, "title": title_of(target_entity, target),
            "field": f.name,
            "value": shown if shown is None or isinstance(shown, bool | int | str) else str(shown)}


def _label(e: Entity | Field) -> str:
    from app.web.i18n import pick

    return pick(e.label, e.label_en)


def _person(user: Any) -> str | None:
    from app.access.accounts import display_name

    return None if user is None else display_name(user)


def _flush(session: Any, where: str) -> None:
    """Save what an effect changed, its refusal said as the effect's, naming the record."""
    try:
        session.flush()
    except RuleViolation as exc:
        reasons = [m for found in exc.errors.values() for m in found]
        said = Joined(*[part for i, m in enumerate(reasons) for part in ((";", m) if i else (m,))])
        raise EffectRefused(msg("%(record)s:%(reason)s", record=where, reason=said)) from None
    except sa.exc.IntegrityError:
        raise EffectRefused(msg("%(record)s:与已有记录冲突(唯一值重复或关联无效)", record=where)) from None


def said(spec: Spec, done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a step's effects did, as the history says it in the reader's language, each with the
    address of the record it touched (``url``, None for the record itself or one without a screen):
    ``客户档案 KH-202612-0001 华诚机械:客户状态 → 已冻结``, ``新建客户档案 KH-202612-0002 华诚机械``, and
    for the record's own fields ``客户 → KH-202612-0002 华诚机械``."""
    from app.web.i18n import choice_text, pick

    out = []
    for d in done:
        e = spec.entity(str(d.get("entity", "")))
        if e is None:
            continue
        name, url = pick(e.label, e.label_en), None if d.get("own") else _show_url(e, d.get("id"))
        if d.get("kind") == "create":
            out.append({"text": msg("新建%(entity)s %(title)s", entity=name, title=d.get("title", "")).localized(), "url": url})
            continue
        f = e.field(str(d.get("field", "")))
        if f is None:
            continue
        value = d.get("value")
        shown = choice_text(spec, f, value) if f.type == "choice" else ("—" if value in (None, "") else value)
        if d.get("own"):
            text = msg("%(field)s → %(value)s", field=pick(f.label, f.label_en), value=shown).localized()
        else:
            text = msg("%(entity)s %(title)s:%(field)s → %(value)s", entity=name, title=d.get("title", ""),
                       field=pick(f.label, f.label_en), value=shown).localized()
        out.append({"text": text, "url": url})
    return out


def _show_url(e: Entity, pk: Any) -> str | None:
    """The record page of record ``pk`` of ``e`` (None without one)."""
    from flask import url_for
    from werkzeug.routing import BuildError

    try:
        return url_for(f"{e.class_name}View.show", pk=pk) if pk is not None else None
    except BuildError:
        return None
