"""Excel in: import any entity from .xlsx or .csv with the same rules as the forms.

Headers match a field's name or its Chinese/English label; values convert the way offices write
them (2026/11/22, 1,234.50, 是/否, a choice's label, a linked record's name); validations,
numbering, ownership, workflow start states and grading apply as on a save; row scope decides
which linked records may be named. Nothing is imported when any row is bad (unless
``skip_bad_rows``); the report is the original rows with an error column and the bad cells
marked. Reading streams (openpyxl read-only), writing is batched Core inserts in one
transaction, so memory stays flat and a failure leaves nothing behind.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.comments import Comment
from openpyxl.styles import PatternFill

from generator.expr import record_lookup
from generator.spec import Entity, Field, Spec

from . import numbering
from .audit import AuditRow
from .convert import TRUE, convert
from .grading import grade_lookup, graded_fields
from .rules import rules_for, validate_values
from .scope import scope_clause

BATCH = 2000
MERGE = re.compile(rb'<mergeCell\s+ref="([A-Z]+[0-9]+(?::[A-Z]+[0-9]+)?)"')
BAD = PatternFill("solid", fgColor="FFC7CE")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (not a spreadsheet, unknown or missing columns …)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class ImportReport:
    total: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    errors: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # row number → (header, message)
    committed: bool = False
    report_path: Path | None = None

    def summary(self) -> str:
        return (f"共 {self.total} 行:新增 {self.inserted},更新 {self.updated},未变 {self.unchanged},"
                f"失败 {self.failed},跳过 {self.skipped} (total {self.total}: inserted {self.inserted}, updated {self.updated}, "
                f"unchanged {self.unchanged}, failed {self.failed}, skipped {self.skipped})")


# -- reading -------------------------------------------------------------------------------------

def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[Any]]]]:
    """Headers and an iterator of (row number, values); raises ImportFileError for unreadable files."""
    head = path.read_bytes()[:8] if path.exists() else b""
    if not head:
        raise ImportFileError(["文件是空的 (the file is empty)"])
    if head.startswith(OLE_MAGIC):
        raise ImportFileError(["文件受密码保护或是旧版 .xls,请另存为 .xlsx (password-protected or old .xls: save as .xlsx)"])
    if zipfile.is_zipfile(path):
        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - damaged workbooks raise many types
            raise ImportFileError([f"无法读取此 Excel 文件 (cannot read this workbook): {type(exc).__name__}"]) from None
        ws = wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        headers = [("" if h is None else str(h).strip()) for h in next(rows, ())]

        def xlsx_rows() -> Iterator[tuple[int, list[Any]]]:
            try:
                for number, values in enumerate(rows, start=2):
                    yield number, list(values)
            finally:
                wb.close()

        return headers, xlsx_rows()
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ImportFileError(["这不是 .xlsx 或 .csv 文件 (not an .xlsx or .csv file)"])
    if "\x00" in text[:1000]:
        raise ImportFileError(["这不是 .xlsx 或 .csv 文件 (not an .xlsx or .csv file)"])
    reader = csv.reader(io.StringIO(text))
    headers = [h.strip() for h in next(reader, [])]
    return headers, ((n, list(r)) for n, r in enumerate(reader, start=2))


def _merged_headers(path: Path) -> bool:
    """Whether the first sheet merges cells of the header row (read-only mode does not say)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        sheets = sorted(n for n in z.namelist() if n.startswith("xl/worksheets/sheet") and n.endswith(".xml"))
        if not sheets:
            return False
        data = z.read(sheets[0])
    return any(re.match(rb"[A-Z]+1(:|$)", ref) for ref in MERGE.findall(data))


# -- the import ----------------------------------------------------------------------------------

class _Resolver:
    """Turns cell text into stored values: choices by value or label, links by name/code/id, users by login or name."""

    def __init__(self, conn: sa.Connection, spec: Spec, tables: dict[str, sa.Table], user: Any, admin_role: str):
        self.conn, self.spec, self.tables, self.user, self.admin_role = conn, spec, tables, user, admin_role
        self.cache: dict[str, dict[str, int]] = {}

    def choice(self, f: Field, value: Any) -> str:
        text = str(value).strip()
        for c in self.spec.choices.get(f.choices, ()):
            if text in (c.value, c.label, c.label_en):
                return c.value
        raise ValueError(f"'{text}' 不是可选值 (not a choice of {f.choices})")

    def link(self, f: Field, value: Any) -> int:
        names = self._names(f.link)
        text = str(value).strip()
        if text in names:
            return names[text]
        if text.lstrip("#").isdigit() and int(text.lstrip("#")) in names.values():
            return int(text.lstrip("#"))
        raise ValueError(f"找不到{f.label} '{text}' (no {f.link} named '{text}' that you may see)")

    def _names(self, entity_name: str) -> dict[str, int]:
        if entity_name not in self.cache:
            e = self.spec.entity(entity_name)
            t = self.tables[entity_name]
            cols = [t.c.id] + ([t.c[e.title_field]] if e.title_field else []) + ([t.c.code] if e.numbering else [])
            q = sa.select(*cols)
            if self.user is not None:
                clause = scope_clause(self.spec, e, _ModelColumns(t), self.user, self.admin_role)
                if clause is not None:
                    q = q.where(clause)
            names: dict[str, int] = {}
            for row in self.conn.execute(q):
                for text in row[1:]:
                    if text is not None:
                        names.setdefault(str(text), row[0])
            self.cache[entity_name] = names
        return self.cache[entity_name]

    def person(self, value: Any) -> int:
        text = str(value).strip()
        if "user" not in self.cache:
            users = self.tables["ab_user"]
            mapping: dict[str, int] = {}
            for pk, username, first, last in self.conn.execute(sa.select(users.c.id, users.c.username, users.c.first_name, users.c.last_name)):
                for key in (username, f"{first}{last}".replace("-", ""), f"{first} {last}", first):
                    if key:
                        mapping.setdefault(key, pk)
            self.cache["user"] = mapping
        if text in self.cache["user"]:
            return self.cache["user"][text]
        raise ValueError(f"找不到用户 '{text}' (no such user)")


class _ModelColumns:
    """Lets scope_clause read ``<owner>_id`` from a Core table like from an ORM model."""

    def __init__(self, table: sa.Table):
        self.table = table

    def __getattr__(self, name: str) -> Any:
        return self.table.c[name]


def columns_for(spec: Spec, entity: Entity, headers: list[str], hidden: set[str]) -> tuple[dict[int, Field], list[str]]:
    """Header position → field, and the problems of the header row."""
    by_text: dict[str, Field] = {}
    for f in entity.fields:
        for key in (f.name, f.label, f.label_en):
            if key:
                by_text.setdefault(key.strip().lower(), f)
    mapping: dict[int, Field] = {}
    problems = []
    seen: dict[str, int] = {}
    for i, h in enumerate(headers):
        text = h.replace("*", "").strip()
        if not text:
            continue
        f = by_text.get(text.lower())
        if f is None or f.name in hidden:
            known = ", ".join(x.label for x in entity.fields if x.name not in hidden)
            problems.append(f"第 1 行 {text}:未知列 (unknown column '{text}'); 可用 (known): {known}")
            continue
        if f.name in seen:
            problems.append(f"列 '{text}' 与第 {seen[f.name] + 1} 列重复 (column '{text}' appears twice)")
            continue
        seen[f.name] = i
        mapping[i] = f
    return mapping, problems


def import_file(app: Any, entity_name: str, path: str | Path, mode: str = "insert", key: str | None = None, dry_run: bool = False,
                skip_bad_rows: bool = False, user: Any = None, report_path: str | Path | None = None,
                progress: Callable[[int, int | None], None] | None = None) -> ImportReport:
    """Import ``path`` into ``entity_name``; see the module docstring. ``user`` decides scope and ownership."""
    from flask_appbuilder import Model

    from .scope import hidden_fields

    path = Path(path)
    crm = app.extensions["crm"]
    spec: Spec = crm.spec
    entity = spec.entity(entity_name)
    if entity is None:
        raise ImportFileError([f"没有实体 {entity_name} (no entity {entity_name})"])
    if mode not in ("insert", "upsert") or (mode == "upsert" and not key):
        raise ImportFileError(["upsert 需要 --key 字段 (upsert needs --key FIELD)"])
    key_field = entity.field(key) if key else None
    if key and key_field is None:
        raise ImportFileError([f"没有字段 {key} (no field {key})"])
    hidden = hidden_fields(spec, entity, user, crm.admin_role) if user is not None else set()
    headers, rows = read_rows(path)
    if _merged_headers(path):
        raise ImportFileError(["标题行有合并单元格,请取消合并 (merged cells in the header row: unmerge them)"])
    mapping, problems = columns_for(spec, entity, headers, hidden)
    states = {t.state_field for t in spec.workflows if t.entity == entity.name}
    auto = {entity.owner_field} | states | ({"code"} if entity.numbering else set()) | {f.name for f in entity.fields if f.readonly}
    present = {f.name for f in mapping.values()}
    for f in entity.fields:
        if f.required and f.default is None and f.name not in auto and f.name not in present and mode == "insert":
            problems.append(f"缺少必填列 {f.label} (required column '{f.name}' is missing)")
    if key_field is not None and key_field.name not in present:
        problems.append(f"缺少键列 {key_field.label} (the key column '{key_field.name}' is missing)")
    if problems:
        raise ImportFileError(problems)

    tables = dict(Model.metadata.tables)
    table = tables[entity.name]
    rules = rules_for(spec, entity)
    graded = graded_fields(spec, entity)
    report = ImportReport()
    now = dt.datetime.now().replace(microsecond=0)
    user_id = getattr(user, "id", None)
    engine = crm.db.engine
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            resolver = _Resolver(conn, spec, tables, user, crm.admin_role)
            existing: dict[Any, int] = {}
            if key_field is not None:
                kc = table.c[key_field.column]
                q = sa.select(kc, table.c.id)
                clause = scope_clause(spec, entity, _ModelColumns(table), user, crm.admin_role) if user is not None else None
                existing = dict(conn.execute(q if clause is None else q.where(clause)).all())
            seen_keys: dict[Any, int] = {}
            unique = [f for f in entity.fields if f.unique and f != key_field]
            taken = {f.name: dict(conn.execute(sa.select(table.c[f.column], table.c.id).where(table.c[f.column].is_not(None))).all())
                     for f in unique}
            seen_unique: dict[str, dict[Any, int]] = {f.name: {} for f in unique}
            inserts: list[dict[str, Any]] = []
            updates: list[tuple[int, dict[str, Any]]] = []

            def flush() -> None:
                _write(conn, spec, entity, table, inserts, updates, existing_rows, now, user_id, report)
                inserts.clear()
                updates.clear()

            existing_rows: dict[int, dict[str, Any]] = {}
            for number, values in rows:
                if all(v is None or str(v).strip() == "" for v in values):
                    continue
                report.total += 1
                row_errors: list[tuple[str, str]] = []
                record: dict[str, Any] = {}
                for i, f in mapping.items():
                    raw = values[i] if i < len(values) else None
                    if isinstance(raw, str) and raw.startswith("="):
                        row_errors.append((headers[i], "公式没有计算结果,请填写数值 (a formula without a value)"))
                        continue
                    try:
                        record[f.column] = _value(resolver, f, raw)
                    except ValueError as exc:
                        row_errors.append((headers[i], str(exc)))
                key_value = record.get(key_field.column) if key_field is not None else None
                if key_field is not None:
                    if key_value is None:
                        row_errors.append((key_field.label, "键值为空 (the key is empty)"))
                    elif key_value in seen_keys:
                        row_errors.append((key_field.label, f"与第 {seen_keys[key_value]} 行重复 (same key as row {seen_keys[key_value]})"))
                    else:
                        seen_keys[key_value] = number
                target = existing.get(key_value) if key_value is not None else None
                for f in unique:
                    v = record.get(f.column)
                    if v is None:
                        continue
                    if v in seen_unique[f.name]:
                        row_errors.append((f.label, f"与第 {seen_unique[f.name][v]} 行重复 (same as row {seen_unique[f.name][v]})"))
                    elif taken[f.name].get(v, target) != target:
                        row_errors.append((f.label, f"'{v}' 已存在 (exists already)"))
                    seen_unique[f.name].setdefault(v, number)
                if not row_errors:
                    row_errors += _check(spec, entity, rules, graded, record, target is None, conn, table, target, existing_rows,
                                         user_id, now)
                if row_errors:
                    report.errors[number] = row_errors
                    report.failed += 1
                    continue
                if target is None:
                    inserts.append(record)
                else:
                    updates.append((target, record))
                if len(inserts) + len(updates) >= BATCH:
                    flush()
                if progress is not None:
                    progress(report.total, None)
            flush()
            if report.failed and not skip_bad_rows:
                report.inserted = report.updated = report.unchanged = 0
                trans.rollback()
            elif dry_run:
                trans.rollback()
            else:
                trans.commit()
                report.committed = True
            if report.failed and skip_bad_rows:
                report.skipped = report.failed
        except BaseException:
            trans.rollback()
            raise
    if report.errors:
        report.report_path = write_error_report(path, headers, report.errors, Path(report_path) if report_path else None)
    return report


def _value(resolver: _Resolver, f: Field, raw: Any) -> Any:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if f.type == "choice":
        return resolver.choice(f, raw)
    if f.type == "link":
        return resolver.link(f, raw)
    if f.type == "user":
        return resolver.person(raw)
    if f.type == "boolean" and isinstance(raw, str) and raw.strip().lower() in TRUE | {"有"}:
        return True
    if f.type in ("integer", "decimal", "money") and isinstance(raw, str):
        raw = raw.replace(",", "").replace(",", "").strip()
    return convert(raw, f.type, int(f.max) if f.type == "string" and f.max else (255 if f.type == "string" else None))


def _check(spec: Spec, entity: Entity, rules: Any, graded: list[Any], record: dict[str, Any], is_new: bool, conn: sa.Connection,
           table: sa.Table, target: int | None, existing_rows: dict[int, dict[str, Any]], user_id: int | None,
           now: dt.datetime) -> list[tuple[str, str]]:
    """Fill what a save fills (defaults, owner, start state, grades) and check required fields and rules."""
    errors: list[tuple[str, str]] = []
    if is_new:
        for f in entity.fields:
            if record.get(f.column) is None and f.default is not None:
                record[f.column] = _default(f, now)
        if entity.owner_field and record.get(f"{entity.owner_field}_id") is None:
            record[f"{entity.owner_field}_id"] = user_id
        for t in spec.workflows:
            if t.entity == entity.name and record.get(t.state_field) is None:
                f = entity.field(t.state_field)
                record[t.state_field] = f.default if f is not None and f.default else t.source
        full = record
    else:
        if target not in existing_rows:
            row = conn.execute(sa.select(table).where(table.c.id == target)).mappings().one()
            existing_rows[target] = dict(row)
        full = {**existing_rows[target], **record}
    values = {f.name: full.get(f.column) for f in entity.fields}
    for f in entity.fields:
        if f.required and values.get(f.name) is None and not (f.name == "code" and entity.numbering):
            errors.append((f.label, "必填 (required)"))
    for name, messages in validate_values(spec, rules, record_lookup(values), now).items():
        f = entity.field(name)
        errors += [(f.label if f else name, m) for m in messages]
    for g in graded:
        hit = grade_lookup(record_lookup(values), g, now, spec.calendar)
        record[g.field] = hit[0].grade if hit else None
    return errors


def _default(f: Field, now: dt.datetime) -> Any:
    if f.default in ("today", "now"):
        return now.date() if f.type == "date" else now
    return convert(f.default, f.type)


def _write(conn: sa.Connection, spec: Spec, entity: Entity, table: sa.Table, inserts: list[dict[str, Any]],
           updates: list[tuple[int, dict[str, Any]]], existing_rows: dict[int, dict[str, Any]], now: dt.datetime,
           user_id: int | None, report: ImportReport) -> None:
    audit_rows = []
    if inserts:
        if entity.numbering:
            needing = [r for r in inserts if not r.get("code")]
            for r, code in zip(needing, numbering.allocate(conn, entity.name, entity.numbering, now, len(needing)) if needing else [],
                               strict=True):
                r["code"] = code
        columns = {c.name for c in table.columns} - {"id"}
        keys = sorted({k for r in inserts for k in r if k in columns})  # one shape for every row of the batch
        rows = [{**{k: r.get(k) for k in keys}, "created_on": now, "changed_on": now, "created_by_fk": user_id,
                 "changed_by_fk": user_id, "version": 1} for r in inserts]
        # one batched INSERT … RETURNING; ids come back in the order of the rows
        ids = conn.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()
        for pk, r in zip(ids, inserts, strict=True):
            audit_rows.append(_audit(entity, pk, "create", {k: [None, v] for k, v in r.items() if v is not None}, 1, user_id, now))
        report.inserted += len(inserts)
    for pk, record in updates:
        before = existing_rows[pk]
        changed = {k: v for k, v in record.items() if before.get(k) != v}
        if not changed:
            report.unchanged += 1
            continue
        version = (before.get("version") or 1) + 1
        conn.execute(sa.update(table).where(table.c.id == pk).values({**changed, "changed_on": now, "changed_by_fk": user_id,
                                                                      "version": version}))
        audit_rows.append(_audit(entity, pk, "update", {k: [before.get(k), v] for k, v in changed.items()}, version, user_id, now))
        existing_rows[pk] = {**before, **changed, "version": version}
        report.updated += 1
    if audit_rows:
        conn.execute(AuditRow.__table__.insert(), audit_rows)


def _audit(entity: Entity, pk: int, action: str, changes: dict[str, Any], version: int, user_id: int | None,
           now: dt.datetime) -> dict[str, Any]:
    return {"entity": entity.name, "record_id": pk, "action": action, "version": version, "user_id": user_id,
            "remote_addr": "import", "at": now, "changes": json.dumps(changes, ensure_ascii=False, default=str)}


def write_error_report(source: Path, headers: list[str], errors: dict[int, list[tuple[str, str]]], target: Path | None) -> Path:
    """The original rows plus an error column; the bad cells filled red with the message as a comment."""
    target = target or source.with_name(source.stem + "-错误报告.xlsx")
    _headers, rows = read_rows(source)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("导入错误")
    ws.append([*headers, "错误 (errors)"])
    for number, values in rows:
        problems = errors.get(number)
        if not problems:
            continue
        bad = {h for h, _ in problems}
        cells = []
        for i, value in enumerate(values[: len(headers)]):
            c = WriteOnlyCell(ws, value=value)
            if headers[i] in bad or headers[i].replace("*", "").strip() in bad:
                c.fill = BAD
                c.comment = Comment("; ".join(m for h, m in problems if h in (headers[i], headers[i].replace("*", "").strip())), "crm")
            cells.append(c)
        cells.append(f"第 {number} 行: " + "; ".join(f"{h}: {m}" for h, m in problems))
        ws.append(cells)
    wb.save(target)
    return target
