"""Fields as the screens and the API show and check them, from the Spec: choice badges and value
formatters, min/max/pattern/e-mail/phone validators for forms and the API alike, and the fields a
role may see but not write (locked) or not see (withheld)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from flask import current_app, url_for
from markupsafe import Markup, escape
from marshmallow import validate as mv
from werkzeug.routing import BuildError
from wtforms import DateField, DateTimeLocalField, HiddenField, SelectField
from wtforms import Field as WTField
from wtforms import validators as wv
from wtforms.widgets import DateInput, DateTimeLocalInput

from app.access.scope import current_hidden
from app.messages import later, msg
from app.record.convert import DIGITS_BEFORE_POINT, INTEGER_LIMIT, PHONE_PATTERN
from app.spec.model import NUMERIC_TYPES, Entity, Field, Spec
from app.web.i18n import L, current_language, pick

# a choice's colour (choices sheet) → the badge's style
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
        if f.type in ("money", "decimal"):
            return number_text(value, f.type)
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


def number_text(value: Any, kind: str = "decimal") -> str:
    """A number as a page shows it, with thousands separators: money to the cent (1,234.50), a
    decimal to the places it holds (the column keeps four: 1.5000 hours is 1.5, 478.5900 is
    478.59), an integer as it is."""
    if kind == "money":
        return f"{value:,.2f}"
    if isinstance(value, Decimal):
        text = f"{value:,f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, float):
        return _number_text(value)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _number_text(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


class _Between(wv.NumberRange):
    """The workbook's min and max, said as the office wrote them ("不能小于 0", not "必须大于 0.0",
    which refused the 0 it accepts), and silent when the value was no number at all (the field
    has said so already)."""

    def __init__(self, low: float | None, high: float | None):
        lo, hi = (None if v is None else _number_text(v) for v in (low, high))
        if lo is not None and hi is not None:
            message = later("须在 %(low)s 到 %(high)s 之间", low=lo, high=hi)
        elif lo is not None:
            message = later("不能小于 %(low)s", low=lo)
        else:
            message = later("不能大于 %(high)s", high=hi)
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
        checks.append(wv.Regexp(f.pattern, message=later("%(label)s格式不正确", label=f.label, label_en=f.label_en or f.name)))
    if f.type == "email":
        checks.append(wv.Email(message=later("邮箱格式不正确")))
    if f.type == "phone":
        checks.append(wv.Regexp(PHONE_PATTERN, message=later("电话号码格式不正确")))
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
        checks.append(mv.Regexp(re.compile(r"[\s\S]*\S"), error=msg("必填,不能只填空白")))
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


VERSION_FIELD = "crm_version"


class VersionField(HiddenField):
    """The record version the form was opened with (optimistic locking); never written back."""

    def populate_obj(self, obj: Any, name: str) -> None:
        return None


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
        if reason:  # a grade's reason: the rule in words, or whole (hidden values withheld) to readers of rules
            from app.web.ruletext import reason_text

            value = reason_text(crm_spec(), _entity(entity), value, hidden)
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
