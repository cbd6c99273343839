"""Schema evolution, runtime side: what each generated migration step checks, how it describes
itself to a person, and how it is applied — without losing or duplicating a row.

* A step that existing data would violate is *refused* with counts and examples; nothing runs.
* A removed field or entity is *retired*: the column or table stays (made nullable) and comes back
  with its data when the field is re-added; only ``--allow-destructive`` drops it, after a backup.
* SQLite: a timestamped copy in ``var/backups/`` first, restored if anything fails.
  PostgreSQL: every step of every pending revision in one transaction.
* The list indexes (``lx_*``: sort, owner-scope and trigram search indexes derived from the
  workbook's list/search flags by ``generator.schema.indexes_of``) hold no data: every upgrade
  brings them to what the lists need (:func:`ensure_indexes`).
* PostgreSQL, on a live system with big tables: the upgrade's transaction is kept short, because
  the locks it takes hold until it commits. It waits at most ``CRM_UPGRADE_LOCK_TIMEOUT_MS`` for
  each lock (a long report or an open transaction would otherwise queue every page behind it),
  tries again a few times, then gives up naming the sessions in the way, nothing changed. A new
  field's constant default is kept in the catalogue (no table rewrite). Indexes of big tables are
  built after the commit with ``CREATE INDEX CONCURRENTLY``, reads and writes going on
  (:func:`build_indexes_online`); one interrupted is rebuilt by the next upgrade. So is what
  would scan or write every row of a big table: a new link's key check, a field made unique or
  made required (:class:`ConstraintWork`, :func:`finish_constraints`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from flask_appbuilder import Model

from generator.migration import (
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
from generator.schema import Col, columns_of, fit_name, indexes_of
from generator.spec import Spec

from . import entitykeys
from .convert import convert
from .crypto import EncryptedText, decrypt, encrypt, is_encrypted
from .models import NAMING_CONVENTION

log = logging.getLogger(__name__)
EXAMPLES = 5
INTERNAL_PREFIXES = ("ab_", "crm_", "alembic_", "kombu_", "celery_")
UPGRADE_LOCK_TIMEOUT_MS = 3_000  # per lock the upgrade's transaction waits for (PostgreSQL)
UPGRADE_LOCK_ATTEMPTS = 5  # the whole transaction is tried this often,
UPGRADE_LOCK_PAUSE_S = 2.0  # pausing this long times the attempt in between
INDEX_WAIT_MS = 60_000  # how long an online index build waits for older transactions to end
FILL_BATCH = 2_000  # empty rows a transaction when a field made required is filled after the commit (a save waits at most one batch)
REQUIRED_PREFIX = "nn_"  # a check standing in for NOT NULL until the rows are filled (big tables)
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock not had within lock_timeout


class BusyUpgrade(Exception):
    """PostgreSQL could not give the upgrade its locks in time (other sessions hold its tables);
    nothing was changed."""


class UpgradeRunning(BusyUpgrade):
    """Another upgrade of the same database is under way; nothing was changed."""


class RefusedUpgrade(Exception):
    """Existing data would be lost or broken by the upgrade; nothing was changed."""

    def __init__(self, lines: list[PlanLine]):
        self.lines = lines
        super().__init__("\n".join(line.text("en") for line in lines))


@dataclass
class PlanLine:
    kind: str
    zh: str
    en: str
    rows: int | None = None
    refused: bool = False
    examples: list[Any] = field(default_factory=list)

    def text(self, lang: str = "zh") -> str:
        other = self.en if lang == "zh" else self.zh
        main = self.zh if lang == "zh" else self.en
        mark = ("拒绝 REFUSED: " if self.refused else "")
        return f"{mark}{main} ({other})"

    def details(self, lang: str = "zh") -> list[str]:
        """One line per move that names its example records (``B→A: KH-202612-1998 天津华诚机械、…``)."""
        lead = "例如" if lang == "zh" else "e.g."
        return [f"{lead} {e['from'] or '空'}→{e['to'] or '空'} ({e['rows']}): " + "、".join(r["title"] for r in e["records"])
                + (" …" if e["rows"] > len(e["records"]) else "")
                for e in self.examples if isinstance(e, dict) and e.get("records")]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "zh": self.zh, "en": self.en, "rows": self.rows, "refused": self.refused,
                "examples": [list(e) if isinstance(e, tuple) else e for e in self.examples]}


# -- columns -----------------------------------------------------------------------------------

def sa_type(col: Col, plain: bool = False) -> sa.types.TypeEngine[Any]:
    """The column type; ``plain`` gives the stored type of an encrypted column (its ciphertext)."""
    if col.encrypted and not plain:
        return EncryptedText()
    return {
        "string": lambda: sa.String(col.length or 255), "text": sa.Text, "integer": sa.Integer,
        "decimal": lambda: sa.Numeric(18, 4), "money": lambda: sa.Numeric(18, 2), "boolean": sa.Boolean,
        "date": sa.Date, "datetime": sa.DateTime, "choice": lambda: sa.String(64), "email": lambda: sa.String(254),
        "phone": lambda: sa.String(40), "file": lambda: sa.String(255), "link": sa.Integer, "user": sa.Integer,
    }[col.type]()


def sa_column(col: Col, nullable: bool | None = None) -> sa.Column[Any]:
    args: list[Any] = [sa_type(col)]
    if col.fk:
        args.append(sa.ForeignKey(col.fk))
    return sa.Column(col.name, *args, nullable=col.nullable if nullable is None else nullable, unique=col.unique, index=col.index,
                     info={"crm": col})


def table_of(metadata: sa.MetaData, name: str, cols: Iterable[Col]) -> sa.Table:
    """The table as the generated model declares it: id, the fields, the audit columns."""
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        *[sa_column(c) for c in cols],
        sa.Column("created_on", sa.DateTime, nullable=False),
        sa.Column("changed_on", sa.DateTime, nullable=False),
        sa.Column("created_by_fk", sa.Integer, sa.ForeignKey("ab_user.id"), nullable=True),
        sa.Column("changed_by_fk", sa.Integer, sa.ForeignKey("ab_user.id"), nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sqlite_autoincrement=True,  # ids are never reused: the audit trail and links stay unambiguous
    )


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
        for column in ("version",):
            if column not in have:
                with op.batch_alter_table(name) as b:
                    b.add_column(table.c[column].copy())
                added.append(f"{name}.{column}")
        for column in table.columns:
            if isinstance(column.type, EncryptedText) and column.name in have:
                _recrypt(_Db(conn), name, column.name, encrypt_now=True)  # values stored before encryption
    return added


def _name(kind: str, table: str, column: str, ref: str = "") -> str:
    return NAMING_CONVENTION[kind] % {"table_name": table, "column_0_N_name": column, "column_0_name": column,
                                      "referred_table_name": ref}


# -- looking at the data -----------------------------------------------------------------------

class _Db:
    """Questions about the data. While checking a plan, renames earlier in the plan are not applied
    yet, so names are looked up through ``aliases`` (new name → the name in the database now)."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.insp = sa.inspect(conn)
        # PostgreSQL: indexes of existing tables are built after the commit, concurrently
        self.online = conn.dialect.name == "postgresql"
        self.table_alias: dict[str, str] = {}
        self.column_alias: dict[tuple[str, str], str] = {}
        self._big: dict[str, bool] = {}

    def deferred(self, table: str) -> bool:
        """PostgreSQL and a table of ``ONLINE_INDEX_ROWS`` rows or more: a step that would scan or
        write every row under the table's lock leaves that part for :func:`finish_constraints`."""
        if not self.online:
            return False
        name = self._t(table)
        if name not in self._big:
            self._big[name] = _rows_at_least(self.conn, name, ONLINE_INDEX_ROWS)
        return self._big[name]

    def alias(self, step: Step) -> None:
        if isinstance(step, RenameTable):
            self.table_alias[step.new] = self.table_alias.get(step.old, step.old)
        elif isinstance(step, RenameColumn):
            self.column_alias[(step.table, step.new)] = self.column_alias.get((step.table, step.old), step.old)

    def tables(self) -> set[str]:
        names = set(self.insp.get_table_names())
        return names | {new for new, old in self.table_alias.items() if old in names}

    def _t(self, table: str) -> str:
        return self.table_alias.get(table, table)

    def _c(self, table: str, column: str) -> str:
        return self.column_alias.get((table, column), column)

    def columns(self, table: str) -> dict[str, dict[str, Any]]:
        if table not in self.tables():
            return {}
        cols = {c["name"]: c for c in self.insp.get_columns(self._t(table))}
        for (t, new), old in self.column_alias.items():
            if t == table and old in cols:
                cols[new] = cols.pop(old)
        return cols

    def t(self, table: str, *cols: str) -> sa.TableClause:
        """A table clause keyed by the names in the database now (the same as the plan's after renames)."""
        return sa.table(self._t(table), sa.column("id"), *[sa.column(self._c(table, c)) for c in cols])

    def col(self, table: str, column: str) -> sa.ColumnClause[Any]:
        return sa.column(self._c(table, column))

    def count(self, table: str, where: Any = None) -> int:
        if table not in self.tables():
            return 0
        q = sa.select(sa.func.count()).select_from(sa.table(self._t(table)))
        if where is not None:
            q = q.where(where)
        return int(self.conn.execute(q).scalar_one())

    def filled(self, table: str, column: str) -> int:
        return self.count(table, self.col(table, column).is_not(None)) if column in self.columns(table) else 0

    def nulls(self, table: str, column: str) -> int:
        return self.count(table, self.col(table, column).is_(None))

    def duplicates(self, table: str, column: str) -> list[tuple[Any, int]]:
        c = self.col(table, column)
        q = (sa.select(c, sa.func.count().label("n")).select_from(sa.table(self._t(table))).where(c.is_not(None))
             .group_by(c).having(sa.func.count() > 1).order_by(sa.desc("n"), c))
        return [(r[0], int(r[1])) for r in self.conn.execute(q)]

    def unconvertible(self, table: str, column: str, target: Col, allowed: tuple[str, ...] = ()) -> tuple[int, list[Any], dict[str, int]]:
        """Values that would not survive the conversion to ``target`` unchanged: (how many, the
        first examples, how many per reason — see :func:`conversion_problem`)."""
        t = self.t(table, column)
        c = t.c[self._c(table, column)]
        q = sa.select(t.c.id, c).where(c.is_not(None)).order_by(t.c.id)
        bad, examples, reasons = 0, [], {}
        for pk, value in self.conn.execute(q.execution_options(stream_results=True, yield_per=5000)):
            reason = conversion_problem(value, target, allowed, self.conn.dialect.name)
            if reason is not None:
                bad += 1
                reasons[reason] = reasons.get(reason, 0) + 1
                if len(examples) < EXAMPLES:
                    examples.append((pk, value))
        return bad, examples, reasons

    def dangling(self, table: str, column: str, target_table: str) -> tuple[int, list[Any]]:
        if target_table not in self.tables():
            return self.filled(table, column), []
        t = self.t(table, column)
        c = t.c[self._c(table, column)]
        ref = sa.table(self._t(target_table), sa.column("id"))
        q = (sa.select(t.c.id, c).select_from(t.outerjoin(ref, ref.c.id == c))
             .where(c.is_not(None), ref.c.id.is_(None)).order_by(t.c.id))
        rows = self.conn.execute(q).all()
        return len(rows), [(r[0], r[1]) for r in rows[:EXAMPLES]]

    def filled_examples(self, table: str, column: str) -> tuple[int, list[Any]]:
        t = self.t(table, column)
        c = t.c[self._c(table, column)]
        rows = self.conn.execute(sa.select(t.c.id, c).where(c.is_not(None)).order_by(t.c.id).limit(EXAMPLES)).all()
        return self.filled(table, column), [(r[0], r[1]) for r in rows]

    def linked_table(self, table: str, column: str) -> str:
        """The table a column's foreign key refers to now, by its name in the plan ("" if none)."""
        for fk in self.insp.get_foreign_keys(self._t(table)):
            if fk["constrained_columns"] == [self._c(table, column)]:
                ref = fk["referred_table"]
                return next((new for new, old in self.table_alias.items() if old == ref), ref)
        return ""

    def values_in(self, table: str, column: str, values: tuple[str, ...]) -> list[tuple[str, int]]:
        c = self.col(table, column)
        q = sa.select(c, sa.func.count()).select_from(sa.table(self._t(table))).where(c.in_(values)).group_by(c).order_by(c)
        return [(r[0], int(r[1])) for r in self.conn.execute(q)]


NUMERIC_PRECISION = {"decimal": (18, 4), "money": (18, 2)}  # as sa_type declares them
LEADING_ZEROS = re.compile(r"^[+-]?0[0-9]")
REASONS = {  # why a value does not survive a type change: (zh, en)
    "invalid": ("不是有效的{type}", "not a valid {type}"),
    "leading_zeros": ("开头的 0 会丢失", "leading zeros would be lost"),
    "too_large": ("超出该类型的范围", "too large for the type"),
    "decimals": ("小数位超出该类型保留的位数", "more decimals than the type keeps"),
}


def conversion_problem(value: Any, target: Col, allowed: tuple[str, ...] = (), dialect: str = "") -> str | None:
    """Why ``value`` would not come out of a conversion to ``target`` as it went in (a key of
    :data:`REASONS`), or None. Beyond what :func:`convert` refuses: numbers written with leading
    zeros (codes such as ``007`` would become 7), integers past the column's range (PostgreSQL's
    INTEGER is 32-bit, SQLite's 64-bit) and decimals past the column's precision or scale."""
    try:
        converted = convert(value, target.type, target.length, allowed if target.type == "choice" else ())
    except ValueError:
        return "invalid"
    if target.type not in ("integer", "decimal", "money") or converted is None:
        return None
    if isinstance(value, str) and LEADING_ZEROS.match(value.strip().replace(",", "").replace(",", "")):
        return "leading_zeros"
    if target.type == "integer":
        bits = 63 if dialect == "sqlite" else 31
        return None if -(2 ** bits) <= converted < 2 ** bits else "too_large"
    precision, scale = NUMERIC_PRECISION[target.type]
    exponent = converted.normalize().as_tuple().exponent if converted else 0
    if isinstance(exponent, int) and -exponent > scale:
        return "decimals"
    return "too_large" if converted and converted.adjusted() >= precision - scale else None


def _reasons(reasons: dict[str, int], target: Col) -> tuple[str, str]:
    zh = ",".join(f"{REASONS[r][0].format(type=target.type)} {n} 个" for r, n in reasons.items())
    en = ", ".join(f"{REASONS[r][1].format(type=target.type)}: {n}" for r, n in reasons.items())
    return zh, en


def _ex(examples: list[Any]) -> str:
    return ", ".join(f"#{pk}={value!r}" for pk, value in examples)


# -- describe (and check) ----------------------------------------------------------------------

def describe(step: Step, db: _Db) -> list[PlanLine]:
    """What ``step`` would do to this database, in words; refused lines say why."""
    if isinstance(step, CreateTable):
        if step.table in db.tables():
            return [PlanLine("create", f"新实体 {step.label}({step.table}):表已存在,沿用", f"new entity {step.table}: table exists, kept", 0)]
        return [PlanLine("create", f"新实体 {step.label}({step.table}):建表,{len(step.columns)} 个字段",
                         f"new entity {step.table}: create table with {len(step.columns)} fields", 0)]
    if isinstance(step, RenameTable):
        return _describe_rename_table(step, db)
    if isinstance(step, RetireTable):
        n = db.count(step.table)
        return [PlanLine("retire", f"实体 {step.label}({step.table}) 已从工作簿删除:表保留并隐藏,{n} 行数据保留",
                         f"entity {step.table} removed from the workbook: table kept and hidden, {n} rows kept", n)]
    if isinstance(step, RenameColumn):
        n = db.filled(step.table, step.old)
        if step.new in db.columns(step.table):
            return [PlanLine("rename", f"字段改名 {step.table}.{step.old} → {step.new}({step.label}):表中已有列 {step.new}"
                             "(以前删除的字段,数据保留着)— 请换一个名称",
                             f"field renamed {step.table}.{step.old} → {step.new}: the table already has a column {step.new}"
                             " (kept from a field removed earlier, with its data) — choose another name", n, True)]
        return [PlanLine("rename", f"字段改名 {step.table}.{step.old} → {step.new}({step.label}):{n} 个值保留",
                         f"field renamed {step.table}.{step.old} → {step.new}: {n} values kept", n)]
    if isinstance(step, AddColumn):
        return _describe_add(step, db)
    if isinstance(step, AlterColumn):
        return _describe_alter(step, db)
    if isinstance(step, RetireColumn):
        n = db.filled(step.table, step.col.name)
        return [PlanLine("retire", f"字段 {step.table}.{step.col.name}({step.label}) 已从工作簿删除:列保留并隐藏,{n} 个值保留",
                         f"field {step.table}.{step.col.name} removed from the workbook: column kept and hidden, {n} values kept", n)]
    if isinstance(step, MapValues):
        counts = dict(db.values_in(step.table, step.column, tuple(old for old, _ in step.mapping)))
        total = sum(counts.values())
        pairs = ", ".join(f"{old}→{new} ({counts.get(old, 0)})" for old, new in step.mapping)
        return [PlanLine("map", f"选项值替换 {step.table}.{step.column}({step.label}):{pairs}",
                         f"choice values replaced in {step.table}.{step.column}: {pairs}", total)]
    if isinstance(step, RequireValues):
        used = db.values_in(step.table, step.column, step.removed) if step.column in db.columns(step.table) else []
        if used:
            listing = ", ".join(f"'{v}': {n}" for v, n in used)
            n = sum(c for _, c in used)
            return [PlanLine("choices", f"选项 {', '.join(step.removed)} 被删除,但 {step.table}.{step.column}({step.label}) 仍有 {n} 行在用:{listing}"
                             " — 请在 choices 的 previous_value 列填写替换值,或先修改这些记录",
                             f"choice values {', '.join(step.removed)} removed but {n} rows of {step.table}.{step.column} use them: {listing}"
                             " — map them with previous_value in choices, or change those rows first", n, True, used)]
        return [PlanLine("choices", f"选项 {', '.join(step.removed)} 从 {step.table}.{step.column} 删除,无记录使用",
                         f"choice values {', '.join(step.removed)} removed from {step.table}.{step.column}; no row uses them", 0)]
    raise TypeError(step)


def _describe_rename_table(step: RenameTable, db: _Db) -> list[PlanLine]:
    n = db.count(step.old)
    lines = [PlanLine("rename", f"实体改名 {step.old} → {step.new}({step.label}):{n} 行数据保留",
                      f"entity renamed {step.old} → {step.new}: {n} rows kept", n)]
    moved_away = set(db.table_alias.values())  # names an earlier rename of this plan frees
    if step.new in db.insp.get_table_names() and step.new not in moved_away:
        return [PlanLine("rename", f"实体改名 {step.old} → {step.new}({step.label}):数据库中已有表 {step.new}"
                         "(以前删除的实体,数据保留着)— 请换一个名称",
                         f"entity renamed {step.old} → {step.new}: a table {step.new} already exists (kept from an entity"
                         " removed earlier, with its data) — choose another name", n, True)]
    earlier = entitykeys.history_rows(db.conn, step.new) if step.new not in moved_away else {}
    if earlier:
        listing = entitykeys.describe_kept(earlier)
        return [PlanLine("rename", f"实体改名 {step.old} → {step.new}({step.label}):名称 {step.new} 下已有以前实体的历史记录"
                         f"({listing}),改名后会与现有记录混在一起 — 请换一个名称",
                         f"entity renamed {step.old} → {step.new}: history of an earlier entity is still kept under the name"
                         f" {step.new} ({listing}) and would mix with these records — choose another name",
                         sum(earlier.values()), True)]
    kept = entitykeys.kept_under(db.conn, db._t(step.old))
    if kept:
        listing = entitykeys.describe_kept(kept)
        lines.append(PlanLine("rename", f"{step.old} 的编号计数、审计、分级历史、消息和权限随实体改名为 {step.new}:{listing}",
                              f"numbering counters, audit trail, grade history, messages and permissions of {step.old} follow"
                              f" the rename to {step.new}: {listing}", sum(kept.values())))
    return lines


def _describe_add(step: AddColumn, db: _Db) -> list[PlanLine]:
    col, table = step.col, step.table
    rows = db.count(table)
    existing = db.columns(table).get(col.name)
    if existing is not None:
        kept = db.filled(table, col.name)
        lines = [PlanLine("restore", f"字段 {table}.{col.name}({step.label}) 恢复:{kept} 个原有值重新可见",
                          f"field {table}.{col.name} restored: {kept} earlier values visible again", kept)]
        ref = db.linked_table(table, col.name)  # a kept link column still refers to what it linked to
        old = Col(col.name, _type_of(existing["type"], col), nullable=True, fk=f"{ref}.id" if ref else "")
        return lines + _describe_alter(AlterColumn(table, old, col, step.label), db, restoring=True)
    if not col.nullable and col.default is None and rows:
        return [PlanLine("add", f"新增必填字段 {table}.{col.name}({step.label}),但已有 {rows} 行没有值 — 请在 fields 的 default 列给出默认值",
                         f"new required field {table}.{col.name} but {rows} existing rows would be empty — give a default in fields", rows, True)]
    if col.unique and rows > 1 and col.default is not None:
        return [PlanLine("add", f"新增唯一字段 {table}.{col.name}({step.label}) 的默认值会在 {rows} 行重复",
                         f"new unique field {table}.{col.name}: its default would repeat in {rows} rows", rows, True)]
    if col.default is not None and rows:
        return [PlanLine("add", f"新增字段 {table}.{col.name}({step.label}):{rows} 行填入默认值 {col.default!r}",
                         f"new field {table}.{col.name}: {rows} existing rows get the default {col.default!r}", rows)]
    return [PlanLine("add", f"新增字段 {table}.{col.name}({step.label})", f"new field {table}.{col.name}", 0)]


def _type_of(sa_t: Any, hint: Col) -> str:
    """The workbook type an existing column stores, near enough to decide on conversion."""
    name = type(sa_t).__name__.upper()
    if "INT" in name:
        return "link" if hint.type in ("link", "user") else "integer"
    if "NUMERIC" in name or "DECIMAL" in name or "FLOAT" in name or "REAL" in name:
        return "decimal"
    if "BOOL" in name:
        return "boolean"
    if name == "DATE":
        return "date"
    if "DATETIME" in name or "TIMESTAMP" in name:
        return "datetime"
    if "TEXT" in name or "CLOB" in name:
        return "text"
    return "string"


def _describe_retarget(db: _Db, table: str, column: str, before: str, target: str, where: str, where_en: str) -> PlanLine:
    """A link now points at another entity: the stored ids are ids of ``before``'s records, and
    would silently name unrelated ``target`` records. Refused while any row holds a value."""
    n, examples = db.filled_examples(table, column) if column in db.columns(table) else (0, [])
    if not n:
        return PlanLine("retype", f"关联对象由 {before} 改为 {target}:{where} 没有记录有值",
                        f"link target changed from {before} to {target}: no row of {where_en} has a value", 0)
    return PlanLine("retype", f"关联对象由 {before} 改为 {target}:{where} 有 {n} 行存的是 {before} 的记录编号,改后会指向"
                    f" {target} 中不相关的记录,例如 {_ex(examples)} — 请保留原关联,另外新增一个指向 {target} 的关联字段"
                    "(删除的字段会连同数据隐藏保留),或先清空这些行的该字段",
                    f"link target changed from {before} to {target}: {n} rows of {where_en} hold ids of {before} records that"
                    f" would silently point to unrelated {target} records, e.g. {_ex(examples)} — keep this link and add a new"
                    f" link field to {target} (a removed field is kept hidden with its values), or empty this field in those"
                    " rows first", n, True, examples)


def _describe_alter(step: AlterColumn, db: _Db, restoring: bool = False) -> list[PlanLine]:
    old, new, table = step.old, step.new, step.table
    lines: list[PlanLine] = []
    where = f"{table}.{new.name}({step.label})"
    where_en = f"{table}.{new.name}"
    if (old.type, old.length) != (new.type, new.length) or old.fk != new.fk or (restoring and new.fk):
        target, before = new.fk.split(".")[0], old.fk.split(".")[0]
        retarget = bool(new.fk) and new.fk != old.fk
        if retarget and before and db.table_alias.get(target, target) == db.table_alias.get(before, before):
            lines.append(PlanLine("retype", f"关联随实体改名 {before} → {target}:{where} 的值不变",
                                  f"link follows the renamed entity {before} → {target}: values of {where_en} unchanged", 0))
        elif retarget and before:
            lines.append(_describe_retarget(db, table, new.name, before, target, where, where_en))
        elif new.fk:  # a link restored (its kept values may name records deleted since)
            bad, examples = db.dangling(table, new.name, target) if new.name in db.columns(table) else (0, [])
            zh, en = ("关联改为", "link target changed to") if retarget else ("恢复关联", "link restored to")
            if bad:
                lines.append(PlanLine("retype", f"{zh} {target}:{where} 有 {bad} 个值找不到对应记录,例如 {_ex(examples)}"
                                      " — 请先修改或清空这些行的该字段",
                                      f"{en} {target}: {bad} values of {where_en} do not resolve, e.g. {_ex(examples)}"
                                      " — correct or empty this field in those rows first", bad, True, examples))
            else:
                lines.append(PlanLine("retype", f"{zh} {target}:{where} 的值全部有效",
                                      f"{en} {target}: every value of {where_en} resolves", 0))
        if (old.type, old.length) != (new.type, new.length) and new.type not in ("link", "user"):
            bad, examples, reasons = db.unconvertible(table, new.name, new, step.allowed) if new.name in db.columns(table) else (0, [], {})
            n = db.filled(table, new.name)
            kind = f"{old.type}{f'({old.length})' if old.length else ''} → {new.type}{f'({new.length})' if new.length else ''}"
            if bad:
                why_zh, why_en = _reasons(reasons, new)
                lines.append(PlanLine("retype", f"类型变更 {where} {kind}:{bad} 个值无法原样转换({why_zh}),例如 {_ex(examples)}"
                                      f" — 请保持字段类型为 {old.type},或先修改这些行",
                                      f"type change {where_en} {kind}: {bad} values would not convert unchanged ({why_en}),"
                                      f" e.g. {_ex(examples)} — keep the field as {old.type}, or correct those rows first",
                                      bad, True, examples))
            else:
                lines.append(PlanLine("retype", f"类型变更 {where} {kind}:{n} 个值全部可以转换",
                                      f"type change {where_en} {kind}: all {n} values convert", n))
    if new.encrypted != old.encrypted:
        n = db.filled(table, new.name) if new.name in db.columns(table) else 0
        lines.append(PlanLine("encrypt", f"{where} {'改为加密保存' if new.encrypted else '不再加密保存'}:{n} 个值{'加密' if new.encrypted else '解密'}后重写",
                              f"{where_en} {'becomes encrypted at rest' if new.encrypted else 'no longer encrypted'}: "
                              f"{n} values {'encrypted' if new.encrypted else 'decrypted'} and written back", n))
    if not new.nullable and (old.nullable or restoring):
        nulls = db.nulls(table, new.name) if new.name in db.columns(table) else db.count(table)
        if nulls and new.default is None:
            lines.append(PlanLine("required", f"{where} 改为必填,但有 {nulls} 行为空 — 请在 fields 的 default 列给出默认值",
                                  f"{where_en} becomes required but {nulls} rows are empty — give a default in fields", nulls, True))
        elif nulls:
            lines.append(PlanLine("required", f"{where} 改为必填:{nulls} 个空值填入默认值 {new.default!r}",
                                  f"{where_en} becomes required: {nulls} empty values get the default {new.default!r}", nulls))
        else:
            lines.append(PlanLine("required", f"{where} 改为必填,现有数据都有值", f"{where_en} becomes required; every row has a value", 0))
    elif new.nullable and not old.nullable:
        lines.append(PlanLine("required", f"{where} 改为选填", f"{where_en} becomes optional", 0))
    if new.unique and not old.unique:
        dups = db.duplicates(table, new.name) if new.name in db.columns(table) else []
        if dups:
            listing = ", ".join(f"{v!r} ×{n}" for v, n in dups[:EXAMPLES])
            lines.append(PlanLine("unique", f"{where} 改为唯一,但有 {len(dups)} 个值重复:{listing}",
                                  f"{where_en} becomes unique but {len(dups)} values repeat: {listing}", sum(n for _, n in dups), True, dups[:EXAMPLES]))
        else:
            lines.append(PlanLine("unique", f"{where} 改为唯一,现有数据没有重复", f"{where_en} becomes unique; no duplicates", 0))
    elif old.unique and not new.unique:
        lines.append(PlanLine("unique", f"{where} 不再要求唯一", f"{where_en} no longer unique", 0))
    if new.index != old.index and not restoring:
        lines.append(PlanLine("index", f"{where} {'建立' if new.index else '删除'}索引",
                              f"{where_en}: index {'added' if new.index else 'removed'}", 0))
    return lines


# -- apply ------------------------------------------------------------------------------------

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
                op.create_index(after, new, list(ix["column_names"]), unique=bool(ix.get("unique")))


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


def _default_value(col: Col) -> Any:
    if col.default in ("today", "now"):
        moment = dt.datetime.now().replace(microsecond=0)
        return moment.date() if col.type == "date" else moment
    return convert(col.default, col.type, col.length)


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


def _constraints(db: _Db, table: str, column: str) -> dict[str, list[str]]:
    insp = sa.inspect(db.conn)
    return {
        "fk": [fk["name"] for fk in insp.get_foreign_keys(table) if fk["constrained_columns"] == [column] and fk["name"]],
        "uq": [u["name"] for u in insp.get_unique_constraints(table) if u["column_names"] == [column] and u["name"]],
        "ix": [i["name"] for i in insp.get_indexes(table) if i["column_names"] == [column] and not i.get("unique") and i["name"]],
    }


def _q(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _required_name(table: str, column: str) -> str:
    """The name of the check that stands in for NOT NULL until the rows are filled."""
    return fit_name(f"{REQUIRED_PREFIX}{table}_{column}")


def _add_link_unchecked(db: _Db, table: str, column: str, ref: str) -> None:
    """The link's foreign key, enforced from now on for every row written, while the rows already
    there are checked after the commit (``VALIDATE CONSTRAINT``, which blocks no reads or writes)."""
    c = db.conn
    c.execute(sa.text(f"ALTER TABLE {_q(c, table)} ADD CONSTRAINT {_q(c, _name('fk', table, column, ref))} "
                      f"FOREIGN KEY ({_q(c, column)}) REFERENCES {_q(c, ref)} (id) NOT VALID"))


def _drop_required_checks(db: _Db, table: str, column: str) -> None:
    """Inside the upgrade's transaction: the required-check an unfinished upgrade left on a field
    removed or made optional since goes with the change — left, it would refuse every row saved
    without the field (PostgreSQL)."""
    if db.online:
        for name in _required_checks(db.conn, table, column):
            db.conn.execute(sa.text(f"ALTER TABLE {_q(db.conn, table)} DROP CONSTRAINT {_q(db.conn, name)}"))


def _unique_index_state(conn: sa.Connection, table: str, column: str, name: str) -> str | None:
    """What holds the index name ``name`` (PostgreSQL): None if nothing; "ours" if a valid unique
    btree index on exactly ``table.column`` that no constraint owns (an interrupted run built it
    and did not attach it); "invalid" if such an index a cancelled build left invalid; "other"
    if anything else (a constraint's index, an index of other columns)."""
    have = _index_catalogue(conn, name).get(name)
    if have is None:
        return None
    if have.table != table or have.columns != (column,) or not have.unique or have.owned:
        return "other"
    return "ours" if have.valid else "invalid"


def _required_checks(conn: sa.Connection, table: str, column: str) -> list[str]:
    """The required-checks (:func:`_require`) left on ``table.column`` by an unfinished upgrade."""
    return [name for t, name, col in _pending_checks(conn) if (t, col) == (table, column)]


def _pending_checks(conn: sa.Connection) -> list[tuple[str, str, str]]:
    """(table, constraint, column) of every required-check left by an upgrade (PostgreSQL)."""
    return _one_column_constraints(conn, "c.contype = 'c' AND left(c.conname, :n) = :p",
                                   {"p": REQUIRED_PREFIX, "n": len(REQUIRED_PREFIX)})


def _one_column_constraints(conn: sa.Connection, where: str, params: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(table, constraint, column) of the one-column constraints of the current schema that
    ``where`` (over ``pg_constraint c``) picks, in table and name order (PostgreSQL)."""
    return [tuple(r) for r in conn.execute(sa.text(
        "SELECT t.relname, c.conname, a.attname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1] "
        f"WHERE n.nspname = current_schema() AND cardinality(c.conkey) = 1 AND {where} ORDER BY 1, 2"), params or {})]


@dataclass(frozen=True)
class ConstraintWork:
    """What an upgrade leaves for after its commit on a big table (PostgreSQL), read off the
    catalogue against what the workbook declares, so what an interrupted run left undone is found
    by the next one:

    * ``validate``: a foreign key added NOT VALID — every row's link is checked;
    * ``require``: a field declared required whose column still allows empty values — filled
      with its default in batches, then made NOT NULL (:func:`_require`); also a required-check
      left on a field made optional since, which is dropped;
    * ``unique``: a unique field without its constraint — ``CREATE UNIQUE INDEX CONCURRENTLY``,
      then the constraint takes that index.
    """

    kind: str
    table: str
    column: str
    name: str
    col: Col | None = None  # as the workbook declares the field now

    def describe(self) -> str:
        return {"validate": f"check every link of {self.table}.{self.column} ({self.name})",
                "require": f"make {self.table}.{self.column} required",
                "unique": f"make {self.table}.{self.column} unique ({self.name})"}[self.kind]


def pending_constraints(conn: sa.Connection, declared: sa.MetaData) -> list[ConstraintWork]:
    """The constraint work (:class:`ConstraintWork`) this database still owes ``declared``."""
    if conn.dialect.name != "postgresql":
        return []
    insp = sa.inspect(conn)
    tables = {t for t in insp.get_table_names() if t in declared.tables and not t.startswith(INTERNAL_PREFIXES)}
    work = [ConstraintWork("validate", t, column, name)
            for t, name, column in _one_column_constraints(conn, "c.contype = 'f' AND NOT c.convalidated") if t in tables]
    checks = {(t, column): name for t, name, column in _pending_checks(conn)}
    for table in sorted(tables):
        have = {tuple(u["column_names"]) for u in insp.get_unique_constraints(table)}
        nullable = {c["name"]: c["nullable"] for c in insp.get_columns(table)}
        for column in declared.tables[table].columns:
            col = column.info.get("crm")
            if col is not None and not col.nullable and nullable.get(column.name):
                work.append(ConstraintWork("require", table, column.name, checks.pop((table, column.name), None)
                                           or _required_name(table, column.name), col))
            if column.unique and column.name in nullable and (column.name,) not in have:
                work.append(ConstraintWork("unique", table, column.name, _name("uq", table, column.name)))
    # a check left on a field made optional (or removed) since: nothing to fill, the check goes
    work += [ConstraintWork("require", t, column, name) for (t, column), name in checks.items() if t in tables]
    return work


def finish_constraints(engine: sa.Engine, declared: sa.MetaData,
                       progress: Callable[[str], None] = log.info) -> tuple[list[str], list[str], int]:
    """PostgreSQL, after the upgrade's commit: the constraint work it left on big tables
    (:class:`ConstraintWork`), each on its own connection, the office working meanwhile. Returns
    (what was done, what could not be done and why, how many rows were filled); nothing is
    raised: what is left stays in the catalogue and the next ``crm upgrade`` does it."""
    done: list[str] = []
    failed: list[str] = []
    filled = 0
    if engine.dialect.name != "postgresql":
        return done, failed, filled
    with engine.connect() as conn:
        work = pending_constraints(conn, declared)
    for job in work:
        progress(job.describe())
        started = time.perf_counter()
        try:
            with engine.connect() as conn, _waiting(conn, INDEX_WAIT_MS) as conn:
                text, rows = {"validate": _validate, "require": _require, "unique": _unique}[job.kind](conn, job)
                filled += rows
        except (sa.exc.DBAPIError, _Unfinished) as exc:
            reason = str(exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc).splitlines()[0]
            failed.append(f"{job.describe()}: {reason}{_blockers_text(engine, [job.table])}")
            log.warning("not finished: %s", failed[-1])
            continue
        done.append(f"{text}, {time.perf_counter() - started:.1f} s")
        log.info("constraints: %s", done[-1])
    return done, failed, filled


class _Unfinished(Exception):
    """Constraint work that the data does not allow yet (said why, in both languages)."""


def _validate(conn: sa.Connection, job: ConstraintWork) -> tuple[str, int]:
    conn.execute(sa.text(f"ALTER TABLE {_q(conn, job.table)} VALIDATE CONSTRAINT {_q(conn, job.name)}"))
    return f"checked every link of {job.table}.{job.column}", 0


def _require(conn: sa.Connection, job: ConstraintWork) -> tuple[str, int]:
    """A field made required on a big table. Inside the upgrade's transaction nothing was done
    (a NOT NULL there would scan the table under its lock, the fill write every empty row under
    it). Here: the empty rows get the default, a batch a transaction; a check not yet validated
    then stops anyone saving a row without the field (no scan; not before the fill, or saving any
    row still empty would fail); rows left empty meanwhile are filled; the check is validated
    (reads and writes go on) and proves NOT NULL, which is then set without a scan."""
    table, column = _q(conn, job.table), _q(conn, job.column)
    check = _q(conn, job.name)
    present = job.name in _required_checks(conn, job.table, job.column)
    if job.col is None or job.col.nullable:  # the field was removed or made optional since
        with _briefly(conn):
            conn.execute(sa.text(f"ALTER TABLE {table} DROP CONSTRAINT {check}"))
        return f"{job.table}.{job.column} no longer required: check {job.name} dropped", 0
    filled = _fill(conn, job)
    if job.col.default is None:  # nothing to fill with: stop before a check refuses saving those rows
        _still_empty(conn, job, drop=present)
    if not present:
        with _briefly(conn):
            conn.execute(sa.text(f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"))
    filled += _fill(conn, job)  # rows saved empty before the check was there
    _still_empty(conn, job, drop=True)
    conn.execute(sa.text(f"ALTER TABLE {table} VALIDATE CONSTRAINT {check}"))
    with _briefly(conn):  # NOT NULL is proven by the validated check: no scan under the exclusive lock
        conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL"))
        conn.execute(sa.text(f"ALTER TABLE {table} DROP CONSTRAINT {check}"))
    return f"made {job.table}.{job.column} required ({filled} empty rows got the default {job.col.default!r})", filled


def _still_empty(conn: sa.Connection, job: ConstraintWork, drop: bool) -> None:
    """Stop (reported) if rows of the field are still empty — rows saved empty since the plan was
    checked, with no default to give them; ``drop``: the required-check goes first, so saving
    those rows keeps working."""
    table, column = _q(conn, job.table), _q(conn, job.column)
    empty = conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {column} IS NULL")).scalar_one()  # noqa: S608 - quoted names
    if not empty:
        return
    if drop:
        with _briefly(conn):
            conn.execute(sa.text(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {_q(conn, job.name)}"))
    raise _Unfinished(f"{job.table}.{job.column} 仍有 {empty} 行为空,请在 fields 的 default 列给出默认值或补填这些行 "
                      f"({empty} rows are still empty: give a default in fields, or fill them in)")


def _fill(conn: sa.Connection, job: ConstraintWork) -> int:
    """Give the empty rows of a field made required its default, ``FILL_BATCH`` of them a
    transaction (no row stays locked for long), walking the ids; how many were filled."""
    if job.col is None or job.col.default is None:
        return 0
    value = sa.literal(_default_value(job.col), sa_type(job.col))
    t = sa.table(job.table, sa.column("id"), sa.column(job.column))
    empty = t.c[job.column].is_(None)
    filled, lo = 0, conn.execute(sa.select(sa.func.min(t.c.id)).where(empty)).scalar()
    while lo is not None:
        batch = sa.select(t.c.id).where(empty, t.c.id >= lo).order_by(t.c.id).limit(FILL_BATCH).subquery()
        hi = conn.execute(sa.select(sa.func.max(batch.c.id))).scalar()
        if hi is None:
            break
        filled += conn.execute(sa.update(t).where(t.c.id >= lo, t.c.id <= hi, empty).values({job.column: value})).rowcount
        lo = hi + 1
    return filled


def _unique(conn: sa.Connection, job: ConstraintWork) -> tuple[str, int]:
    table, name = _q(conn, job.table), _q(conn, job.name)
    state = _unique_index_state(conn, job.table, job.column, job.name)
    if state == "other":
        raise _Unfinished(f"索引名 {job.name} 已被别的索引或约束占用 (the name {job.name} is held by another index or constraint: "
                          "rename or drop it, then run crm upgrade again)")
    if state == "invalid":  # a cancelled build's
        conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
    if state != "ours":  # "ours": built by an interrupted run, valid: it only needs attaching
        try:
            conn.execute(sa.text(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} ({_q(conn, job.column)})"))
        except sa.exc.IntegrityError:
            conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
            dups = _Db(conn).duplicates(job.table, job.column)
            listing = ", ".join(f"{v!r} ×{n}" for v, n in dups[:EXAMPLES])
            raise _Unfinished(f"{len(dups)} 个值重复:{listing} — 请先修改这些行 ({len(dups)} values repeat: {listing} — "
                              "correct those rows first)") from None
    with _briefly(conn):
        conn.execute(sa.text(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}"))
    how = f"index {job.name} built concurrently" if state != "ours" else f"index {job.name} an interrupted run built"
    return f"made {job.table}.{job.column} unique ({how})", 0


@contextmanager
def _waiting(conn: sa.Connection, ms: int) -> Iterator[sa.Connection]:
    """``conn`` in AUTOCOMMIT waiting at most ``ms`` for each lock, both undone after, so the
    connection goes back to the pool as it came (the application's pages share it)."""
    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
    conn.exec_driver_sql(f"SET lock_timeout = {int(ms)}")
    try:
        yield conn
    finally:
        try:
            conn.exec_driver_sql("RESET lock_timeout")
        except sa.exc.DBAPIError:
            conn.invalidate()  # broken: not handed to anyone else


@contextmanager
def _briefly(conn: sa.Connection) -> Iterator[None]:
    """A transaction of its own on an AUTOCOMMIT connection, for steps that take the table's
    exclusive lock for a moment: it waits for the lock no longer than the upgrade's own steps do,
    so pages never queue behind it for long."""
    conn.exec_driver_sql("BEGIN")
    try:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(UPGRADE_LOCK_TIMEOUT_MS)}")
        yield
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


# -- running a revision's steps (under Alembic's Operations: upgrade_database, or a revision's upgrade()) --

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
            apply(step, op, db)


# -- the whole database -----------------------------------------------------------------------

def ensure_system_tables(engine: sa.Engine) -> None:
    """FAB's tables (ab_*) and the runtime's own (crm_*), the same for every workbook. Created here
    so FAB never runs create_all over the entities' tables behind the migrations' back."""
    import flask_appbuilder.security.sqla.models  # noqa: F401 - registers the ab_* tables

    from . import audit as _audit  # noqa: F401 - registers crm_audit
    from . import tables as _crm_tables  # noqa: F401 - registers the crm_* tables

    tables = [t for name, t in Model.metadata.tables.items() if name.startswith(("ab_", "crm_"))]
    Model.metadata.create_all(engine, tables=tables)
    add_system_columns(engine, [t for t in tables if t.name.startswith("crm_")])


def add_system_columns(engine: sa.Engine, tables: list[sa.Table]) -> list[str]:
    """Columns a later release added to the runtime's own tables, added to a database made by an
    earlier one (only nullable columns are ever added, so existing rows stay valid). Returns
    ``table.column`` of what was added."""
    added: list[str] = []
    for table in tables:
        present = _columns_of(engine, table.name)
        for column in table.columns:
            if not present or column.name in present:  # absent tables are create_all's
                continue
            if not column.nullable or column.primary_key:
                raise RuntimeError(f"{table.name}.{column.name}: a system column added later must be nullable")
            try:
                with engine.begin() as conn:
                    Operations(MigrationContext.configure(conn)).add_column(table.name, sa.Column(column.name, column.type, nullable=True))
            except sa.exc.DBAPIError:
                if column.name not in _columns_of(engine, table.name):  # not another process adding it at the same moment
                    raise
                continue
            added.append(f"{table.name}.{column.name}")
    if added:
        log.info("system columns added: %s", ", ".join(added))
    return added


def _columns_of(engine: sa.Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        return {c["name"] for c in inspector.get_columns(table)} if inspector.has_table(table) else set()


def declared_metadata(spec: Spec) -> sa.MetaData:
    """The entity tables a Spec declares (without importing any generated model)."""
    md = sa.MetaData(naming_convention=NAMING_CONVENTION)
    sa.Table("ab_user", md, sa.Column("id", sa.Integer, primary_key=True))
    indexes = []
    for e in spec.entities:
        table = table_of(md, e.name, columns_of(e))
        for idx in indexes_of(e):
            indexes.append(idx)
            extra = {"postgresql_using": "gin", "postgresql_ops": {idx.columns[0]: "gin_trgm_ops"}} if idx.kind == "trigram" else {}
            sa.Index(idx.name, *[table.c[c] for c in idx.columns], **extra)
    md.info["crm_indexes"] = indexes
    return md


# -- list indexes (generator.schema.indexes_of) --------------------------------------------------

def trigram_opclass(conn: sa.Connection, install: bool = True) -> str | None:
    """``<schema>.gin_trgm_ops`` where pg_trgm is installed (installing it into ``public`` when
    the server has it, we may, and ``install``), else None: searches then scan (still correct, slower)."""
    if conn.dialect.name != "postgresql":
        return None
    where = sa.text("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'")
    schema = conn.execute(where).scalar()
    if schema is None and install and conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first():
        public = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")).first() is not None
        try:
            with conn.begin_nested():  # no privilege, or another upgrade racing us: not fatal
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm" + (" SCHEMA public" if public else "")))
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) == LOCK_NOT_AVAILABLE:
                raise  # busy, not missing: the upgrade tries again
            log.warning("pg_trgm not installed (%s): text searches will scan", str(exc).splitlines()[0])
        schema = conn.execute(where).scalar()
    return None if schema is None else f"{conn.dialect.identifier_preparer.quote(schema)}.gin_trgm_ops"


@dataclass(frozen=True)
class IndexBuild:
    """An index the workbook asks for: a list index (``lx_*``, by name) or a field's own (``ix_*``:
    any valid index on exactly its column will do, so one kept through a rename is not doubled)."""

    name: str
    table: str
    columns: tuple[str, ...]
    opclass: str | None = None  # a trigram (GIN) index with this operator class

    def sql(self, prep: Any, concurrently: bool = False) -> str:
        target = (f"USING gin ({prep.quote(self.columns[0])} {self.opclass})" if self.opclass
                  else f"({', '.join(prep.quote(c) for c in self.columns)})")
        return f"CREATE INDEX{' CONCURRENTLY' if concurrently else ''} {prep.quote(self.name)} ON {prep.quote(self.table)} {target}"

    def describe(self) -> str:
        kind = "trigram" if self.opclass else "btree"
        return f"index {self.name} ({kind}: {', '.join(self.columns)})"


def ensure_indexes(conn: sa.Connection, declared: sa.MetaData) -> tuple[list[str], list[IndexBuild]]:
    """Bring the list indexes (``lx_*``) to what the workbook's lists need: drop those no list
    needs any more and create the missing. Indexes hold no data, so this is safe on every upgrade.
    It runs in the upgrade's transaction. On PostgreSQL it also builds the fields' own indexes
    (``ix_*``) the steps left out, and those of a big table (``ONLINE_INDEX_ROWS``) are not built
    here, where its table would stay locked until the commit: they are the second value, for
    :func:`build_indexes_online` after the commit. The first is what was done, one line each."""
    insp = sa.inspect(conn)
    tables = {t for t in insp.get_table_names() if not t.startswith(INTERNAL_PREFIXES)}
    wanted = {i.name: i for i in declared.info.get("crm_indexes", []) if i.table in tables}
    op = Operations(MigrationContext.configure(conn))
    done, have = [], set()
    for table in sorted(tables):
        for ix in insp.get_indexes(table):
            have.add(ix["name"])
            if ix["name"] and ix["name"].startswith("lx_") and ix["name"] not in wanted:
                op.drop_index(ix["name"], table_name=table)
                done.append(f"drop index {ix['name']}")
    builds = _list_builds(conn, wanted)
    prep = conn.dialect.identifier_preparer
    online: list[IndexBuild] = []
    if conn.dialect.name == "postgresql":
        for build, need, big in _missing_indexes(conn, declared, tables, builds):
            if big:
                online.append(build)  # a big table: built after the commit, without locking it
                continue
            if need == "rebuild":
                conn.execute(sa.text(f"DROP INDEX {prep.quote(build.name)}"))
            conn.execute(sa.text(build.sql(prep)))
            done.append(f"create {build.describe()}")
    else:
        for build in builds:
            if build.name not in have:
                conn.execute(sa.text(build.sql(prep)))
                done.append(f"create {build.describe()}")
    for line in done:
        log.info("indexes: %s", line)
    return done, online


def _list_builds(conn: sa.Connection, wanted: dict[str, Any], install: bool = True) -> list[IndexBuild]:
    opclass = trigram_opclass(conn, install) if any(i.kind == "trigram" for i in wanted.values()) else None
    # without pg_trgm (SQLite …) a search index is a plain one: equality and prefix searches use it
    return [IndexBuild(i.name, i.table, tuple(i.columns), opclass if i.kind == "trigram" else None) for i in wanted.values()]


def _missing_indexes(conn: sa.Connection, declared: sa.MetaData, tables: set[str],
                     builds: list[IndexBuild]) -> Iterator[tuple[IndexBuild, str, bool]]:
    """(build, "build" or "rebuild", on a big table) of the fields' own and the list indexes
    the database lacks or holds invalid (PostgreSQL); reads only."""
    fields = [IndexBuild(str(ix.name), name, tuple(c.name for c in ix.columns))
              for name, table in declared.tables.items() if name in tables
              for ix in sorted(table.indexes, key=lambda i: str(i.name)) if not str(ix.name).startswith("lx_")]
    catalogue = _index_catalogue(conn)
    claimed = {b.name: b for b in fields + builds}
    big: dict[str, bool] = {}
    for build in fields + builds:
        need = _needed(build, catalogue, claimed)
        if need is None:
            continue
        if build.table not in big:
            big[build.table] = _rows_at_least(conn, build.table, ONLINE_INDEX_ROWS)
        yield build, need, big[build.table]


def owed_online(conn: sa.Connection, declared: sa.MetaData) -> list[str]:
    """What an upgrade still owes big tables after its commit (an interrupted run's work, say), in
    words: the next ``crm upgrade`` does it while the system stays in use (PostgreSQL; reads only)."""
    if conn.dialect.name != "postgresql":
        return []
    tables = {t for t in sa.inspect(conn).get_table_names() if not t.startswith(INTERNAL_PREFIXES)}
    wanted = {i.name: i for i in declared.info.get("crm_indexes", []) if i.table in tables}
    return [job.describe() for job in pending_constraints(conn, declared)] + [
        f"build {build.describe()}" for build, _need, big in _missing_indexes(conn, declared, tables, _list_builds(conn, wanted, False))
        if big]


ONLINE_INDEX_ROWS = 10_000  # from here on an index of an existing table is built after the commit, concurrently


def _needed(build: IndexBuild, catalogue: dict[str, _Have], claimed: dict[str, IndexBuild] | None = None) -> str | None:
    """None if ``build`` is there and valid; "create" if missing; "rebuild" if left invalid by an
    interrupted build, or if its name is held by an index of other columns (a field renamed away
    and its name used again)."""
    found = catalogue.get(build.name)
    if found is not None:
        same = (found.table, found.columns) == (build.table, build.columns)
        return None if found.valid and same else "rebuild"
    claimed = claimed or {}
    if not build.name.startswith("lx_") and any(
            (h.table, h.columns) == (build.table, build.columns) and h.valid and h.plain
            and (name not in claimed or claimed[name] == build) for name, h in catalogue.items()):
        return None  # a field's own index under another name (one no other build claims)
    return "create"


def _rows_at_least(conn: sa.Connection, table: str, n: int) -> bool:
    t = conn.dialect.identifier_preparer.quote(table)
    return conn.execute(sa.text(f"SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT :n) s"), {"n": n}).scalar_one() >= n  # noqa: S608 - a reflected name


@dataclass(frozen=True)
class _Have:
    table: str
    columns: tuple[str, ...]
    valid: bool
    plain: bool  # a btree index that is not unique: what a field's own index is
    unique: bool  # a unique btree index: what a unique field's constraint stands on
    owned: bool  # a constraint's index (a unique or primary key constraint)


def _index_catalogue(conn: sa.Connection, name: str | None = None) -> dict[str, _Have]:
    """name → what it is, of the indexes in the current schema, or of the one named (PostgreSQL)."""
    rows = conn.execute(sa.text(
        "SELECT i.relname, t.relname, x.indisvalid, m.amname = 'btree' AND NOT x.indisunique, "
        "m.amname = 'btree' AND x.indisunique, EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid), "
        "ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o) "
        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_am m ON m.oid = i.relam JOIN pg_namespace s ON s.oid = t.relnamespace "
        "WHERE s.nspname = current_schema() AND (CAST(:n AS text) IS NULL OR i.relname = :n)"), {"n": name})
    return {index: _Have(table, tuple(columns), valid, plain, unique, owned)
            for index, table, valid, plain, unique, owned, columns in rows}


def build_indexes_online(engine: sa.Engine, builds: list[IndexBuild],
                         progress: Callable[[str], None] = log.info) -> tuple[list[str], list[str]]:
    """PostgreSQL, after the upgrade's commit: build the indexes ``builds`` asks for that are
    missing, with ``CREATE INDEX CONCURRENTLY`` — pages keep reading and saving while a million
    rows are indexed. An index left invalid by an interrupted build is dropped and built again.
    Each wait of a build for older transactions lasts at most ``INDEX_WAIT_MS``. Returns (what was
    done, what could not be done and why): the lists work without the index, only slower, until
    the next ``crm upgrade`` builds it. Called once the generated files of the upgrade are kept:
    the schema change is committed whatever happens here."""
    done: list[str] = []
    failed: list[str] = []
    claimed = {b.name: b for b in builds}
    for build in builds:
        started = time.perf_counter()
        try:
            # one each: a build cancelled or killed spoils no other
            with engine.connect() as conn, _waiting(conn, INDEX_WAIT_MS) as conn:
                prep = conn.dialect.identifier_preparer
                need = _needed(build, _index_catalogue(conn), claimed)  # another upgrade may have built it meanwhile
                if need is None:
                    continue
                progress(f"build {build.describe()} concurrently")
                if need == "rebuild":  # left invalid by an interrupted build, or a stale index under this name
                    conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {prep.quote(build.name)}"))
                conn.execute(sa.text(build.sql(prep, concurrently=True)))
        except sa.exc.DBAPIError as exc:
            reason = str(exc.orig if exc.orig is not None else exc).splitlines()[0]
            failed.append(f"{build.describe()} on {build.table}: {reason}{_blockers_text(engine, [build.table])}")
            log.warning("index not built: %s", failed[-1])
            continue
        done.append(f"create {build.describe()} concurrently, {time.perf_counter() - started:.1f} s")
        log.info("indexes: %s", done[-1])
    return done, failed


def _blockers_text(engine: sa.Engine, tables: list[str]) -> str:
    """:func:`_blockers` on a connection of its own, or nothing if the database cannot say."""
    try:
        with engine.connect() as conn:
            return _blockers(conn, tables)
    except sa.exc.DBAPIError:
        return ""


def _blockers(conn: sa.Connection, tables: list[str], limit: int = 5) -> str:
    """The other sessions holding locks on ``tables`` (or, if none, the oldest open transactions
    of this database), as text for a message about what is in the way."""
    rows = conn.execute(sa.text(
        "SELECT pid, state, usename, application_name, age, query, held FROM ("
        "SELECT a.pid, a.state, a.usename, a.application_name, a.xact_start, date_trunc('second', now() - a.xact_start) AS age, "
        "left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80) AS query, "
        "string_agg(DISTINCT c.relname, ', ') FILTER (WHERE c.relname = ANY(:tables)) AS held "
        "FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND l.granted "
        "LEFT JOIN pg_class c ON c.oid = l.relation "
        "WHERE a.pid <> pg_backend_pid() AND a.datname = current_database() AND a.xact_start IS NOT NULL "
        "GROUP BY a.pid, a.state, a.usename, a.application_name, a.xact_start, a.query) s "
        "ORDER BY held IS NULL, xact_start LIMIT :limit"), {"tables": tables, "limit": limit}).all()
    if not rows:
        return ""
    sessions = [f"pid {pid} ({user or '?'}{', ' + app if app else ''}; {state}, transaction open {age}"
                f"{', holds ' + held if held else ''}): {query}" for pid, state, user, app, age, query, held in rows]
    return " — in the way: " + "; ".join(sessions)


def retired_columns(conn: sa.Connection, metadata: sa.MetaData) -> list[tuple[str, str | None, int]]:
    """(table, column or None for a whole table, values) kept in the database but no longer declared."""
    insp = sa.inspect(conn)
    db = _Db(conn)
    found: list[tuple[str, str | None, int]] = []
    for table in sorted(insp.get_table_names()):
        if table.startswith(INTERNAL_PREFIXES):
            continue
        if table not in metadata.tables:
            found.append((table, None, db.count(table)))
            continue
        declared = set(metadata.tables[table].c.keys())
        for col in insp.get_columns(table):
            if col["name"] not in declared:
                found.append((table, col["name"], db.count(table, sa.column(col["name"]).is_not(None))))
    return found


def drop_retired(conn: sa.Connection, backup_dir: Path, metadata: sa.MetaData) -> list[PlanLine]:
    """Physically drop retired columns and tables after writing their data to ``backup_dir``."""
    op = Operations(MigrationContext.configure(conn))
    lines = []
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    backup_dir.mkdir(parents=True, exist_ok=True)
    for table, column, n in retired_columns(conn, metadata):
        cols = ["*"] if column is None else ["id", column]
        rows = conn.execute(sa.text(f"SELECT {', '.join(cols)} FROM {conn.dialect.identifier_preparer.quote(table)}")).mappings().all()  # noqa: S608 - names come from reflection
        target = backup_dir / f"{table}{'.' + column if column else ''}-{stamp}.json"
        target.write_text(json.dumps([dict(r) for r in rows], ensure_ascii=False, default=str), encoding="utf-8")
        if column is None:
            op.drop_table(table)
            lines.append(PlanLine("drop", f"删除表 {table}({n} 行,已备份到 {target.name})", f"dropped table {table} ({n} rows, saved to {target.name})", n))
        else:
            for name in _constraints(_Db(conn), table, column)["ix"]:
                op.drop_index(name, table_name=table)
            with op.batch_alter_table(table) as b:
                b.drop_column(column)
            lines.append(PlanLine("drop", f"删除列 {table}.{column}({n} 个值,已备份到 {target.name})",
                                  f"dropped column {table}.{column} ({n} values, saved to {target.name})", n))
    return lines


def plan_lines(steps: list[Step], conn: sa.Connection) -> list[PlanLine]:
    """Describe (and check) ``steps`` in order against the database as it is now."""
    return plan_groups([steps], conn)[0]


def plan_groups(groups: list[list[Step]], conn: sa.Connection) -> list[list[PlanLine]]:
    """:func:`plan_lines` of groups of steps that run one after the other (a rename in one is
    seen by the next)."""
    db = _Db(conn)
    result = []
    for steps in groups:
        lines = []
        for step in steps:
            lines += describe(step, db)
            db.alias(step)
        result.append(lines)
    return result


def sqlite_path(url: sa.URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def backup_sqlite(path: Path, backup_dir: Path) -> Path | None:
    if not path.exists():
        return None
    backup_dir.mkdir(parents=True, exist_ok=True)
    target = backup_dir / f"{path.stem}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}{path.suffix}"
    # SQLite's online backup: a consistent copy while the office keeps saving (a file copy could
    # catch a save half written)
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target


@dataclass
class UpgradeResult:
    applied: list[str]
    lines: list[PlanLine]
    backup: Path | None
    dropped: list[PlanLine] = field(default_factory=list)
    builds: list[IndexBuild] = field(default_factory=list)  # left for after the commit: finish_online
    declared: sa.MetaData | None = None  # what the workbook declares (the constraint work is read against it)
    finished: list[str] = field(default_factory=list)  # done after the commit (PostgreSQL)
    unfinished: list[str] = field(default_factory=list)  # could not be done: the next upgrade tries again
    filled: int = 0  # rows given a default after the commit (their grades must be computed again)


def upgrade_database(engine: sa.Engine, generated_dir: str | Path, backup_dir: Path, spec: Spec,
                     allow_destructive: bool = False, lock_timeout_ms: int = UPGRADE_LOCK_TIMEOUT_MS,
                     attempts: int = UPGRADE_LOCK_ATTEMPTS) -> UpgradeResult:
    """Run the generated revisions the database has not run yet and record ``spec`` as what it
    was upgraded to (and, if allowed, drop what ``spec`` no longer has), all or nothing; on
    PostgreSQL then build the indexes it asks for, online."""
    from .applied import pending_revisions, read_applied, record_applied, stamp

    declared = declared_metadata(spec)
    sqlite = sqlite_path(engine.url)
    backup = None
    with engine.connect() as conn:
        state = read_applied(conn, generated_dir)
        pending = pending_revisions(generated_dir, state, spec)
        lines = plan_lines([s for _, steps in pending for s in steps], conn)
        refused = [line for line in lines if line.refused]
        if refused:
            raise RefusedUpgrade(refused)
        needs_backup = bool(pending) or (allow_destructive and retired_columns(conn, declared))
    if sqlite is not None and needs_backup:
        backup = backup_sqlite(sqlite, backup_dir)
    dropped: list[PlanLine] = []
    ensure_system_tables(engine)
    head = pending[-1][0] if pending else state.revision
    for attempt in range(1, max(1, attempts) + 1):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    # the database's write lock from the start, and the schema changes inside
                    # the transaction (pysqlite would run them outside it): all or nothing,
                    # while the office's saves wait for the commit
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                if conn.dialect.name == "postgresql" and lock_timeout_ms > 0:
                    conn.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": f"{int(lock_timeout_ms)}ms"})
                with Operations.context(MigrationContext.configure(conn)):
                    for _revision, steps in pending:
                        run_steps(steps)
                if head is not None:
                    stamp(conn, head)
                record_applied(conn, head, spec)  # the database now stands here, whatever is generated next
                ensure_base_columns(conn, declared)
                _done, builds = ensure_indexes(conn, declared)
                if allow_destructive:
                    dropped = drop_retired(conn, backup_dir, declared)
            break
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != LOCK_NOT_AVAILABLE:
                raise
            if attempt >= attempts:
                raise _busy(engine, declared, lock_timeout_ms, attempts) from None
            log.warning("upgrade: a lock was not had within %s ms (try %s of %s); trying again", lock_timeout_ms, attempt, attempts)
            time.sleep(UPGRADE_LOCK_PAUSE_S * attempt)
    return UpgradeResult([rev for rev, _ in pending], lines, backup, dropped, builds=builds, declared=declared)


@contextmanager
def one_upgrade_at_a_time(engine: sa.Engine) -> Iterator[None]:
    """Held for a whole upgrade of one database: the plan, the generated files, the transaction,
    the work after its commit and the regrade. Two upgrades at once would write the same
    generated files, and the second's plan (read before the first committed) would no longer be
    true when applied. Upgrades of other databases (another office's schema, even from the same
    checkout) go on.

    * PostgreSQL (a database several machines' checkouts may share): a session advisory lock keyed
      by the schema, on its own connection in autocommit — an open transaction would make this
      upgrade's own ``CREATE INDEX CONCURRENTLY`` wait for it for ever.
    * SQLite: an exclusive lock on ``<database file>.upgrade-lock`` beside it (which says who holds
      it); an in-memory database is one process's own.

    Taken without waiting: a second upgrade stops at once (:class:`UpgradeRunning`, naming the
    first) and changes nothing. A process that dies lets go."""
    me = f"crm upgrade pid {os.getpid()} on {socket.gethostname()}"
    if engine.dialect.name == "postgresql":
        with _database_upgrade_lock(engine, me):
            yield
        return
    database = sqlite_path(engine.url)
    if database is None:
        yield
        return
    path = database.with_name(f"{database.name}.upgrade-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise UpgradeRunning(_running(f.read().strip() or "?", str(path))) from None
        f.seek(0)
        f.truncate()
        f.write(f"{me} since {dt.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)


_UPGRADE_KEY = "hashtext('crm upgrade'), hashtext(current_schema())"


@contextmanager
def _database_upgrade_lock(engine: sa.Engine, me: str) -> Iterator[None]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.execute(sa.text("SELECT current_schema()")).scalar() is None:
            raise BusyUpgrade("PostgreSQL 的 search_path 里没有已存在的 schema:先建好它 (CREATE SCHEMA …) 再运行 crm upgrade "
                              "(no schema of the search_path exists: create it first); 没有任何改动 (nothing changed)")
        if not conn.execute(sa.text(f"SELECT pg_try_advisory_lock({_UPGRADE_KEY})")).scalar_one():
            holder = conn.execute(sa.text(
                "SELECT a.application_name, a.pid, host(a.client_addr), a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = CAST(hashtext('crm upgrade') AS oid) AND l.objid = CAST(hashtext(current_schema()) AS oid)")).first()
            who = (f"{holder[0] or '?'} (PostgreSQL session {holder[1]} from {holder[2] or 'local'}, "
                   f"since {holder[3]:%Y-%m-%d %H:%M:%S %z})") if holder else "?"
            raise UpgradeRunning(_running(who, f"schema {conn.execute(sa.text('SELECT current_schema()')).scalar_one()}"))
        try:
            conn.execute(sa.text("SELECT set_config('application_name', :me, false)"), {"me": me[:63]})
            yield
        finally:
            conn.execute(sa.text(f"SELECT pg_advisory_unlock({_UPGRADE_KEY})"))
            conn.execute(sa.text("RESET application_name"))


def _running(who: str, where: str) -> str:
    return (f"另一个升级正在进行,本次没有任何改动;等它结束后再运行 crm upgrade (another upgrade is under way, "
            f"nothing changed; run crm upgrade again once it has finished): {who} [{where}]")


def finish_online(engine: sa.Engine, result: UpgradeResult, progress: Callable[[str], None] = log.info) -> UpgradeResult:
    """What an upgrade left for after its commit (PostgreSQL, big tables): the constraint work
    (:func:`finish_constraints`: defaults filled first, so a regrade after this sees them), then
    the indexes (:func:`build_indexes_online`); ``progress`` is told of each as it starts. Notes
    in ``result`` what was done and what not."""
    done, failed, result.filled = finish_constraints(engine, result.declared, progress) if result.declared is not None else ([], [], 0)
    built, unbuilt = build_indexes_online(engine, result.builds, progress)
    result.finished, result.unfinished = done + built, failed + unbuilt
    return result


def _busy(engine: sa.Engine, declared: sa.MetaData, lock_timeout_ms: int, attempts: int) -> BusyUpgrade:
    in_the_way = _blockers_text(engine, [t for t in declared.tables if not t.startswith(INTERNAL_PREFIXES)])
    return BusyUpgrade(
        f"升级在 {lock_timeout_ms} 毫秒内拿不到表锁(试了 {attempts} 次),没有任何改动;等占着表的会话结束后再运行 crm upgrade,"
        f"或调大 CRM_UPGRADE_LOCK_TIMEOUT_MS (the upgrade could not lock its tables within {lock_timeout_ms} ms, "
        f"{attempts} tries; nothing changed; run crm upgrade again once the sessions holding them have finished)"
        f"{in_the_way}")
