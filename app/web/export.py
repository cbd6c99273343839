"""A list as an .xlsx (the viewer's row scope and hidden fields applied), from a screen or from
``crm export``, and which fields an import template offers."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from flask import current_app, g, send_file

from app.access.scope import hidden_fields
from app.io import excel
from app.record import audit
from app.record.grading import graded_fields, reason_fields
from app.spec.model import Field
from app.web.fields import _entity, crm_spec
from app.web.ruletext import reason_text


def _export_fields(entity_name: str, user: Any) -> list[Field]:
    """The fields an export for ``user`` writes: none hidden from them, nor a grade's reason quoting a hidden value."""
    e = _entity(entity_name)
    hidden = hidden_fields(crm_spec(), e, user, current_app.extensions["crm"].admin_role)
    hidden |= {g.reason_field for g in graded_fields(crm_spec(), e) if g.reason_field and g.names() & hidden}
    return [f for f in e.fields if f.name not in hidden]


def _required_columns(entity_name: str) -> list[Field]:
    """The columns the signed-in user's import cannot do without (the owner, defaults, numbers and grades aside)."""
    from app.io.importcolumns import required_columns

    return required_columns(crm_spec(), _entity(entity_name), g.user, current_app.extensions["crm"].admin_role)


def _import_fields(entity_name: str) -> list[Field]:
    """The columns the signed-in user's import may fill (the same rule as the importer's)."""
    from app.io.importcolumns import importable_fields

    return importable_fields(crm_spec(), _entity(entity_name), g.user, current_app.extensions["crm"].admin_role)


def _xlsx(buffer: io.BytesIO, filename: str) -> Any:
    buffer.seek(0)
    return send_file(buffer, as_attachment=True, download_name=filename,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _export(session: Any, entity_name: str, records: Iterable[Any], target: Any, user: Any) -> int:
    """The export of ``records`` for ``user``; an entity with confidential (encrypted) fields puts
    every record exported on record as read by them, as opening it would."""
    e, fields = _entity(entity_name), _export_fields(entity_name, user)
    spec = crm_spec()
    hidden = hidden_fields(spec, e, user, current_app.extensions["crm"].admin_role)
    # a grade's reason as the screens show it to this reader: the rule in words, or whole
    reworded = {name: (lambda v: reason_text(spec, e, v, hidden, user)) for name in reason_fields(spec, e)}
    if not any(f.encrypted for f in fields):
        return excel.export_rows(spec, e, fields, records, target, reworded)
    ids: list[int] = []

    def noted() -> Iterator[Any]:
        for obj in records:
            ids.append(obj.id)
            yield obj

    n = excel.export_rows(spec, e, fields, noted(), target, reworded)
    audit.record_many(session, e.name, ids, "read", {"export": n}, user_id=getattr(user, "id", None))
    session.commit()
    return n


def export_entity(app: Any, entity_name: str, path: Path, user: Any) -> int:
    """Everything of an entity ``user`` may see, as .xlsx (the CLI's export; in an application context)."""
    crm = app.extensions["crm"]
    model = crm.generated.models.MODELS[entity_name]
    from app.access.scope import scope_clause

    clause = scope_clause(crm.spec, _entity(entity_name), model, user, crm.admin_role)
    query = crm.db.session.query(model).order_by(model.id)
    if clause is not None:
        query = query.filter(clause)
    return _export(crm.db.session, entity_name, query.yield_per(2000), path, user)
