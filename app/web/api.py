"""The REST API of every entity at ``/api/v1/<entity>/``: the screens' permissions, rules, row
scope and hidden fields, each request's JSON checked against a schema built once."""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

import jsonschema
import sqlalchemy as sa
from flask import current_app, g, request
from flask_appbuilder import ModelRestApi, expose
from flask_appbuilder.api import protect
from flask_appbuilder.api.convert import Model2SchemaConverter
from flask_appbuilder.exceptions import DatabaseException
from flask_appbuilder.models.sqla.interface import SQLAInterface
from marshmallow import validate as mv
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, OperationalError

from app.access import ownership
from app.access.scope import ScopeFilter, current_hidden, current_locked
from app.messages import msg
from app.record import audit, steps, uniques, versions, workflow
from app.record.convert import INTEGER_LIMIT
from app.record.grading import mask_reason, reason_fields
from app.record.rules import RuleViolation
from app.web import uploads
from app.web.dbtuning import is_database_busy
from app.web.fields import LENGTH_TYPES, _entity, _no_such_id, api_validators, crm_spec
from app.web.i18n import pick
from app.web.views import API_PERMISSIONS, ENTITY_PERMISSIONS, MAX_PAGE_SIZE, still_linked


def _rule_errors(exc: BaseException) -> dict[str, list[str]] | None:
    while exc is not None:
        if isinstance(exc, RuleViolation):
            return exc.errors
        exc = exc.__cause__  # type: ignore[assignment]
    return None


class _CheckedSchemas:
    """``jsonschema`` as FAB's ``@rison`` decorator uses it (``validate``, ``ValidationError``),
    with each schema checked against its metaschema once instead of on every request: FAB's
    schemas are fixed, and checking them again cost 40% of a REST list request. The instance is
    validated exactly as ``jsonschema.validate`` does (the best-matching error is raised)."""

    ValidationError = jsonschema.ValidationError

    def __init__(self) -> None:
        self._validators: dict[int, tuple[Any, Any]] = {}

    def validate(self, instance: Any, schema: Any) -> None:
        known = self._validators.get(id(schema))
        if known is None or known[0] is not schema:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            known = self._validators[id(schema)] = (schema, cls(schema))
        error = jsonschema.exceptions.best_match(known[1].iter_errors(instance))
        if error is not None:
            raise error


def install_schema_cache() -> None:
    """Give FAB's REST decorators the schema checker above."""
    import flask_appbuilder.api as fab_api

    if not isinstance(fab_api.jsonschema, _CheckedSchemas):
        fab_api.jsonschema = _CheckedSchemas()


USER_LINK_COLUMNS = ("id", "first_name", "last_name")  # a linked person: who, never the account


class _PerThread:
    """A schema attribute that each thread (each request) has its own value of."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def _local(self, schema: Any) -> threading.local:
        local = schema.__dict__.get("_crm_per_thread")
        return local if local is not None else schema.__dict__.setdefault("_crm_per_thread", threading.local())

    def __get__(self, schema: Any, owner: type | None = None) -> Any:
        return self if schema is None else getattr(self._local(schema), self.name, None)

    def __set__(self, schema: Any, value: Any) -> None:
        setattr(self._local(schema), self.name, value)


class PerRequestLoad:
    """marshmallow-sqlalchemy keeps what it is loading on the schema: ``load(data, instance=item)``
    sets ``self.instance`` and its ``post_load`` reads it back. FAB makes one schema per API and
    every request shares it, so two PUTs at once crossed: one wrote its values onto the other's
    record (two "saved" on one version), or found no instance and inserted a new row. Each request
    keeps its own."""

    instance = _PerThread()
    _session = _PerThread()
    _transient = _PerThread()


class CrmSchemaConverter(Model2SchemaConverter):
    """FAB's answer schemas with every link cut down to the linked record's id and title (a person:
    id and name). FAB would serialise the whole linked row: a user's password hash and e-mail, or a
    linked record's fields the reader's role may not see. Applies to the schemas FAB makes for the
    ``columns`` a client asks for, too. Loading is safe for requests at once (:class:`PerRequestLoad`)."""

    def convert(self, columns: list[str], model: Any = None, nested: bool = True, parent_schema_name: str | None = None) -> Any:
        if nested:
            columns = _safe_columns(model or self.datamodel.obj, columns)
        return super().convert(columns, model=model, nested=nested, parent_schema_name=parent_schema_name)

    def _meta_schema_factory(self, columns: list[str], model: Any, class_mixin: Any, parent_schema_name: str | None = None) -> Any:
        made = super()._meta_schema_factory(columns, model, class_mixin, parent_schema_name=parent_schema_name)
        return type(made.__name__, (PerRequestLoad, made), {"__module__": made.__module__, "__qualname__": made.__qualname__})


def _safe_columns(model: Any, columns: list[str]) -> list[str]:
    datamodel = SQLAInterface(model)
    safe: list[str] = []
    for column in columns:
        name, _, child = column.partition(".")
        if not datamodel.is_relation(name):
            safe.append(column)
            continue
        allowed = _link_columns(datamodel.get_related_model(name))
        safe += [f"{name}.{c}" for c in allowed if not child or c == child]
    return list(dict.fromkeys(safe))


def _link_columns(related: Any) -> tuple[str, ...]:
    table = getattr(related, "__tablename__", "")
    target = crm_spec().entity(table)
    if target is None:  # FAB's own tables: the user model
        return USER_LINK_COLUMNS if table == "ab_user" else ("id",)
    return ("id", target.title_field) if target.title_field and target.title_field != "id" else ("id",)


class CrmModelRestApi(ModelRestApi):
    """A generated entity's REST API at ``/api/v1/<entity>/`` sharing the screens' permissions."""

    entity: str = ""
    validators_columns: Any  # FAB's settings (None in its class, filled in its __init__), completed in ours
    add_query_rel_fields: Any
    edit_query_rel_fields: Any
    model2schemaconverter = CrmSchemaConverter
    method_permission_name = {**API_PERMISSIONS, "transitions": "show", "transition": "show", "reassign": "show", "balance": "list"}
    base_permissions = ENTITY_PERMISSIONS
    allow_browser_login = False
    max_page_size = MAX_PAGE_SIZE
    page_size = 25

    def pre_add(self, item: Any) -> None:
        self._plain_values(item)
        self._unique_values(item)
        super().pre_add(item)

    def pre_update(self, item: Any) -> None:
        self._plain_values(item)
        self._unique_values(item)
        read = g.pop("crm_read_version", None)
        if read is not None and read[0] == item.id:  # the UPDATE asks for the version the client read
            versions.based_on(item, read[1])
        super().pre_update(item)

    def _unique_values(self, item: Any) -> None:
        """A unique value another record holds, on its field, in the forms' and the import's words
        (not the database's constraint error, which said less on the field and the same to all)."""
        e = _entity(self.entity)
        values = {f.name: getattr(item, f.name, None) for f in e.fields if f.unique}
        session = self.datamodel.session
        with session.no_autoflush:  # the record being saved is not written to look for others
            found = uniques.clashes(session, crm_spec(), e, self.datamodel.obj, values, item.id,
                                    g.user, current_app.extensions["crm"].admin_role)
        if found:
            raise RuleViolation({name: [said] for name, said in found.items()})

    def _plain_values(self, item: Any) -> None:
        """Values as the database keeps them: an empty link is none (not the id "", which was
        answered as a conflict), and a time sent with its offset (…Z, …+08:00) is that moment in
        the office's time (the process's local time), not its digits with the offset dropped."""
        missing: dict[str, list[str]] = {}
        for f in _entity(self.entity).fields:
            linked = getattr(item, f.name, None) if f.type in ("link", "user") else None
            if linked is not None and not sa_inspect(linked).persistent:
                # marshmallow-sqlalchemy makes a new, empty record of an id it cannot find
                setattr(item, f.name, None)
                if sa_inspect(linked).pending:
                    self.datamodel.session.expunge(linked)
                if getattr(linked, "id", None) not in ("", None):  # "" is none; another id, a record that is not there
                    missing[f.name] = [msg("%(label)s:所选记录不存在", label=pick(f.label, f.label_en))]
            value = getattr(item, f.name, None) if f.type == "datetime" else None
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                setattr(item, f.name, value.astimezone().replace(tzinfo=None))
        if missing:
            raise RuleViolation(missing)

    def __init__(self, **kwargs: Any):
        spec = crm_spec()
        e = _entity(self.entity)
        self.validators_columns = dict(self.validators_columns or {})
        self.base_filters = [["id", ScopeFilter, e.name]]
        # the records _info offers for a link field: only those the user may see, as on the forms
        rel = {f.name: [["id", ScopeFilter, f.link]] for f in e.fields if f.type == "link"}
        self.add_query_rel_fields = {**rel, **(self.add_query_rel_fields or {})}
        self.edit_query_rel_fields = {**rel, **(self.edit_query_rel_fields or {})}
        for f in e.fields:
            checks = api_validators(spec, f, self.datamodel.get_max_length(f.name) if f.type in LENGTH_TYPES else -1)
            if checks:
                self.validators_columns[f.name] = mv.And(*checks)
        super().__init__(**kwargs)

    # -- field secrecy: hidden fields never leave the server, nor can they be written or searched
    def info_headless(self, **kwargs: Any) -> Any:
        """``_info`` with only the fields this user may see among those to filter by, and only
        those they may write among the add and edit columns (as their forms show them)."""
        answer = super().info_headless(**kwargs)
        data = answer.get_json() if answer.status_code == 200 and answer.is_json else None
        if not isinstance(data, dict):
            return answer
        hidden = current_hidden(self.entity)
        for key, right in (("add_columns", "add"), ("edit_columns", "edit")):
            if key in data:
                shut = hidden | current_locked(self.entity, right)
                data[key] = [c for c in data[key] if c.get("name") not in shut]
        if "filters" in data:
            data["filters"] = {k: v for k, v in data["filters"].items() if k.split(".")[0] not in hidden}
        return self.response(200, **data)

    def _get_field_info(self, field: Any, filter_rel_field: dict[str, Any], page: int | None = None,
                        page_size: int | None = None) -> dict[str, Any]:
        info = super()._get_field_info(field, filter_rel_field, page, page_size)
        if not self.description_columns.get(field.name):  # FAB translates "": the catalogue's header
            info["description"] = ""
        return info

    def _strip(self, data: dict[str, Any]) -> None:
        hidden = current_hidden(self.entity)
        linked_hidden = [(f.name, secret) for f in _entity(self.entity).fields
                         if f.type == "link" and (secret := current_hidden(f.link) - {"id"})]
        if not hidden and not linked_hidden:
            return
        reasons = reason_fields(crm_spec(), _entity(self.entity))
        result = data.get("result")
        for row in result if isinstance(result, list) else [result] if isinstance(result, dict) else []:
            for name in hidden:
                row.pop(name, None)
            for name in reasons:
                if name in row:
                    row[name] = mask_reason(row[name], hidden)
            for f, secret in linked_hidden:  # a linked record's title the reader may not see
                if isinstance(row.get(f), dict):
                    for name in secret:
                        row[f].pop(name, None)
        for key in ("label_columns", "description_columns"):
            for name in hidden:
                (data.get(key) or {}).pop(name, None)
        for key in ("list_columns", "show_columns", "order_columns"):
            if isinstance(data.get(key), list):
                data[key] = [c for c in data[key] if c not in hidden]

    def _visible_changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        """An audit row's changes as this reader may see them: no hidden field, reasons masked."""
        hidden = current_hidden(self.entity)
        if not hidden:
            return changes
        reasons = reason_fields(crm_spec(), _entity(self.entity))
        out = {}
        for name, pair in changes.items():
            if audit.field_of(name) in hidden:
                continue
            out[name] = [mask_reason(v, hidden) for v in pair] if name in reasons and isinstance(pair, list | tuple) else pair
        return out

    def pre_get(self, data: dict[str, Any]) -> None:
        self._strip(data)
        e = _entity(self.entity)
        record_id = (data.get("result") or {}).get("id") or data.get("id")
        if any(f.encrypted for f in e.fields) and record_id is not None:  # confidential: log every read
            audit.record_read(self.datamodel.session, e.name, int(record_id))

    def pre_get_list(self, data: dict[str, Any]) -> None:
        self._strip(data)
        info = getattr(g, "crm_count", None)
        if info is not None:  # "count" is capped on big tables: say so, with the planner's estimate
            data.update(count_exact=info.exact, count_estimate=info.estimate)
        result = data.get("result")
        if isinstance(result, list) and result and "id" in result[-1]:
            data["next_after"] = result[-1]["id"]  # ?after=<id> continues by keyset, however deep

    def _touches_hidden(self) -> list[str]:
        hidden = current_hidden(self.entity)
        if not hidden:
            return []
        body = request.get_json(silent=True)
        touched = [k for k in (body or {}) if k in hidden] if isinstance(body, dict) else []
        query = request.args.get("q", "")
        touched += [name for name in hidden if re.search(rf"\b{re.escape(name)}\b", query)]
        return touched

    def get_list_headless(self, **kwargs: Any) -> Any:
        if self._touches_hidden():
            return self.response_400(message=msg("不能按无权查看的字段查询或排序"))
        g.crm_exact_count = request.args.get("exact_count") == "1"
        after = request.args.get("after", type=int)
        g.crm_api_after = after if after is not None and abs(after) <= INTEGER_LIMIT else None
        return super().get_list_headless(**kwargs)

    def _guarded(self, call: Any, right: str | None = None) -> Any:
        """Rule violations and constraint errors become 422 with field messages, never a 500;
        a body writing (``right``: add or edit) a field the user may not see or change is refused whole."""
        body = request.get_json(silent=True)
        locked = current_locked(self.entity, right) if right else set()
        touched = self._touches_hidden() + ([k for k in body if k in locked] if locked and isinstance(body, dict) else [])
        if touched:
            return self.response_422(message={name: [msg("无权修改此字段")] for name in touched})
        entity = _entity(self.entity)
        computed = [k for k in body if (f := entity.field(k)) is not None and f.formula] if right and isinstance(body, dict) else []
        if computed:  # kept by the system from its formula: said so, rather than "unknown field"
            return self.response_422(message={name: [msg("由公式计算,不能填写")] for name in computed})
        try:
            answer = call()
            if answer.status_code in (200, 201) and answer.is_json and isinstance(data := answer.get_json(), dict) and "result" in data:
                self._strip(data)  # a saved record comes back as GET shows it: no hidden field
                return self.response(answer.status_code, **data)
            return answer
        except versions.StaleRecord as exc:  # another save of the version this one was based on came first
            return self._conflict(exc.record_id, exc.read)
        except (RuleViolation, DatabaseException, IntegrityError, OperationalError) as exc:
            self.datamodel.session.rollback()
            if is_database_busy(exc) or is_database_busy(exc.__cause__ or exc):
                return self.response(503, message=msg("数据库正忙,没有保存任何更改。请稍等片刻后重试。"))
            errors = _rule_errors(exc)
            if errors is not None:
                return self.response_422(message=errors)
            if isinstance(exc, IntegrityError) or isinstance(exc.__cause__, IntegrityError):
                return self.response_422(message={"_schema": [msg("与已有记录冲突(唯一值重复或关联无效)")]})
            raise

    def get_headless(self, pk: Any, **kwargs: Any) -> Any:
        if _no_such_id(pk):
            return self.response_404()
        try:
            return super().get_headless(pk, **kwargs)
        except audit.ReadNotRecorded:  # FAB's @safe would make it a 500; the record is not sent
            return self.response(503, message=msg("数据库正忙,这次查看无法登记,记录暂不显示。请稍等片刻后重试。"))

    def delete_headless(self, pk: Any) -> Any:
        if _no_such_id(pk):
            return self.response_404()
        item = self.datamodel.get(pk, self._base_filters)
        linked = still_linked(self.datamodel.session, self.entity, item.id) if item is not None else ""
        if linked:
            return self.response_422(message={"_schema": [linked]})
        try:
            return super().delete_headless(pk)
        except versions.StaleRecord as exc:  # changed by someone else since it was read here
            return self._conflict(exc.record_id, exc.read)

    def post_headless(self) -> Any:
        refused = uploads.api_refusals(_entity(self.entity), request.get_json(silent=True), None)
        if refused:
            return self.response_422(message=refused)
        return self._guarded(super().post_headless, "add")

    @expose("/<int:pk>/owner", methods=["PUT"])
    @protect()
    def reassign(self, pk: int) -> Any:
        """Give a record to another owner: ``{"owner": user id}`` (managers only)."""
        spec, e = crm_spec(), _entity(self.entity)
        item = self.datamodel.get(pk, self._base_filters)
        if item is None or not e.owner_field:
            return self.response_404()
        if not ownership.can_reassign(spec, e, g.user, current_app.extensions["crm"].admin_role):
            return self.response_403()
        owner = (request.get_json(silent=True) or {}).get("owner")
        if not isinstance(owner, int) or isinstance(owner, bool):
            return self.response_422(message={"owner": [msg("需要用户编号")]})
        if not ownership.may_own(self.datamodel.session, spec, e, owner, g.user, current_app.extensions["crm"].admin_role):
            return self.response_422(message={"owner": [msg("负责人须是可分配的在职用户")]})
        setattr(item, f"{e.owner_field}_id", owner)
        return self._guarded(lambda: (self.datamodel.edit(item), self.response(200, result={"owner": owner}))[1])

    @expose("/balance", methods=["POST"])
    @protect()
    def balance(self) -> Any:
        """Balanced assignment of records without an active owner (managers only)."""
        spec, e = crm_spec(), _entity(self.entity)
        if not e.owner_field:
            return self.response_404()
        if not ownership.can_reassign(spec, e, g.user, current_app.extensions["crm"].admin_role):
            return self.response_403()
        given = ownership.balance(self.datamodel.session, spec, e, self.datamodel.obj, g.user, current_app.extensions["crm"].admin_role)
        return self.response(200, result={str(k): v for k, v in given.items()})

    @expose("/<int:pk>/transitions", methods=["GET"])
    @protect()
    def transitions(self, pk: int) -> Any:
        """The workflow actions of a record (allowed or not, and why; what each one's dialog asks
        for) and its history."""
        spec, e = crm_spec(), _entity(self.entity)
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        found = steps.steps(spec, e, item, g.user, current_app.extensions["crm"].admin_role)
        return self.response(200, version=item.version, result={
            "actions": [{"key": s.key, "action": s.transition.action, "action_en": s.transition.action_en, "to": s.transition.target,
                         "to_label": workflow.state_label(spec, e, s.transition.state_field, s.transition.target),
                         "allowed": s.option.allowed, "reason": s.option.reason, "require_comment": s.transition.require_comment,
                         "can_take": not s.blocked, "blocked": s.blocked,
                         "asks": [{"name": f.name, "label": pick(f.label, f.label_en), "type": f.type, "required": f.required}
                                  for f in s.asks]} for s in found],
            "history": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in h.items()}
                        for h in workflow.history(self.datamodel.session, spec, e, pk)],
        })

    @expose("/<int:pk>/transition", methods=["POST"])
    @protect()
    def transition(self, pk: int) -> Any:
        """Take a workflow action: ``{"action": key or button label (either language), "comment": "…",
        "values": {field: value, …}, "version": n}`` — the values its dialog asks for saved with the
        step in one transaction (``version``, or an If-Match header, is needed with values)."""
        spec, e = crm_spec(), _entity(self.entity)
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        body = request.get_json(silent=True) or {}
        if not isinstance(body, dict) or not isinstance(body.get("values", {}), dict):
            return self.response_400(message=msg("请求体须是 JSON 对象"))
        wanted = str(body.get("action", ""))
        opts = workflow.options(spec, e, item, g.user, current_app.extensions["crm"].admin_role)
        # a label names the action leaving the current state; one of another state is known, just not
        # possible now (409, as when an action taken at the same moment moved the record on)
        known = {label: workflow.transition_key(t) for t in spec.workflows if t.entity == e.name for label in (t.action_en, t.action) if label}
        labels = known | {o.transition.action_en: o.key for o in opts if o.transition.action_en} | {o.transition.action: o.key for o in opts}
        version = body.get("version")
        version = version if version is not None else (request.headers.get("If-Match") or "").strip('"') or None
        try:
            row = steps.take(self.datamodel.session, spec, e, item, labels.get(wanted, wanted), g.user,
                             current_app.extensions["crm"].admin_role, body.get("values") or {}, str(body.get("comment") or ""), version)
        except workflow.WorkflowError as exc:
            return self.response(exc.status, message=exc.message)
        except RuleViolation as exc:
            return self.response_422(message=exc.errors)
        except versions.StaleRecord as exc:  # another action or save on this record came first
            return self._conflict(exc.record_id, exc.read)
        except (DatabaseException, IntegrityError, OperationalError) as exc:
            self.datamodel.session.rollback()
            if is_database_busy(exc) or is_database_busy(exc.__cause__ or exc):
                return self.response(503, message=msg("数据库正忙,没有保存任何更改。请稍等片刻后重试。"))
            if isinstance(exc, IntegrityError) or isinstance(exc.__cause__, IntegrityError):
                return self.response_422(message={"_schema": [msg("与已有记录冲突(唯一值重复或关联无效)")]})
            raise
        return self.response(200, result={"from": row.from_state, "to": row.to_state, "action": row.action,
                                          "from_label": workflow.state_label(spec, e, str(row.field), row.from_state),
                                          "to_label": workflow.state_label(spec, e, str(row.field), row.to_state),
                                          "effects": [d["text"] for d in workflow.effects_said(spec, row.effects)],  # what the step did
                                          "version": item.version})

    def put_headless(self, pk: Any) -> Any:
        """PUT needs the version the client read (``version`` in the body or an If-Match header):
        a save based on an older version is refused with 409 and what changed since."""
        if _no_such_id(pk):
            return self.response_404()
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message=msg("请求体须是 JSON 对象"))
        seen = body.pop("version", None)
        seen = seen if seen is not None else (request.headers.get("If-Match") or "").strip('"') or None
        if seen is None:
            return self.response_422(message={"version": [msg("请附上读取时的 version")]})
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        refused = uploads.api_refusals(_entity(self.entity), body, item)
        if refused:
            return self.response_422(message=refused)
        if str(seen) != str(item.version):
            read = str(seen)  # a number the client sent, or anything else: then every change is listed
            return self._conflict(item.id, int(read) if read.isdigit() and len(read) < 19 else 0)
        g.crm_read_version = (item.id, item.version)  # checked again by the UPDATE itself (pre_update)
        return self._guarded(lambda: super(CrmModelRestApi, self).put_headless(pk), "edit")

    def _conflict(self, record_id: int | None, read: int | None) -> Any:
        """409: the record changed since version ``read``; its version now and what changed since,
        as this reader may see it."""
        session, model = self.datamodel.session, self.datamodel.obj
        now = session.execute(sa.select(model.version).where(model.id == record_id)).scalar() if record_id is not None else None
        changed = audit.changes_since(session, self.entity, record_id, read or 0) if record_id is not None else []
        return self.response(409, message=msg("此记录已被他人修改"), version=now,
                             changes=[{"by": h["user_id"], "at": h["at"].isoformat(), "changes": self._visible_changes(h["changes"])}
                                      for h in changed])
