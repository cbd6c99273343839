"""Screens of the audit trail, read-only: a record's full history (paged, exportable) for anyone who
may read the record, and the administrators' audit log (审计日志) — every row, filtered by entity,
record, user, action and dates, newest first, exportable. Values of fields hidden from the viewer's
roles are withheld exactly as on the record page. There is no route that writes, edits or deletes
an audit row."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, g, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access

from app.access.accounts import display_name
from app.access.scope import hidden_fields, scope_clause, user_scope
from app.messages import localized, msg
from app.record import audit
from app.record.grading import reason_fields
from app.spec.model import Field
from app.web.adminlabels import where_label
from app.web.i18n import L, choice_text, pick, yes_no
from app.web.linkfield import title_column
from app.web.ruletext import reason_text

PAGE_SIZE = 50
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Describer:
    """How one viewer sees audit rows: entity and field labels, values of withheld fields hidden,
    and the others as the record page shows them — a choice's label, yes/no, a linked record's
    title, a person's name (looked up once per page of rows, not per value)."""

    CHUNK = 500

    def __init__(self, user: Any) -> None:
        crm = current_app.extensions["crm"]
        self.spec, self.admin_role, self.user = crm.spec, crm.admin_role, user
        self.models = crm.generated.models.MODELS
        self.session = crm.db.session
        self._seen: dict[str, tuple[str, set[str] | None, dict[str, str], dict[str, Field]]] = {}
        self._names: dict[tuple[str, int], str] = {}  # (entity or "" for people, id) → title

    def entity(self, name: str) -> tuple[str, set[str] | None, dict[str, str], dict[str, Field]]:
        if name not in self._seen:
            e = self.spec.entity(name)
            if e is None:  # an entity the workbook no longer has: only administrators see its values
                admin = self.admin_role in {r.name for r in getattr(self.user, "roles", []) or []}
                self._seen[name] = (name, set() if admin else None, {}, {})
            else:
                labels = {f.name: pick(f.label, f.label_en) for f in e.fields}
                self._seen[name] = (pick(e.label, e.label_en), hidden_fields(self.spec, e, self.user, self.admin_role), labels,
                                    {f.name: f for f in e.fields})
        return self._seen[name]

    def __call__(self, row: dict[str, Any]) -> tuple[str, list[tuple[str, Any, Any]]]:
        label, hidden, labels, fields = self.entity(row["entity"])
        e = self.spec.entity(row["entity"]) if hidden is not None else None
        reasons = reason_fields(self.spec, e) if e is not None else set()

        def show(name: str, value: Any) -> Any:
            if name in reasons and e is not None:  # a grade's reason: in words, or whole but for hidden values
                value = reason_text(self.spec, e, value, hidden or set(), self.user)
            return self.present(fields.get(name), value)

        return label, audit.visible_changes(row["changes"], hidden, labels, show)

    def present(self, f: Field | None, value: Any) -> Any:
        if f is None or value is None or value == "":
            return value
        if f.type == "choice":
            return choice_text(self.spec, f, value)
        if f.type == "boolean":
            return yes_no(value in (True, 1, "1", "true", "True"))
        if f.is_relation and str(value).isdigit():
            return self._names.get((f.link if f.type == "link" else "", int(value)), f"#{value}")
        return value

    def _look_up(self, rows: list[dict[str, Any]]) -> None:
        """The titles and names the changes of ``rows`` refer to, one query per linked entity."""
        wanted: dict[str, set[int]] = {}
        for row in rows:
            _label, hidden, _labels, fields = self.entity(row["entity"])
            for name, pair in (row["changes"] or {}).items():
                f = fields.get(name[:-3] if name.endswith("_id") else name)
                if f is None or not f.is_relation or hidden is None or f.name in hidden:
                    continue
                for value in pair if isinstance(pair, list | tuple) else (pair,):
                    key = f.link if f.type == "link" else ""
                    if value is not None and str(value).isdigit() and (key, int(value)) not in self._names:
                        wanted.setdefault(key, set()).add(int(value))
        for key, ids in wanted.items():
            if key == "":
                from flask_appbuilder.security.sqla.models import User

                for user in self.session.execute(sa.select(User).where(User.id.in_(ids))).scalars():
                    self._names["", user.id] = display_name(user)
            elif key in self.models:
                model = self.models[key]
                for rid, title in self.session.execute(sa.select(model.id, title_column(model)).where(model.id.in_(ids))):
                    self._names[key, rid] = f"{title} (#{rid})" if title not in (None, "") else f"#{rid}"

    def rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self._look_up(rows)
        out = []
        for row in rows:
            label, changes = self(row)
            out.append({**row, "entity_label": label, "action_label": audit.action_label(row["action"]), "shown": changes,
                        "where_label": _where(row)})
        return out

    def stream(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """``rows`` as they come (an export), their references looked up a chunk at a time."""
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == self.CHUNK:
                self._look_up(chunk)
                yield from self._placed(chunk)
                chunk = []
        self._look_up(chunk)
        yield from self._placed(chunk)

    @staticmethod
    def _placed(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Rows with where their change came from in words (导入, not ``import``)."""
        for row in rows:
            yield {**row, "where_label": _where(row)}


def _xlsx(buffer: io.BytesIO, filename: str) -> Any:
    buffer.seek(0)
    return send_file(buffer, as_attachment=True, download_name=filename, mimetype=XLSX)


def _page() -> int:
    return max(0, request.args.get("page", 0, type=int) or 0)


# -- a record's history (routes of every entity's screen, CrmModelView.history*) ----------------
def _readable(view: Any, pk: Any) -> Any:
    """The record if the signed-in user may read it (row scope): 404 otherwise, nothing shown."""
    item = view.datamodel.get(pk, view._base_filters)
    if item is None:
        abort(404)
    e = current_app.extensions["crm"].spec.entity(view.entity)
    if any(f.encrypted for f in e.fields):  # its history holds confidential values: a read on record
        audit.record_read(view.datamodel.session, e.name, item.id)
    return item


def record_history(view: Any, pk: Any) -> Any:
    item = _readable(view, pk)
    session = view.datamodel.session
    query = audit.AuditQuery(entity=view.entity, record_id=item.id)
    page, total = _page(), audit.count(session, query)
    rows = Describer(g.user).rows(audit.search(session, query, page, PAGE_SIZE))
    e = current_app.extensions["crm"].spec.entity(view.entity)
    return view.render_template("crm/history.html", title=f"{pick('修改历史', 'History')} — {pick(e.label, e.label_en)} #{item.id}",
                                rows=rows, page=page, page_size=PAGE_SIZE, total=total,
                                record_url=url_for(f"{view.endpoint}.show", pk=item.id),
                                export_url=url_for(f"{view.endpoint}.history_export", pk=item.id),
                                page_url=lambda p: url_for(f"{view.endpoint}.history", pk=item.id, page=p))


def record_history_export(view: Any, pk: Any) -> Any:
    item = _readable(view, pk)
    buffer = io.BytesIO()
    e = current_app.extensions["crm"].spec.entity(view.entity)
    rows = audit.stream(view.datamodel.session, audit.AuditQuery(entity=view.entity, record_id=item.id))
    describe = Describer(g.user)
    audit.export_xlsx(describe.stream(rows), buffer, describe, title=f"{e.label}-{item.id}")
    return _xlsx(buffer, f"{e.label}-{item.id}-修改历史.xlsx")


# -- the administrators' audit log ------------------------------------------------------------
def parse_filters(args: Any, entities: set[str]) -> tuple[audit.AuditQuery, dict[str, str]]:
    """The audit query from request arguments, and a problem (a catalogue message) per bad filter."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    entity = (args.get("entity") or "").strip()
    if entity and entity not in entities:
        problems["entity"] = msg("未知的实体 %(entity)s", entity=entity)
    values["entity"] = entity or None
    for key in ("record_id", "user_id"):
        raw = (args.get(key) or "").strip()
        if raw and not raw.isdigit():
            problems[key] = (msg("记录编号须为数字:%(value)s", value=raw) if key == "record_id"
                             else msg("用户须为数字:%(value)s", value=raw))
        values[key] = int(raw) if raw.isdigit() else None
    action = (args.get("action") or "").strip()
    if action and action not in audit.ACTIONS:
        problems["action"] = msg("未知的操作 %(action)s", action=action)
    values["action"] = action or None
    for key in ("since", "until"):
        raw = (args.get(key) or "").strip()
        try:
            values[key] = dt.date.fromisoformat(raw) if raw else None
        except ValueError:
            problems[key] = (msg("开始日期格式应为 2026-11-22:%(value)s", value=raw) if key == "since"
                             else msg("结束日期格式应为 2026-11-22:%(value)s", value=raw))
            values[key] = None
    if values["since"] and values["until"] and values["since"] > values["until"]:
        problems["until"] = msg("结束日期早于开始日期")
    return audit.AuditQuery(**values), problems


def scoped(query: audit.AuditQuery, user: Any) -> audit.AuditQuery:
    """The query limited to rows of records the viewer may see: administrators see every row;
    anyone else granted the log sees, per entity, what their row scope shows on its list (rows of
    deleted records or of entities the workbook no longer has are for administrators only)."""
    crm = current_app.extensions["crm"]
    if crm.admin_role in {r.name for r in getattr(user, "roles", []) or []}:
        return query
    t = audit.AuditRow.__table__
    models = crm.generated.models.MODELS
    allowed = []
    for e in crm.spec.entities:
        if user_scope(crm.spec, e, user, crm.admin_role) == "none":
            continue
        model = models[e.name]
        clause = scope_clause(crm.spec, e, model, user, crm.admin_role)
        rows = sa.select(model.id) if clause is None else sa.select(model.id).where(clause)
        allowed.append(sa.and_(t.c.entity == e.name, t.c.record_id.in_(rows)))
    return dataclasses.replace(query, visible=sa.or_(*allowed) if allowed else sa.false())


class AuditLogView(BaseView):
    """审计日志: the audit rows for those granted it (the administrator role has every right; a role
    granted it in the admin sees only rows of records its row scope shows)."""

    route_base = "/auditlog"
    default_view = "index"
    class_permission_name = "AuditLog"
    base_permissions = ["can_list", "can_export"]
    method_permission_name = {"index": "list", "export": "export"}

    def _entities(self) -> list[tuple[str, str]]:
        return [(e.name, pick(e.label, e.label_en)) for e in current_app.extensions["crm"].spec.entities]

    def _users(self) -> list[Any]:
        from flask_appbuilder.security.sqla.models import User

        return list(self.appbuilder.session.query(User).order_by(User.username))

    @expose("/")
    @has_access
    def index(self) -> Any:
        entities = self._entities()
        query, problems = parse_filters(request.args, {name for name, _ in entities})
        query = scoped(query, g.user)
        session = self.appbuilder.session
        page, total, rows = _page(), 0, []
        if not problems:
            total = audit.count(session, query)
            rows = Describer(g.user).rows(audit.search(session, query, page, PAGE_SIZE))
        args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page" and v}
        return self.render_template("crm/auditlog.html", title=pick("审计日志", "Audit log"), rows=rows, page=page,
                                    page_size=PAGE_SIZE, total=total, problems={k: localized(p) for k, p in problems.items()}, args=args, entities=entities,
                                    users=self._users(), actions=[(k, audit.action_label(k)) for k in audit.ACTIONS],
                                    export_url=url_for("AuditLogView.export", **args),
                                    page_url=lambda p: url_for("AuditLogView.index", **args, page=p))

    @expose("/export/")
    @has_access
    def export(self) -> Any:
        entities = {e.name for e in current_app.extensions["crm"].spec.entities}
        query, problems = parse_filters(request.args, entities)
        if problems:
            abort(400, "; ".join(localized(p) for p in problems.values()))
        query = scoped(query, g.user)
        buffer = io.BytesIO()
        describe = Describer(g.user)
        n = audit.export_xlsx(describe.stream(audit.stream(self.appbuilder.session, query)), buffer, describe)
        return _xlsx(buffer, f"审计日志-{n}.xlsx")


def register_audit_log(appbuilder: Any) -> None:
    """The menu entry under the security menu, seen only by roles holding its permission."""
    appbuilder.add_view(AuditLogView, "auditlog", label=L("审计日志", "Audit log"), icon="fa-history", category="Security")


def _where(row: dict[str, Any]) -> str:
    """Where a change came from, and the workflow step whose effect it was (its record and action)."""
    place = where_label(row.get("remote_addr"))
    return f"{place} · {row['step']}" if row.get("step") else place
