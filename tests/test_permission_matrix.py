"""For every role × entity × action of the shipped workbook, the screens and the REST API answer
as the permissions sheet says. The expectations are computed from the sheet, not listed by hand."""

from __future__ import annotations

from typing import Any

import pytest

from app.access.accounts import add_user
from app.ops.demo import make_demo_data
from generator import load_spec
from tests.conftest import SHIPPED, api_token, csrf_token, login

SPEC, _ = load_spec(SHIPPED)
ACTIONS = ("list", "show", "add", "edit", "delete")
ROLES = [r for r in SPEC.roles if not r.admin]
PASSWORD = "matrix-Pass-1"  # noqa: S105 - test-only


def granted(role: str, entity: str) -> tuple[str, ...]:
    for p in SPEC.permissions:
        if p.role == role and p.entity == entity:
            return p.rights
    return ()


@pytest.fixture(scope="module")
def seeded(app: Any) -> dict[str, str]:
    make_demo_data(app, 8, seed=3)
    users = {}
    for i, role in enumerate(ROLES):
        username = f"matrix{i}"
        add_user(app, username, [role.name], PASSWORD, departments=["矩阵测试部"])
        users[role.name] = username
    add_user(app, "matrix_outsider", [ROLES[0].name], PASSWORD)
    return users


def _ids(app: Any, entity: str, username: str) -> tuple[int, int]:
    """(a record owned by ``username``, a record owned by an outsider of no department)."""
    from flask_appbuilder import Model
    from sqlalchemy import select, update

    table = Model.metadata.tables[entity]
    e = SPEC.entity(entity)
    with app.app_context():
        crm = app.extensions["crm"]
        session, sm = crm.db.session, crm.appbuilder.sm
        mine, other = session.execute(select(table.c.id).order_by(table.c.id.desc()).limit(2)).scalars().all()
        keep = session.execute(select(table.c.id).order_by(table.c.id).limit(1)).scalar_one()
        for source in SPEC.entities:  # a record still linked to is not deleted: links move to another record
            for f in source.fields:
                if f.type == "link" and f.link == entity:
                    linking = Model.metadata.tables[source.name].c[f.column]
                    session.execute(update(linking.table).where(linking.in_([mine, other])).values({f.column: keep}))
        if e.owner_field:
            column = f"{e.owner_field}_id"
            session.execute(update(table).where(table.c.id == mine).values({column: sm.find_user(username=username).id}))
            session.execute(update(table).where(table.c.id == other).values({column: sm.find_user(username="matrix_outsider").id}))
            session.commit()
        return int(mine), int(other)


def scope(role: str, entity: str) -> str:
    for p in SPEC.permissions:
        if p.role == role and p.entity == entity:
            return p.scope
    return "none"


def _ui_allowed(response: Any) -> bool:
    """FAB answers a denied screen with a redirect to the login page (or 403)."""
    if response.status_code == 302:
        return "/login" not in response.location
    return response.status_code == 200


@pytest.mark.parametrize("role", [r.name for r in ROLES])
def test_screens_follow_the_sheet(app: Any, seeded: dict[str, str], role: str) -> None:
    client = app.test_client()
    assert login(client, seeded[role], PASSWORD).status_code == 302
    token = csrf_token(client.get("/resetmypassword/form").text)
    mismatches = []
    for e in SPEC.entities:
        rights = granted(role, e.name)
        base = f"/{e.class_name.lower()}view"
        pk, other = _ids(app, e.name, seeded[role])
        sees_other = scope(role, e.name) == "all" or not e.owner_field
        r = client.get(f"{base}/show/{other}")
        if _ui_allowed(r) != ("show" in rights and sees_other):
            mismatches.append((e.name, "show other's", r.status_code, r.location))
        answers = {
            "list": client.get(f"{base}/list/"),
            "show": client.get(f"{base}/show/{pk}"),
            "add": client.get(f"{base}/add"),
            "edit": client.get(f"{base}/edit/{pk}"),
            "delete": client.post(f"{base}/delete/{pk}", data={"csrf_token": token}),
            "export": client.get(f"{base}/export/"),
            "import": client.get(f"{base}/import/"),
        }
        for action, response in answers.items():
            if _ui_allowed(response) != (action in rights):
                mismatches.append((e.name, action, response.status_code, response.location))
        if "delete" in rights:
            assert _ids(app, e.name, seeded[role])[0] != pk, f"{role} could not really delete {e.name}"
            make_demo_data(app, 1, seed=pk)  # put rows back for the next role
    assert not mismatches


@pytest.mark.parametrize("role", [r.name for r in ROLES])
def test_api_follows_the_sheet(app: Any, seeded: dict[str, str], role: str) -> None:
    client = app.test_client()
    headers = api_token(client, seeded[role], PASSWORD)
    mismatches = []
    for e in SPEC.entities:
        rights = granted(role, e.name)
        pk, other = _ids(app, e.name, seeded[role])
        url = f"/api/v1/{e.name}/"
        sees_other = scope(role, e.name) == "all" or not e.owner_field
        r = client.get(f"{url}{other}", headers=headers)
        if (r.status_code == 200) != ("show" in rights and sees_other):
            mismatches.append((e.name, "show other's", r.status_code))
        if "list" in rights:
            listed = {row["id"] for row in client.get(f"{url}?q=(page_size:100,order_column:id,order_direction:desc)",
                                                       headers=headers).json["result"]}
            if (other in listed) != sees_other or pk not in listed:
                mismatches.append((e.name, "list scope", other in listed, pk in listed))
        answers = {
            "list": client.get(url, headers=headers),
            "show": client.get(f"{url}{pk}", headers=headers),
            # an invalid body: allowed → a validation answer, denied → 403 before validation
            "add": client.post(url, json={"__no_such_field__": 1}, headers=headers),
            "edit": client.put(f"{url}{pk}", json={"__no_such_field__": 1}, headers=headers),
            "delete": client.delete(f"{url}{pk}", headers=headers),
        }
        for action, response in answers.items():
            allowed = response.status_code != 403
            if allowed != (action in rights):
                mismatches.append((e.name, action, response.status_code))
            if action in ("list", "show") and action in rights:
                assert response.status_code == 200, (e.name, action, response.status_code)
            if action == "delete" and action in rights:
                assert response.status_code == 200, (e.name, response.status_code, response.text)
        if "delete" in rights:
            make_demo_data(app, 1, seed=pk)
    assert not mismatches


def test_unauthenticated_requests_are_refused(app: Any) -> None:
    client = app.test_client()
    for e in SPEC.entities:
        assert client.get(f"/api/v1/{e.name}/").status_code == 401
        r = client.get(f"/{e.class_name.lower()}view/list/")
        assert r.status_code == 302 and "/login" in r.location


def test_roles_are_synchronised_and_converge(app: Any) -> None:
    from app.access.permsync import sync_security
    from app.access.security import desired_permissions
    from app.factory import wanted_security

    crm = app.extensions["crm"]
    perms = crm.generated.permissions
    role = ROLES[0].name
    with app.app_context():
        sm = crm.appbuilder.sm
        db_role = sm.find_role(role)
        extra = sm.add_permission_view_menu("can_delete", SPEC.entities[-1].name)
        sm.add_permission_role(db_role, extra)  # a grant the sheet does not give
        from app.factory import _exposed_permissions

        exposed = _exposed_permissions(crm.appbuilder, crm.generated)
        menus = {name: group for name, _v, _a, group, *_labels in crm.generated.views.REGISTRY}
        with crm.db.engine.begin() as conn:
            assert not sync_security(conn, wanted_security(crm.appbuilder, crm.generated))  # unchanged: one read, no write
            assert sync_security(conn, wanted_security(crm.appbuilder, crm.generated), force=True)
        crm.db.session.expire_all()
        held = {(p.permission.name, p.view_menu.name) for p in sm.find_role(role).permissions}
        wanted = desired_permissions(perms.GRANTS.get(role, {}), exposed, menus)
        assert wanted <= held
        grants_delete = "delete" in granted(role, SPEC.entities[-1].name)
        assert (("can_delete", SPEC.entities[-1].name) in held) == grants_delete


def security_tables(engine: Any) -> dict[str, list[Any]]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return {t: sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {t}")).all()))  # noqa: S608 - fixed names
                for t in ("ab_permission", "ab_view_menu", "ab_permission_view", "ab_role", "ab_permission_view_role")}


def test_an_app_built_only_to_sync_wants_what_the_served_app_wants(app: Any, tmp_path: Any) -> None:
    """``crm upgrade`` syncs the rights in a child that builds the screens without routing them
    (``create_app(serve=False)``): the permissions and menu it asks for are the served app's."""
    from app import create_app
    from app.factory import wanted_security

    bare = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'crm.sqlite'}", "TESTING": True}, serve=False)
    served_state, bare_state = app.extensions["crm"], bare.extensions["crm"]
    with app.app_context():
        served = wanted_security(served_state.appbuilder, served_state.generated)
    with bare.app_context():
        wanted = wanted_security(bare_state.appbuilder, bare_state.generated)
    assert wanted == served and wanted.digest() == served.digest()
    assert len(list(bare.url_map.iter_rules())) < 10 < len(list(app.url_map.iter_rules()))


def test_the_one_pass_sync_leaves_flask_appbuilder_nothing_to_add_and_a_restart_nothing_to_write(tmp_path: Any) -> None:
    """The security tables as app.access.permsync writes them are what FAB's own permission update
    would write (run it after: nothing changes); a start-up with the same screens and sheet only
    reads the digest."""
    import sqlalchemy as sa

    from app import create_app

    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    application = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    engine = sa.create_engine(url)
    synced = security_tables(engine)
    assert synced["ab_permission_view_role"] and len(synced["ab_role"]) >= len(SPEC.roles)
    with application.app_context():
        application.extensions["crm"].appbuilder.add_permissions(update_perms=True)  # FAB, statement by statement
        application.extensions["crm"].db.session.commit()
    assert security_tables(engine) == synced

    writes: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) and " ab_" in statement:
            writes.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert writes == []
    assert security_tables(engine) == synced
    engine.dispose()
