"""Lists that stay fast on big tables: the data side of every generated list (screens and REST).

* **Capped count.** ``SELECT count(*)`` over a million rows costs more than the page itself, on
  every page. A list counts at most ``CRM_LIST_COUNT_CAP`` matching rows (``count(*)`` over a
  ``LIMIT cap + 1`` subquery, which stops early) within ``CRM_LIST_COUNT_TIMEOUT_MS`` on
  PostgreSQL; past either it says "1,000+" with the planner's estimate ("约 1,000,000"). The exact
  count is one click away (``_exact=1`` on screens, ``exact_count=1`` on the API).
* **Bounded pages.** Page numbers (OFFSET) reach only as deep as the count was capped; beyond,
  "next page" continues by keyset (``_after_<View>=<id of the last row>``): the row is looked up
  under the same filters and row scope, and the next page starts right after its (sort value, id)
  — an index seek however deep, instead of reading and skipping every row before it.
* **One order on every database.** Rows with an empty sort value come last ascending and first
  descending (PostgreSQL's own order, matching its indexes), with the id as tie-breaker, so offset
  and keyset pages agree, and no row is skipped or repeated between pages.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app, g, has_request_context
from flask_appbuilder.exceptions import DatabaseException
from flask_appbuilder.models.sqla.filters import SQLAFilterConverter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import RelationshipProperty, lazyload, selectinload

from app.record import versions

log = logging.getLogger(__name__)
DEFAULT_CAP = 1_000
DEFAULT_TIMEOUT_MS = 250


@dataclass(frozen=True)
class CountInfo:
    """How many rows match: ``value`` exactly, or at least ``value`` (``estimate``: the planner's guess)."""

    value: int
    exact: bool
    estimate: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.value, "count_exact": self.exact, "count_estimate": self.estimate}


def exact_requested() -> bool:
    """Whether this request asked for the exact count (set by the screen or API from its arguments)."""
    return bool(has_request_context() and getattr(g, "crm_exact_count", False))


def _is_postgres(session: Any) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _plan_rows(conn: Any, statement: Any) -> int:
    compiled = statement.compile(dialect=conn.dialect)
    plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + compiled.string, compiled.params).scalar()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


def _estimate(session: Any, statement: Any) -> int | None:
    """The planner's row estimate for ``statement`` (PostgreSQL), or None."""
    if not _is_postgres(session):
        return None
    try:
        with session.begin_nested():
            return _plan_rows(session.connection(), statement)
    except (sa_exc.SQLAlchemyError, KeyError, IndexError, TypeError, ValueError):  # an estimate is a nicety
        log.debug("no row estimate", exc_info=True)
        return None


def _bounded(session: Any, statement: Any, timeout_ms: int, cap: int, estimated: Any = None) -> tuple[int | None, int | None]:
    """``statement``'s scalar within ``timeout_ms`` on PostgreSQL (None when it took longer) and,
    when it exceeds ``cap``, the planner's estimate of ``estimated`` — asked under the same
    savepoint, so a big list pays for one savepoint, not two.

    The savepoint and its local timeout go in one round trip, and its end in another: a list
    page is a dozen round trips to the database, and each costs as much as the count itself.
    Rolling back to the savepoint also undoes the local timeout, and a count that timed out
    leaves the request's transaction usable."""
    if not _is_postgres(session) or timeout_ms <= 0:
        n = int(session.execute(statement).scalar_one())
        return n, (_estimate(session, estimated) if n > cap and estimated is not None else None)
    conn = session.connection()
    conn.exec_driver_sql(f"SAVEPOINT crm_count; SET LOCAL statement_timeout = {int(timeout_ms)}")
    try:
        n = int(conn.execute(statement).scalar_one())
        if n <= cap or estimated is None:
            return n, None
        try:
            return n, _plan_rows(conn, estimated)
        except (sa_exc.SQLAlchemyError, KeyError, IndexError, TypeError, ValueError):  # an estimate is a nicety
            log.debug("no row estimate", exc_info=True)
            return n, None
    except sa_exc.OperationalError as exc:
        if "statement timeout" not in str(exc) and "canceling statement" not in str(exc):
            raise
        return None, None
    finally:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT crm_count; RELEASE SAVEPOINT crm_count")


def count_rows(session: Any, filtered: Any, pk: Any, exact: bool, cap: int, timeout_ms: int) -> CountInfo:
    """Count the rows of ``filtered`` (an ORM query with every filter applied, no order/limit)."""
    plain = filtered.order_by(None)
    if exact:
        return CountInfo(int(plain.count()), True)
    capped = plain.with_entities(pk).limit(cap + 1).subquery()
    everything = plain.with_entities(pk).statement
    n, estimate = _bounded(session, sa.select(sa.func.count()).select_from(capped), timeout_ms, cap, everything)
    if n is not None and n <= cap:
        return CountInfo(n, True)
    if n is None:  # timed out: the savepoint is gone, ask the planner on its own
        estimate = _estimate(session, everything)
    return CountInfo(cap if n is not None else 0, False, estimate)


def _counted(info: CountInfo) -> int:
    """The count, recorded for the list page of this request (``g.crm_count``)."""
    if has_request_context():
        g.crm_count = info
    return info.value


def _never_empty(column: Any) -> bool:
    """Whether ``column`` (a mapped attribute or a table column) can hold no NULL: a primary key
    or a NOT NULL column."""
    prop = getattr(column, "property", None)
    cols = getattr(prop, "columns", None) or [column]
    c = cols[0]
    return bool(getattr(c, "primary_key", False)) or getattr(c, "nullable", True) is False


def ordering(column: Any, direction: str) -> Any:
    """``column`` in ``direction`` with empty values last ascending, first descending.

    A column that holds no NULL (the id, a NOT NULL field) is ordered plainly: the NULL placement
    changes nothing there, and SQLite takes an order from an index only with its own NULL
    placement (NULLs first ascending), so ``id DESC NULLS FIRST`` made it sort every matching row
    in a temporary B-tree to serve a page by number."""
    if _never_empty(column):
        return sa.asc(column) if direction == "asc" else sa.desc(column)
    return sa.asc(column).nulls_last() if direction == "asc" else sa.desc(column).nulls_first()


class CachedFilterConverter(SQLAFilterConverter):
    """FAB builds the filters of every column of a model each time it makes a ``Filters`` (four or
    five times a list page, half its time); a column's filters depend only on the model, so they
    are made once per interface. The filter objects hold no per-request state (values live in
    ``Filters.values``); callers get a list of their own, as they may extend it."""

    def convert(self, col_name: str) -> Any:
        cache = self.datamodel.__dict__.setdefault("_crm_filter_cache", {})
        if col_name not in cache:
            cache[col_name] = super().convert(col_name)
        made = cache[col_name]
        return list(made) if made is not None else None


class CrmInterface(SQLAInterface):
    """FAB's SQLAlchemy interface with capped counts, keyset continuation and a stable order."""

    filter_converter_class = CachedFilterConverter

    def edit(self, item: Any, commit: bool = True) -> None:
        """As ``add`` does, the database's error itself rather than FAB's DatabaseException: the
        REST API's PUT would answer a broken rule as the string "Database exception occurred: …"
        where POST answers field by field. A save that lost to another is ``versions.StaleRecord``."""
        with versions.refused(self.session, item):
            try:
                super().edit(item, commit)
            except DatabaseException as exc:
                if exc.__cause__ is None:
                    raise
                raise exc.__cause__  # noqa: B904 - the cause is the error; its own chain is kept

    def delete(self, item: Any, commit: bool = True) -> None:
        """FAB's; a record changed by someone else since it was read is ``versions.StaleRecord``
        (its DELETE asks for the version read, as an UPDATE does)."""
        with versions.refused(self.session, item):
            super().delete(item, commit)

    def apply_order_by(self, query: Any, order_column: str, order_direction: str, aliases_mapping: Any = None,
                       bypass_many_to_many: bool = False, add_pk: bool = False) -> Any:
        column = self._plain_column(order_column)
        if column is None:
            return super().apply_order_by(query, order_column, order_direction, aliases_mapping, bypass_many_to_many, add_pk)
        pk = self.get_pk()
        order = [ordering(column, order_direction)]
        if add_pk and pk is not None and column is not pk:
            order.append(ordering(pk, order_direction))
        return query.order_by(*order)

    def _plain_column(self, name: str) -> Any:
        """The mapped column an order refers to, or None for dotted paths and functions. A link
        orders by the linked record's id (its own indexed column): rows of one linked record
        together, without a join over the whole table."""
        if not name or "." in name:
            return None
        relation = self.obj.__mapper__.relationships.get(name)
        if relation is not None:
            local = list(relation.local_columns)
            if not self.is_relation_many_to_one(name) or len(local) != 1:
                return None
            return getattr(self.obj, local[0].key)
        return getattr(self.obj, name) if name in self.list_columns else None

    def query(self, filters: Any = None, order_column: str = "", order_direction: str = "", page: int | None = None,
              page_size: int | None = None, select_columns: list[str] | None = None, outer_default_load: bool = False,
              after: int | None = None, links: Any = None, known: Any = ()) -> tuple[int, list[Any]]:
        """FAB's ``query`` with a capped count (recorded in ``g.crm_count``) and, with ``after``,
        the page that follows row ``after`` by keyset instead of an offset.

        No count query when the rows fetched tell the count themselves (as the capped count would
        have): an unpaged query (a form's dropdown) or a first page with room to spare (most
        related lists of a record), of at most ``CRM_LIST_COUNT_CAP`` rows.
        ``links``: the link columns the caller shows (loaded one query each; default: every link,
        or ``select_columns``); ``known``: links whose target is already loaded in this session
        (a related list's parent record), read from the session instead of queried again."""
        base = self.session.query(self.obj)
        cap = int(current_app.config.get("CRM_LIST_COUNT_CAP", DEFAULT_CAP))
        timeout_ms = int(current_app.config.get("CRM_LIST_COUNT_TIMEOUT_MS", DEFAULT_TIMEOUT_MS))
        if after is None and has_request_context():
            after = getattr(g, "crm_api_after", None)  # the REST list's ?after=<id>
        column = self._plain_column(order_column)
        load = self._one_level(links if links is not None else select_columns, known)
        aliases: dict[str, Any] = {}
        # the filters (row scope included) applied once: the page, its count and keyset all start from it
        filtered = self._apply_inner_all(base, filters, select_columns=select_columns, aliases_mapping=aliases)

        def paged(number: int | None) -> Any:
            if select_columns and self.exists_col_to_many(select_columns):  # FAB's outer query for to-many columns
                return self.apply_all(base, filters, order_column, order_direction, number, page_size, select_columns, outer_default_load)
            ordered = self.apply_order_by(filtered, order_column, order_direction, aliases_mapping=aliases,
                                          bypass_many_to_many=True, add_pk=True)
            return self.apply_pagination(ordered, number, page_size)

        first: list[Any] | None = None
        if not page and (after is None or not page_size or column is None):  # the first page (or everything)
            first = list(paged(None).options(*load).all())
            if (not page_size or len(first) < page_size) and len(first) <= cap:  # what the capped count would say
                return _counted(CountInfo(len(first), True)), first
        info = count_rows(self.session, filtered, self.get_pk(), exact_requested(), cap, timeout_ms)
        _counted(info)
        if first is not None:
            return info.value, first
        if after is not None and page_size and column is not None:
            items = self._after(filtered, column, order_direction or "asc", after, page_size, load)
            if items is not None:
                return info.value, items
        if page and page_size and not info.exact:
            page = min(page, max(0, (info.value - 1) // page_size))  # offsets stay within what was counted
        return info.value, list(paged(page).options(*load).all())

    def _one_level(self, columns: Any = None, known: Any = ()) -> list[Any]:
        """Links shown in a list are loaded in one query each (selectin), and no further: the
        linked record's own links (a customer's owner, a user's roles …) stay unloaded. Links not
        shown (``columns`` names those shown) are not loaded at all; ``known`` links are read
        from the session's identity map when touched (their target is loaded already)."""
        key = (None if columns is None else tuple(columns), frozenset(known))
        memo = self.__dict__.setdefault("_crm_load_options", {})  # loader options are immutable: made once per shape
        if key not in memo:
            memo[key] = self._make_one_level(columns, known)
        return memo[key]

    def _make_one_level(self, columns: Any, known: Any) -> list[Any]:
        shown = None if columns is None else {c.split(".")[0] for c in columns}
        options = []
        for name, prop in self.list_properties.items():
            if not isinstance(prop, RelationshipProperty) or prop.direction.name != "MANYTOONE":
                continue
            attr = getattr(self.obj, name)
            if name in known or (shown is not None and name not in shown):
                options.append(lazyload(attr))
            else:
                options.append(selectinload(attr).lazyload("*"))
        return options

    def get_related_obj(self, col_name: str, value: Any) -> Any:
        """FAB's, by ``Session.get`` (its ``Query.get`` warns on every related list of a record page)."""
        return self.session.get(self.get_related_model(col_name), value)

    def _after(self, filtered: Any, column: Any, direction: str, after: int, size: int, load: list[Any]) -> list[Any] | None:
        """Up to ``size`` rows after row ``after`` in (column, id) order; None if that row is not
        among the visible ones (then the caller starts from the first page)."""
        pk = self.get_pk()
        plain = filtered.order_by(None)
        anchor = plain.with_entities(column).filter(pk == after).first()
        if anchor is None:
            return None
        value = anchor[0]
        desc = direction == "desc"
        segments = []  # (condition, order) pieces of the whole order, from the anchor on
        values_order = [ordering(column, direction), ordering(pk, direction)]
        nulls_order = [ordering(pk, direction)]
        beyond = (lambda c, v: c < v) if desc else (lambda c, v: c > v)
        if value is None:
            segments.append((sa.and_(column.is_(None), beyond(pk, after)), nulls_order))
            if desc:  # empty values come first descending: the valued rows follow
                segments.append((column.is_not(None), values_order))
        else:
            segments.append((beyond(sa.tuple_(column, pk), sa.tuple_(sa.literal(value, column.type), sa.literal(after))), values_order))
            if not desc:  # empty values come last ascending
                segments.append((column.is_(None), nulls_order))
        items: list[Any] = []
        for condition, order in segments:
            items += plain.filter(condition).order_by(*order).limit(size - len(items)).options(*load).all()
            if len(items) >= size:
                break
        return items
