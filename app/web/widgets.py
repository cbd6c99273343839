"""The widgets of the generated screens: the list (badges, row links, selection), the form and
the search form, drawn with the app's templates."""

from __future__ import annotations

from typing import Any

from flask import current_app, request, url_for
from flask_appbuilder.models.sqla.filters import FilterContains
from flask_appbuilder.widgets import FormWidget, ListWidget, RenderTemplateWidget, SearchWidget
from markupsafe import Markup, escape

from app.web import pagecache


class CrmListWidget(ListWidget):
    """FAB's list table with a header that tells a capped count from an exact one and continues
    past the counted pages by keyset ("下一页")."""

    template = "crm/list_widget.html"

    def __call__(self, **kwargs: Any) -> Any:
        args = {**self.template_args, **kwargs}

        def rows(check: Any, crud: Any, can_show: bool = False) -> Markup:
            return draw_rows(args["value_columns"], args["pks"], args["include_columns"], args["formatters_columns"], bool(check), crud,
                             title_link(args, can_show), card_cells(args))

        return super().__call__(crm_draw_rows=rows, **kwargs)


PK_PLACEHOLDER = "__crm_pk__"


def card_cells(args: dict[str, Any]) -> dict[str, str]:
    """Column → the attributes of its cells that place them on a phone's card (:mod:`.cards`):
    the part as a class, the column's label for the card's "label  value" lines."""
    parts = args.get("crm_card") or {}
    labels = args.get("label_columns") or {}
    return {c: f' class="crm-c-{escape(parts.get(c, "more"))}" data-label="{escape(labels.get(c, c))}"' for c in args["include_columns"]}


def title_link(args: dict[str, Any], can_show: bool) -> tuple[str, str] | None:
    """(column, URL of the record page with the ``__crm_pk__`` placeholder) of a list whose title
    column (``crm_title``) is shown and whose records the person may open; else None."""
    column = args.get("crm_title")
    if not column or column not in args["include_columns"] or not can_show:
        return None
    return column, url_for(f"{args['modelview_name']}.show", pk=PK_PLACEHOLDER)


def draw_rows(items: list[dict[str, Any]], pks: list[Any], columns: list[str], formatters: dict[str, Any], check: bool,
              crud: Any, link: tuple[str, str] | None = None, cells: dict[str, str] | None = None) -> Markup:
    """The table's rows as FAB's list template draws them (each value through its formatter and
    escaped, as Jinja's autoescape does), in a plain loop: a page of 25 rows × 12 columns is 300
    cells, where the template spent ~10 µs each. ``crud``: the row buttons drawn once with the
    ``__crm_pk__`` placeholder, or None; ``check``: the action checkbox column; ``link``: the title
    column and the record page's URL (:func:`title_link`): its cell opens the record; ``cells``:
    each column's cell attributes (:func:`card_cells`)."""
    out: list[str] = []
    attrs = cells or {}
    columns_drawn = [(c, formatters.get(c), attrs.get(c, "")) for c in columns]
    for item, pk in zip(items, pks, strict=True):
        key = escape(pk)
        out.append("<tr>")
        if check:
            out.append(f'<td class="crm-c-check"><input id="{key}" class="action_check" name="rowid" value="{key}" type="checkbox"></td>')
        if crud is not None:
            out.append(f'<td class="crm-c-crud"><center>{str(crud).replace(PK_PLACEHOLDER, key)}</center></td>')
        for name, fmt, attr in columns_drawn:
            value = item[name]
            text = escape(fmt(value) if fmt else value)
            if link is not None and name == link[0]:
                href = escape(link[1].replace(PK_PLACEHOLDER, str(pk)))
                text = text if text.strip() else escape(f"#{pk}")
                out.append(f'<td{attr}><a class="crm-title-link" href="{href}">{text}</a></td>')
            else:
                out.append(f"<td{attr}>{text}</td>")
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
                      crm_contains=contains, crm_q=request.args.get("q", "")[:100])  # the list box's words go on with the filters
        return RenderTemplateWidget.__call__(self, **kwargs)
