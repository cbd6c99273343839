"""What the runtime keeps *about* an entity's records under the entity's name, and how an entity
rename (``previous_name``) carries it over — in the rename's own migration step, in the same
transaction as the table rename, so a failed upgrade leaves both where they were.

* every ``crm_*`` table with an ``entity`` column (audit trail, grade history, workflow history,
  outbox, survey answers, import jobs …), found from the metadata, so a table added later is
  covered without touching this module;
* ``crm_sequence``: the numbering counters, keyed ``<entity>:<period>`` (left behind, the renamed
  entity would count from 1 again and repeat numbers already given);
* record links in stored messages (every ``crm_*`` table with a ``link`` column):
  ``…/<entity>view/show/<id>``, the page of the entity's screen;
* FAB's view menus: ``<entity>`` (the screen and the API share it) and ``<entity>.menu``, so rights
  given to roles outside the workbook follow the entity instead of pointing at nothing.

A field rename (:func:`rename_field`) re-keys the audit rows' changes (keyed by column) and the
``field`` of grade and workflow history the same way.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_appbuilder import Model

SEQUENCE = "crm_sequence"
VIEW_MENU = "ab_view_menu"


def keyed_tables() -> list[sa.Table]:
    """The runtime's own tables with a column ``entity`` (declared by the runtime modules)."""
    from app.record import audit as _audit  # noqa: F401 - registers crm_audit
    from app.record import tables as _tables  # noqa: F401 - registers the other crm_* tables

    return [t for name, t in sorted(Model.metadata.tables.items()) if name.startswith("crm_") and "entity" in t.c]


def link_tables() -> list[sa.Table]:
    keyed_tables()
    return [t for name, t in sorted(Model.metadata.tables.items()) if name.startswith("crm_") and "link" in t.c]


def route(entity: str) -> str:
    """The path of an entity's screen: FAB's default ``/<class name lowercased>`` of the generated
    ``<ClassName>View`` (``app.spec.model.Entity.class_name``)."""
    return "/" + entity.replace("_", "") + "view"


def _present(conn: sa.Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def _sequence_keys(conn: sa.Connection, entity: str) -> list[tuple[str, int]]:
    t = sa.table(SEQUENCE, sa.column("key"), sa.column("value"))
    prefix = f"{entity}:"
    # compared in Python: entity names contain "_", a LIKE wildcard
    return [(k, int(v)) for k, v in conn.execute(sa.select(t.c.key, t.c.value)) if k.startswith(prefix)]


def _view_menu_names(entity: str) -> tuple[str, ...]:
    from app.access.security import menu_item

    return (entity, menu_item(entity))


def history_rows(conn: sa.Connection, entity: str) -> dict[str, int]:
    """Rows kept under ``entity`` in each entity-keyed table (only tables with any)."""
    present = _present(conn)
    out: dict[str, int] = {}
    for t in keyed_tables():
        if t.name in present:
            n = conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.entity == entity)).scalar_one()
            if n:
                out[t.name] = int(n)
    return out


def kept_under(conn: sa.Connection, entity: str) -> dict[str, int]:
    """Everything a rename of ``entity`` carries over, by table (only tables with any)."""
    out = history_rows(conn, entity)
    present = _present(conn)
    if SEQUENCE in present and (keys := _sequence_keys(conn, entity)):
        out[SEQUENCE] = len(keys)
    if VIEW_MENU in present:
        vm = sa.table(VIEW_MENU, sa.column("name"))
        n = conn.execute(sa.select(sa.func.count()).select_from(vm).where(vm.c.name.in_(_view_menu_names(entity)))).scalar_one()
        if n:
            out[VIEW_MENU] = int(n)
    return out


def move(conn: sa.Connection, old: str, new: str) -> dict[str, int]:
    """Re-key everything kept under ``old`` to ``new`` (in ``conn``'s transaction); returns the
    rows changed per table. Counters already under ``new`` are merged keeping the higher value,
    so no number is ever given twice."""
    present = _present(conn)
    moved: dict[str, int] = {}
    for t in keyed_tables():
        if t.name in present:
            n = conn.execute(sa.update(t).where(t.c.entity == old).values(entity=new)).rowcount
            if n:
                moved[t.name] = n
    if SEQUENCE in present:
        moved[SEQUENCE] = _move_sequences(conn, old, new)
    old_route, new_route = f"{route(old)}/show/", f"{route(new)}/show/"
    for t in link_tables():
        if t.name in present:
            rows = conn.execute(sa.select(t.c.id, t.c.link).where(t.c.link.contains(old_route, autoescape=True))).all()
            for pk, link in rows:
                conn.execute(sa.update(t).where(t.c.id == pk).values(link=link.replace(old_route, new_route)))
            if rows:
                moved[f"{t.name}.link"] = len(rows)
    if VIEW_MENU in present:
        moved[VIEW_MENU] = sum(_move_view_menu(conn, a, b) for a, b in zip(_view_menu_names(old), _view_menu_names(new), strict=True))
    return {k: v for k, v in moved.items() if v}


def rename_field(conn: sa.Connection, entity: str, renames: dict[str, str]) -> dict[str, int]:
    """Re-key what is kept under a field's old names (``renames``: old → new, the column's and the
    field's): the keys of audit rows' changes, and the ``field`` of grade and workflow history; in
    ``conn``'s transaction. Returns rows changed per table."""
    import json

    present = _present(conn)
    renames = {old: new for old, new in renames.items() if old and new and old != new}
    moved: dict[str, int] = {}
    for t in keyed_tables():
        if t.name not in present or not renames:
            continue
        if "field" in t.c:
            n = sum(conn.execute(sa.update(t).where(t.c.entity == entity, t.c.field == old).values(field=new)).rowcount
                    for old, new in renames.items())
            if n:
                moved[t.name] = n
        if "changes" in t.c:  # JSON {column: [old, new]}: only rows that can hold an old key are read
            maybe = sa.or_(*(t.c.changes.contains(json.dumps(old), autoescape=True) for old in renames))
            updates = []
            for pk, text in conn.execute(sa.select(t.c.id, t.c.changes).where(t.c.entity == entity, maybe)):
                changes = json.loads(text or "{}")
                if isinstance(changes, dict) and renames.keys() & changes.keys():
                    keyed = {}
                    for k, v in changes.items():  # a key the new name already holds (a field dropped
                        new = renames.get(k, k)  # earlier) keeps the old name: no entry is lost
                        keyed[k if new != k and new in changes and new not in renames else new] = v
                    updates.append({"pk": pk, "text": json.dumps(keyed, ensure_ascii=False)})
            for i in range(0, len(updates), 1000):
                conn.execute(sa.update(t).where(t.c.id == sa.bindparam("pk")).values(changes=sa.bindparam("text")),
                             updates[i:i + 1000])
            if updates:
                moved[f"{t.name}.changes"] = len(updates)
    return moved


def _move_sequences(conn: sa.Connection, old: str, new: str) -> int:
    t = sa.table(SEQUENCE, sa.column("key"), sa.column("value"))
    n = 0
    for key, value in _sequence_keys(conn, old):
        target = new + key[len(old):]
        there = conn.execute(sa.select(t.c.value).where(t.c.key == target)).scalar()
        if there is None:
            conn.execute(sa.update(t).where(t.c.key == key).values(key=target))
        else:
            conn.execute(sa.update(t).where(t.c.key == target).values(value=max(int(there), value)))
            conn.execute(sa.delete(t).where(t.c.key == key))
        n += 1
    return n


def _move_view_menu(conn: sa.Connection, old: str, new: str) -> int:
    """Rename FAB's view menu ``old`` to ``new``; where ``new`` exists already, move the
    permissions (and the roles holding them) onto it instead, never granting a role twice."""
    from flask_appbuilder.security.sqla.models import PermissionView, ViewMenu, assoc_permissionview_role

    # FAB's own table objects: on PostgreSQL their ids come from sequences they name
    vm, pv, pvr = ViewMenu.__table__, PermissionView.__table__, assoc_permissionview_role
    old_id = conn.execute(sa.select(vm.c.id).where(vm.c.name == old)).scalar()
    if old_id is None:
        return 0
    new_id = conn.execute(sa.select(vm.c.id).where(vm.c.name == new)).scalar()
    if new_id is None:
        conn.execute(sa.update(vm).where(vm.c.id == old_id).values(name=new))
        return 1
    for pv_id, perm_id in conn.execute(sa.select(pv.c.id, pv.c.permission_id).where(pv.c.view_menu_id == old_id)).all():
        target = conn.execute(sa.select(pv.c.id).where(pv.c.view_menu_id == new_id, pv.c.permission_id == perm_id)).scalar()
        if target is None:
            conn.execute(sa.update(pv).where(pv.c.id == pv_id).values(view_menu_id=new_id))
            continue
        have = set(conn.execute(sa.select(pvr.c.role_id).where(pvr.c.permission_view_id == target)).scalars())
        for role_id in conn.execute(sa.select(pvr.c.role_id).where(pvr.c.permission_view_id == pv_id)).scalars().all():
            if role_id not in have:
                conn.execute(sa.insert(pvr).values(permission_view_id=target, role_id=role_id))
        conn.execute(sa.delete(pvr).where(pvr.c.permission_view_id == pv_id))
        conn.execute(sa.delete(pv).where(pv.c.id == pv_id))
    conn.execute(sa.delete(vm).where(vm.c.id == old_id))
    return 1


def describe_kept(kept: dict[str, Any]) -> str:
    return ", ".join(f"{table} {n}" for table, n in kept.items())
