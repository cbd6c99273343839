"""``crm rotate-key``: every encrypted field, and the audit trail's copies of their old and new
values, read with the old key and written with the new one, in one transaction. A development
install's first upgrade does the same to move its values off the public key of earlier versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from app.access import crypto, installkeys
from app.record.audit import AuditRow, reseal
from app.spec.model import Spec


def rotate_keys(engine: sa.Engine, spec: Spec, key: str, old_key: str) -> int:
    """Re-encrypt with ``key`` what ``old_key`` (or ``key``) encrypted; values stored before their
    field was encrypted get encrypted too. Returns the number of values written."""
    crypto.configure(key, old_key)
    total = 0
    with engine.begin() as conn:
        for e in spec.entities:
            for f in e.fields:
                if not f.encrypted:
                    continue
                t = sa.table(e.name, sa.column("id"), sa.column(f.column))
                # locked (PostgreSQL): an edit saved meanwhile is not overwritten with the value read here
                rows = conn.execute(sa.select(t.c.id, t.c[f.column]).where(t.c[f.column].is_not(None)).with_for_update()).all()
                updates = [{"_pk": pk, "_v": crypto.encrypt(crypto.decrypt(v) if crypto.is_encrypted(v) else str(v))} for pk, v in rows]
                if updates:
                    conn.execute(sa.update(t).where(t.c.id == sa.bindparam("_pk")).values({f.column: sa.bindparam("_v")}), updates)
                total += len(updates)
        # the audit trail keeps old and new values of those fields, encrypted the same way
        trail = AuditRow.__table__
        sealed = conn.execute(sa.select(trail.c.id, trail.c.changes).where(trail.c.changes.contains(crypto.PREFIX)).with_for_update()).all()
        again = [{"_pk": pk, "_v": reseal(text)} for pk, text in sealed]
        if again:
            conn.execute(sa.update(trail).where(trail.c.id == sa.bindparam("_pk")).values(changes=sa.bindparam("_v")), again)
        total += len(again)
    return total


def move_off_public_key(engine: sa.Engine, spec: Spec, settings: Mapping[str, Any]) -> int | None:
    """Once per development install that keeps its keys under ``CRM_VAR_DIR``: what the public key
    of earlier versions encrypted, re-encrypted with the install's own key, then noted in its key
    file (so the public key opens nothing afterwards). None: nothing to move (the keys come from
    the environment, or were moved already); else the number of values written."""
    found = installkeys.install_secrets(settings)
    if "CRM_OLD_ENCRYPTION_KEY" not in found:
        return None
    total = rotate_keys(engine, spec, found["CRM_ENCRYPTION_KEY"], found["CRM_OLD_ENCRYPTION_KEY"])
    installkeys.mark_moved(settings["CRM_VAR_DIR"])
    return total
