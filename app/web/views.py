"""The base class of the generated screens (``CrmModelView``) and the permission vocabulary it
shares with the REST API (:mod:`.api`).

Generated classes declare columns, labels and fieldsets; the base adds what follows from the Spec:
row scope, the forms' fields and checks (:mod:`.fields`), rules on save, workflow actions, owner
changes, history, files, and Excel in and out (:mod:`.export`, :mod:`app.io`), drawn by the
widgets of :mod:`.widgets`.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import ModelView, expose, has_access
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.fieldwidgets import Select2Widget
from flask_appbuilder.urltools import get_filter_args, get_order_args
from flask_appbuilder.validators import Unique
from wtforms import SelectField
from wtforms import validators as wv

from app.access import ownership
from app.access.scope import ScopeFilter, current_hidden, current_locked
from app.io import excel
from app.io.importjobs import said
from app.messages import localized, msg
from app.record import audit, uniques, versions, workflow
from app.record.convert import same_value
from app.record.grading import explain_now, graded_fields, reason_fields
from app.record.models import column_default
from app.record.rules import rules_for, validate_values
from app.spec.model import Entity, Field, Spec
from app.web import formcontext, linkfield, quicksearch, recordtabs, stepdialog, uploads, workfilter
from app.web.actions import ScopedActions
from app.web.auditview import Describer
from app.web.cards import card_parts
from app.web.computeddefaults import form_settings
from app.web.dbtuning import is_database_busy
from app.web.export import _export, _import_fields, _required_columns, _xlsx
from app.web.fields import (
    LENGTH_TYPES,
    VERSION_FIELD,
    ChoiceField,
    LockedField,
    VersionField,
    WithheldField,
    _blank_to_none,
    _entity,
    _FreshLists,
    _masked,
    _moment_field,
    _withheld,
    choice_formatter,
    crm_spec,
    form_validators,
    value_formatter,
)
from app.web.i18n import L, current_language, pick, yes_no
from app.web.linkfield import LinkField
from app.web.listing import CountInfo
from app.web.ruletext import reason_text
from app.web.widgets import CrmFormWidget, CrmListWidget, CrmSearchWidget

DATABASE_ERROR = ModelView.database_error_message  # FAB's "Database error", flashed when a save fails
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


RECORD_INFO = ("created_by", "created_on", "changed_by", "changed_on")  # FAB's AuditMixin columns on every record


def _record_info(value: Any) -> Any:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else value


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


def _header_row(text: str | None) -> int | None:
    """The header row typed on the import page: blank for "find it"; a row number from 1."""
    from app.io.importer import ImportFileError

    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise ImportFileError([msg("表头行号须是从 1 开始的整数")])
    return int(text)


class CrmModelView(ScopedActions, ModelView):
    """A generated entity's screens. ``entity`` names the Spec entity it shows."""

    entity: str = ""
    page_size = 25
    base_permissions = ENTITY_PERMISSIONS
    # FAB's settings (None in its class, filled in its __init__), completed in ours
    add_form_extra_fields: Any
    edit_form_extra_fields: Any
    formatters_columns: Any
    validators_columns: Any
    add_form_query_rel_fields: Any
    edit_form_query_rel_fields: Any
    order_columns: Any
    add_form: Any
    edit_form: Any
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
        self.crm_ties = formcontext.form_ties(spec, e, self.crm_rules)  # link → the link whose choice narrows it
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
        for name in RECORD_INFO:  # who made and last changed the record, when: blank while nobody has, not "None"
            self.formatters_columns.setdefault(name, _record_info)
        super().__init__(**kwargs)
        # a link column sorts too: by the linked record (app.web.listing, its indexed id)
        self.order_columns = list(self.order_columns) + [c for c in self.list_columns if c not in self.order_columns
                                                         and self.datamodel.is_relation_many_to_one(c)]
        self.add_form = self._rule_form(self.add_form, "add")
        self.edit_form = self._rule_form(self.edit_form, "edit")

    def _unique_check(self, form: Any, field: Any) -> None:
        """A unique value another record holds, in the words of the API and the import: "already
        exists" only when that record is in the user's sight (:mod:`app.record.uniques`)."""
        spec, e = crm_spec(), _entity(self.entity)
        pk = getattr(form, "_id", None)
        found = uniques.clashes(self.datamodel.session, spec, e, self.datamodel.obj, {field.name: field.data},
                                int(pk) if pk is not None else None, g.user, current_app.extensions["crm"].admin_role)
        if field.name in found:
            raise wv.ValidationError(found[field.name].localized())

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
                    if any(isinstance(v, Unique) for v in field.validators):  # FAB's looks past the row scope
                        field.validators = [view._unique_check if isinstance(v, Unique) else v for v in field.validators]
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
                    known = _entity(entity_name).field(name)
                    value = (getattr(record, name, None) if record is not None
                             else column_default(view.datamodel.obj.__table__.c.get(known.column if known else name)))
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
                for n in view.crm_ties.values():  # a contact chosen with no customer brings its customer, as a save
                    link, other = getattr(self, n.link, None), getattr(self, n.other, None)  # fills it: before "required"
                    if isinstance(link, LinkField) and isinstance(other, LinkField) and other.is_blank():
                        chosen = link.chosen()
                        other.data = getattr(chosen, n.through, None) if chosen is not None else None
                ok = super().validate(extra_validators)
                ok = view._tied(self) and ok
                if item is not None and not view._same_version(self, item):
                    return False
                if item is not None:
                    # the UPDATE asks for that version again: of the saves based on it, one wins
                    versions.based_on(item, int(getattr(self, VERSION_FIELD).data))
                    _keep_unchanged(self, item, rules.entity)
                errors = validate_values(spec, rules, _form_lookup(self, item), changed=_form_changes(self, item))
                for name, messages in errors.items():
                    target = getattr(self, name, None)
                    if target is not None and hasattr(target, "errors"):
                        target.errors = [*target.errors, *messages]
                    else:
                        for m in messages:
                            flash(localized(m), "danger")
                return ok and not errors

        return RuleForm

    def _tied(self, form: Any) -> bool:
        """The ties no validation checks (formcontext: structural ones): a chosen record of a tied
        link must belong to the record chosen (or fixed) in the link that narrows it."""
        ok = True
        for n in formcontext.structural_only(self.crm_ties, self.crm_rules):
            link, other = getattr(form, n.link, None), getattr(form, n.other, None)
            if not isinstance(link, LinkField) or not isinstance(other, LinkField) or link.errors or other.errors:
                continue
            problem = formcontext.tie_error(_entity(self.entity), n, link.data, other.data)
            if problem:
                link.errors = [*link.errors, problem]
                ok = False
        return ok

    def _same_version(self, form: Any, item: Any) -> bool:
        """Refuse a save based on an older version of the record, saying what changed since, and
        one that does not say which version it is based on (a scripted post without the field)."""
        seen = str(getattr(form, VERSION_FIELD).data or "").strip()
        if not seen.isdigit() or len(seen) > 18:
            flash(msg("保存被拒绝:表单没有带上打开时的记录版本,没有保存任何内容。请刷新页面后重新修改。").localized(), "danger")
            return False
        if int(seen) == item.version:
            return True
        flash(self._conflict_message(item.id, int(seen)), "danger")
        return False

    def _conflict_message(self, record_id: Any, read: int | None) -> str:
        """A save refused because the record changed since version ``read``: which fields changed."""
        changed = audit.changes_since(self.datamodel.session, self.entity, record_id, read or 0)
        fields = sorted({name for h in changed for name in h["changes"]})
        labels = [str(self.label_columns.get(n, n)) for n in fields]
        return msg("保存被拒绝:在您编辑期间,此记录已被他人修改(%(fields)s)。请刷新后重新修改。",
                   fields="、".join(labels) or "—", fields_en=", ".join(labels) or "—").localized()

    @property
    def database_error_message(self) -> Any:
        """What FAB flashes when its save of a form fails (it reads this inside its ``except``):
        when another save of the version the form was based on came first, what that one changed;
        when the database stayed busy, that nothing was saved; else FAB's "Database error"."""
        exc = sys.exc_info()[1]
        if isinstance(exc, versions.StaleRecord):
            return self._conflict_message(exc.record_id, exc.read)
        if exc is not None and (is_database_busy(exc) or is_database_busy(exc.__cause__ or exc)):
            return msg("数据库正忙,没有保存任何更改。请稍等片刻后重试。").localized()
        return DATABASE_ERROR

    # -- the record page: its detail, panels and tabs (app.web.recordtabs) ---------------------
    def _show(self, pk: Any) -> Any:
        """FAB's, without drawing the related lists: the page counts them in its tab titles, and a
        request for one tab (``X-CRM-Tab``) gets that list alone."""
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            abort(404)
        name = recordtabs.requested()
        if name:
            return {"crm_tab_page": recordtabs.tab_page(self, item, name)}
        widgets = self._get_show_widget(pk, item)
        self.update_redirect()
        widgets["crm_tabs"] = recordtabs.tabs(self, item)
        return widgets

    def render_template(self, template: str, **kwargs: Any) -> Any:
        widgets = kwargs.get("widgets") or {}
        if template == self.show_template and "crm_tab_page" in widgets:
            return widgets["crm_tab_page"]
        if template == self.show_template and "pk" in kwargs:
            kwargs.update(self._record_panels(kwargs["pk"]))
            kwargs["crm_tabs"] = widgets.get("crm_tabs", [])
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
        if any(f.encrypted for f in e.fields):  # confidential: every read is on record, or the page is not shown
            audit.record_read(self.datamodel.session, e.name, item.id)
        if e.owner_field and ownership.can_reassign(spec, e, g.user, state.admin_role):
            panels["crm_reassign"] = ownership.candidates(self.datamodel.session, spec, e, g.user, state.admin_role)
            panels["crm_owner_id"] = getattr(item, f"{e.owner_field}_id", None)
        if any(t.entity == e.name for t in spec.workflows):
            panels["crm_transitions"] = stepdialog.panel(self, spec, e, item)
            panels["crm_version"] = item.version
            panels["crm_history"] = workflow.history(self.datamodel.session, spec, e, item.id)
        hidden = current_hidden(e.name)
        for graded in graded_fields(spec, e):
            if graded.field in hidden:
                continue
            f = e.field(graded.field)
            value = getattr(item, graded.field, None)
            why = (getattr(item, graded.reason_field, None) if graded.reason_field else None) or explain_now(spec, e, graded, item)
            why = reason_text(spec, e, why, hidden)  # in words; or whole, the values this reader may not see withheld
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
        """Take a workflow step, with the values its dialog asked for (:mod:`.stepdialog`)."""
        return stepdialog.take(self, pk)

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
            raise ValueError(localized(linked))  # FAB shows it and deletes nothing
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
        joined = self._with_text_search(filters.get_joined_filters(self._base_filters))
        # a related list of a record page: every row's link to that record is the record itself, loaded already
        known = {f.column_name for f in filters.filters if isinstance(f, self.datamodel.FilterRelationOneToManyEqual)}
        count, items = self.datamodel.query(joined, order_column, order_direction, page=page, page_size=page_size, after=after,
                                            links=self.list_columns, known=known)
        info = getattr(g, "crm_count", None) or CountInfo(count, True)
        pks = [self._serialize_pk_if_composite(pk) for pk in self.datamodel.get_keys(items)]
        if not info.exact:  # at least the rows up to here exist, whatever the count could tell in time
            count = max(count, (page or 0) * page_size + len(items))
        args: dict[str, Any] = {k: v for k, v in request.args.to_dict(flat=False).items() if k not in (after_arg, f"page_{self.__class__.__name__}")}
        here = {**(request.view_args or {})}
        endpoint = str(request.endpoint)
        urls = {"crm_first_url": url_for(endpoint, **here, **args),
                "crm_exact_url": url_for(endpoint, **here, **{**args, "_exact": "1"}),
                "crm_next_url": url_for(endpoint, **here, **{**args, after_arg: pks[-1]})
                if len(items) >= page_size and pks and self.datamodel._plain_column(order_column) is not None else None}
        widgets["list"] = self.list_widget(
            label_columns=self.label_columns, include_columns=self.list_columns,
            value_columns=self.datamodel.get_values(items, self.list_columns), order_columns=self.order_columns,
            formatters_columns=self._list_formatters(), page=page, page_size=page_size, count=count, pks=pks,
            actions=actions or self.actions, filters=filters, modelview_name=self.__class__.__name__,
            crm_count=info, crm_keyset=after is not None, crm_int_pks=all(type(pk) is int for pk in pks),
            crm_title=(title := self._title_column()), crm_card=card_parts(crm_spec(), _entity(self.entity), self.list_columns, title),
            **urls, **kwargs,
        )
        return widgets

    def _list_text(self) -> str:
        """The words of the list box (``?q=``) on this entity's list and its export; none on a
        record page's related lists (their page's address is another's)."""
        if request.endpoint not in (f"{self.endpoint}.list", f"{self.endpoint}.export"):
            return ""
        return request.args.get("q", "")[:quicksearch.MAX_QUERY].strip()

    def _with_text_search(self, filters: Any) -> Any:
        """``filters`` and, when the list box has words, the records holding them in a search field."""
        text = self._list_text()
        filters = workfilter.narrow(filters, self.endpoint)  # a count of the home page, a digest of the inbox
        return filters.add_filter("id", quicksearch.TextSearchFilter, (self.entity, text)) if text else filters

    def _title_column(self) -> str:
        """The column whose cell opens the record: the title field, else the number, if listed."""
        e = _entity(self.entity)
        for name in (e.title_field, "code" if e.numbering else ""):
            if name and name in self.list_columns:
                return name
        return ""

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
        fields = quicksearch.search_fields(crm_spec(), e, current_hidden(e.name))
        # what the box's form carries on (the filters, the sort, the page size), not the page
        kept: dict[str, Any] = {k: v for k, v in request.args.lists() if k != "q" and not k.startswith(("page_", "_after_"))}
        return {"crm_can_balance": bool(e.owner_field) and ownership.can_reassign(crm_spec(), e, g.user, state.admin_role),
                "crm_can_export": sm.has_access("can_export", self.class_permission_name),
                "crm_can_import": sm.has_access("can_import", self.class_permission_name),
                "crm_narrowed": workfilter.banner(self.endpoint),
                "crm_q": self._list_text(), "crm_q_fields": [pick(f.label, f.label_en) for f in fields],
                "crm_q_placeholder": pick("搜索" + "、".join(f.label for f in fields),
                                          "Search " + ", ".join(f.label_en or f.label for f in fields)),
                "crm_q_keep": [(k, v) for k, values in kept.items() for v in values],
                "crm_q_clear": url_for(str(request.endpoint), **(request.view_args or {}), **kept)}

    @expose("/reassign/<pk>", methods=["POST"])
    @has_access
    def reassign(self, pk: Any) -> Any:
        spec, e = crm_spec(), _entity(self.entity)
        item = self.datamodel.get(pk, self._base_filters)  # only a record the manager may see
        if item is None or not e.owner_field:
            abort(404)
        if not ownership.can_reassign(spec, e, g.user, current_app.extensions["crm"].admin_role):
            flash(msg("只有经理可以调整负责人").localized(), "danger")
            return redirect(url_for(f"{self.endpoint}.show", pk=pk))
        asked = request.form.get("owner", "").strip()
        owner = int(asked) if asked.isdigit() and len(asked) < 19 else None
        admin_role = current_app.extensions["crm"].admin_role
        if asked.strip("0") and (owner is None or not ownership.may_own(self.datamodel.session, spec, e, owner, g.user, admin_role)):
            flash(msg("负责人须是可选的在职用户之一").localized(), "danger")
            return redirect(url_for(f"{self.endpoint}.show", pk=pk))
        setattr(item, f"{e.owner_field}_id", owner or None)
        try:
            self.datamodel.edit(item)
            flash(msg("负责人已调整").localized(), "success")
        except Exception as exc:  # noqa: BLE001 - FAB wraps database errors; show them to the user
            self.datamodel.session.rollback()
            cause = exc.__cause__ or exc
            flash(localized(cause.args[0]) if cause.args and isinstance(cause.args[0], str) else str(cause), "danger")
        return redirect(url_for(f"{self.endpoint}.show", pk=pk))

    @expose("/balance", methods=["POST"])
    @has_access
    def balance(self) -> Any:
        spec, e = crm_spec(), _entity(self.entity)
        if not e.owner_field or not ownership.can_reassign(spec, e, g.user, current_app.extensions["crm"].admin_role):
            abort(403)
        given = ownership.balance(self.datamodel.session, spec, e, self.datamodel.obj, g.user, current_app.extensions["crm"].admin_role)
        flash(msg("已均衡分配 %(n)s 条记录", n=sum(given.values())).localized(), "success")
        return redirect(url_for(f"{self.endpoint}.list"))

    # -- Excel --------------------------------------------------------------------------------
    @expose("/export/")
    @has_access
    def export(self) -> Any:
        """This list as .xlsx: the filters, the list box's words and the sort on screen (as the list
        allows them: searchable and sortable columns, none the user may not see), the user's scope,
        no hidden field."""
        hidden = current_hidden(self.entity)
        get_filter_args(self._filters)
        self._visible_filters(self._filters)
        asked = get_order_args().get(self.__class__.__name__)
        if asked and asked[0] in self.order_columns and asked[0].split(".")[0] not in hidden:
            order_column, order_direction = asked
        else:
            order_column, order_direction = self.base_order or ("", "")
        model = self.datamodel.obj
        joined = self._with_text_search(self._filters.get_joined_filters(self._base_filters))
        query = self.datamodel.apply_all(self.datamodel.session.query(model), joined, order_column, order_direction)
        if not order_column:  # a stable order, as on screen
            query = query.order_by(model.id)
        buffer = io.BytesIO()
        n = _export(self.datamodel.session, self.entity, query.yield_per(2000), buffer, g.user)
        return _xlsx(buffer, f"{_entity(self.entity).label}-{n}.xlsx")

    @expose("/import/template/")
    @has_access
    def import_template(self) -> Any:
        buffer = io.BytesIO()
        e = _entity(self.entity)
        excel.write_template(crm_spec(), e, _import_fields(self.entity), buffer, {f.name for f in _required_columns(self.entity)})
        return _xlsx(buffer, f"{e.label}-导入模板.xlsx")

    def _render_import(self, **kwargs: Any) -> Any:
        e = _entity(self.entity)
        if "problems" in kwargs:  # the checks' messages, in the user's language
            kwargs["problems"] = [localized(p) for p in kwargs["problems"]]
        return self.render_template("crm/import.html", title=f"{pick('导入', 'Import')} {pick(e.label, e.label_en)}", entity=e,
                                    fields=_import_fields(self.entity), required=_required_columns(self.entity), base=self.endpoint,
                                    crm_lang=(lang := current_language()), said=lambda kept: said(kept, lang), **kwargs)

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
            return self._render_import(stage="upload", problems=[msg("请选择 .xlsx 或 .csv 文件")])
        options: dict[str, Any] = {"mode": request.form.get("mode", "insert"), "key": request.form.get("key") or None,
                                   "skip_bad_rows": bool(request.form.get("skip_bad_rows")), "dry_run": bool(request.form.get("dry_run"))}
        data = upload.read()
        try:
            options["header_row"] = _header_row(request.form.get("header_row"))
            seen = inspect_upload(current_app, self.entity, name, data, g.user, options)
        except ImportFileError as exc:
            return self._render_import(stage="upload", problems=exc.problems)
        options["header_row"] = seen.header_row  # found below the title rows, or as given: the job imports from there
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
            moved = False
            if request.method == "POST":  # the header row the page showed, and the one chosen on it
                chosen = _header_row(request.form.get("header_row"))
                options["header_row"] = chosen or options.get("header_row")
                moved = chosen is not None and chosen != _header_row(request.form.get("shown_header_row"))
            seen = inspect_upload(current_app, self.entity, job["filename"], job["upload"], g.user, options)
            if request.method == "POST" and not moved:  # another row chosen: its headers matched afresh, shown to map
                options["mapping"] = {h.replace("*", "").strip(): request.form.get(f"map_{i}", "")
                                      for i, h in enumerate(seen.headers) if h.replace("*", "").strip()}
                seen = inspect_upload(current_app, self.entity, job["filename"], job["upload"], g.user, options)
        except ImportFileError as exc:
            return self._render_import(stage="upload", problems=exc.problems)
        options["header_row"] = seen.header_row
        if request.method == "POST" and not moved and not seen.plan.problems and set_options(engine, job["id"], options):
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
        return self._back_to_parent() or self._back()

    def post_edit_redirect(self) -> Any:
        return self._back_to_parent() or self._back()

    # -- forms with context (app.web.formcontext) ----------------------------------------------
    def _back_to_parent(self) -> Any:
        """After saving a form opened from a record's tab: that record's page, on this tab."""
        e = _entity(self.entity)
        for name, value in formcontext.fixed_links(self, e).items():
            f = e.field(name)
            url = formcontext.show_url(f, value, self.__class__.__name__) if f is not None and value.isdigit() else None
            if url:
                self.get_redirect()  # the form's own entry leaves the page history, as a plain save does
                return redirect(url)
        return None

    def _fill_form_exclude_cols(self, exclude_cols: Any, form: Any) -> None:
        """FAB sets the related list's record into the form, unchecked and whatever the filter (a
        "not equal" one too); here a fixed link takes the address's id, checked like a posted one."""
        for name, value in self._fixed_values().items():
            field = getattr(form, name, None)
            if isinstance(field, LinkField):
                field.fix(value)

    def _fixed_values(self) -> dict[str, str]:
        """The links fixed on this request's form: those the address gives, and those a fixed
        link determines through its tie (a survey answer added from a service call's tab belongs
        to that call's customer)."""
        e = _entity(self.entity)
        fixed = formcontext.fixed_links(self, e)
        for n in self.crm_ties.values():
            f = e.field(n.link)
            if f is None or n.link not in fixed or n.other in fixed:
                continue
            record = formcontext.parent_record(f, self.datamodel.get_related_model(n.link), fixed[n.link])
            value = getattr(record, n.column, None) if record is not None else None
            if value is not None:
                fixed[n.other] = str(value)
        return fixed

    def _form_context(self, form: Any, adding: bool) -> dict[str, Any]:
        """What the form widget draws besides FAB's columns: the fixed links as lines naming their
        record (a GET naming a record the user may not see is a 404), the fields the user may not
        see left out (never shown, never posted, never changed) — and, on an add form, those they
        may not set that would stay empty anyway — and where 取消 goes."""
        e = _entity(self.entity)
        given = formcontext.fixed_links(self, e)
        lines: list[formcontext.ParentLine] = []
        for name, value in self._fixed_values().items():
            field, f = getattr(form, name, None), e.field(name)
            if not isinstance(field, LinkField) or f is None:
                continue
            record = formcontext.parent_record(f, field.model, value)
            if record is None and name in given and request.method != "POST":
                abort(404)
            url = formcontext.show_url(f, record.id) if record is not None else None
            lines.append(formcontext.ParentLine(name, str(field.label.text), value, record, url, list(field.errors)))
        order = [f.name for f in e.fields]
        lines.sort(key=lambda line: order.index(line.name))  # as the workbook lists them: the customer before its contact
        back = next((line.url + f"#{self.__class__.__name__}" for line in lines if line.url and line.name in given), None)
        absent = [n for n in current_hidden(self.entity) if isinstance(getattr(form, n, None), WithheldField)]
        if adding:
            absent += [n for n, field in form._fields.items() if isinstance(field, LockedField) and field.record_value in (None, "")]
        return {"exclude_cols": [*absent, *(line.name for line in lines)], "crm_fixed": lines,
                "crm_cancel": back or url_for("UtilView.back"), "crm_defaults": form_settings(e) if adding else None}

    def _get_add_widget(self, form: Any, exclude_cols: Any = None, widgets: Any = None) -> Any:
        widgets = widgets or {}
        widgets["add"] = self.add_widget(form=form, include_cols=self.add_columns, fieldsets=self.add_fieldsets,
                                         **self._form_context(form, adding=True))
        return widgets

    def _get_edit_widget(self, form: Any, exclude_cols: Any = None, widgets: Any = None) -> Any:
        widgets = widgets or {}
        widgets["edit"] = self.edit_widget(form=form, include_cols=self.edit_columns, fieldsets=self.edit_fieldsets,
                                           **self._form_context(form, adding=False))
        return widgets

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
        narrowed = self.crm_ties.get(f.name)
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
        narrowed = self.crm_ties.get(field)
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
    return msg("不能删除:还有 %(records)s 关联到这条记录。请先删除这些记录,或把它们改关联到别的记录。", records="、".join(found))


