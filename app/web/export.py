"""A list as an .xlsx (the viewer's row scope and hidden fields applied), from a screen or from
``crm export``, and which fields an import template offers."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from flask import current_app, g, send_file

from app.access.scope import current_hidden
from app.io import excel
from app.record import audit
from app.record.grading import graded_fields
from app.spec.model import Field
from app.web.fields import _entity, crm_spec


def _export_fields(entity_name: str) -> list[Field]:
    """The fields an export writes: none hidden, nor a grade's reason quoting a hidden value."""
    hidden = current_hidden(entity_name)
    e = _entity(entity_name)
    hidden |= {g.reason_field for g in graded_fields(crm_spec(), e) if g.reason_field and g.names() & hidden}
    return [f for f in e.fields if f.name not in hidden]


def _import_fields(entity_name: str) -> list[Field]:
    """The columns the signed-in user's import may fill (the same rule as the importer's)."""
    from app.io.importcolumns import importable_fields

    return importable_fields(crm_spec(), _entity(entity_name), g.user, current_app.extensions["crm"].admin_role)


def _xlsx(buffer: io.BytesIO, filename: str) -> Any:
    buffer.seek(0)
    return send_file(buffer, as_attachment=True, download_name=filename,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _export(session: Any, entity_name: str, records: Iterable[Any], target: Any) -> int:
    """The export of ``records``; an entity with confidential (encrypted) fields puts every record
    exported on record as read, as opening it would."""
    e, fields = _entity(entity_name), _export_fields(entity_name)
    if not any(f.encrypted for f in fields):
        return excel.export_rows(crm_spec(), e, fields, records, target)
    ids: list[int] = []

    def noted() -> Iterator[Any]:
        for obj in records:
            ids.append(obj.id)
            yield obj

    n = excel.export_rows(crm_spec(), e, fields, noted(), target)
    audit.record_many(session, e.name, ids, "read", {"export": n})
    session.commit()
    return n


def export_entity(app: Any, entity_name: str, path: Path) -> int:
    """Everything of an entity the signed-in user (``g.user``) may see, as .xlsx (the CLI's export)."""
    crm = app.extensions["crm"]
    model = crm.generated.models.MODELS[entity_name]
    from app.access.scope import scope_clause

    clause = scope_clause(crm.spec, _entity(entity_name), model, g.user, crm.admin_role)
    query = crm.db.session.query(model).order_by(model.id)
    if clause is not None:
        query = query.filter(clause)
    return _export(crm.db.session, entity_name, query.yield_per(2000), path)
