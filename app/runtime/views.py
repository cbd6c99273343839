"""Base classes of the generated screens and REST APIs.

Generated classes declare columns, labels and fieldsets; these bases add what follows from the
Spec: choice dropdowns and coloured badges, value checks (min/max, pattern, email, phone) for
forms and the API alike, and one permission vocabulary shared by screen and API.
"""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, redirect, request, send_file, url_for
from flask_appbuilder import ModelRestApi, ModelView, expose, has_access
from flask_appbuilder.api import protect
from flask_appbuilder.exceptions import DatabaseException
from flask_appbuilder.fieldwidgets import Select2Widget
from flask_appbuilder.urltools import get_filter_args
from markupsafe import Markup, escape
from marshmallow import validate as mv
from sqlalchemy.exc import IntegrityError
from wtforms import Field as WTField
from wtforms import HiddenField, SelectField
from wtforms import validators as wv

from generator.spec import NUMERIC_TYPES, Entity, Field, Spec

from . import audit, excel, ownership, workflow
from .grading import explain_now, graded_fields
from .i18n import L, pick
from .rules import RuleViolation, rules_for, validate_values
from .scope import ScopeFilter, current_hidden

PHONE_PATTERN = r"^\+?[0-9][0-9 ()\-]{4,24}(?:[,;/ ]*(?:转|ext\.?|x)\s*[0-9]{1,6})?$"
API_PERMISSIONS = {
    "get_list": "list",
    "get": "show",
    "post": "add",
    "put": "edit",
    "delete": "delete",
    "info": "list",
}
# One permission vocabulary for an entity's screen and API (they share class_permission_name, and
# FAB deletes a view menu's permissions that the registering class does not list).
ENTITY_PERMISSIONS = ["can_list", "can_show", "can_add", "can_edit", "can_delete", "can_download", "can_export", "can_import"]
COLORS = {
    "green": "success",
    "blue": "primary",
    "orange": "warning",
    "yellow": "warning",
    "red": "danger",
    "grey": "default",
    "purple": "info",
}


def crm_spec() -> Spec:
    return current_app.extensions["crm"].spec


def _entity(name: str) -> Entity:
    entity = crm_spec().entity(name)
    assert entity is not None, name
    return entity


def choice_formatter(spec: Spec, f: Field) -> Any:
    """Render a stored choice value as its label in a coloured badge (escaped)."""
    options = {c.value: c for c in spec.choices.get(f.choices, ())}

    def fmt(value: Any) -> Markup:
        if value is None or value == "":
            return Markup("")
        c = options.get(value)
        if c is None:
            return Markup('<span class="label label-default">{}</span>').format(value)
        label = pick(c.label, c.label_en)
        if not c.color:
            return escape(label)
        return Markup('<span class="label label-{}">{}</span>').format(COLORS.get(c.color, "default"), label)

    return fmt


def bool_formatter(value: Any) -> str:
    if value is None:
        return ""
    return pick("是", "Yes") if value else pick("否", "No")


def value_formatter(f: Field) -> Any:
    """Plain values the Chinese way: blank for empty, 2026-11-22 14:05, 1,234,567.00."""

    def fmt(value: Any) -> Any:
        if value is None:
            return ""
        if f.type == "datetime" and hasattr(value, "strftime"):
            return value.strftime("%Y-%m-%d %H:%M")
        if f.type == "money":
            return f"{value:,.2f}"
        if f.type == "decimal":
            return f"{value:,}"
        return value

    return fmt


def form_validators(f: Field) -> list[Any]:
    """WTForms validators for a field's declared checks (required is FAB's, from NOT NULL)."""
    checks: list[Any] = []
    if f.type in NUMERIC_TYPES and (f.min is not None or f.max is not None):
        checks.append(wv.NumberRange(min=f.min, max=f.max))
    if f.type in ("string", "text", "email", "phone") and (f.min is not None or f.max is not None):
        checks.append(wv.Length(min=int(f.min or 0), max=int(f.max) if f.max is not None else -1))
    if f.pattern:
        checks.append(wv.Regexp(f.pattern, message=pick(f"{f.label}格式不正确", f"{f.label_en or f.name} has a wrong format")))
    if f.type == "email":
        checks.append(wv.Email(message=pick("邮箱格式不正确", "Invalid email address")))
    if f.type == "phone":
        checks.append(wv.Regexp(PHONE_PATTERN, message=pick("电话号码格式不正确", "Invalid phone number")))
    if checks and not f.required:
        checks.insert(0, wv.Optional())
    return checks


def api_validators(spec: Spec, f: Field) -> list[Any]:
    """The same checks as marshmallow validators, so the REST API accepts exactly what forms do."""
    checks: list[Any] = []
    if f.type == "choice":
        checks.append(mv.OneOf([c.value for c in spec.choices.get(f.choices, ())]))
    if f.type in NUMERIC_TYPES and (f.min is not None or f.max is not None):
        checks.append(mv.Range(min=f.min, max=f.max))
    if f.type in ("string", "text", "email", "phone") and (f.min is not None or f.max is not None):
        checks.append(mv.Length(min=int(f.min) if f.min is not None else None, max=int(f.max) if f.max is not None else None))
    if f.pattern:
        checks.append(mv.Regexp(re.compile(f.pattern)))
    if f.type == "email":
        checks.append(mv.Email())
    if f.type == "phone":
        checks.append(mv.Regexp(re.compile(PHONE_PATTERN)))
    return checks


def _blank_to_none(value: Any) -> str | None:
    return None if value in (None, "", "None") else str(value)


def _form_lookup(form: Any, item: Any) -> Any:
    """Field values for a rule check: what the form says, else what the record has."""

    def lookup(path: str) -> Any:
        head, *rest = path.split(".")
        field = getattr(form, head, None)
        value = field.data if field is not None and hasattr(field, "data") else getattr(item, head, None)
        for part in rest:
            value = getattr(value, part, None) if value is not None else None
        return value

    return lookup


VERSION_FIELD = "crm_version"


class VersionField(HiddenField):
    """The record version the form was opened with (optimistic locking); never written back."""

    def populate_obj(self, obj: Any, name: str) -> None:
        return None


def _export_fields(entity_name: str) -> list[Field]:
    hidden = current_hidden(entity_name)
    return [f for f in _entity(entity_name).fields if f.name not in hidden]


def _import_fields(entity_name: str) -> list[Field]:
    spec, e = crm_spec(), _entity(entity_name)
    states = {t.state_field for t in spec.workflows if t.entity == e.name}
    hidden = current_hidden(entity_name)
    return [f for f in e.fields if not f.readonly and f.name not in states and f.name != e.owner_field and f.name not in hidden]


def _paged(datamodel: Any, filters: Any, order_column: str, order_direction: str, size: int = 2000) -> Any:
    page = 0
    while True:
        _count, items = datamodel.query(filters, order_column, order_direction, page=page, page_size=size)
        yield from items
        if len(items) < size:
            return
        page += 1


def _xlsx(buffer: io.BytesIO, filename: str) -> Any:
    buffer.seek(0)
    return send_file(buffer, as_attachment=True, download_name=filename,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def export_entity(app: Any, entity_name: str, path: Path) -> int:
    """Everything of an entity the signed-in user (``g.user``) may see, as .xlsx (the CLI's export)."""
    crm = app.extensions["crm"]
    model = crm.generated.models.MODELS[entity_name]
    from .scope import scope_clause

    clause = scope_clause(crm.spec, _entity(entity_name), model, g.user, crm.admin_role)
    query = crm.db.session.query(model).order_by(model.id)
    if clause is not None:
        query = query.filter(clause)
    return excel.export_rows(crm.spec, _entity(entity_name), _export_fields(entity_name), query.yield_per(2000), path)


class WithheldWidget:
    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        return Markup('<p class="form-control-static text-muted">{}</p>').format(pick("(无权查看)", "(not visible to you)"))


class WithheldField(WTField):
    """A field the user's role may not see: renders no value and never changes the record."""

    widget = WithheldWidget()

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = None

    def populate_obj(self, obj: Any, name: str) -> None:
        return None


def _visible_changes(row: dict[str, Any], hidden: set[str], labels: dict[str, Any]) -> dict[str, Any]:
    """An audit row for the record page: labels instead of column names, hidden fields withheld."""
    shown = {}
    for name, (old, new) in (row.get("changes") or {}).items():
        field = name[:-3] if name.endswith("_id") else name
        if field in hidden:
            old = new = pick("(无权查看)", "(hidden)")
        shown[str(labels.get(field, field))] = (old, new)
    return {**row, "changes": shown}


def _masked(entity: str, name: str, inner: Any) -> Any:
    """A list/show formatter that withholds a hidden field's value from users who may not see it."""

    def fmt(value: Any) -> Any:
        if name in current_hidden(entity):
            return pick("(无权查看)", "(hidden)")
        return inner(value) if inner is not None else value

    return fmt


class ChoiceField(SelectField):
    """A dropdown of a choice list; blank means NULL, anything else must be one of the values."""

    def pre_validate(self, form: Any) -> None:
        if self.data is None:
            return
        super().pre_validate(form)

    def populate_obj(self, obj: Any, name: str) -> None:
        setattr(obj, name, self.data)


class CrmModelView(ModelView):
    """A generated entity's screens. ``entity`` names the Spec entity it shows."""

    entity: str = ""
    page_size = 25
    base_permissions = ENTITY_PERMISSIONS
    # the sheet's roles decide these (workflow.options, ownership.can_reassign)
    method_permission_name = {"transition": "show", "reassign": "show", "balance": "list", "export": "export",
                              "import_template": "import", "import_file": "import", "import_report": "import"}
    show_template = "crm/show.html"
    list_template = "crm/list.html"

    def __init__(self, **kwargs: Any):
        spec = crm_spec()
        e = _entity(self.entity)
        self.add_form_extra_fields = dict(self.add_form_extra_fields or {})
        self.edit_form_extra_fields = dict(self.edit_form_extra_fields or {})
        self.formatters_columns = dict(self.formatters_columns or {})
        self.validators_columns = dict(self.validators_columns or {})
        self.base_filters = [["id", ScopeFilter, e.name]]
        rel = {f.name: [["id", ScopeFilter, f.link]] for f in e.fields if f.type == "link"}
        self.add_form_query_rel_fields = {**rel, **(self.add_form_query_rel_fields or {})}
        self.edit_form_query_rel_fields = {**rel, **(self.edit_form_query_rel_fields or {})}
        for f in e.fields:
            if f.type == "choice":
                self.formatters_columns[f.name] = choice_formatter(spec, f)
                field = self._choice_field(spec, f)
                if f.name in (self.add_columns or []) or self.add_columns is None:
                    self.add_form_extra_fields[f.name] = field
                if f.name in (self.edit_columns or []) or self.edit_columns is None:
                    self.edit_form_extra_fields[f.name] = field
            elif f.type == "boolean":
                self.formatters_columns[f.name] = bool_formatter
            elif f.type not in ("link", "user"):
                self.formatters_columns[f.name] = value_formatter(f)
            checks = form_validators(f)
            if checks:
                self.validators_columns[f.name] = checks
        for f in e.fields:
            self.formatters_columns[f.name] = _masked(e.name, f.name, self.formatters_columns.get(f.name))
        super().__init__(**kwargs)
        self.add_form = self._rule_form(self.add_form)
        self.edit_form = self._rule_form(self.edit_form)

    # -- rules in forms: the same cross-field validations as on save, shown on the right field ----
    def _rule_form(self, form_cls: Any) -> Any:
        view = self
        spec = crm_spec()
        rules = rules_for(spec, _entity(self.entity))
        entity_name = self.entity

        class RuleForm(form_cls):  # type: ignore[misc, valid-type]
            """The entity's form: fields the user may not see are withheld; rules checked on submit."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                seen = VersionField().bind(form=self, name=VERSION_FIELD, prefix=self._prefix)
                obj = kwargs.get("obj")
                posted = request.form if request.method == "POST" else None  # FlaskForm reads the request itself
                seen.process(posted, getattr(obj, "version", None) if hasattr(obj, "__table__") else None)
                self._fields[VERSION_FIELD] = seen
                setattr(self, VERSION_FIELD, seen)
                for name in current_hidden(entity_name):
                    if name in self._fields:
                        withheld = WithheldField(label=self._fields[name].label.text).bind(form=self, name=name, prefix=self._prefix)
                        withheld.process(None)
                        self._fields[name] = withheld
                        setattr(self, name, withheld)

            def validate(self, extra_validators: Any = None) -> bool:
                ok = super().validate(extra_validators)
                pk = getattr(self, "_id", None)
                item = view.datamodel.get(pk) if pk is not None else None
                if item is not None and not view._same_version(self, item):
                    return False
                errors = validate_values(spec, rules, _form_lookup(self, item))
                for name, messages in errors.items():
                    target = getattr(self, name, None)
                    if target is not None and hasattr(target, "errors"):
                        target.errors = [*target.errors, *messages]
                    else:
                        for m in messages:
                            flash(m, "danger")
                return ok and not errors

        return RuleForm

    def _same_version(self, form: Any, item: Any) -> bool:
        """Refuse a save based on an older version of the record, saying what changed since."""
        seen = getattr(form, VERSION_FIELD).data
        if seen in (None, "") or str(seen) == str(item.version):
            return True
        changed = audit.changes_since(self.datamodel.session, self.entity, item.id, int(seen))
        fields = sorted({name for h in changed for name in h["changes"]})
        labels = [str(self.label_columns.get(n, n)) for n in fields]
        flash(pick(f"保存被拒绝:在您编辑期间,此记录已被他人修改({'、'.join(labels) or '—'})。请刷新后重新修改。",
                   f"Not saved: someone changed this record while you were editing ({', '.join(labels) or '—'}). Reload and edit again."),
              "danger")
        return False

    # -- workflow ---------------------------------------------------------------------------
    def render_template(self, template: str, **kwargs: Any) -> Any:
        if template == self.show_template and "pk" in kwargs:
            kwargs.update(self._record_panels(kwargs["pk"]))
        if template == self.list_template:
            kwargs.update(self.render_list_extras())
        return super().render_template(template, **kwargs)

    def _record_panels(self, pk: Any) -> dict[str, Any]:
        spec = crm_spec()
        e = _entity(self.entity)
        item = self.datamodel.get(pk)
        if item is None:
            return {}
        state = current_app.extensions["crm"]
        panels: dict[str, Any] = {"crm_transitions": [], "crm_history": [], "crm_grades": [], "crm_reassign": []}
        hidden = current_hidden(e.name)
        panels["crm_audit"] = [_visible_changes(h, hidden, self.label_columns) for h in audit.history(self.datamodel.session, e.name, item.id)[-50:]]
        if any(f.encrypted for f in e.fields):  # confidential: every read is on record
            audit.record(self.datamodel.session, e.name, item.id, "read")
            self.datamodel.session.commit()
        if e.owner_field and ownership.can_reassign(spec, e, g.user, state.admin_role):
            panels["crm_reassign"] = ownership.assignees(self.datamodel.session, spec, e) or self._all_users()
            panels["crm_owner_id"] = getattr(item, f"{e.owner_field}_id", None)
        if any(t.entity == e.name for t in spec.workflows):
            panels["crm_transitions"] = workflow.options(spec, e, item, g.user, state.admin_role)
            panels["crm_history"] = workflow.history(self.datamodel.session, e.name, item.id)
        for graded in graded_fields(spec, e):
            f = e.field(graded.field)
            value = getattr(item, graded.field, None)
            why = getattr(item, graded.reason_field, None) if graded.reason_field else None
            if not why:
                why = explain_now(spec, e, graded, item)
            panels["crm_grades"].append((pick(f.label, f.label_en) if f else graded.field, choice_formatter(spec, f)(value) if f else value, why))
        return panels

    @expose("/transition/<pk>", methods=["POST"])
    @has_access
    def transition(self, pk: Any) -> Any:
        spec = crm_spec()
        e = _entity(self.entity)
        item = self.datamodel.get(pk)
        if item is None:
            abort(404)
        try:
            row = workflow.perform(self.datamodel.session, spec, e, item, request.form.get("action", ""), g.user,
                                   current_app.extensions["crm"].admin_role, request.form.get("comment", ""))
            flash(f"{row.action}:{row.from_state} → {row.to_state}", "success")
        except workflow.WorkflowError as exc:
            flash(exc.message, "danger")
            if exc.status == 403:  # not this user's action: refused, nothing changed
                abort(403)
        except RuleViolation as exc:
            flash(str(exc), "danger")
        return redirect(url_for(f"{self.endpoint}.show", pk=pk))

    def _all_users(self) -> list[Any]:
        from flask_appbuilder.security.sqla.models import User

        return list(self.datamodel.session.query(User).filter(User.active.is_(True)).order_by(User.username))

    def render_list_extras(self) -> dict[str, Any]:
        e = _entity(self.entity)
        state = current_app.extensions["crm"]
        sm = self.appbuilder.sm
        return {"crm_can_balance": bool(e.owner_field) and ownership.can_reassign(crm_spec(), e, g.user, state.admin_role),
                "crm_can_export": sm.has_access("can_export", self.class_permission_name),
                "crm_can_import": sm.has_access("can_import", self.class_permission_name)}

    @expose("/reassign/<pk>", methods=["POST"])
    @has_access
    def reassign(self, pk: Any) -> Any:
        spec, e = crm_spec(), _entity(self.entity)
        item = self.datamodel.get(pk)
        if item is None or not e.owner_field:
            abort(404)
        if not ownership.can_reassign(spec, e, g.user, current_app.extensions["crm"].admin_role):
            flash(pick("只有经理可以调整负责人", "Only managers can reassign"), "danger")
            return redirect(url_for(f"{self.endpoint}.show", pk=pk))
        setattr(item, f"{e.owner_field}_id", int(request.form.get("owner", "0") or 0) or None)
        try:
            self.datamodel.edit(item)
            flash(pick("负责人已调整", "Owner changed"), "success")
        except Exception as exc:  # noqa: BLE001 - FAB wraps database errors; show them to the user
            self.datamodel.session.rollback()
            flash(str(exc.__cause__ or exc), "danger")
        return redirect(url_for(f"{self.endpoint}.show", pk=pk))

    @expose("/balance", methods=["POST"])
    @has_access
    def balance(self) -> Any:
        spec, e = crm_spec(), _entity(self.entity)
        if not e.owner_field or not ownership.can_reassign(spec, e, g.user, current_app.extensions["crm"].admin_role):
            abort(403)
        given = ownership.balance(self.datamodel.session, spec, e, self.datamodel.obj)
        flash(pick(f"已均衡分配 {sum(given.values())} 条记录", f"{sum(given.values())} records assigned"), "success")
        return redirect(url_for(f"{self.endpoint}.list"))

    # -- Excel --------------------------------------------------------------------------------
    @expose("/export/")
    @has_access
    def export(self) -> Any:
        """This list as .xlsx: the same filters and sort as on screen, the user's scope, no hidden field."""
        get_filter_args(self._filters, disallow_if_not_in_search=False)
        order_column, order_direction = self.base_order or ("", "")
        args = request.args
        for key in args:
            if key.startswith("_oc_"):
                order_column, order_direction = args.get(key, ""), args.get(key.replace("_oc_", "_od_"), "asc")
        joined = self._filters.get_joined_filters(self._base_filters)
        items = _paged(self.datamodel, joined, order_column, order_direction)
        buffer = io.BytesIO()
        n = excel.export_rows(crm_spec(), _entity(self.entity), _export_fields(self.entity), items, buffer)
        return _xlsx(buffer, f"{_entity(self.entity).label}-{n}.xlsx")

    @expose("/import/template/")
    @has_access
    def import_template(self) -> Any:
        buffer = io.BytesIO()
        e = _entity(self.entity)
        excel.write_template(crm_spec(), e, _import_fields(self.entity), buffer)
        return _xlsx(buffer, f"{e.label}-导入模板.xlsx")

    @expose("/import/", methods=["GET", "POST"])
    @has_access
    def import_file(self) -> Any:
        """Upload an .xlsx/.csv: nothing is imported if a row is bad, and the error workbook says why."""
        from .importer import ImportFileError, import_file

        e = _entity(self.entity)
        result, problems = None, []
        if request.method == "POST":
            upload = request.files.get("file")
            name = (upload.filename or "") if upload else ""
            if not upload or not name.lower().endswith((".xlsx", ".csv")):
                problems = [pick("请选择 .xlsx 或 .csv 文件", "choose an .xlsx or .csv file")]
            else:
                folder = Path(current_app.config["CRM_VAR_DIR"]) / "imports"
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / f"{uuid.uuid4().hex}{Path(name).suffix.lower()}"
                upload.save(target)
                try:
                    result = import_file(current_app, e.name, target, mode=request.form.get("mode", "insert"),
                                         key=request.form.get("key") or None, skip_bad_rows=bool(request.form.get("skip_bad_rows")),
                                         user=g.user, report_path=folder / f"{target.stem}-errors.xlsx")
                except ImportFileError as exc:
                    problems = exc.problems
        return self.render_template("crm/import.html", title=f"{pick('导入', 'Import')} {pick(e.label, e.label_en)}", entity=e,
                                    result=result, problems=problems, fields=_import_fields(self.entity))

    @expose("/import/report/<name>")
    @has_access
    def import_report(self, name: str) -> Any:
        folder = Path(current_app.config["CRM_VAR_DIR"]) / "imports"
        if not re.fullmatch(r"[0-9a-f]{32}-errors\.xlsx", name) or not (folder / name).exists():
            abort(404)
        return send_file(folder / name, as_attachment=True, download_name="导入错误报告.xlsx")

    def _back(self) -> Any:
        """Back to where the user came from; to this entity's list rather than the home page."""
        url = self.get_redirect()
        if urlsplit(url).path in ("", self.appbuilder.get_url_for_index):
            url = url_for(f"{self.endpoint}.list")
        return redirect(url)

    def post_add_redirect(self) -> Any:
        return self._back()

    def post_edit_redirect(self) -> Any:
        return self._back()

    def post_delete_redirect(self) -> Any:
        return self._back()

    @staticmethod
    def _choice_field(spec: Spec, f: Field) -> SelectField:
        options = spec.choices.get(f.choices, ())

        def choices() -> list[tuple[str, str]]:
            blank = [] if f.required else [("", "—")]
            return blank + [(c.value, pick(c.label, c.label_en)) for c in options]

        checks: list[Any] = [wv.DataRequired()] if f.required else [wv.Optional()]
        return ChoiceField(
            L(f.label, f.label_en),
            choices=choices,
            default=f.default,
            description=f.help,
            validators=checks,
            widget=Select2Widget(),
            coerce=_blank_to_none,
        )


def _rule_errors(exc: BaseException) -> dict[str, list[str]] | None:
    while exc is not None:
        if isinstance(exc, RuleViolation):
            return exc.errors
        exc = exc.__cause__  # type: ignore[assignment]
    return None


class CrmModelRestApi(ModelRestApi):
    """A generated entity's REST API at ``/api/v1/<entity>/`` sharing the screens' permissions."""

    entity: str = ""
    method_permission_name = {**API_PERMISSIONS, "transitions": "show", "transition": "show", "reassign": "show", "balance": "list"}
    base_permissions = ENTITY_PERMISSIONS
    allow_browser_login = False
    max_page_size = 100
    page_size = 25

    def __init__(self, **kwargs: Any):
        spec = crm_spec()
        e = _entity(self.entity)
        self.validators_columns = dict(self.validators_columns or {})
        self.base_filters = [["id", ScopeFilter, e.name]]
        for f in e.fields:
            checks = api_validators(spec, f)
            if checks:
                self.validators_columns[f.name] = mv.And(*checks)
        super().__init__(**kwargs)

    # -- field secrecy: hidden fields never leave the server, nor can they be written or searched
    def _strip(self, data: dict[str, Any]) -> None:
        hidden = current_hidden(self.entity)
        if not hidden:
            return
        result = data.get("result")
        for row in result if isinstance(result, list) else [result] if isinstance(result, dict) else []:
            for name in hidden:
                row.pop(name, None)
        for key in ("label_columns", "description_columns"):
            for name in hidden:
                (data.get(key) or {}).pop(name, None)
        for key in ("list_columns", "show_columns", "order_columns"):
            if isinstance(data.get(key), list):
                data[key] = [c for c in data[key] if c not in hidden]

    def pre_get(self, data: dict[str, Any]) -> None:
        self._strip(data)
        e = _entity(self.entity)
        record_id = (data.get("result") or {}).get("id") or data.get("id")
        if any(f.encrypted for f in e.fields) and record_id is not None:  # confidential: log every read
            audit.record(self.datamodel.session, e.name, int(record_id), "read")
            self.datamodel.session.commit()

    def pre_get_list(self, data: dict[str, Any]) -> None:
        self._strip(data)

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
            return self.response_400(message="不能按无权查看的字段查询或排序 (cannot query by a hidden field)")
        return super().get_list_headless(**kwargs)

    def _guarded(self, call: Any) -> Any:
        """Rule violations and constraint errors become 422 with field messages, never a 500."""
        touched = self._touches_hidden()
        if touched:
            return self.response_422(message={name: ["无权修改此字段 (not allowed to write this field)"] for name in touched})
        try:
            return call()
        except (RuleViolation, DatabaseException, IntegrityError) as exc:
            self.datamodel.session.rollback()
            errors = _rule_errors(exc)
            if errors is not None:
                return self.response_422(message=errors)
            if isinstance(exc, IntegrityError) or isinstance(exc.__cause__, IntegrityError):
                return self.response_422(message={"_schema": ["与已有记录冲突(唯一值重复或关联无效) (conflicts with an existing record)"]})
            raise

    def post_headless(self) -> Any:
        return self._guarded(super().post_headless)

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
        if not isinstance(owner, int):
            return self.response_422(message={"owner": ["需要用户编号 (a user id is required)"]})
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
        given = ownership.balance(self.datamodel.session, spec, e, self.datamodel.obj)
        return self.response(200, result={str(k): v for k, v in given.items()})

    @expose("/<int:pk>/transitions", methods=["GET"])
    @protect()
    def transitions(self, pk: int) -> Any:
        """The workflow actions of a record (allowed or not, and why) and its history."""
        spec, e = crm_spec(), _entity(self.entity)
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        opts = workflow.options(spec, e, item, g.user, current_app.extensions["crm"].admin_role)
        return self.response(200, result={
            "actions": [{"key": o.key, "action": o.transition.action, "to": o.transition.target, "allowed": o.allowed,
                         "reason": o.reason, "require_comment": o.transition.require_comment} for o in opts],
            "history": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dict(h).items()}
                        for h in workflow.history(self.datamodel.session, e.name, pk)],
        })

    @expose("/<int:pk>/transition", methods=["POST"])
    @protect()
    def transition(self, pk: int) -> Any:
        """Take a workflow action: ``{"action": key or button label, "comment": "…"}``."""
        spec, e = crm_spec(), _entity(self.entity)
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        body = request.get_json(silent=True) or {}
        wanted = str(body.get("action", ""))
        labels = {o.transition.action: o.key for o in workflow.options(spec, e, item, g.user, current_app.extensions["crm"].admin_role)}
        try:
            row = workflow.perform(self.datamodel.session, spec, e, item, labels.get(wanted, wanted), g.user,
                                   current_app.extensions["crm"].admin_role, str(body.get("comment", "")))
        except workflow.WorkflowError as exc:
            return self.response(exc.status, message=exc.message)
        except RuleViolation as exc:
            return self.response_422(message=exc.errors)
        return self.response(200, result={"from": row.from_state, "to": row.to_state, "action": row.action})

    def put_headless(self, pk: Any) -> Any:
        """PUT needs the version the client read (``version`` in the body or an If-Match header):
        a save based on an older version is refused with 409 and what changed since."""
        body = request.get_json(silent=True)
        seen = body.pop("version", None) if isinstance(body, dict) else None
        seen = seen if seen is not None else (request.headers.get("If-Match") or "").strip('"') or None
        if seen is None:
            return self.response_422(message={"version": ["请附上读取时的 version (send the version you read)"]})
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        if str(seen) != str(item.version):
            changed = audit.changes_since(self.datamodel.session, self.entity, item.id, int(seen) if str(seen).isdigit() else 0)
            return self.response(409, message="此记录已被他人修改 (changed by someone else since you read it)",
                                 version=item.version, changes=[{"by": h["user_id"], "at": h["at"].isoformat(), "changes": h["changes"]}
                                                                for h in changed])
        return self._guarded(lambda: super(CrmModelRestApi, self).put_headless(pk))
