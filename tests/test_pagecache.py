"""What pages keep across requests (app.web.pagecache): the menu bar, the search form's
inputs and the roles' grants follow every change of users, roles and permissions from the next
request on — also when the change is made by another process on the same database (here a second
application, which has its own caches, as a second web worker has)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.access.accounts import add_user
from tests.conftest import login

ROLE = "销售经理"


@pytest.fixture(scope="module")
def other(app: Any) -> Any:
    """A second application on the same database: another web worker, with caches of its own."""
    from app import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "TESTING": True,
                       "RATELIMIT_ENABLED": False, "CRM_SYNC_PERMISSIONS": False})


@pytest.fixture
def manager(app: Any) -> Iterator[tuple[Any, str]]:
    name = f"cache_{uuid.uuid4().hex[:6]}"
    add_user(app, name, [ROLE], "Cache-Pass-123", first_name="缓存", last_name="经理", departments=["缓存部"])
    c = app.test_client()
    login(c, name, "Cache-Pass-123")
    yield c, name


def navbar(html: str) -> str:
    start = html.index('<header class="top"')
    return html[start:html.index("</header>", start)]


def _menu_access(application: Any, menu: str, grant: bool) -> None:
    with application.app_context():
        sm = application.appbuilder.sm
        role, pv = sm.find_role(ROLE), sm.find_permission_view_menu("menu_access", menu)
        assert pv is not None
        (sm.add_permission_role if grant else sm.del_permission_role)(role, pv)


def test_the_menu_follows_a_grant_taken_away_by_another_worker(app: Any, other: Any, manager: tuple[Any, str]) -> None:
    from app.access.security import menu_item

    c, _name = manager
    menu = menu_item("customer")
    before = navbar(c.get("/inbox/").text)
    assert 'href="/customerview/list/"' in before
    assert navbar(c.get("/inbox/").text) == before  # drawn once, the same next time
    _menu_access(other, menu, grant=False)
    try:
        assert 'href="/customerview/list/"' not in navbar(c.get("/inbox/").text)
    finally:
        _menu_access(other, menu, grant=True)
    assert 'href="/customerview/list/"' in navbar(c.get("/inbox/").text)


def test_the_menu_shows_a_renamed_user_and_the_unread_count_at_once(app: Any, other: Any, manager: tuple[Any, str]) -> None:
    import sqlalchemy as sa

    from app.record.tables import Notification

    c, name = manager
    assert "经理缓存" in navbar(c.get("/inbox/").text)  # a Chinese name: family name first, no space
    with other.app_context():
        sm = other.appbuilder.sm
        user = sm.find_user(username=name)
        user.first_name = "改名"
        sm.update_user(user)
        user_id = user.id
    menu = navbar(c.get("/inbox/").text)
    assert "经理改名" in menu
    # the count is what needs the person: unread messages and records waiting for their step
    # (a manager's approvals, tests/test_homes.py), so a new message adds one to it
    before = re.search(r"我的消息 \((\d+)\)", menu)
    with app.app_context():  # a message arrives: the count in the menu is data, never kept
        session = app.extensions["crm"].db.session
        session.execute(sa.insert(Notification.__table__).values(user_id=user_id, title="缓存测试消息"))
        session.commit()
    assert re.search(rf"我的消息 \({int(before.group(1)) + 1 if before else 1}\)", navbar(c.get("/inbox/").text))


def test_a_login_does_not_empty_the_caches(app: Any, manager: tuple[Any, str]) -> None:
    """Signing in writes the user's login count and time: no reason to draw every menu again."""
    from app.web.pagecache import security_version

    def version() -> int:
        with app.test_request_context():
            return security_version(app.extensions["crm"].db.session)

    before = version()
    login(app.test_client(), manager[1], "Cache-Pass-123")
    assert version() == before


def test_a_logout_ends_the_sessions_without_emptying_the_caches(app: Any, manager: tuple[Any, str]) -> None:
    """Logging out moves the person's credential version and the sessions version (read with the
    security version in one statement), not the security version: no menu is drawn again."""
    from app.web.pagecache import security_version, sessions_version

    def versions() -> tuple[int, int]:
        with app.test_request_context():
            db = app.extensions["crm"].db.session
            return security_version(db), sessions_version(db)

    security, sessions = versions()
    manager[0].get("/logout/")
    assert versions() == (security, sessions + 1)


def test_a_new_user_is_in_the_owner_filter_at_once(app: Any, other: Any, admin_client: Any) -> None:
    page = admin_client.get("/customerview/list/").text
    name = f"newowner_{uuid.uuid4().hex[:6]}"
    assert name not in page
    add_user(other, name, ["业务员"], "Owner-Pass-123", first_name=name, departments=["缓存部"])
    assert name in admin_client.get("/customerview/list/").text  # the owner filter's dropdown


def test_the_search_form_follows_the_language(admin_client: Any) -> None:
    zh = admin_client.get("/customerview/list/").text
    assert "客户名称" in zh
    admin_client.get("/lang/en")
    try:
        en = admin_client.get("/customerview/list/").text
        assert "客户名称" not in re.search(r'<form id="filter_form".*?</script>', en, flags=re.S).group(0)
    finally:
        admin_client.get("/lang/zh")


def test_a_hidden_column_is_neither_offered_nor_applied_as_a_filter(app: Any, admin_client: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A workbook may hide a searchable column from a role: its filter is not in the form, and a
    filter on it in the URL is ignored (else one could learn the values by trying them)."""
    import app.web.views as views
    from app.ops.demo import make_demo_data

    make_demo_data(app, 2, seed=33)
    assert "/customerview/show/" not in admin_client.get("/customerview/list/?_flt_0_phone=0000-no-such-phone").text
    monkeypatch.setattr(views, "current_hidden", lambda entity: {"phone"} if entity == "customer" else set())
    page = admin_client.get("/customerview/list/?_flt_0_phone=0000-no-such-phone").text
    form = re.search(r"new AdminFilters\((.*?)\);", page, flags=re.S).group(1)
    assert '"phone"' not in form and '"name"' in form
    assert "/customerview/show/" in page  # the phone filter was not applied


def test_rest_arguments_are_still_checked_against_their_schema(client: Any) -> None:
    """FAB's REST schemas are checked once, the arguments of every request as before; nobody
    signed in gets nothing (the public role's grants come from the cache too)."""
    from tests.conftest import ADMIN_PASSWORD, api_token

    headers = api_token(client, "admin", ADMIN_PASSWORD)
    for _ in range(2):  # the second time from the kept validator
        r = client.get("/api/v1/customer/?q=(page_size:'many')", headers=headers)
        assert r.status_code == 400 and "Not a valid rison schema" in r.json["message"]
    ok = client.get("/api/v1/customer/?q=(page_size:2)", headers=headers)
    assert ok.status_code == 200 and len(ok.json["result"]) <= 2
    assert client.get("/api/v1/customer/").status_code == 401


def test_a_shelf_forgets_everything_when_the_version_moves_and_stays_bounded() -> None:
    from app.web.pagecache import Shelf

    made: list[str] = []

    def make(value: str) -> Any:
        return lambda: made.append(value) or value

    shelf = Shelf(size=2)
    assert shelf.get(1, "a", make("a1")) == "a1"
    assert shelf.get(1, "a", make("a2")) == "a1"  # kept
    assert shelf.get(2, "a", make("a3")) == "a3"  # another version: made again
    shelf.get(2, "b", make("b"))
    shelf.get(2, "c", make("c"))  # over the bound: the shelf starts afresh
    assert shelf.get(2, "a", make("a4")) == "a4"
    assert made == ["a1", "a3", "b", "c", "a4"]
