"""The record page's workflow steps (:mod:`app.record.steps`) as buttons and dialogs: what each
dialog's inputs offer and hold, and the page's POST that takes a step with its values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import field as member
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, flash, g, jsonify, redirect, request, url_for

from app.access.scope import scoped_select
from app.messages import localized, msg
from app.record import steps, versions, workflow
from app.record.rules import RuleViolation
from app.spec.model import Entity, Field, Spec
from app.web import linkfield
from app.web.dbtuning import is_database_busy
from app.web.fields import _entity, crm_spec
from app.web.i18n import pick

VALUE_PREFIX = "value-"  # a dialog's input of field f is named value-f


@dataclass
class Input:
    """One input of a step's dialog."""

    field: Field
    label: str
    kind: str  # text, textarea, number, checkbox, date, datetime-local, select, lookup
    value: Any = ""
    options: list[tuple[str, str]] = member(default_factory=list)  # (value, text) of a select
    lookup_url: str = ""  # a link over a big table: asked as the person types
    step: str = ""  # a number input's step

    @property
    def name(self) -> str:
        return VALUE_PREFIX + self.field.name


def _text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "datetime-local" and isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    if kind == "date" and isinstance(value, dt.date):
        return value.isoformat()
    return str(getattr(value, "id", value))


def inputs(view: Any, spec: Spec, entity: Entity, item: Any, step: steps.Step, now: dt.datetime) -> list[Input]:
    """The inputs of ``step``'s dialog, holding the record's values; an empty date or time is
    offered as today or now (the moment a dispatch or an arrival is usually recorded)."""
    session, user, admin_role = view.datamodel.session, g.user, current_app.extensions["crm"].admin_role
    out = []
    for f in step.asks:
        value = getattr(item, f.name, None)
        label = pick(f.label, f.label_en)
        if f.type == "boolean":
            out.append(Input(f, label, "checkbox", bool(value)))
        elif f.type in ("date", "datetime"):
            kind = "date" if f.type == "date" else "datetime-local"
            out.append(Input(f, label, kind, _text(value if value is not None else (now.date() if f.type == "date" else now), kind)))
        elif f.type == "choice":
            options = [(c.value, pick(c.label, c.label_en)) for c in spec.choices.get(f.choices, ())]
            out.append(Input(f, label, "select", value or "", options))
        elif f.type == "user":
            people = steps.people(session, spec, entity, f, user, admin_role)
            out.append(Input(f, label, "select", _text(value, ""), [(str(u.id), str(u)) for u in people]))
        elif f.type == "link":
            out.append(_link_input(view, f, label, value))
        elif f.type in ("integer", "decimal", "money"):
            out.append(Input(f, label, "number", _text(value, ""), step="1" if f.type == "integer" else "0.01" if f.type == "money" else "any"))
        else:
            out.append(Input(f, label, "textarea" if f.type == "text" else "text", _text(value, "")))
    return out


def _link_input(view: Any, f: Field, label: str, value: Any) -> Input:
    """A link: every record the person may choose while the linked table is small, else the
    current one and a lookup as they type (the form's own lookup endpoint)."""
    model = view.datamodel.get_related_model(f.name)
    if linkfield.is_big(model, linkfield.threshold()):
        current = [(str(value.id), str(value))] if value is not None else []
        return Input(f, label, "lookup", _text(value, ""), current, url_for(f"{view.endpoint}.lookup", field=f.name))
    rows = view.datamodel.session.execute(scoped_select(f.link, model).order_by(model.id.desc())).scalars()
    return Input(f, label, "select", _text(value, ""), [(str(r.id), str(r)) for r in rows])


@dataclass
class StepView:
    """A step on the record page: its button, and its dialog's inputs."""

    step: steps.Step
    inputs: list[Input]
    to_label: str  # the state it leads to, as people read it


def panel(view: Any, spec: Spec, entity: Entity, item: Any) -> list[StepView]:
    """The record's steps for the signed-in person, each with its dialog's inputs."""
    now = dt.datetime.now().replace(second=0, microsecond=0)
    found = steps.steps(spec, entity, item, g.user, current_app.extensions["crm"].admin_role, now)
    return [StepView(s, inputs(view, spec, entity, item, s, now) if s.dialog else [],
                     workflow.state_label(spec, entity, s.transition.state_field, s.transition.target)) for s in found]


def posted_values() -> dict[str, Any]:
    """The dialog's values: each ``value-<field>`` input, its last value (a box's hidden "no" comes first)."""
    return {k[len(VALUE_PREFIX):]: request.form.getlist(k)[-1] for k in request.form if k.startswith(VALUE_PREFIX)}


def take(view: Any, pk: Any) -> Any:
    """The record page's POST: take a step with its dialog's values. A dialog (``fetch``, asking
    for JSON) gets the refusal to show in place, field by field; a plain post a flash and the page."""
    spec, e = crm_spec(), _entity(view.entity)
    wants_json = request.accept_mimetypes.best == "application/json"
    back = url_for(f"{view.endpoint}.show", pk=pk)
    item = view.datamodel.get(pk, view._base_filters)  # only a record the person may see
    if item is None:
        abort(404)
    values = posted_values()
    try:
        row = steps.take(view.datamodel.session, spec, e, item, request.form.get("action", ""), g.user,
                         current_app.extensions["crm"].admin_role, values, request.form.get("comment", ""),
                         request.form.get("version") or None)
    except workflow.WorkflowError as exc:
        return refuse(wants_json, exc.status, localized(exc.message), {}, back)
    except RuleViolation as exc:
        errors = {k: [localized(m) for m in v] for k, v in exc.errors.items()}
        return refuse(wants_json, 422, "; ".join(m for v in errors.values() for m in v), errors, back)
    except versions.StaleRecord as exc:  # another action or save on this record came first: nothing done
        return refuse(wants_json, 409, view._conflict_message(exc.record_id, exc.read), {}, back)
    except sa.exc.OperationalError as exc:
        view.datamodel.session.rollback()
        if not is_database_busy(exc):
            raise
        return refuse(wants_json, 503, msg("数据库正忙,没有保存任何更改。请稍等片刻后重试。").localized(), {}, back)
    field_name, action = str(row.field), str(row.action)  # both NOT NULL
    said = workflow.action_names(spec, e).get((field_name, row.from_state, row.to_state, action), action)
    flash(f"{said}:{workflow.state_label(spec, e, field_name, row.from_state)} → "
          f"{workflow.state_label(spec, e, field_name, row.to_state)}", "success")
    return jsonify(ok=True, redirect=back) if wants_json else redirect(back)


def refuse(wants_json: bool, status: int, message: str, errors: dict[str, list[str]], back: str) -> Any:
    """A step refused, nothing saved: said in the dialog (JSON) or flashed on the record page."""
    from app.web.errors import error_page

    if wants_json:
        return jsonify(ok=False, message=message, errors=errors), status
    if status == 404:  # no such action or record (a forged or garbled post): said, not flashed
        return error_page(404, message)
    flash(message, "danger")
    if status == 403:  # not this person's action: refused, nothing changed
        abort(403)
    return redirect(back)
