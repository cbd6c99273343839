"""Link fields in forms that stay usable at a million rows.

FAB's form field for a link (``QuerySelectField``) loads every row of the linked table twice per
save: once to draw the dropdown and once to find the posted id in it. With a million customers,
the contact form is a hundred-megabyte page and every save reads the whole table.

``LinkField`` draws the whole (row-scoped) dropdown only while the linked table is small
(``CRM_LINK_LOOKUP_THRESHOLD`` rows, 500 by default); above that the dropdown holds the current
value and asks the view's ``lookup`` endpoint as the user types (20 rows a page, the user's row
scope of the linked entity). Either way a posted id is checked with one query: the record must
exist and be inside the user's row scope, or the form says so on the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import current_app, url_for
from markupsafe import Markup, escape
from wtforms import Field
from wtforms.validators import ValidationError

from app.access.scope import scoped_select
from app.messages import msg
from app.web.i18n import pick

DEFAULT_THRESHOLD = 500
PAGE = 20


def threshold() -> int:
    return int(current_app.config.get("CRM_LINK_LOOKUP_THRESHOLD", DEFAULT_THRESHOLD))


def _crm() -> Any:
    return current_app.extensions["crm"]


def is_big(model: Any, limit: int) -> bool:
    """More than ``limit`` rows in the table (reads at most ``limit + 1`` of them)."""
    inner = sa.select(sa.literal(1)).select_from(model.__table__).limit(limit + 1).subquery()
    return int(_crm().db.session.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one()) > limit


def title_column(model: Any) -> Any:
    name = getattr(model, "__title_field__", "")
    return getattr(model, name) if name else model.id


def search(entity_name: str, model: Any, text: str, page: int, where: Any = None) -> tuple[list[dict[str, Any]], bool]:
    """One page of the records a user may link to whose title contains ``text`` (and that meet
    ``where``, a narrowing): newest first."""
    query = scoped_select(entity_name, model)
    if where is not None:
        query = query.where(where)
    text = text.strip()
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(sa.cast(title_column(model), sa.String).ilike(f"%{escaped}%", escape="\\"))
    query = query.order_by(model.id.desc()).offset(max(0, page - 1) * PAGE).limit(PAGE + 1)
    rows = list(_crm().db.session.execute(query).scalars())
    return [{"id": r.id, "text": str(r)} for r in rows[:PAGE]], len(rows) > PAGE


class LinkSelect:
    """The ``<select>`` of a link: every choice when the table is small, else the current one and
    a lookup URL for the browser to ask as the user types (``crm/linkfield.js``)."""

    def __call__(self, field: LinkField, **kwargs: Any) -> Markup:
        attrs: dict[str, Any] = {"id": kwargs.pop("id", field.id), "name": field.name, "class": "form-control"}
        if kwargs.pop("required", False) or field.flags.required:
            attrs["required"] = True
        current = field.data
        if field.within or field.is_big():  # a narrowed link asks for the records of the other field's choice
            attrs["data-crm-lookup"] = field.lookup_url()
            if field.within:
                attrs["data-crm-within"] = field.within
            attrs["data-placeholder"] = pick("输入名称查找…", "Type to search…")
            attrs["data-no-results"] = pick("没有匹配的记录", "No matching records")
            attrs["data-searching"] = pick("查找中…", "Searching…")
            attrs["data-more"] = pick("加载更多…", "Loading more…")
            choices = [current] if current is not None else []
            script = Markup('<script src="{}" defer></script>').format(url_for("crm_assets.static", filename="crm/linkfield.js"))
        else:
            attrs["class"] += " my_select2"  # FAB's select2 with local search, as for any dropdown
            choices = field.choices()
            script = Markup("")
        html = [Markup("<select"), *(_attr(k, v) for k, v in attrs.items()), Markup(">")]
        if not field.flags.required or current is None:
            html.append(Markup('<option value="">—</option>'))
        for obj in choices:
            selected = current is not None and obj.id == current.id
            html.append(Markup('<option value="{}"{}>{}</option>').format(obj.id, Markup(" selected") if selected else "", str(obj)))
        html.append(Markup("</select>"))
        return Markup("").join(html) + script


def _attr(name: str, value: Any) -> Markup:
    if value is True:
        return Markup(" {}").format(name)
    return Markup(' {}="{}"').format(name, escape(value))


class LinkField(Field):
    """A link to a record of ``entity``; ``data`` is that record (or None), as FAB's field gives it."""

    widget = LinkSelect()

    def __init__(self, label: Any = None, *, entity: str, model: Callable[[], Any], lookup_url: Callable[[], str],
                 required: bool = False, within: str = "", **kwargs: Any):
        # no wtforms Optional(): it would clear this field's errors when nothing was posted for it,
        # and a related list's "add" sets the record without posting it
        super().__init__(label, [], **kwargs)
        self.flags.required = required
        self.entity = entity
        self._model = model
        self.lookup_url = lookup_url
        self.within = within  # the form field whose choice narrows this one's records (rules.Narrowing), if any
        self._posted: str | None = None
        self._big: bool | None = None
        self.kept: int | None = None  # the id the edited record links to now (set by the form): always a valid choice
        self._chosen: tuple[int, Any] | None = None  # the last id looked up and what the user may link there
        self.fixed: str | None = None  # the id the form's address fixes (formcontext: opened from that record's tab)
        self._moved = False  # something else was posted for a fixed link

    def fix(self, value: str) -> None:
        """This link is the form's parent, ``value`` as the address gives it: whatever is posted,
        that record is checked (row scope) and saved; a post naming another one is refused."""
        self._moved = self._posted is not None and self._posted != value
        self.fixed = self._posted = value

    @property
    def model(self) -> Any:
        return self._model()

    def is_big(self) -> bool:
        if self._big is None:
            self._big = is_big(self.model, threshold())
        return self._big

    def choices(self) -> list[Any]:
        query = scoped_select(self.entity, self.model).order_by(title_column(self.model), self.model.id)
        return list(_crm().db.session.execute(query).scalars())

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            raw = str(valuelist[0]).strip()
            self._posted = None if raw in ("", "__None") else raw
            if self._posted is None:
                self.data = None

    def pre_validate(self, form: Any) -> None:
        if self._moved:
            raise ValidationError(msg("此项是所属的记录,不能改为别的记录").localized())
        if self.is_blank():
            if self.flags.required:
                raise ValidationError(msg("此项必填").localized())
            return
        if self._posted is not None and not self._posted.lstrip("-").isdigit():
            raise ValidationError(msg("不是有效的选项").localized())
        obj = self.chosen()
        if obj is None:
            self.data = None
            raise ValidationError(msg("所选记录不存在或您无权选择").localized())
        self.data = obj

    def is_blank(self) -> bool:
        return self._posted is None and self.data is None

    def chosen(self) -> Any:
        """The record posted (or set by the view: a related list's "add") if the user may choose it, else None."""
        wanted: Any = self._posted if self._posted is not None else getattr(self.data, "id", None)
        try:
            pk = int(wanted)
        except (TypeError, ValueError):
            return None
        if self._chosen is None or self._chosen[0] != pk:  # asked by the form (a tie's fill) and by the check: looked up once
            session = _crm().db.session
            if pk == self.kept:  # unchanged, though the linked record may have left the user's scope since (reassigned)
                found = session.get(self.model, pk)
            else:
                found = session.execute(scoped_select(self.entity, self.model).where(self.model.id == pk)).scalars().first()
            self._chosen = (pk, found)
        return self._chosen[1]
