"""Applying the steps of a revision under Alembic's ``Operations``: tables created in dependency
order, columns added, renamed, retyped and retired without losing or duplicating a row."""

from __future__ import annotations

import logging
from typing import cast

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from app.access.crypto import EncryptedText, decrypt, encrypt, is_encrypted
from app.migrate.constraints import REQUIRED_PREFIX, _add_link_unchecked, _drop_required_checks
from app.migrate.data import _constraints, _Db, _q, _unique_index_state
from app.migrate.declared import INTERNAL_PREFIXES, _default_value, _name, sa_type, table_of
from app.migrate.describe import RefusedUpgrade, _type_of, plan_lines
from app.record import entitykeys
from app.record.convert import convert
from app.record.models import NAMING_CONVENTION
from app.spec.columns import Col
from app.spec.steps import (
    AddColumn,
    AlterColumn,
    CreateTable,
    MapValues,
    RenameColumn,
    RenameTable,
    RequireValues,
    RetireColumn,
    RetireTable,
    Step,
)

log = logging.getLogger(__name__)


def apply(step: Step, op: Operations, db: _Db) -> None:
    if isinstance(step, CreateTable):
        create_tables([step], db)
    elif isinstance(step, RenameTable):
        op.rename_table(step.old, step.new)
        _rename_table_names(db, op, step.old, step.new)
        moved = entitykeys.move(db.conn, step.old, step.new)  # same transaction: numbers, history, rights follow
        if moved:
            log.info("rename %s → %s moved %s", step.old, step.new, entitykeys.describe_kept(moved))
    elif isinstance(step, RenameColumn):
        with op.batch_alter_table(step.table) as b:
            b.alter_column(step.old, new_column_name=step.new)
        _rename_field_index(db, op, step.table, step.old, step.new)
        # same transaction: the audit trail and grade/workflow history follow the field's new name
        moved = entitykeys.rename_field(db.conn, step.table, {step.old: step.new, step.old_field: step.new_field})
        if moved:
            log.info("rename %s.%s → %s moved %s", step.table, step.old, step.new, entitykeys.describe_kept(moved))
    elif isinstance(step, AddColumn):
        _apply_add(step, op, db)
    elif isinstance(step, AlterColumn):
        _apply_alter(step, op, db)
    elif isinstance(step, RetireColumn):
        existing = db.columns(step.table).get(step.col.name)
        if existing is not None and not existing["nullable"]:
            with op.batch_alter_table(step.table) as b:
                b.alter_column(step.col.name, existing_type=existing["type"], nullable=True)
        _drop_required_checks(db, step.table, step.col.name)  # the application stops writing it
    elif isinstance(step, MapValues):
        t = db.t(step.table, step.column)
        for old, new in step.mapping:
            db.conn.execute(sa.update(t).where(t.c[step.column] == old).values({step.column: new}))
    elif isinstance(step, RetireTable | RequireValues):
        pass  # kept as it is; RequireValues only checks
    else:
        raise TypeError(step)
    db.insp = sa.inspect(db.conn)  # the schema changed: forget cached reflection


def _rename_field_index(db: _Db, op: Operations, table: str, old: str, new: str) -> None:
    """The field's own index (and unique constraint) follow its new name, so the old name is free
    for a field that takes it later (whose index would otherwise clash with, or be taken for, this one)."""
    uq_before, uq_after = _name("uq", table, old), _name("uq", table, new)
    if uq_before in _constraints(db, table, new)["uq"]:  # a unique field's constraint too (its index name is schema-wide;
        if db.online:  # on SQLite a new constraint of the old name would be merged with it when the table is rebuilt)
            db.conn.execute(sa.text(f"ALTER TABLE {_q(db.conn, table)} RENAME CONSTRAINT {_q(db.conn, uq_before)} TO {_q(db.conn, uq_after)}"))
        else:
            with op.batch_alter_table(table) as b:
                b.drop_constraint(uq_before, type_="unique")
                b.create_unique_constraint(uq_after, [new])
    before, after = _name("ix", table, old), _name("ix", table, new)
    if before not in _constraints(db, table, new)["ix"]:
        return
    if db.conn.dialect.name == "postgresql":
        prep = db.conn.dialect.identifier_preparer
        db.conn.execute(sa.text(f"ALTER INDEX {prep.quote(before)} RENAME TO {prep.quote(after)}"))
    else:  # SQLite cannot rename an index: drop and create (its tables are small)
        op.drop_index(before, table_name=table)
        op.create_index(after, table, [new])


def _rename_table_names(db: _Db, op: Operations, old: str, new: str) -> None:
    """The index and constraint names that carry a renamed table's name follow it (``ix_old_x`` →
    ``ix_new_x``, and so ``pk_``, ``uq_``, ``fk_``, ``lx_``, ``nn_``): index names are one namespace
    per schema, so a new entity given the old name later would otherwise find its names taken."""

    limit = db.conn.dialect.max_identifier_length

    def renamed(name: str) -> str | None:
        for kind in ("ix", "lx", "uq", "fk", "pk", REQUIRED_PREFIX.rstrip("_")):
            if name == f"{kind}_{old}" or name.startswith(f"{kind}_{old}_"):
                after = f"{kind}_{new}{name[len(kind) + 1 + len(old):]}"
                return after if len(after) <= limit else None  # too long for PostgreSQL: kept (a list index is rebuilt by ensure_indexes)
        return None

    c = db.conn
    if c.dialect.name == "postgresql":
        constraints = c.execute(sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(quote_ident(:t) AS regclass)"),
                                {"t": new}).scalars().all()
        for name in constraints:
            if (after := renamed(name)) is not None:  # a primary key's or unique constraint's index is renamed with it
                c.execute(sa.text(f"ALTER TABLE {_q(c, new)} RENAME CONSTRAINT {_q(c, name)} TO {_q(c, after)}"))
        plain = c.execute(sa.text(
            "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = CAST(quote_ident(:t) AS regclass) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)"), {"t": new}).scalars().all()
        for name in plain:
            if (after := renamed(name)) is not None:
                c.execute(sa.text(f"ALTER INDEX {_q(c, name)} RENAME TO {_q(c, after)}"))
    else:  # SQLite cannot rename an index: drop and create (its tables are small); constraint names are the table's own
        for ix in sa.inspect(c).get_indexes(new):
            if ix["name"] and (after := renamed(ix["name"])) is not None:
                op.drop_index(ix["name"], table_name=new)
                op.create_index(after, new, list(ix["column_names"]), unique=bool(ix.get("unique")))  # type: ignore[arg-type]  # plain columns


def create_tables(steps: list[CreateTable], db: _Db) -> None:
    """Create the tables together, so links between new tables are created in a working order."""
    existing = db.tables()
    new = [s for s in steps if s.table not in existing]
    if not new:
        return
    md = sa.MetaData(naming_convention=NAMING_CONVENTION)
    names = {s.table for s in new}
    for ref in {c.fk.split(".")[0] for s in new for c in s.columns if c.fk} | {"ab_user"}:
        if ref not in names:
            sa.Table(ref, md, sa.Column("id", sa.Integer, primary_key=True))
    tables = [table_of(md, s.table, s.columns) for s in new]
    md.create_all(db.conn, tables=tables)


def _apply_add(step: AddColumn, op: Operations, db: _Db) -> None:
    col, table = step.col, step.table
    existing = db.columns(table).get(col.name)
    if existing is not None:  # a retired column comes back with its data
        old = Col(col.name, _type_of(existing["type"], col), nullable=bool(existing["nullable"]))
        _apply_alter(AlterColumn(table, old, col, step.label), op, db, restoring=True)
        return
    catalogued = db.online and not col.encrypted
    if catalogued:
        # a constant default is kept in PostgreSQL's catalogue for the rows already there: no
        # rewrite of a million rows under the table's lock, and NOT NULL needs no scan; dropped at
        # once, so later rows get the application's default (a date default is today's, not this one)
        default = None if col.default is None else sa.literal(_default_value(col), sa_type(col))
        op.add_column(table, sa.Column(col.name, sa_type(col), nullable=col.nullable, server_default=default))
        if default is not None:
            op.alter_column(table, col.name, server_default=None, existing_type=sa_type(col))
    else:
        with op.batch_alter_table(table) as b:
            b.add_column(sa.Column(col.name, sa_type(col), nullable=True))
        if col.default is not None:
            t = db.t(table, col.name)
            db.conn.execute(sa.update(t).values({col.name: sa.literal(_default_value(col), sa_type(col))}))
    later = db.deferred(table)  # a big table: the key check and the unique index after the commit
    with op.batch_alter_table(table) as b:
        if not col.nullable and not catalogued:  # catalogued: NOT NULL came with the column
            b.alter_column(col.name, existing_type=sa_type(col), nullable=False)
        if col.fk and not later:
            ref = col.fk.split(".")[0]
            b.create_foreign_key(_name("fk", table, col.name, ref), ref, [col.name], ["id"])
        if col.unique and not later:
            b.create_unique_constraint(_name("uq", table, col.name), [col.name])
    if col.fk and later:
        _add_link_unchecked(db, table, col.name, col.fk.split(".")[0])
    if col.index and not db.online:  # online: build_indexes_online, after the commit
        op.create_index(_name("ix", table, col.name), table, [col.name])


def _apply_alter(step: AlterColumn, op: Operations, db: _Db, restoring: bool = False) -> None:
    old, new, table = step.old, step.new, step.table
    existing = db.columns(table)[new.name]
    t = db.t(table, new.name)
    retype = (old.type, old.length) != (new.type, new.length) and not (
        {old.type, new.type} <= {"link", "user", "integer"} and old.length == new.length)
    if old.encrypted != new.encrypted:
        _hold_writes(db, table, "EXCLUSIVE")  # the values read are written back: none may change in between
        _recrypt(db, table, new.name, encrypt_now=new.encrypted)
    if retype and _widening(old, new):
        # every value fits as it is (longer text, integer → decimal …): the database converts
        with op.batch_alter_table(table) as b:
            b.alter_column(new.name, existing_type=existing["type"], type_=sa_type(new), existing_nullable=existing["nullable"])
        existing = {**existing, "type": sa_type(new)}
    elif retype:
        # converted in Python, the way the plan checked them, then written back row by row; the
        # table is held from the read on (the type change needs this lock anyway), or a save
        # committed between the read and the change would be overwritten with the value read
        _hold_writes(db, table, "ACCESS EXCLUSIVE")
        pairs = [(pk, convert(v, new.type, new.length, step.allowed if new.type == "choice" else ()))
                 for pk, v in db.conn.execute(sa.select(t.c.id, t.c[new.name]).where(t.c[new.name].is_not(None)))]
        if not existing["nullable"]:
            with op.batch_alter_table(table) as b:
                b.alter_column(new.name, existing_type=existing["type"], nullable=True)
        using = f"CAST(NULL AS {sa_type(new).compile(dialect=db.conn.dialect)})"
        with op.batch_alter_table(table) as b:
            b.alter_column(new.name, existing_type=existing["type"], type_=sa_type(new), existing_nullable=True,
                           postgresql_using=using)
        if pairs:
            db.conn.execute(sa.update(t).where(t.c.id == sa.bindparam("_pk")).values({new.name: sa.bindparam("_v", type_=sa_type(new))}),
                            [{"_pk": pk, "_v": v} for pk, v in pairs])
        existing = {**existing, "type": sa_type(new), "nullable": True}
    later = db.deferred(table)  # a big table: what scans or writes every row, after the commit
    require_later = later and not new.nullable and bool(existing["nullable"])
    if not new.nullable and new.default is not None and not require_later:
        db.conn.execute(sa.update(t).where(t.c[new.name].is_(None)).values({new.name: sa.literal(_default_value(new), sa_type(new))}))
    constraints = _constraints(db, table, new.name)
    relink = new.fk != old.fk or (restoring and bool(new.fk) and not constraints["fk"])
    with op.batch_alter_table(table) as b:
        if bool(existing["nullable"]) != new.nullable and not require_later:
            b.alter_column(new.name, existing_type=existing["type"], nullable=new.nullable)
        if relink:
            for name in constraints["fk"]:
                b.drop_constraint(name, type_="foreignkey")
            if new.fk and not later:
                ref = new.fk.split(".")[0]
                b.create_foreign_key(_name("fk", table, new.name, ref), ref, [new.name], ["id"])
        if new.unique and not constraints["uq"] and not later:
            b.create_unique_constraint(_name("uq", table, new.name), [new.name])
        elif not new.unique:
            for name in constraints["uq"]:
                b.drop_constraint(name, type_="unique")
    if relink and new.fk and later:
        _add_link_unchecked(db, table, new.name, new.fk.split(".")[0])
    if not new.unique and db.online and _unique_index_state(db.conn, table, new.name, _name("uq", table, new.name)) in ("ours", "invalid"):
        # a unique index an interrupted run built but did not make a constraint of
        db.conn.execute(sa.text(f"DROP INDEX {_q(db.conn, _name('uq', table, new.name))}"))
    if new.nullable:  # made optional again before an earlier upgrade finished requiring it
        _drop_required_checks(db, table, new.name)
    if new.index and not constraints["ix"] and not db.online:  # online: build_indexes_online
        op.create_index(_name("ix", table, new.name), table, [new.name])
    elif not new.index:
        for name in constraints["ix"]:
            op.drop_index(name, table_name=table)


def _hold_writes(db: _Db, table: str, mode: str) -> None:
    """Lock ``table`` (PostgreSQL) for the rest of the upgrade's transaction, waited for as long as
    its lock timeout allows, before values are read to be written back. SQLite: the upgrade's
    transaction already holds the database's write lock (``BEGIN IMMEDIATE``)."""
    if db.online:
        db.conn.execute(sa.text(f"LOCK TABLE {_q(db.conn, table)} IN {mode} MODE"))


def _recrypt(db: _Db, table: str, column: str, encrypt_now: bool) -> None:
    """Encrypt (or decrypt) every stored value of a column that became (or stopped being) secret."""
    t = sa.table(table, sa.column("id"), sa.column(column))
    rows = db.conn.execute(sa.select(t.c.id, t.c[column]).where(t.c[column].is_not(None))).all()
    updates = []
    for pk, value in rows:
        if encrypt_now and not is_encrypted(value):
            updates.append({"_pk": pk, "_v": encrypt(str(value))})
        elif not encrypt_now and is_encrypted(value):
            updates.append({"_pk": pk, "_v": decrypt(value)})
    if updates:
        db.conn.execute(sa.update(t).where(t.c.id == sa.bindparam("_pk")).values({column: sa.bindparam("_v")}), updates)


TEXTUAL = ("string", "text", "email", "phone", "choice", "file")


def _widening(old: Col, new: Col) -> bool:
    """Whether every value of ``old`` is already a valid value of ``new`` (no check, no rewrite)."""
    if new.type == "text":
        return old.type in TEXTUAL
    if new.type == "string" and old.type in TEXTUAL and old.type != "text":
        longest = old.length or {"email": 254, "phone": 40, "choice": 64}.get(old.type, 255)
        return (new.length or 255) >= longest
    if old.type in ("integer", "link", "user") and new.type in ("decimal", "money"):
        return True
    return old.type == "money" and new.type == "decimal"


def run_steps(steps: list[Step]) -> None:
    """Called by a generated revision's ``upgrade()``: check every step, then apply them all."""
    from alembic import op

    refused = [line for line in plan_lines(steps, op.get_bind()) if line.refused]
    if refused:
        raise RefusedUpgrade(refused)
    db = _Db(op.get_bind())
    creates = [s for s in steps if isinstance(s, CreateTable)]
    for step in steps:
        if isinstance(step, CreateTable):
            if step is creates[0]:
                create_tables(creates, db)  # all at once, in dependency order
                db.insp = sa.inspect(db.conn)
        else:
            apply(step, cast(Operations, op), db)  # alembic.op: the running migration's Operations


def ensure_base_columns(conn: sa.Connection, declared: sa.MetaData) -> list[str]:
    """Add the columns every entity table has (e.g. ``version`` for optimistic locking) where an
    older database lacks them; existing rows get the column's server default."""
    op = Operations(MigrationContext.configure(conn))
    insp = sa.inspect(conn)
    added = []
    existing_tables = set(insp.get_table_names())
    for name, table in declared.tables.items():
        if name.startswith(INTERNAL_PREFIXES) or name not in existing_tables:
            continue
        have = {c["name"] for c in insp.get_columns(name)}
        for base in ("version",):
            if base not in have:
                with op.batch_alter_table(name) as b:
                    b.add_column(table.c[base].copy())
                added.append(f"{name}.{base}")
        for column in table.columns:
            if isinstance(column.type, EncryptedText) and column.name in have:
                _recrypt(_Db(conn), name, column.name, encrypt_now=True)  # values stored before encryption
    return added
