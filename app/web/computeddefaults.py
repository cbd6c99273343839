"""The add form shows a computed default filled in once its inputs are known (``fields.default``
written as an expression: ``received_on + 30 days``): crm/form.js asks this endpoint with the
values typed so far and fills the fields still blank. The save works the same value out again
(:func:`app.record.rules.fill_computed_defaults`), so the page's value is a preview, never trusted."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, request, url_for

from app.record.convert import convert
from app.record.rules import fill_computed_defaults
from app.spec.expr import parse
from app.spec.model import Entity, Field

bp = Blueprint("crm_defaults", __name__, url_prefix="/crm/defaults")


def inputs_of(entity: Entity) -> list[str]:
    """The fields of ``entity`` its computed defaults read (what the form sends when they change)."""
    names: dict[str, None] = {}
    for f in entity.fields:
        if f.default_formula:
            for path in parse(f.default_formula).names:
                head = path.split(".")[0]
                if entity.field(head) is not None:
                    names[head] = None
    return list(names)


def form_settings(entity: Entity) -> dict[str, Any] | None:
    """What the add form's script needs: where to ask, which fields it fills, which it watches."""
    targets = [f.name for f in entity.fields if f.default_formula]
    if not targets:
        return None
    return {"url": url_for("crm_defaults.preview", entity=entity.name), "fields": targets, "inputs": inputs_of(entity)}


def _may_add(entity: Entity) -> bool:
    crm = current_app.extensions["crm"]
    for name, view, *_rest in crm.generated.views.REGISTRY:
        if name == entity.name:
            return bool(crm.appbuilder.sm.has_access("can_add", getattr(view, "class_permission_name", None) or name))
    return False


def _value(f: Field, raw: str) -> Any:
    try:
        return convert(raw, f.type)
    except (ValueError, ArithmeticError):
        return None


@bp.route("/<entity>")
def preview(entity: str) -> Any:
    """``{field: value}`` of the computed defaults for the values given (``?received_on=2026-03-02``);
    a field whose inputs are blank or unreadable is left out."""
    if not getattr(getattr(g, "user", None), "is_authenticated", False):
        abort(401)
    spec = current_app.extensions["crm"].spec
    e = spec.entity(entity)
    if e is None or not _may_add(e):
        abort(404)
    values: dict[str, Any] = {}
    for name in inputs_of(e):
        f = e.field(name)
        if f is not None and not f.is_relation and name in request.args:
            values[name] = _value(f, request.args[name])
    filled: dict[str, Any] = {}

    def put(f: Field, value: Any) -> None:
        filled[f.name] = values[f.name] = value

    fill_computed_defaults(spec, e, values.get, put, dt.datetime.now())
    response = jsonify({k: v.isoformat() if isinstance(v, dt.date) else v for k, v in filled.items()})
    response.headers["Cache-Control"] = "no-store"
    return response


def register_computed_defaults(app: Any) -> None:
    app.register_blueprint(bp)
