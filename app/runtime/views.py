"""Base classes of the generated screens and REST APIs.

Generated classes declare columns, labels and fieldsets; these bases add what follows from the
Spec: choice dropdowns and coloured badges, value checks (min/max, pattern, email, phone) for
forms and the API alike, and one permission vocabulary shared by screen and API.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, redirect, url_for
from flask_appbuilder import ModelRestApi, ModelView
from flask_appbuilder.fieldwidgets import Select2Widget
from markupsafe import Markup, escape
from marshmallow import validate as mv
from wtforms import SelectField
from wtforms import validators as wv

from generator.spec import NUMERIC_TYPES, Entity, Field, Spec

from .i18n import L, pick

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
ENTITY_PERMISSIONS = ["can_list", "can_show", "can_add", "can_edit", "can_delete", "can_download"]
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

    def __init__(self, **kwargs: Any):
        spec = crm_spec()
        e = _entity(self.entity)
        self.add_form_extra_fields = dict(self.add_form_extra_fields or {})
        self.edit_form_extra_fields = dict(self.edit_form_extra_fields or {})
        self.formatters_columns = dict(self.formatters_columns or {})
        self.validators_columns = dict(self.validators_columns or {})
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
        super().__init__(**kwargs)

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


class CrmModelRestApi(ModelRestApi):
    """A generated entity's REST API at ``/api/v1/<entity>/`` sharing the screens' permissions."""

    entity: str = ""
    method_permission_name = API_PERMISSIONS
    base_permissions = ENTITY_PERMISSIONS
    allow_browser_login = False
    max_page_size = 100
    page_size = 25

    def __init__(self, **kwargs: Any):
        spec = crm_spec()
        e = _entity(self.entity)
        self.validators_columns = dict(self.validators_columns or {})
        for f in e.fields:
            checks = api_validators(spec, f)
            if checks:
                self.validators_columns[f.name] = mv.And(*checks)
        super().__init__(**kwargs)
