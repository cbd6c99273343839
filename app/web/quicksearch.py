"""Quick search: the top bar's box that finds a record of any entity, and the box above a list.

What a record is found by, for an entity (:func:`search_fields`): its title field, its number (the
``code`` field of a numbered entity) and the fields the workbook marks ``search`` — of those, the
ones the signed-in person may see (no hidden field, no encrypted one, no file or link).

* **Top bar** (``/search/json?q=``, and ``/search/?q=`` as a page for Enter without a choice or a
  browser without scripts): every entity the person may list, one bounded query each (their row
  scope, ``LIMIT``), newest first, grouped by entity, at most :data:`TOTAL_CAP` records in all.
  On PostgreSQL the queries share a time budget (:data:`BUDGET_MS`): an entity whose query would
  run past it is named as not searched, rather than holding the page.
* **List box** (``?q=`` on an entity's list and its export): the same fields, as a filter that
  joins FAB's filters and the row scope (:class:`TextSearchFilter`).

Words separated by spaces must each be found (in any of the fields); ``%`` and ``_`` are plain
characters. Hand-written and generic: every entity, field and label comes from the Spec.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, g, jsonify, redirect, render_template, request, url_for
from flask_appbuilder.models.filters import BaseFilter
from sqlalchemy import exc as sa_exc

from app.access.scope import current_hidden, current_scope_clause
from app.spec.model import TEXT_TYPES, Entity, Field, Spec
from app.web.i18n import pick

log = logging.getLogger(__name__)
MAX_QUERY = 100  # characters of a query looked for; the rest is ignored
MAX_TERMS = 5  # words of a query that must each be found
PER_ENTITY = 5  # records shown per entity in the top bar
TOTAL_CAP = 30  # records shown in all
BUDGET_MS = 2000  # PostgreSQL: the time all of one search's queries may take together
SNIPPET = 40  # characters of a matched field shown under a result's title

bp = Blueprint("crm_search", __name__, url_prefix="/search")


# -- what is searched ---------------------------------------------------------------------------
def search_fields(spec: Spec, entity: Entity, hidden: set[str]) -> list[Field]:
    """The fields a query is looked for in: title, number, the ``search`` fields; none hidden from
    the person, none encrypted (stored unreadable), only those holding text, numbers or choices."""
    names = [entity.title_field, "code" if entity.numbering else "", *(f.name for f in entity.fields if f.search)]
    found: list[Field] = []
    for name in dict.fromkeys(n for n in names if n):
        f = entity.field(name)
        if f is None or f.name in hidden or f.encrypted:
            continue
        if f.type in TEXT_TYPES or f.type in ("integer", "choice") or (f.type == "decimal" and f.name == entity.title_field):
            found.append(f)
    return found


def terms_of(text: str) -> list[str]:
    """The words of a query: at most :data:`MAX_TERMS`, of a query cut at :data:`MAX_QUERY` characters."""
    return (text or "")[:MAX_QUERY].split()[:MAX_TERMS]


def _like(term: str) -> str:
    """``term`` as a LIKE pattern matching it anywhere, its ``%``, ``_`` and ``\\`` taken literally."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _field_clause(spec: Spec, model: Any, f: Field, term: str) -> Any:
    """Where field ``f`` holds ``term``: as text, or for a choice, one of the choices whose label
    (or value) holds it (what the person reads is the label, the column holds the value)."""
    column = getattr(model, f.column)
    if f.type == "choice":
        wanted = term.casefold()
        values = [c.value for c in spec.choices.get(f.choices, ())
                  if wanted in c.label.casefold() or wanted in (c.label_en or "").casefold() or wanted == c.value.casefold()]
        return column.in_(values) if values else None
    if f.type not in TEXT_TYPES:
        column = sa.cast(column, sa.String)
    return column.ilike(_like(term), escape="\\")


def text_clause(spec: Spec, entity: Entity, model: Any, text: str, hidden: set[str]) -> Any:
    """Records of ``model`` holding every word of ``text`` in one of their search fields; None for
    an empty query, ``false`` when there is no field to look in."""
    terms = terms_of(text)
    if not terms:
        return None
    fields = search_fields(spec, entity, hidden)
    every = []
    for term in terms:
        anyone = [c for c in (_field_clause(spec, model, f, term) for f in fields) if c is not None]
        every.append(sa.or_(*anyone) if anyone else sa.false())
    return sa.and_(*every)


class TextSearchFilter(BaseFilter):
    """FAB filter of a list's ``?q=``: ``value`` is ``(entity name, text)``; the signed-in person's
    hidden fields are not looked in."""

    name = "Text search"
    arg_name = "crm_q"

    def apply(self, query: Any, value: Any) -> Any:
        entity_name, text = value
        crm = current_app.extensions["crm"]
        entity = crm.spec.entity(entity_name)
        clause = text_clause(crm.spec, entity, self.model, text, current_hidden(entity_name))
        return query if clause is None else query.filter(clause)


# -- the top bar's search -----------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """An entity as the signed-in person searches it: its model, screen and what they may do there."""

    entity: Entity
    model: Any
    endpoint: str
    can_show: bool


def targets() -> list[Target]:
    """The entities the signed-in person may list, in the workbook's (the menu's) order."""
    crm = current_app.extensions["crm"]
    sm = crm.appbuilder.sm
    found = []
    for name, view, *_rest in crm.generated.views.REGISTRY:
        entity = crm.spec.entity(name)
        permission = getattr(view, "class_permission_name", None) or name
        if entity is None or not sm.has_access("can_list", permission):
            continue
        found.append(Target(entity, crm.generated.models.MODELS[name], view.__name__, sm.has_access("can_show", permission)))
    return found


def _snippet(spec: Spec, f: Field, value: Any) -> str:
    if f.type == "choice":
        choice = next((c for c in spec.choices.get(f.choices, ()) if c.value == value), None)
        text = pick(choice.label, choice.label_en) if choice is not None else str(value)
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"


def _item(spec: Spec, target: Target, fields: list[Field], row: Any, terms: list[str]) -> dict[str, Any]:
    """One found record: its title (the number, or #id, when the person may not see the title),
    its number, and where else the query was found (a phone, a label) when not in those."""
    e = target.entity
    by_name = {f.name: f for f in fields}
    values = row._mapping
    title = values.get(e.title_field) if e.title_field in by_name else None
    code = values.get("code") if "code" in by_name and e.numbering else None
    shown_title = str(title) if title not in (None, "") else str(code or f"#{values['id']}")
    sub = []
    if code and str(code) != shown_title:
        sub.append(str(code))
    lowered = [t.casefold() for t in terms]
    for f in fields:
        value = values.get(f.name)
        if f.name in (e.title_field, "code") or value in (None, ""):
            continue
        text = _snippet(spec, f, value)
        if any(t in text.casefold() or t in str(value).casefold() for t in lowered):
            sub.append(f"{pick(f.label, f.label_en)}:{text}")
            break
    url = url_for(f"{target.endpoint}.show", pk=values["id"]) if target.can_show else url_for(
        f"{target.endpoint}.list", q=" ".join(terms))
    return {"id": values["id"], "title": shown_title, "sub": " · ".join(sub), "url": url}


def _rows(session: Any, statement: Any, deadline: float) -> list[Any] | None:
    """The rows of ``statement``; on PostgreSQL within what is left of the search's time budget
    (None when it ran out: the statement is cancelled, the request's transaction stays usable)."""
    if session.get_bind().dialect.name != "postgresql":
        return list(session.execute(statement).all())
    left_ms = int((deadline - time.monotonic()) * 1000)
    if left_ms <= 0:
        return None
    conn = session.connection()
    conn.exec_driver_sql(f"SAVEPOINT crm_search; SET LOCAL statement_timeout = {left_ms}")
    try:
        return list(conn.execute(statement).all())
    except sa_exc.OperationalError as exc:
        if "statement timeout" not in str(exc) and "canceling statement" not in str(exc):
            raise
        return None
    finally:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT crm_search; RELEASE SAVEPOINT crm_search")


def _allot(sizes: list[int], cap: int, most: int) -> int:
    """The most records per group (up to ``most``) such that all groups together show at most
    ``cap`` (at least one each)."""
    k = most
    while k > 1 and sum(min(n, k) for n in sizes) > cap:
        k -= 1
    return k


def find(text: str, per_entity: int | None = None, cap: int | None = None) -> dict[str, Any]:
    """Records holding ``text`` in the entities the signed-in person may list, grouped by entity:
    ``{"q", "groups": [{"entity", "label", "items": [...], "more": url|None}], "more", "timed_out": [labels]}``;
    at most ``per_entity`` (:data:`PER_ENTITY`) records an entity, ``cap`` (:data:`TOTAL_CAP`) in all."""
    per_entity = per_entity or PER_ENTITY
    cap = cap or TOTAL_CAP
    crm = current_app.extensions["crm"]
    spec, session = crm.spec, crm.db.session
    terms = terms_of(text)
    answer: dict[str, Any] = {"q": " ".join(terms), "groups": [], "more": False, "timed_out": []}
    if not terms:
        return answer
    deadline = time.monotonic() + BUDGET_MS / 1000
    found: list[tuple[Target, list[Field], list[Any]]] = []
    for target in targets():
        e, model = target.entity, target.model
        hidden = current_hidden(e.name)
        fields = search_fields(spec, e, hidden)
        where = text_clause(spec, e, model, text, hidden)
        if not fields or where is None:
            continue
        scope = current_scope_clause(e.name, model)
        columns = [model.id, *(getattr(model, f.column).label(f.name) for f in fields)]
        statement = sa.select(*columns).where(where, *([] if scope is None else [scope]))
        rows = _rows(session, statement.order_by(model.id.desc()).limit(per_entity + 1), deadline)
        if rows is None:
            answer["timed_out"].append(pick(e.label, e.label_en))
        elif rows:
            found.append((target, fields, rows))
    each = _allot([len(rows) for _t, _f, rows in found], cap, per_entity)
    for target, fields, rows in found:
        e = target.entity
        more = len(rows) > each
        answer["more"] = answer["more"] or more
        answer["groups"].append({
            "entity": e.name, "label": pick(e.label, e.label_en),
            "items": [_item(spec, target, fields, row, terms) for row in rows[:each]],
            "more": url_for(f"{target.endpoint}.list", q=answer["q"]) if more else None,
        })
    return answer


def _signed_in() -> None:
    user = getattr(g, "user", None)
    if not getattr(user, "is_authenticated", False):
        abort(401)


@bp.route("/json")
def search_json() -> Any:
    """The top bar's results as the person types (JSON; every text is data for ``textContent``)."""
    _signed_in()
    response = jsonify(find(request.args.get("q", "")))
    response.headers["Cache-Control"] = "no-store"  # what a person may see changes with their grants
    return response


@bp.route("/")
def search_page() -> Any:
    """The same results as a page: Enter without choosing one, or a browser without scripts."""
    appbuilder = current_app.extensions["crm"].appbuilder
    if not getattr(getattr(g, "user", None), "is_authenticated", False):
        return redirect(url_for(f"{appbuilder.sm.auth_view.__class__.__name__}.login", next=request.full_path))
    text = request.args.get("q", "")
    return render_template("crm/search_results.html", appbuilder=appbuilder, base_template=appbuilder.base_template,
                           title=pick("搜索", "Search"), found=find(text, per_entity=20, cap=200), asked=text)


def register_quick_search(app: Any) -> None:
    """The search endpoints (any signed-in person; each entity's list right and row scope decide
    what they find)."""
    app.register_blueprint(bp)
