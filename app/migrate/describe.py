"""What each step would do, said to a person before anything runs: a plan line per effect, with
row counts and examples, and the steps existing data refuses (nothing runs then)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from app.migrate.data import EXAMPLES, REASONS, _Db
from app.record import entitykeys
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


def _reasons(reasons: dict[str, int], target: Col) -> tuple[str, str]:
    zh = ",".join(f"{REASONS[r][0].format(type=target.type)} {n} 个" for r, n in reasons.items())
    en = ", ".join(f"{REASONS[r][1].format(type=target.type)}: {n}" for r, n in reasons.items())
    return zh, en


def _ex(examples: list[Any]) -> str:
    return ", ".join(f"#{pk}={value!r}" for pk, value in examples)


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
