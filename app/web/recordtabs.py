"""A record page's tabs: its detail drawn with the page, each related list loaded when opened.

A record page shows one tab at a time, yet drawing every related list up front (FAB's
``_get_related_views_widgets``) was half the page's time: a list query, its links and its rows
for each of a dozen tabs. The page now draws the detail tab and, in the tab titles, how many rows
each related list holds — every count in ONE statement, each capped at ``CRM_LIST_COUNT_CAP``
(a sub-select over ``LIMIT cap + 1``, as the lists count) and scoped as the list itself is (the
related screen's row scope, the link to this record). Opening a tab asks the same address again
with the header ``X-CRM-Tab: <ViewName>`` (``crm/tabs.js``); the answer is that list alone, drawn
by the related screen with its own paging and sorting arguments of the address, so the links in
it (pages, sorting, 下一页) are addresses of the record page itself.

A tab is offered only to those who may list the related entity; its count and rows are within
their row scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, make_response, request
from flask_appbuilder.urltools import get_order_args, get_page_args, get_page_size_args

from app.web.listing import DEFAULT_CAP, CountInfo

TAB_HEADER = "X-CRM-Tab"  # names the related screen whose list the request asks for


@dataclass(frozen=True)
class Tab:
    """A related list's tab: the screen's class name (the pane's id and the ``#`` of links to
    it), its title, and how many rows it holds (capped)."""

    name: str
    title: str
    count: CountInfo

    @property
    def count_text(self) -> str:
        return f"{self.count.value:,}" + ("" if self.count.exact else "+")


def related_screens(view: Any) -> list[Any]:
    """The related screens of ``view`` the current user may list, linked to its model."""
    sm = view.appbuilder.sm
    shown = []
    for rv in view._related_views:
        fk = rv.datamodel.get_related_fk(view.datamodel.obj)
        if fk is None or not rv.datamodel.is_relation_many_to_one(fk):
            continue
        if sm.has_access("can_list", rv.class_permission_name):
            shown.append(rv)
    return shown


def _filters(view: Any, item: Any, rv: Any) -> Any:
    """The related list's filters for ``item``: its link to the record (as FAB's related view)."""
    fk = rv.datamodel.get_related_fk(view.datamodel.obj)
    filters = rv.datamodel.get_filters()
    filters.add_filter_related_view(fk, view.datamodel.FilterRelationOneToManyEqual, view.datamodel.get_pk_value(item))
    return filters


def tabs(view: Any, item: Any) -> list[Tab]:
    """The record's tabs with their rows counted, all in one statement."""
    screens = related_screens(view)
    if not screens:
        return []
    cap = int(current_app.config.get("CRM_LIST_COUNT_CAP", DEFAULT_CAP))
    counts = []
    for rv in screens:
        dm = rv.datamodel
        joined = _filters(view, item, rv).get_joined_filters(rv._base_filters)  # its link and the user's row scope
        query = dm._apply_inner_all(dm.session.query(dm.obj), joined, select_columns=None, aliases_mapping={})
        capped = query.order_by(None).with_entities(dm.get_pk()).limit(cap + 1).subquery()
        counts.append(sa.select(sa.func.count()).select_from(capped).scalar_subquery())
    row = view.datamodel.session.execute(sa.select(*counts)).one()
    return [Tab(type(rv).__name__, str(rv.list_title), CountInfo(min(int(n), cap), int(n) <= cap))
            for rv, n in zip(screens, row, strict=True)]


def requested() -> str:
    """The related screen a request asks for (``X-CRM-Tab``), or ''."""
    return request.headers.get(TAB_HEADER, "").strip()


def tab_page(view: Any, item: Any, name: str) -> Any:
    """The list of one tab of the record ``item``, drawn by its related screen with the paging and
    sorting of the request's address; 404 for a screen that is no tab of this user's."""
    rv = next((s for s in related_screens(view) if type(s).__name__ == name), None)
    if rv is None:
        abort(404)
    order_column, order_direction = get_order_args().get(name, ("", ""))
    widget = rv._get_list_widget(filters=_filters(view, item, rv), order_column=order_column, order_direction=order_direction,
                                 page=get_page_args().get(name), page_size=get_page_size_args().get(name)).get("list")
    response = make_response(widget(pk=view.datamodel.get_pk_value(item)))
    response.vary.add(TAB_HEADER)  # the same address answers the page or one of its tabs
    response.headers["Cache-Control"] = "no-store"
    return response
