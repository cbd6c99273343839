"""Lists on big tables (issue 9), on small data: the capped count and the exact one on request,
keyset "next page" (ties, empty values, both directions), Chinese search on SQLite and
PostgreSQL, the list indexes after `crm upgrade`, demo data row counts, and no N+1 queries.
The million-row figures are bench/lists.py's business."""

from __future__ import annotations

import datetime as dt
import random
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask_appbuilder import Model
from flask_appbuilder.models.sqla.filters import FilterContains

from app.ops.demo import _Maker, demo_plan, ensure_demo_users, make_demo_data
from app.record.rules import rules_for
from tests.conftest import ADMIN_PASSWORD, api_token, login
from tests.migration_helpers import database

REGIONS = ["east", "east", None, "north", "east", None, "south", "north", "east", "south", "east"]


def add_customers(app: Any, marker: str, regions: list[str | None]) -> list[int]:
    """Customers named ``<marker>-<n>`` with the given regions (ties and empties on purpose)."""
    with app.app_context():
        crm = app.extensions["crm"]
        spec, session = crm.spec, crm.db.session
        entity = spec.entity("customer")
        maker = _Maker(spec, random.Random(len(marker)), dt.datetime.now(), ensure_demo_users(app, 1))
        table = Model.metadata.tables["customer"]
        ids = []
        for n, region in enumerate(regions):
            row = maker.valid_row(entity, rules_for(spec, entity), n)
            row.update(name=f"{marker}-{n}", code=f"T{uuid.uuid4().hex[:10]}", region=region,
                       created_on=dt.datetime.now(), changed_on=dt.datetime.now())
            ids.append(session.execute(sa.insert(table).values(row).returning(table.c.id)).scalar_one())
        session.commit()
    return ids


@pytest.fixture
def marked(app: Any) -> tuple[str, list[int]]:
    marker = f"列表{uuid.uuid4().hex[:6]}"
    return marker, add_customers(app, marker, REGIONS)


def listed(html: str, marker: str) -> list[str]:
    return re.findall(rf"{re.escape(marker)}-\d+", html)


def test_capped_count_and_the_exact_count_on_request(app: Any, admin_client: Any, marked: tuple[str, list[int]]) -> None:
    marker, ids = marked
    search = f"/customerview/list/?_flt_2_name={urllib.parse.quote(marker)}"
    app.config["CRM_LIST_COUNT_CAP"] = 5
    try:
        capped = admin_client.get(search).text
        assert re.search(r"crm-count.*?5\+", capped, re.S) and "精确计数" in capped
        assert len(set(listed(capped, marker))) == len(ids)  # the rows themselves are all there
        exact = admin_client.get(search + "&_exact=1").text
        assert re.search(rf"crm-count.*?{len(ids)}\s*</div>", exact, re.S) and "精确计数" not in exact
        headers = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
        q = f"(filters:!((col:name,opr:ct,value:'{marker}')))"
        api = app.test_client().get(f"/api/v1/customer/?q={urllib.parse.quote(q)}", headers=headers).json
        assert (api["count"], api["count_exact"]) == (5, False) and len(api["result"]) == len(ids)
        api = app.test_client().get(f"/api/v1/customer/?q={urllib.parse.quote(q)}&exact_count=1", headers=headers).json
        assert (api["count"], api["count_exact"]) == (len(ids), True)
    finally:
        app.config.pop("CRM_LIST_COUNT_CAP")
    small = admin_client.get(search).text  # under the cap the count is exact, no link
    assert re.search(rf"crm-count.*?{len(ids)}\s*</div>", small, re.S) and "精确计数" not in small


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_keyset_pages_follow_the_order_with_ties_and_empty_values(app: Any, marked: tuple[str, list[int]], direction: str) -> None:
    marker, ids = marked
    view = next(v for v in app.appbuilder.baseviews if type(v).__name__ == "CustomerView")
    dm = view.datamodel
    with app.test_request_context():
        filters = dm.get_filters(["name"])
        filters.add_filter("name", FilterContains, marker)
        _count, everything = dm.query(filters, "region", direction)
        # the documented order: empty values last ascending, first descending; ties by id
        valued = sorted((r.region, r.id) for r in everything if r.region is not None)
        empty = sorted(r.id for r in everything if r.region is None)
        expected = [i for _, i in valued] + empty if direction == "asc" else empty[::-1] + [i for _, i in valued[::-1]]
        assert [r.id for r in everything] == expected
        pages, after = [], None
        while True:
            _count, page = dm.query(filters, "region", direction, page_size=3, after=after)
            if not page:
                break
            pages.append([r.id for r in page])
            after = page[-1].id
        assert [i for p in pages for i in p] == [r.id for r in everything]
        assert all(len(p) == 3 for p in pages[:-1])


def walk_pages(client: Any, url: str, marker: str) -> list[str]:
    """The marked rows of ``url`` and of every 下一页 after it, in the order shown."""
    seen: list[str] = []
    html = client.get(url).text
    for _ in range(10):
        seen += listed(html, marker)
        link = re.search(r'class="btn btn-sm btn-default crm-next" href="([^"]+)"', html)
        if not link:
            break
        html = client.get(link.group(1).replace("&amp;", "&")).text
        assert "crm-first" in html
    return seen


def test_next_page_link_continues_by_keyset(admin_client: Any, marked: tuple[str, list[int]]) -> None:
    marker, ids = marked
    url = f"/customerview/list/?_flt_2_name={urllib.parse.quote(marker)}&psize_CustomerView=4&_oc_CustomerView=region&_od_CustomerView=asc"
    seen = walk_pages(admin_client, url, marker)
    assert sorted(seen) == sorted(f"{marker}-{n}" for n in range(len(ids))) and len(seen) == len(set(seen))


def test_sorting_by_a_link_groups_by_the_linked_record_on_screens_and_api(app: Any, admin_client: Any,
                                                                         marked: tuple[str, list[int]]) -> None:
    marker, ids = marked
    with app.app_context():
        session = app.extensions["crm"].db.session
        users = [u for (u,) in session.execute(sa.text("SELECT id FROM ab_user ORDER BY id LIMIT 3"))]
        owners = [users[(n * 7) % 3] for n in range(len(ids))]  # required: every row has one
        for pk, owner in zip(ids, owners, strict=True):
            session.execute(sa.text("UPDATE customer SET owner_id = :o WHERE id = :i"), {"o": owner, "i": pk})
        session.commit()
    expected = [f"{marker}-{ids.index(pk)}" for _, pk in sorted((owners[n], ids[n]) for n in range(len(ids)))]
    url = f"/customerview/list/?_flt_2_name={urllib.parse.quote(marker)}&psize_CustomerView=4&_oc_CustomerView=owner&_od_CustomerView=asc"
    seen = walk_pages(admin_client, url, marker)
    assert seen == expected  # grouped by owner, by keyset page after page
    headers = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    answer = app.test_client().get(f"/api/v1/customer/?q=(order_column:owner,order_direction:asc,page_size:100,"
                                   f"filters:!((col:name,opr:ct,value:'{marker}')))", headers=headers)
    assert answer.status_code == 200 and [r["name"] for r in answer.json["result"]] == expected


def test_a_tampered_list_address_is_answered_not_a_500(admin_client: Any, marked: tuple[str, list[int]]) -> None:
    marker, ids = marked
    base = f"/customerview/list/?_flt_2_name={urllib.parse.quote(marker)}"
    assert admin_client.get(f"{base}&psize_CustomerView=abc").status_code == 400
    assert admin_client.get(f"{base}&page_CustomerView=x").status_code == 400
    assert admin_client.get(f"{base}&page_CustomerView=-3").status_code == 200
    page = admin_client.get(f"{base}&_oc_CustomerView=no_such_column&_od_CustomerView=asc")
    assert page.status_code == 200 and len(listed(page.text, marker)) == len(ids)
    rows = set(re.findall(r'href="/customerview/show/(\d+)"', admin_client.get("/customerview/list/?psize_CustomerView=1000000").text))
    assert 0 < len(rows) <= 100


def test_chinese_search_on_sqlite(admin_client: Any, marked: tuple[str, list[int]]) -> None:
    marker, ids = marked
    html = admin_client.get(f"/customerview/list/?_flt_2_name={urllib.parse.quote(marker[2:] + '-1')}").text
    assert sorted(set(listed(html, marker))) == sorted({f"{marker}-1", f"{marker}-10"})


def test_no_n_plus_one_queries_on_a_list(app: Any, admin_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.web.views.MAX_PAGE_SIZE", 10**6)  # every contact the suite made on one page
    make_demo_data(app, 30, seed=9)
    with app.app_context():
        engine = app.extensions["crm"].db.engine
        with engine.connect() as conn:
            total = conn.execute(sa.text("SELECT count(*) FROM contact")).scalar_one()
    assert total > 10, total  # 30 demo customers give more contacts than two small pages
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        sizes = {}
        for size in (5, 10, total + 5):  # 5 and 10: full pages; the last has room to spare
            admin_client.get(f"/contactview/list/?psize_ContactView={size}")
            seen.clear()
            assert admin_client.get(f"/contactview/list/?psize_ContactView={size}").status_code == 200
            sizes[size] = len(seen)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert sizes[5] == sizes[10], sizes  # the number of queries does not grow with the rows shown
    assert sizes[total + 5] == sizes[10] - 1, sizes  # a page with room to spare is its own count: no count query


def test_record_page_counts_its_tabs_in_one_statement_and_loads_a_list_when_its_tab_opens(app: Any, admin_client: Any) -> None:
    """The record page: the record is read once, every related list is counted in ONE statement (the
    tab titles) and none is read; opening a tab (``X-CRM-Tab``) reads that list in one query, its
    link back to the record not again, the links it shows in batches, never one query per row."""
    make_demo_data(app, 10, seed=11)
    with app.app_context():
        crm = app.extensions["crm"]
        engine = crm.db.engine
        view = next(v for v in app.appbuilder.baseviews if type(v).__name__ == "CustomerView")
        tables = [v.datamodel.obj.__tablename__ for v in view._related_views]
        assert tables, "the shipped workbook's first entity has related lists"
        counts = [f"(SELECT count(*) FROM {t} WHERE {t}.customer_id = customer.id)" for t in tables]
        record = crm.db.session.execute(sa.text(f"SELECT id FROM customer ORDER BY {' + '.join(counts)} DESC, id LIMIT 1")  # noqa: S608
                                        ).scalar_one()
        sizes = {t: crm.db.session.execute(sa.text(f"SELECT count(*) FROM {t} WHERE customer_id = :r"), {"r": record}).scalar_one()  # noqa: S608
                 for t in tables}
        names = {t: [r[0] for r in crm.db.session.execute(sa.text(f"SELECT name FROM {t} WHERE customer_id = :r"), {"r": record})]  # noqa: S608
                 for t in tables if "name" in Model.metadata.tables[t].c}
    assert sum(sizes.values()) >= 3, sizes
    seen: list[str] = []

    def statement(*args: Any) -> None:
        seen.append(args[2])

    admin_client.get(f"/customerview/show/{record}")
    sa.event.listen(engine, "before_cursor_execute", statement)
    try:
        page = admin_client.get(f"/customerview/show/{record}")
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
    assert page.status_code == 200
    own_table = view.datamodel.obj.__tablename__
    reads_of_record = [s for s in seen if re.match(rf"\s*SELECT {own_table}\.id", s) and " IN (" not in s]
    assert len(reads_of_record) == 1, reads_of_record  # not once more for the tabs, nor for the panels
    counted = [s for s in seen if "count(" in s.lower() and any(f"FROM {t}" in s for t in tables)]
    assert len(counted) == 1 and all(f"FROM {t}" in counted[0] for t in tables), counted  # one statement for every tab
    assert not [s for s in seen for t in tables if re.match(rf"\s*SELECT {t}\.id", s)]  # no related list read
    for v, t in zip(view._related_views, tables, strict=True):  # each tab's title says its rows
        assert re.search(rf'href="#{type(v).__name__}"[^>]*>[^<]*<span class="badge[^"]*">{sizes[t]}</span>', page.text), t
    for t, shown in names.items():  # and no related row is on the page itself
        assert not any(n and n in page.text for n in shown), (t, shown)

    for v, t in zip(view._related_views, tables, strict=True):
        seen.clear()
        sa.event.listen(engine, "before_cursor_execute", statement)
        try:
            tab = admin_client.get(f"/customerview/show/{record}", headers={"X-CRM-Tab": type(v).__name__})
        finally:
            sa.event.remove(engine, "before_cursor_execute", statement)
        assert tab.status_code == 200 and "<body" not in tab.text and "X-CRM-Tab" in tab.headers["Vary"]
        assert all(n in tab.text for n in names.get(t, [])), t  # that list's rows
        lists = [s for s in seen if re.match(rf"\s*SELECT {t}\.id", s) and f"{t}.customer_id" in s.split("WHERE", 1)[-1]]
        assert len(lists) == 1, (t, lists)  # one query, by the link to this record
        if sizes[t] < 25:
            assert not [s for s in seen if "count(" in s.lower()], t  # a short list is its own count
        batches = [s for s in seen if " IN (" in s.split("WHERE", 1)[-1] and "ab_role" not in s and "crm_cache_version" not in s]
        links = [c for c in v.list_columns if v.datamodel.is_relation_many_to_one(c)]
        assert len(batches) <= len(links) + 2, (t, batches)  # a batch per link column shown (and the user's own): never one per row
    assert admin_client.get(f"/customerview/show/{record}", headers={"X-CRM-Tab": "NoSuchView"}).status_code == 404


def test_a_hidden_field_shown_in_a_list_is_masked_in_every_row(app: Any) -> None:
    """A list decides hidden fields once per request: a column the user may not see shows the mask
    in every row, and its values are nowhere in the page."""
    from app.access.accounts import add_user

    make_demo_data(app, 6, seed=21)
    secret = "7654321"
    with app.app_context():
        crm = app.extensions["crm"]
        spec = crm.spec
        grant = next(p for p in spec.permissions if p.hidden_fields and any(
            f.name in p.hidden_fields and f.list and f.type in ("number", "money", "integer") for f in spec.entity(p.entity).fields))
        entity = spec.entity(grant.entity)
        field = next(f for f in entity.fields if f.name in grant.hidden_fields and f.list and f.type in ("number", "money", "integer"))
        crm.db.session.execute(sa.text(f'UPDATE "{entity.name}" SET "{field.name}" = {secret}'))  # noqa: S608
        crm.db.session.commit()
        view = next(v for v in app.appbuilder.baseviews if getattr(v, "entity", None) == entity.name and hasattr(v, "list_columns"))
        name = f"mask_{uuid.uuid4().hex[:6]}"
    add_user(app, name, [grant.role], "Mask-Pass-123", departments=["掩码部"])
    c = app.test_client()
    login(c, name, "Mask-Pass-123")
    page = c.get(f"/{type(view).__name__.lower()}/list/?psize_{type(view).__name__}=100")
    assert page.status_code == 200
    rows = page.text.count("<tr>") - 1  # the header row
    assert rows >= 1, page.text[:2000]
    assert secret not in page.text and "7,654,321" not in page.text
    assert page.text.count("(无权查看)") == rows
    admin = app.test_client()
    login(admin, "admin", ADMIN_PASSWORD)
    shown = admin.get(f"/{type(view).__name__.lower()}/list/").text
    assert "7,654,321" in shown or secret in shown  # the admin sees the values


def test_each_row_buttons_point_at_that_row(admin_client: Any, marked: tuple[str, list[int]]) -> None:
    """The show/edit/delete buttons are drawn once per list and given each row's id: every row's
    buttons lead to that row and no other."""
    marker, ids = marked
    html = admin_client.get(f"/customerview/list/?_flt_2_name={urllib.parse.quote(marker)}&psize_CustomerView=100").text
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    mine = [r for r in rows if re.search(rf"{re.escape(marker)}-\d+", r)]
    assert len(mine) == len(ids)
    for row in mine:
        targets = set(re.findall(r"/customerview/(?:show|edit|delete)/(\d+)", row))
        assert len(targets) == 1, row
        checkbox = re.search(r'name="rowid" value="(\d+)"', row)  # when the list has actions
        assert checkbox is None or targets == {checkbox.group(1)}, row
    shown = {int(re.search(r"/customerview/show/(\d+)", r).group(1)) for r in mine}
    assert shown == set(ids)
    assert "__crm_pk__" not in html


def test_a_changed_grant_counts_from_the_next_request(app: Any, marked: tuple[str, list[int]]) -> None:
    """Access answers are remembered within a request only: a right taken away is gone on the next page."""
    from app.access.accounts import add_user

    name = f"grant_{uuid.uuid4().hex[:6]}"
    add_user(app, name, ["销售经理"], "Grant-Pass-123", departments=["授权部"])
    c = app.test_client()
    login(c, name, "Grant-Pass-123")
    assert c.get("/customerview/list/").status_code == 200
    with app.app_context():
        sm = app.appbuilder.sm
        role = sm.find_role("销售经理")
        pv = sm.find_permission_view_menu("can_list", "customer")
        assert pv is not None and pv in role.permissions
        sm.del_permission_role(role, pv)
    try:
        assert c.get("/customerview/list/").status_code in (302, 403)
    finally:
        with app.app_context():
            sm.add_permission_role(sm.find_role("销售经理"), sm.find_permission_view_menu("can_list", "customer"))
    assert c.get("/customerview/list/").status_code == 200


def test_demo_data_row_counts(app: Any) -> None:
    with app.app_context():
        crm = app.extensions["crm"]
        plan = demo_plan(crm.spec, 12, related=39)
        engine = crm.db.engine

        def counts() -> dict[str, int]:
            with engine.connect() as conn:
                return {e.name: conn.execute(sa.text(f'SELECT count(*) FROM "{e.name}"')).scalar_one() for e, _ in plan}  # noqa: S608

        before = counts()
    made = make_demo_data(app, 12, seed=4, related=39)
    after = counts()
    assert made == {e.name: n for e, n in plan}
    assert {k: after[k] - before[k] for k in after} == made
    assert made[crm.spec.entities[0].name] == 12 and all(n == 3 for name, n in made.items() if name != crm.spec.entities[0].name)


@pytest.fixture
def pg_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with database("postgres", tmp_path) as url:
        monkeypatch.setenv("CRM_DATABASE_URL", url)
        monkeypatch.setenv("CRM_VAR_DIR", str(tmp_path))
        from app import create_app
        from app.access.accounts import create_first_admin
        from app.migrate.create import create_schema

        application = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "RATELIMIT_ENABLED": False})
        create_schema(application)
        create_first_admin(application, "admin", ADMIN_PASSWORD)
        yield application
        with application.app_context():
            application.extensions["crm"].db.session.remove()
            application.extensions["crm"].db.engine.dispose()


@pytest.mark.postgres
def test_postgres_list_indexes_bulk_load_and_chinese_search(pg_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.io import bulk

    with pg_app.app_context():
        engine = pg_app.extensions["crm"].db.engine

    def indexes() -> dict[str, str]:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"))
            return {r[0]: r[1] for r in rows}

    def constraints() -> set[str]:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                                            "WHERE n.nspname = current_schema()")).scalars())

    before = indexes()
    assert "USING gin" in before["lx_customer_name_trgm"] and "gin_trgm_ops" in before["lx_customer_name_trgm"]
    assert "(owner_id, code, id)" in before["lx_customer_scope"] and "(region, id)" in before["lx_customer_region_sort"]
    kept = constraints()
    monkeypatch.setattr(bulk, "BIG_LOAD", 10)  # the drop-and-rebuild path of a big load, on small data
    made = make_demo_data(pg_app, 20, seed=2, related=26)
    assert indexes() == before and constraints() == kept  # every index and constraint is back
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customer")).scalar_one() == made["customer"] == 20
        assert conn.execute(sa.text("SELECT count(*) FROM contact")).scalar_one() == made["contact"] == 2
    marker = f"检索{uuid.uuid4().hex[:5]}"
    add_customers(pg_app, marker, [None, "east", "north"])
    client = pg_app.test_client()
    login(client, "admin", ADMIN_PASSWORD)
    html = client.get(f"/customerview/list/?_flt_2_name={urllib.parse.quote(marker[1:] + '-2')}").text
    assert listed(html, marker) == [f"{marker}-2"]
    with engine.connect() as conn:  # the search can use the trigram index (forced: the table is tiny)
        conn.execute(sa.text("SET enable_seqscan = off"))
        plan = "\n".join(conn.execute(sa.text("EXPLAIN SELECT id FROM customer WHERE name ILIKE :q"), {"q": f"%{marker}%"}).scalars())
    assert "lx_customer_name_trgm" in plan


@pytest.mark.postgres
def test_a_count_that_takes_too_long_gives_up_and_leaves_the_request_usable(pg_app: Any) -> None:
    """The capped count runs under a local statement timeout in a savepoint: past the timeout it
    says "don't know" (None), the request's transaction goes on, and the timeout is gone after."""
    from app.web.listing import _bounded

    with pg_app.test_request_context():
        session = pg_app.extensions["crm"].db.session
        before = session.execute(sa.text("SHOW statement_timeout")).scalar_one()
        slow = sa.select(sa.func.count()).select_from(sa.select(sa.func.pg_sleep(0.5)).subquery())
        started = dt.datetime.now()
        assert _bounded(session, slow, 50, 1000) == (None, None)
        assert (dt.datetime.now() - started).total_seconds() < 0.45
        assert session.execute(sa.text("SELECT 1")).scalar_one() == 1  # the transaction is not aborted
        assert session.execute(sa.text("SHOW statement_timeout")).scalar_one() == before
        quick = sa.select(sa.func.count()).select_from(sa.select(sa.literal(1)).subquery())
        assert _bounded(session, quick, 50, 1000) == (1, None)
        assert session.execute(sa.text("SHOW statement_timeout")).scalar_one() == before
        session.rollback()


def _page_plans(app: Any, client: Any, url: str, table: str) -> list[str]:
    """EXPLAIN QUERY PLAN of the statements reading ``table``'s rows for the list page at ``url``."""
    with app.app_context():
        engine = app.extensions["crm"].db.engine
    seen: list[tuple[str, Any]] = []

    def statement(_conn: Any, _cursor: Any, sql: str, params: Any, *_rest: Any) -> None:
        if re.match(rf"\s*SELECT {table}\.id", sql) and "OFFSET" in sql:
            seen.append((sql, params))

    sa.event.listen(engine, "before_cursor_execute", statement)
    try:
        assert client.get(url).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
    assert seen, url
    with engine.connect() as conn:
        return [" | ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)) for sql, params in seen]


def test_a_deep_page_by_number_takes_its_order_from_an_index_on_sqlite(app: Any, admin_client: Any) -> None:
    """Page by number deep in a list on SQLite, by the id or by a sorted column (empty values last
    ascending, first descending, as on PostgreSQL): the order comes from an index (no "USE TEMP
    B-TREE": the id, never empty, is ordered without a NULL placement SQLite cannot take from the
    index), and the rows are those of that order."""
    with app.app_context():
        crm = app.extensions["crm"]
        if crm.db.engine.dialect.name != "sqlite":
            pytest.skip("the session's database is not SQLite")
        if crm.db.session.execute(sa.text("SELECT count(*) FROM contact")).scalar_one() < 80:
            make_demo_data(app, 40, seed=31, related=400)
        ids = [r[0] for r in crm.db.session.execute(sa.text("SELECT id FROM contact ORDER BY id DESC"))]
    plans = _page_plans(app, admin_client, "/contactview/list/?page_ContactView=2&psize_ContactView=25&_exact=1", "contact")
    assert all("TEMP B-TREE" not in p for p in plans), plans  # the base order, id DESC: the table's own order
    page = admin_client.get("/contactview/list/?page_ContactView=2&psize_ContactView=25&_exact=1").text
    shown = [int(x) for x in re.findall(r'/contactview/show/(\d+)"', page)]
    assert list(dict.fromkeys(shown)) == ids[50:75]
    for column in ("status", "region"):  # sort indexes (column, id): a NOT NULL column and one with empty values
        for direction in ("asc", "desc"):
            url = f"/customerview/list/?page_CustomerView=2&_oc_CustomerView={column}&_od_CustomerView={direction}&_exact=1"
            plans = _page_plans(app, admin_client, url, "customer")
            assert all("TEMP B-TREE" not in p and "USING INDEX lx_" in p for p in plans), (column, direction, plans)


def test_a_counted_page_applies_its_filters_and_row_scope_once(app: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A REST or screen page that must count (its page is full) builds its filtered query once:
    the page, the count and a keyset continuation start from it; the row scope is applied once."""
    from app.access.scope import ScopeFilter

    make_demo_data(app, 60, seed=51)
    headers = api_token(client, "admin", ADMIN_PASSWORD)
    calls: list[str] = []
    original = ScopeFilter.apply

    def counted(self: Any, query: Any, value: Any) -> Any:
        calls.append(str(value))
        return original(self, query, value)

    monkeypatch.setattr(ScopeFilter, "apply", counted)
    r = client.get("/api/v1/customer/?q=(order_column:code,order_direction:desc,page_size:10)", headers=headers)
    assert r.status_code == 200 and len(r.json["result"]) == 10 and r.json["count"] > 10  # a full page, counted
    assert calls.count("customer") == 1, calls
