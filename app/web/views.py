"""Base classes of the generated screens and REST APIs.

Generated classes declare columns, labels and fieldsets; these bases add what follows from the
Spec: choice dropdowns and coloured badges, value checks (min/max, pattern, email, phone) for
forms and the API alike, and one permission vocabulary shared by screen and API.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from flask import abort, current_app, flash, g, redirect, request, send_file, url_for
from flask_appbuilder import ModelRestApi, ModelView, expose, has_access
from flask_appbuilder.api import protect
from flask_appbuilder.api.convert import Model2SchemaConverter
from flask_appbuilder.exceptions import DatabaseException
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.fieldwidgets import Select2Widget
from flask_appbuilder.models.sqla.filters import FilterContains
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.urltools import get_filter_args, get_order_args
from flask_appbuilder.widgets import FormWidget, ListWidget, RenderTemplateWidget, SearchWidget
from markupsafe import Markup, escape
from marshmallow import validate as mv
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from werkzeug.routing import BuildError
from wtforms import DateField, DateTimeLocalField, HiddenField, SelectField
from wtforms import Field as WTField
from wtforms import validators as wv
from wtforms.widgets import DateInput, DateTimeLocalInput

from app.access import ownership
from app.access.scope import ScopeFilter, current_hidden, current_locked
from app.io import excel
from app.record import audit, workflow
from app.record.convert import DIGITS_BEFORE_POINT, INTEGER_LIMIT, PHONE_PATTERN, same_value
from app.record.grading import explain_now, graded_fields, mask_reason, reason_fields
from app.record.models import column_default
from app.record.rules import RuleViolation, rules_for, validate_values
from app.spec.model import NUMERIC_TYPES, Entity, Field, Spec
from app.web import linkfield, pagecache, uploads
from app.web.auditview import Describer
from app.web.i18n import L, current_language, pick, yes_no
from app.web.linkfield import LinkField
from app.web.listing import CountInfo

MAX_PAGE_SIZE = 100  # rows a list page or a REST answer holds at most, whatever the address asks
RECENT_CHANGES = 50  # audit rows on a record page; 全部历史 pages through the rest
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


class CrmListWidget(ListWidget):
    """FAB's list table with a header that tells a capped count from an exact one and continues
    past the counted pages by keyset ("下一页")."""

    template = "crm/list_widget.html"

    def __call__(self, **kwargs: Any) -> Any:
        args = {**self.template_args, **kwargs}

        def rows(check: Any, crud: Any) -> Markup:
            return draw_rows(args["value_columns"], args["pks"], args["include_columns"], args["formatters_columns"], bool(check), crud)

        return super().__call__(crm_draw_rows=rows, **kwargs)


def draw_rows(items: list[dict[str, Any]], pks: list[Any], columns: list[str], formatters: dict[str, Any], check: bool,
              crud: Any) -> Markup:
    """The table's rows as FAB's list template draws them (each value through its formatter and
    escaped, as Jinja's autoescape does), in a plain loop: a page of 25 rows × 12 columns is 300
    cells, where the template spent ~10 µs each. ``crud``: the row buttons drawn once with the
    ``__crm_pk__`` placeholder, or None; ``check``: the action checkbox column."""
    out: list[str] = []
    cells = [(c, formatters.get(c)) for c in columns]
    for item, pk in zip(items, pks, strict=True):
        key = escape(pk)
        out.append("<tr>")
        if check:
            out.append(f'<td><input id="{key}" class="action_check" name="rowid" value="{key}" type="checkbox"></td>')
        if crud is not None:
            out.append(f"<td><center>{str(crud).replace('__crm_pk__', key)}</center></td>")
        for name, fmt in cells:
            value = item[name]
            out.append(f"<td>{escape(fmt(value) if fmt else value)}</td>")
        out.append("</tr>\n")
    return Markup("".join(out))  # noqa: S704 - every value escaped above; crud is the template's own markup


class CrmFormWidget(FormWidget):
    """FAB's form, with a collapsed section opened when it holds a field in error."""

    template = "crm/form_widget.html"


class CrmSearchWidget(SearchWidget):
    """FAB's search form, its filters' inputs drawn once per view, language, set of columns and
    security version (``pagecache``) instead of on every page: they hold no data but the users'
    dropdown, which the security version follows. A column linking to anything else is drawn on
    every request (``crm_fresh``); the active filters always are."""

    template = "crm/search_widget.html"

    def __call__(self, **kwargs: Any) -> Any:
        form = self.template_args["form"]
        cols = list(self.template_args["include_cols"])
        fresh = set(self.template_args.get("crm_fresh", ()))

        def draw(names: list[str]) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
            flts = self.filters.get_search_filters()
            return ({c: str(form[c].label.text) for c in names}, {c: form[c]() for c in names},
                    {c: [str(f.name) for f in flts[c]] for c in names})

        kept = [c for c in cols if c not in fresh]
        key = (self.template_args.get("route_base"), tuple(kept), *pagecache.page_key())
        session = current_app.appbuilder.session  # type: ignore[attr-defined]
        labels, fields, names = pagecache.shelf("search").get(pagecache.security_version(session), key, lambda: draw(kept))
        if fresh:
            more = draw([c for c in cols if c in fresh])
            labels, fields, names = {**labels, **more[0]}, {**fields, **more[1]}, {**names, **more[2]}
        flts = self.filters.get_search_filters()
        contains = {c: i for c in cols for i, f in enumerate(flts.get(c, ())) if isinstance(f, FilterContains)}
        kwargs.update(label_columns={c: labels[c] for c in cols}, form_fields={c: fields[c] for c in cols},
                      search_filters={c: names[c] for c in cols}, active_filters=self.filters.get_filters_values_tojson(),
                      crm_contains=contains)
        return RenderTemplateWidget.__call__(self, **kwargs)


def crm_spec() -> Spec:
    return current_app.extensions["crm"].spec


def _entity(name: str) -> Entity:
    entity = crm_spec().entity(name)
    assert entity is not None, name
    return entity


def choice_formatter(spec: Spec, f: Field) -> Any:
    """Render a stored choice value as its label in a coloured badge (escaped)."""
    options = {c.value: c for c in spec.choices.get(f.choices, ())}
    drawn: dict[tuple[str, Any], Markup] = {}  # (language, value) → its badge: a list draws the same few many times

    def draw(value: Any) -> Markup:
        c = options.get(value)
        if c is None:
            return Markup('<span class="label label-default">{}</span>').format(value)
        label = pick(c.label, c.label_en)
        if not c.color:
            return escape(label)
        return Markup('<span class="label label-{}">{}</span>').format(COLORS.get(c.color, "default"), label)

    def fmt(value: Any) -> Markup:
        if value is None or value == "":
            return Markup("")
        if value not in options:
            return draw(value)
        key = (current_language(), value)
        if key not in drawn:
            drawn[key] = draw(value)
        return drawn[key]

    return fmt


def _show_prefix(entity_name: str) -> str | None:
    """The start of the record page's URL of an entity (``/customerview/show/``), or None when it
    has no screen."""
    try:
        return url_for(f"{_entity(entity_name).class_name}View.show", pk=0)[:-1]
    except BuildError:
        return None


def value_formatter(f: Field) -> Any:
    """Plain values the Chinese way: blank for empty, 2026-11-22 14:05, 1,234,567.00; a linked
    record as a link to its page (where the reader's scope lets them in)."""
    prefix: list[str | None] = []

    def fmt(value: Any) -> Any:
        if value is None:
            return ""
        if f.type == "link" and isinstance(getattr(value, "id", None), int):
            if not prefix:
                prefix.append(_show_prefix(f.link))
            if prefix[0] is not None:
                return Markup(f'<a href="{prefix[0]}{value.id}">{escape(str(value))}</a>')  # noqa: S704 - the title escaped
        if f.type == "datetime" and hasattr(value, "strftime"):
            return value.strftime("%Y-%m-%d %H:%M")
        if f.type == "money":
            return f"{value:,.2f}"
        if f.type == "decimal":
            return f"{value:,}"
        return value

    return fmt


LENGTH_TYPES = ("string", "text", "email", "phone")


class _FreshLists(dict):  # type: ignore[type-arg]
    """``validators_columns`` handing FAB a copy of each list: its form converter appends its own
    validators (Length, Optional, Unique) to the list it is given, once per form it builds, so the
    add and edit forms shared one list and each message came twice."""

    def get(self, key: Any, default: Any = None) -> Any:
        value = super().get(key, default)
        return list(value) if isinstance(value, list) else value


def _number_text(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


class _Between(wv.NumberRange):
    """The workbook's min and max, said as the office wrote them ("不能小于 0", not "必须大于 0.0",
    which refused the 0 it accepts), and silent when the value was no number at all (the field
    has said so already)."""

    def __init__(self, low: float | None, high: float | None):
        lo, hi = (None if v is None else _number_text(v) for v in (low, high))
        if lo is not None and hi is not None:
            message = pick(f"须在 {lo} 到 {hi} 之间", f"must be between {lo} and {hi}")
        elif lo is not None:
            message = pick(f"不能小于 {lo}", f"must be at least {lo}")
        else:
            message = pick(f"不能大于 {hi}", f"must be at most {hi}")
        super().__init__(min=low, max=high, message=message)

    def __call__(self, form: Any, field: Any) -> None:
        if field.data is None and field.process_errors:
            return
        super().__call__(form, field)


def _length_bounds(f: Field, column_max: int) -> tuple[int | None, int | None]:
    """A text field's declared length bounds, less the maximum its column already enforces (FAB
    and marshmallow-sqlalchemy check that one themselves: twice would say it twice)."""
    if f.type not in LENGTH_TYPES:
        return None, None
    low = int(f.min) if f.min is not None and f.min > 0 else None
    high = int(f.max) if f.max is not None and int(f.max) != column_max else None
    return low, high


def form_validators(f: Field, column_max: int = -1) -> list[Any]:
    """WTForms validators for a field's declared checks (required is FAB's, from NOT NULL)."""
    checks: list[Any] = []
    if f.type in NUMERIC_TYPES and (f.min is not None or f.max is not None):
        checks.append(_Between(f.min, f.max))
    low, high = _length_bounds(f, column_max)
    if low is not None or high is not None:
        checks.append(wv.Length(min=low if low is not None else -1, max=high if high is not None else -1))
    if f.pattern:
        checks.append(wv.Regexp(f.pattern, message=pick(f"{f.label}格式不正确", f"{f.label_en or f.name} has a wrong format")))
    if f.type == "email":
        checks.append(wv.Email(message=pick("邮箱格式不正确", "Invalid email address")))
    if f.type == "phone":
        checks.append(wv.Regexp(PHONE_PATTERN, message=pick("电话号码格式不正确", "Invalid phone number")))
    if checks and not f.required:
        checks.insert(0, wv.Optional())
    return checks


def _no_such_id(pk: Any) -> bool:
    """An id no row can have (beyond the id column): 404 at once, not the database's overflow error."""
    text = str(pk).strip().lstrip("-")
    return text.isdigit() and (len(text) > 10 or int(text) > INTEGER_LIMIT)


def api_validators(spec: Spec, f: Field, column_max: int = -1) -> list[Any]:
    """The same checks as marshmallow validators, so the REST API accepts exactly what forms do."""
    checks: list[Any] = []
    if f.type == "choice":
        checks.append(mv.OneOf([c.value for c in spec.choices.get(f.choices, ())]))
    if f.type in NUMERIC_TYPES and (f.min is not None or f.max is not None):
        checks.append(mv.Range(min=f.min, max=f.max))
    if f.type in NUMERIC_TYPES:  # what the column holds: beyond it a database error, not a message
        limit = INTEGER_LIMIT if f.type == "integer" else 10 ** DIGITS_BEFORE_POINT[f.type]
        checks.append(mv.Range(min=-limit, max=limit, min_inclusive=f.type == "integer", max_inclusive=f.type == "integer"))
    if f.required and f.type in LENGTH_TYPES:
        checks.append(mv.Regexp(re.compile(r"[\s\S]*\S"), error="必填,不能只填空白 (required: not blank)"))
    low, high = _length_bounds(f, column_max)
    if low is not None or high is not None:
        checks.append(mv.Length(min=low, max=high))
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
        if isinstance(field, LockedField):  # the user's to see, not to write: the record's (or default) value
            value = field.record_value
        elif field is not None and hasattr(field, "data") and not isinstance(field, WithheldField):
            value = field.data
        else:  # not on the form, or withheld from the user: the record's own value
            value = getattr(item, head, None)
        for part in rest:
            value = getattr(value, part, None) if value is not None else None
        return value

    return lookup


def _keep_unchanged(form: Any, item: Any, entity: Entity) -> None:
    """A value the form brings back as the record has it (``convert.same_value``: the textarea's
    ``\r\n``, a time shown to the second, an unticked box for none) is saved as the record has
    it: no change in the history, none for a rule asking ``changed(…)``."""
    for f in entity.fields:
        field = getattr(form, f.name, None)
        if f.type == "file" or field is None or isinstance(field, LockedField | WithheldField) or not hasattr(field, "data"):
            continue
        stored = getattr(item, f.name, None)
        if field.data is not stored and same_value(field.data, stored):
            field.data = stored


def _form_changes(form: Any, item: Any) -> Any:
    """``changed(field)`` of a form editing ``item``: what the form says differs from the record.
    A new record: None (nothing stored changes)."""
    if item is None:
        return None
    lookup = _form_lookup(form, item)
    return lambda name: not same_value(lookup(name), getattr(item, name, None))


VERSION_FIELD = "crm_version"


class VersionField(HiddenField):
    """The record version the form was opened with (optimistic locking); never written back."""

    def populate_obj(self, obj: Any, name: str) -> None:
        return None


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


class LockedWidget:
    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        return Markup('<p class="form-control-static crm-locked" id="{}">{}</p>').format(field.id, "—" if field.shown in (None, "") else field.shown)


class LockedField(WTField):
    """A field the user's role sees but may not change (``readonly_fields``): its value as text,
    never written, whatever the request posts."""

    widget = LockedWidget()
    shown = ""
    record_value: Any = None

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = None

    def populate_obj(self, obj: Any, name: str) -> None:
        return None


def _withheld(value: Any) -> str:
    return pick("(无权查看)", "(hidden)")


def _masked(entity: str, name: str, inner: Any, reason: bool = False) -> Any:
    """A list/show formatter that withholds a hidden field's value from users who may not see it
    (a grade's reason: the hidden values it quotes)."""

    def fmt(value: Any) -> Any:
        hidden = current_hidden(entity)
        if name in hidden:
            return _withheld(value)
        if reason:
            value = mask_reason(value, hidden)
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
                              "history": "show", "history_export": "show", "file": "show",
                              "import_template": "import", "import_file": "import", "import_report": "import",
                              "import_mapping": "import", "import_job": "import", "import_progress": "import"}
    show_template = "crm/show.html"
    list_template = "crm/list.html"
    list_widget = CrmListWidget
    search_widget = CrmSearchWidget
    add_widget = CrmFormWidget
    edit_widget = CrmFormWidget

    def __init__(self, **kwargs: Any):
        spec = crm_spec()
        e = _entity(self.entity)
        self.add_form_extra_fields = dict(self.add_form_extra_fields or {})
        self.edit_form_extra_fields = dict(self.edit_form_extra_fields or {})
        self.formatters_columns = dict(self.formatters_columns or {})
        self.validators_columns = _FreshLists(self.validators_columns or {})
        self.base_filters = [["id", ScopeFilter, e.name]]
        rel = {f.name: [["id", ScopeFilter, f.link]] for f in e.fields if f.type == "link"}
        self.crm_rules = rules_for(spec, e)  # its validations, in forms as on save; its tied links
        self.add_form_query_rel_fields = {**rel, **(self.add_form_query_rel_fields or {})}
        self.edit_form_query_rel_fields = {**rel, **(self.edit_form_query_rel_fields or {})}
        for f in e.fields:
            if f.type == "choice":
                self.formatters_columns[f.name] = choice_formatter(spec, f)
                field = self._choice_field(spec, f)
                self._form_field(f.name, field, field)
            elif f.type == "boolean":
                self.formatters_columns[f.name] = yes_no
            elif f.type == "file":  # an upload input; the record page links the file's download
                self.formatters_columns[f.name] = uploads.show_link(self, f.name)
                label = L(f.label, f.label_en)
                self._form_field(f.name, uploads.form_field(label, f.help, f.required),
                                 uploads.form_field(label, f.help, f.required, uploads.edit_link(self, f.name)))
            else:  # plain values, links and people: blank when empty, not "None"
                self.formatters_columns[f.name] = value_formatter(f)
            if f.type == "link":  # a dropdown that stays small however big the linked table
                field = self._link_field(f)
                self._form_field(f.name, field, field)
            if f.type in ("date", "datetime"):  # the browser's own picker, in the person's language
                field = _moment_field(f)
                self._form_field(f.name, field, field)
            checks = form_validators(f, self.datamodel.get_max_length(f.name) if f.type in LENGTH_TYPES else -1)
            if checks:
                self.validators_columns[f.name] = checks
        self._crm_plain_formatters = {f.name: self.formatters_columns.get(f.name) for f in e.fields}
        reasons = reason_fields(spec, e)
        for f in e.fields:
            self.formatters_columns[f.name] = _masked(e.name, f.name, self.formatters_columns.get(f.name), f.name in reasons)
        super().__init__(**kwargs)
        # a link column sorts too: by the linked record (app.web.listing, its indexed id)
        self.order_columns = list(self.order_columns) + [c for c in self.list_columns if c not in self.order_columns
                                                         and self.datamodel.is_relation_many_to_one(c)]
        self.add_form = self._rule_form(self.add_form, "add")
        self.edit_form = self._rule_form(self.edit_form, "edit")

    # -- rules in forms: the same cross-field validations as on save, shown on the right field ----
    def _rule_form(self, form_cls: Any, right: str) -> Any:
        view = self
        spec = crm_spec()
        rules = self.crm_rules
        entity_name = self.entity

        class RuleForm(form_cls):  # type: ignore[misc, valid-type]
            """The entity's form: fields the user may not see are withheld; rules checked on submit."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                for field in self:  # WTForms 3.3 shows an empty label as the option's value: "__None"
                    if isinstance(field, QuerySelectField) and field.allow_blank and not field.blank_text:
                        field.blank_text = pick("(未指定)", "(none)")
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
                locked_names = [n for n in current_locked(entity_name, right) if n in self._fields]
                record = obj if hasattr(obj, "__table__") else None
                pk = (request.view_args or {}).get("pk")
                if locked_names and record is None and right == "edit" and pk is not None:  # a post shown again
                    record = view.datamodel.get(pk, view._base_filters)
                for name in locked_names:
                    locked = LockedField(label=self._fields[name].label.text,
                                         description=pick("您的角色不能修改此项", "your role may not change this")
                                         ).bind(form=self, name=name, prefix=self._prefix)
                    locked.process(None)
                    # what the record holds (a new one: the field's default), seen by the rules and
                    # shown as the record page shows it
                    value = (getattr(record, name, None) if record is not None
                             else column_default(view.datamodel.obj.__table__.c.get(_entity(entity_name).field(name).column)))
                    show = view._crm_plain_formatters.get(name)
                    locked.record_value = value
                    locked.shown = show(value) if show is not None else ("" if value is None else value)
                    self._fields[name] = locked
                    setattr(self, name, locked)

            def validate(self, extra_validators: Any = None) -> bool:
                pk = getattr(self, "_id", None)
                item = view.datamodel.get(pk) if pk is not None else None
                for f in rules.entity.fields:  # a link the record has keeps being a valid choice
                    field = getattr(self, f.name, None)
                    if item is not None and f.type == "link" and isinstance(field, LinkField):
                        field.kept = getattr(item, f.column, None)
                for n in rules.narrowed.values():  # a contact chosen with no customer brings its customer, as a save
                    link, other = getattr(self, n.link, None), getattr(self, n.other, None)  # fills it: before "required"
                    if isinstance(link, LinkField) and isinstance(other, LinkField) and other.is_blank():
                        chosen = link.chosen()
                        other.data = getattr(chosen, n.through, None) if chosen is not None else None
                ok = super().validate(extra_validators)
                if item is not None and not view._same_version(self, item):
                    return False
                if item is not None:
                    _keep_unchanged(self, item, rules.entity)
                errors = validate_values(spec, rules, _form_lookup(self, item), changed=_form_changes(self, item))
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

    def _get_show_widget(self, pk: Any, item: Any, **kwargs: Any) -> Any:
        g.crm_shown = (self, pk, item)  # the record _show loaded in the user's scope: the record panels reuse it
        return super()._get_show_widget(pk, item, **kwargs)

    def _record_panels(self, pk: Any) -> dict[str, Any]:
        spec = crm_spec()
        e = _entity(self.entity)
        shown = getattr(g, "crm_shown", None)
        item = shown[2] if shown is not None and shown[0] is self and shown[1] == pk else self.datamodel.get(pk)
        if item is None:
            return {}
        state = current_app.extensions["crm"]
        panels: dict[str, Any] = {"crm_transitions": [], "crm_history": [], "crm_grades": [], "crm_reassign": [],
                                  "crm_can_edit": self.appbuilder.sm.has_access("can_edit", self.class_permission_name)}
        recent = audit.search(self.datamodel.session, audit.AuditQuery(entity=e.name, record_id=item.id), 0, RECENT_CHANGES)
        panels["crm_audit"] = Describer(g.user).rows(recent)  # as the full history page shows it
        if any(f.encrypted for f in e.fields):  # confidential: every read is on record
            audit.record(self.datamodel.session, e.name, item.id, "read")
            self.datamodel.session.commit()
        if e.owner_field and ownership.can_reassign(spec, e, g.user, state.admin_role):
            panels["crm_reassign"] = ownership.candidates(self.datamodel.session, spec, e, g.user, state.admin_role)
            panels["crm_owner_id"] = getattr(item, f"{e.owner_field}_id", None)
        if any(t.entity == e.name for t in spec.workflows):
            panels["crm_transitions"] = workflow.options(spec, e, item, g.user, state.admin_role)
            panels["crm_history"] = workflow.history(self.datamodel.session, spec, e, item.id)
        hidden = current_hidden(e.name)
        for graded in graded_fields(spec, e):
            if graded.field in hidden:
                continue
            f = e.field(graded.field)
            value = getattr(item, graded.field, None)
            why = (getattr(item, graded.reason_field, None) if graded.reason_field else None) or explain_now(spec, e, graded, item)
            why = mask_reason(why, hidden)  # the values this reader may not see are withheld
            panels["crm_grades"].append((pick(f.label, f.label_en) if f else graded.field, choice_formatter(spec, f)(value) if f else value, why))
        return panels

    @expose("/history/<pk>")
    @has_access
    def history(self, pk: Any) -> Any:
        """The record's whole audit trail, paged (only for those who may read the record)."""
        from app.web.auditview import record_history

        return record_history(self, pk)

    @expose("/history/<pk>/export/")
    @has_access
    def history_export(self, pk: Any) -> Any:
        """The record's audit trail as .xlsx, hidden fields withheld."""
        from app.web.auditview import record_history_export

        return record_history_export(self, pk)

    @expose("/file/<pk>/<field>")
    @has_access
    def file(self, pk: Any, field: str) -> Any:
        """A file field's upload, as a download (row scope and hidden fields apply)."""
        return uploads.download(self, pk, field)

    @expose("/transition/<pk>", methods=["POST"])
    @has_access
    def transition(self, pk: Any) -> Any:
        spec = crm_spec()
        e = _entity(self.entity)
        item = self.datamodel.get(pk, self._base_filters)  # only a record the user may see
        if item is None:
            abort(404)
        try:
            row = workflow.perform(self.datamodel.session, spec, e, item, request.form.get("action", ""), g.user,
                                   current_app.extensions["crm"].admin_role, request.form.get("comment", ""))
            said = workflow.action_names(spec, e).get((row.field, row.from_state, row.to_state, row.action), row.action)
            flash(f"{said}:{workflow.state_label(spec, e, row.field, row.from_state)} → "
                  f"{workflow.state_label(spec, e, row.field, row.to_state)}", "success")
        except workflow.WorkflowError as exc:
            flash(exc.message, "danger")
            if exc.status == 403:  # not this user's action: refused, nothing changed
                abort(403)
        except RuleViolation as exc:
            flash(str(exc), "danger")
        return redirect(url_for(f"{self.endpoint}.show", pk=pk))

    def _get_search_widget(self, form: Any = None, exclude_cols: Any = None, widgets: Any = None) -> Any:
        """FAB's search form without the columns the user may not see; the filters' inputs are
        kept across requests, except links to other entities than users (their rows are data)."""
        widgets = widgets or {}
        hidden = current_hidden(self.entity)
        user_model = self.appbuilder.sm.user_model
        fresh = [c for c in self.search_columns
                 if self.datamodel.is_relation(c) and self.datamodel.get_related_model(c) is not user_model]
        widgets["search"] = self.search_widget(route_base=self.route_base, form=form, exclude_cols=exclude_cols or [],
                                               include_cols=[c for c in self.search_columns if c not in hidden],
                                               filters=self._filters, crm_fresh=fresh)
        return widgets

    def _visible_filters(self, filters: Any) -> Any:
        """``filters`` without those on columns the user may not see (asked for in the URL)."""
        hidden = current_hidden(self.entity)
        if not hidden or not any(f.column_name.split(".")[0] in hidden for f in filters.filters):
            return filters
        kept = [(f, v) for f, v in zip(filters.filters, filters.values, strict=True) if f.column_name.split(".")[0] not in hidden]
        filters.clear_filters()
        for f, v in kept:
            filters._add_filter(f, v)
        return filters

    # -- big lists: capped count, keyset "next page" (app.web.listing) ------------------------
    def pre_delete(self, item: Any) -> None:
        linked = still_linked(self.datamodel.session, self.entity, item.id)
        if linked:
            raise ValueError(linked)  # FAB shows it and deletes nothing
        super().pre_delete(item)

    def _list(self, **kwargs: Any) -> Any:
        # FAB reads page_<View>/psize_<View> with int(): a typed-in word was a 500, now a 400
        for name, value in request.args.items():
            if name.startswith(("page_", "psize_")) and not value.lstrip("-").isdigit():
                abort(400)
        return super()._list(**kwargs)

    def _get_list_widget(self, filters: Any, actions: Any = None, order_column: str = "", order_direction: str = "",
                         page: int | None = None, page_size: int | None = None, widgets: Any = None, **kwargs: Any) -> Any:
        """FAB's list widget, fed by a capped count and, after "next page", by keyset."""
        widgets = widgets or {}
        page_size = min(max(page_size or self.page_size, 1), MAX_PAGE_SIZE)  # a typed-in psize cannot ask for a million rows
        page = max(page or 0, 0) or None
        filters = self._visible_filters(filters)
        if order_column and (order_column not in self.order_columns or order_column.split(".")[0] in current_hidden(self.entity)):
            order_column, order_direction = "", ""  # only the sortable columns, none one may not see
        if not order_column and self.base_order:
            order_column, order_direction = self.base_order
        g.crm_exact_count = request.args.get("_exact") == "1"
        after_arg = f"_after_{self.__class__.__name__}"
        after = request.args.get(after_arg, type=int)
        joined = filters.get_joined_filters(self._base_filters)
        # a related list of a record page: every row's link to that record is the record itself, loaded already
        known = {f.column_name for f in filters.filters if isinstance(f, self.datamodel.FilterRelationOneToManyEqual)}
        count, items = self.datamodel.query(joined, order_column, order_direction, page=page, page_size=page_size, after=after,
                                            links=self.list_columns, known=known)
        info = getattr(g, "crm_count", None) or CountInfo(count, True)
        pks = [self._serialize_pk_if_composite(pk) for pk in self.datamodel.get_keys(items)]
        if not info.exact:  # at least the rows up to here exist, whatever the count could tell in time
            count = max(count, (page or 0) * page_size + len(items))
        args = {k: v for k, v in request.args.to_dict(flat=False).items() if k not in (after_arg, f"page_{self.__class__.__name__}")}
        here = {**(request.view_args or {})}
        urls = {"crm_first_url": url_for(request.endpoint, **here, **args),
                "crm_exact_url": url_for(request.endpoint, **here, **{**args, "_exact": "1"}),
                "crm_next_url": url_for(request.endpoint, **here, **{**args, after_arg: pks[-1]})
                if len(items) >= page_size and pks and self.datamodel._plain_column(order_column) is not None else None}
        widgets["list"] = self.list_widget(
            label_columns=self.label_columns, include_columns=self.list_columns,
            value_columns=self.datamodel.get_values(items, self.list_columns), order_columns=self.order_columns,
            formatters_columns=self._list_formatters(), page=page, page_size=page_size, count=count, pks=pks,
            actions=actions or self.actions, filters=filters, modelview_name=self.__class__.__name__,
            crm_count=info, crm_keyset=after is not None, crm_int_pks=all(type(pk) is int for pk in pks), **urls, **kwargs,
        )
        return widgets

    def _list_formatters(self) -> dict[str, Any]:
        """The list's formatters for this request: the hidden fields decided once for the whole
        table (masked columns show the mask), not once per cell."""
        hidden = current_hidden(self.entity)
        formatters = dict(self.formatters_columns)
        for name, inner in self._crm_plain_formatters.items():
            if name in hidden:
                formatters[name] = _withheld
            elif inner is not None:
                formatters[name] = inner
            else:
                formatters.pop(name, None)  # the value as it is (what the mask wrapper returned)
        return formatters

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
        item = self.datamodel.get(pk, self._base_filters)  # only a record the manager may see
        if item is None or not e.owner_field:
            abort(404)
        if not ownership.can_reassign(spec, e, g.user, current_app.extensions["crm"].admin_role):
            flash(pick("只有经理可以调整负责人", "Only managers can reassign"), "danger")
            return redirect(url_for(f"{self.endpoint}.show", pk=pk))
        asked = request.form.get("owner", "").strip()
        owner = int(asked) if asked.isdigit() and len(asked) < 19 else None
        admin_role = current_app.extensions["crm"].admin_role
        if asked.strip("0") and (owner is None or not ownership.may_own(self.datamodel.session, spec, e, owner, g.user, admin_role)):
            flash(pick("负责人须是可选的在职用户之一", "The owner must be one of the active users offered"), "danger")
            return redirect(url_for(f"{self.endpoint}.show", pk=pk))
        setattr(item, f"{e.owner_field}_id", owner or None)
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
        given = ownership.balance(self.datamodel.session, spec, e, self.datamodel.obj, g.user, current_app.extensions["crm"].admin_role)
        flash(pick(f"已均衡分配 {sum(given.values())} 条记录", f"{sum(given.values())} records assigned"), "success")
        return redirect(url_for(f"{self.endpoint}.list"))

    # -- Excel --------------------------------------------------------------------------------
    @expose("/export/")
    @has_access
    def export(self) -> Any:
        """This list as .xlsx: the filters and sort on screen (as the list allows them: searchable
        and sortable columns, none the user may not see), the user's scope, no hidden field."""
        hidden = current_hidden(self.entity)
        get_filter_args(self._filters)
        self._visible_filters(self._filters)
        asked = get_order_args().get(self.__class__.__name__)
        if asked and asked[0] in self.order_columns and asked[0].split(".")[0] not in hidden:
            order_column, order_direction = asked
        else:
            order_column, order_direction = self.base_order or ("", "")
        model = self.datamodel.obj
        query = self.datamodel.apply_all(self.datamodel.session.query(model), self._filters.get_joined_filters(self._base_filters),
                                         order_column, order_direction)
        if not order_column:  # a stable order, as on screen
            query = query.order_by(model.id)
        buffer = io.BytesIO()
        n = _export(self.datamodel.session, self.entity, query.yield_per(2000), buffer)
        return _xlsx(buffer, f"{_entity(self.entity).label}-{n}.xlsx")

    @expose("/import/template/")
    @has_access
    def import_template(self) -> Any:
        buffer = io.BytesIO()
        e = _entity(self.entity)
        excel.write_template(crm_spec(), e, _import_fields(self.entity), buffer)
        return _xlsx(buffer, f"{e.label}-导入模板.xlsx")

    def _render_import(self, **kwargs: Any) -> Any:
        e = _entity(self.entity)
        return self.render_template("crm/import.html", title=f"{pick('导入', 'Import')} {pick(e.label, e.label_en)}", entity=e,
                                    fields=_import_fields(self.entity), base=self.endpoint, **kwargs)

    @expose("/import/", methods=["GET", "POST"])
    @has_access
    def import_file(self) -> Any:
        """Upload an .xlsx/.csv: headers checked now (a mapping step when unsure), rows imported by a
        Celery worker as this user; nothing is imported if a row is bad, the error workbook says why."""
        from app.io.importer import ImportFileError
        from app.io.importjobs import create_job, dispatch, inspect_upload

        if request.method != "POST":
            return self._render_import(stage="upload")
        upload = request.files.get("file")
        name = (upload.filename or "") if upload else ""
        if not upload or not name.lower().endswith((".xlsx", ".csv")):
            return self._render_import(stage="upload", problems=[pick("请选择 .xlsx 或 .csv 文件", "choose an .xlsx or .csv file")])
        options = {"mode": request.form.get("mode", "insert"), "key": request.form.get("key") or None,
                   "skip_bad_rows": bool(request.form.get("skip_bad_rows")), "dry_run": bool(request.form.get("dry_run"))}
        data = upload.read()
        try:
            seen = inspect_upload(current_app, self.entity, name, data, g.user, options)
        except ImportFileError as exc:
            return self._render_import(stage="upload", problems=exc.problems)
        if seen.plan.problems and not seen.plan.unsure:
            return self._render_import(stage="upload", problems=seen.plan.problems)
        engine = self.datamodel.session.get_bind()
        job = create_job(engine, self.entity, g.user.id, name, data, options, "mapping" if seen.plan.problems else "queued")
        if job["status"] == "queued":
            dispatch(current_app, job["id"])
            return redirect(url_for(f"{self.endpoint}.import_job", token=job["token"]))
        return redirect(url_for(f"{self.endpoint}.import_mapping", token=job["token"]))

    def _job(self, token: str) -> dict[str, Any]:
        """This entity's job ``token`` of the signed-in user (404 for anyone else's)."""
        from app.io.importjobs import job_by_token

        job = job_by_token(self.datamodel.session.get_bind(), token) if re.fullmatch(r"[0-9a-f]{32}", token) else None
        if job is None or job["entity"] != self.entity or job["user_id"] != g.user.id:
            abort(404)
        return job

    @expose("/import/job/<token>/map", methods=["GET", "POST"])
    @has_access
    def import_mapping(self, token: str) -> Any:
        """The mapping step: each header of the file with a dropdown of the fields, best guess first."""
        import json

        from app.io.importcolumns import importable_fields
        from app.io.importer import ImportFileError
        from app.io.importjobs import dispatch, inspect_upload, set_options

        job = self._job(token)
        if job["status"] != "mapping":
            return redirect(url_for(f"{self.endpoint}.import_job", token=token))
        options = json.loads(job["options"])
        engine = self.datamodel.session.get_bind()
        try:
            seen = inspect_upload(current_app, self.entity, job["filename"], job["upload"], g.user, options)
            if request.method == "POST":
                options["mapping"] = {h.replace("*", "").strip(): request.form.get(f"map_{i}", "")
                                      for i, h in enumerate(seen.headers) if h.replace("*", "").strip()}
                seen = inspect_upload(current_app, self.entity, job["filename"], job["upload"], g.user, options)
        except ImportFileError as exc:
            return self._render_import(stage="upload", problems=exc.problems)
        if request.method == "POST" and not seen.plan.problems and set_options(engine, job["id"], options):
            dispatch(current_app, job["id"])
            return redirect(url_for(f"{self.endpoint}.import_job", token=token))
        crm = current_app.extensions["crm"]
        e = _entity(self.entity)
        choices = importable_fields(crm.spec, e, g.user, crm.admin_role)
        key = e.field(options.get("key") or "")
        if key is not None and key not in choices:
            choices.append(key)
        return self._render_import(stage="mapping", job=job, seen=seen, choices=choices, problems=seen.plan.problems)

    @expose("/import/job/<token>")
    @has_access
    def import_job(self, token: str) -> Any:
        """The job's page: a live progress bar while it runs, the summary and the error report after."""
        from app.io.importjobs import progress_of

        job = self._job(token)
        return self._render_import(stage="job", job=job, progress=progress_of(job))

    @expose("/import/job/<token>/progress")
    @has_access
    def import_progress(self, token: str) -> Any:
        """Rows done / total, ETA and status, as JSON (the progress bar polls it; any web worker answers)."""
        from flask import jsonify

        from app.io.importjobs import progress_of, revive

        job = self._job(token)
        if revive(current_app, job):
            job = self._job(token)
        return jsonify(progress_of(job))

    @expose("/import/job/<token>/report")
    @has_access
    def import_report(self, token: str) -> Any:
        job = self._job(token)
        if job["report"] is None:
            abort(404)
        return _xlsx(io.BytesIO(job["report"]), f"{Path(job['filename']).stem}-错误报告.xlsx")

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

    def _form_field(self, name: str, add: Any, edit: Any) -> None:
        """Our own form field for ``name`` in the add and the edit form, where the form shows it."""
        if self.add_columns is None or name in self.add_columns:
            self.add_form_extra_fields[name] = add
        if self.edit_columns is None or name in self.edit_columns:
            self.edit_form_extra_fields[name] = edit

    def _link_field(self, f: Field) -> LinkField:
        view = self
        narrowed = self.crm_rules.narrowed.get(f.name)
        return LinkField(
            L(f.label, f.label_en),
            entity=f.link,
            model=lambda: view.datamodel.get_related_model(f.name),
            lookup_url=lambda: url_for(f"{view.endpoint}.lookup", field=f.name),
            required=f.required,
            within=narrowed.other if narrowed is not None else "",
            description=f.help,
        )

    @expose("/lookup/<field>")
    def lookup(self, field: str) -> Any:
        """The records a link field of this entity may point at, as the user types (JSON, 20 a
        page): for whoever may add or edit here, within their row scope of the linked entity."""
        sm = self.appbuilder.sm
        if not g.user or not g.user.is_authenticated:
            abort(401)
        if not (sm.has_access("can_add", self.class_permission_name) or sm.has_access("can_edit", self.class_permission_name)):
            abort(403)
        f = next((x for x in _entity(self.entity).fields if x.name == field and x.type == "link"), None)
        if f is None or field in current_hidden(self.entity):
            abort(404)
        page = max(1, request.args.get("page", 1, type=int))
        model = self.datamodel.get_related_model(f.name)
        narrowed = self.crm_rules.narrowed.get(field)
        within = request.args.get("within", type=int) if narrowed is not None else None
        where = model.__table__.c[narrowed.column] == within if narrowed is not None and within is not None else None
        results, more = linkfield.search(f.link, model, request.args.get("q", "")[:100], page, where)
        return {"results": results, "more": more}

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


def still_linked(session: Any, entity_name: str, pk: int) -> str:
    """Why a record may not be deleted: the records of other entities that still link to it (they
    would point at nothing; SQLite does not enforce the foreign keys), or "" when none do."""
    spec, models = crm_spec(), current_app.extensions["crm"].generated.models.MODELS
    found = []
    for e in spec.entities:
        for f in e.fields:
            if f.type == "link" and f.link == entity_name:
                column = getattr(models[e.name], f.column)
                n = session.query(column).filter(column == pk).limit(1000).count()
                if n:
                    found.append(f"{n if n < 1000 else '1000+'} 条{e.label}({f.label})")
    if not found:
        return ""
    return (f"不能删除:还有 {'、'.join(found)} 关联到这条记录。请先删除这些记录,或把它们改关联到别的记录。"
            f" (Not deleted: other records still link to it.)")


def _moment_field(f: Field) -> Any:
    """A date or date-and-time input the browser draws (``type=date`` / ``datetime-local``). FAB's
    own widget hangs a date-only picker on date-and-time fields that rewrites the typed time away
    (its ab.js), so no date-and-time could be saved from a form."""
    checks: list[Any] = [wv.DataRequired()] if f.required else [wv.Optional()]
    label = L(f.label, f.label_en)
    if f.type == "date":
        return DateField(label, description=f.help, validators=checks, widget=DateInput())
    return DateTimeLocalField(label, description=f.help, validators=checks, widget=DateTimeLocalInput(),
                              format=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"],
                              render_kw={"step": "1"})


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


class CrmSchemaConverter(Model2SchemaConverter):
    """FAB's answer schemas with every link cut down to the linked record's id and title (a person:
    id and name). FAB would serialise the whole linked row: a user's password hash and e-mail, or a
    linked record's fields the reader's role may not see. Applies to the schemas FAB makes for the
    ``columns`` a client asks for, too."""

    def convert(self, columns: list[str], model: Any = None, nested: bool = True, parent_schema_name: str | None = None) -> Any:
        if nested:
            columns = _safe_columns(model or self.datamodel.obj, columns)
        return super().convert(columns, model=model, nested=nested, parent_schema_name=parent_schema_name)


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
    model2schemaconverter = CrmSchemaConverter
    method_permission_name = {**API_PERMISSIONS, "transitions": "show", "transition": "show", "reassign": "show", "balance": "list"}
    base_permissions = ENTITY_PERMISSIONS
    allow_browser_login = False
    max_page_size = MAX_PAGE_SIZE
    page_size = 25

    def pre_add(self, item: Any) -> None:
        self._plain_values(item)
        super().pre_add(item)

    def pre_update(self, item: Any) -> None:
        self._plain_values(item)
        super().pre_update(item)

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
                    missing[f.name] = [f"{pick(f.label, f.label_en)}:所选记录不存在 (no such record)"]
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
            audit.record(self.datamodel.session, e.name, int(record_id), "read")
            self.datamodel.session.commit()

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
            return self.response_400(message="不能按无权查看的字段查询或排序 (cannot query by a hidden field)")
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
            return self.response_422(message={name: ["无权修改此字段 (not allowed to write this field)"] for name in touched})
        try:
            answer = call()
            if answer.status_code in (200, 201) and answer.is_json and isinstance(data := answer.get_json(), dict) and "result" in data:
                self._strip(data)  # a saved record comes back as GET shows it: no hidden field
                return self.response(answer.status_code, **data)
            return answer
        except (RuleViolation, DatabaseException, IntegrityError) as exc:
            self.datamodel.session.rollback()
            errors = _rule_errors(exc)
            if errors is not None:
                return self.response_422(message=errors)
            if isinstance(exc, IntegrityError) or isinstance(exc.__cause__, IntegrityError):
                return self.response_422(message={"_schema": ["与已有记录冲突(唯一值重复或关联无效) (conflicts with an existing record)"]})
            raise

    def get_headless(self, pk: Any, **kwargs: Any) -> Any:
        if _no_such_id(pk):
            return self.response_404()
        return super().get_headless(pk, **kwargs)

    def delete_headless(self, pk: Any) -> Any:
        if _no_such_id(pk):
            return self.response_404()
        item = self.datamodel.get(pk, self._base_filters)
        linked = still_linked(self.datamodel.session, self.entity, item.id) if item is not None else ""
        if linked:
            return self.response_422(message={"_schema": [linked]})
        return super().delete_headless(pk)

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
            return self.response_422(message={"owner": ["需要用户编号 (a user id is required)"]})
        if not ownership.may_own(self.datamodel.session, spec, e, owner, g.user, current_app.extensions["crm"].admin_role):
            return self.response_422(message={"owner": ["负责人须是可分配的在职用户 (the owner must be an active user records "
                                                        "of this kind may be given to)"]})
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
        """The workflow actions of a record (allowed or not, and why) and its history."""
        spec, e = crm_spec(), _entity(self.entity)
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        opts = workflow.options(spec, e, item, g.user, current_app.extensions["crm"].admin_role)
        return self.response(200, result={
            "actions": [{"key": o.key, "action": o.transition.action, "action_en": o.transition.action_en, "to": o.transition.target,
                         "to_label": workflow.state_label(spec, e, o.transition.state_field, o.transition.target),
                         "allowed": o.allowed, "reason": o.reason, "require_comment": o.transition.require_comment} for o in opts],
            "history": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in h.items()}
                        for h in workflow.history(self.datamodel.session, spec, e, pk)],
        })

    @expose("/<int:pk>/transition", methods=["POST"])
    @protect()
    def transition(self, pk: int) -> Any:
        """Take a workflow action: ``{"action": key or button label (either language), "comment": "…"}``."""
        spec, e = crm_spec(), _entity(self.entity)
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        body = request.get_json(silent=True) or {}
        wanted = str(body.get("action", ""))
        opts = workflow.options(spec, e, item, g.user, current_app.extensions["crm"].admin_role)
        labels = {o.transition.action_en: o.key for o in opts if o.transition.action_en} | {o.transition.action: o.key for o in opts}
        try:
            row = workflow.perform(self.datamodel.session, spec, e, item, labels.get(wanted, wanted), g.user,
                                   current_app.extensions["crm"].admin_role, str(body.get("comment", "")))
        except workflow.WorkflowError as exc:
            return self.response(exc.status, message=exc.message)
        except RuleViolation as exc:
            return self.response_422(message=exc.errors)
        return self.response(200, result={"from": row.from_state, "to": row.to_state, "action": row.action,
                                          "from_label": workflow.state_label(spec, e, row.field, row.from_state),
                                          "to_label": workflow.state_label(spec, e, row.field, row.to_state)})

    def put_headless(self, pk: Any) -> Any:
        """PUT needs the version the client read (``version`` in the body or an If-Match header):
        a save based on an older version is refused with 409 and what changed since."""
        if _no_such_id(pk):
            return self.response_404()
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="请求体须是 JSON 对象 (the body must be a JSON object)")
        seen = body.pop("version", None)
        seen = seen if seen is not None else (request.headers.get("If-Match") or "").strip('"') or None
        if seen is None:
            return self.response_422(message={"version": ["请附上读取时的 version (send the version you read)"]})
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        refused = uploads.api_refusals(_entity(self.entity), body, item)
        if refused:
            return self.response_422(message=refused)
        if str(seen) != str(item.version):
            read = str(seen)  # a number the client sent, or anything else: then every change is listed
            changed = audit.changes_since(self.datamodel.session, self.entity, item.id, int(read) if read.isdigit() and len(read) < 19 else 0)
            return self.response(409, message="此记录已被他人修改 (changed by someone else since you read it)",
                                 version=item.version, changes=[{"by": h["user_id"], "at": h["at"].isoformat(),
                                                                 "changes": self._visible_changes(h["changes"])} for h in changed])
        return self._guarded(lambda: super(CrmModelRestApi, self).put_headless(pk), "edit")
