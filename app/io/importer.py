"""Excel in: import any entity from .xlsx or .csv with the same rules as the forms.

Headers match a field's name or label (or an explicit mapping, see importcolumns); values convert
the way offices write them (2026/11/22, 1,234.50, 是/否, a choice's label, a linked record's name);
validations, numbering, ownership, start states, grades with their explanation and grade history
apply as on a save; row scope decides which linked records may be named.

Two phases, so a failure leaves nothing behind and the database is locked only briefly:
1. *check* reads and checks every row without writing; good rows go to a temporary spool file
   (memory stays flat) and progress can be committed as it goes;
2. *write* inserts/updates the spooled rows in one transaction (batched, numbers allocated per
   batch), checking that no updated record changed since phase 1 (its version).
Nothing is written when a row is bad, unless ``skip_bad_rows``; the report is the original rows
with an error column and the bad cells marked.
"""

from __future__ import annotations

import datetime as dt
import pickle  # nosec B403
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.comments import Comment
from openpyxl.styles import PatternFill
from sqlalchemy.orm import Session

from app.access.accounts import person_name
from app.access.ownership import candidates, default_owner
from app.access.scope import scope_clause
from app.io.excel import unneutralise
from app.io.importcolumns import ColumnPlan, header_score, plan_columns, system_fields
from app.io.spreadsheet import HeaderChoice, ImportFileError, Limits, Sheet, column_letter, open_sheet
from app.messages import Joined, Text, msg
from app.record import numbering, uniques
from app.record.audit import AuditRow, audit_row, created_changes, secret_columns, trail_changes
from app.record.computed import graph, propagate
from app.record.convert import TRUE, check_field, convert, same_value
from app.record.grading import explain, grade_change_row, grade_lookup, graded_fields
from app.record.rules import default_value, defaulted_fields, fill_computed_defaults, rules_for, validate_values
from app.record.tables import GradeChange
from app.spec.expr import record_lookup
from app.spec.model import Entity, Field, Spec

__all__ = ["ImportFileError", "ImportReport", "Inspection", "import_file", "import_limits", "inspect_file", "max_rows", "write_error_report"]

BATCH = 2000
WHERE = "import"  # an import's "from where" in the audit trail
PROGRESS_ROWS = 250
KEPT_ERRORS = 20_000  # bad cells whose messages a report holds; those of later rows wait in a file for the error workbook
COMMENTED = 10_000  # bad cells of the error workbook with their message as a comment (each is filled red; the row says all)
BAD = PatternFill("solid", fgColor="FFC7CE")
Progress = Callable[[str, int, int | None], None]  # (phase "checking"/"writing", rows done, rows in all)
RowErrors = list[tuple[int | None, str, str]]
YES = TRUE | {"有"}  # (column index in the file or None, label, message)


@dataclass
class ImportReport:
    total: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    blank: int = 0
    errors: dict[int, RowErrors] = field(default_factory=dict)  # row number → problems (the first KEPT_ERRORS cells' rows)
    notes: list[str] = field(default_factory=list)
    committed: bool = False
    dry_run: bool = False
    report_path: Path | None = None
    header_row: int = 1  # the Excel row the headers were found on

    def summary(self) -> Text:
        """What the import did, said in either language (a screen shows the reader's, the CLI both)."""
        text = (msg("共 %(total)s 行:新增 %(inserted)s,更新 %(updated)s,未变 %(unchanged)s,失败 %(failed)s,跳过 %(skipped)s,空行 %(blank)s",
                    total=self.total, inserted=self.inserted, updated=self.updated, unchanged=self.unchanged, failed=self.failed,
                    skipped=self.skipped, blank=self.blank) if self.blank else
                msg("共 %(total)s 行:新增 %(inserted)s,更新 %(updated)s,未变 %(unchanged)s,失败 %(failed)s,跳过 %(skipped)s",
                    total=self.total, inserted=self.inserted, updated=self.updated, unchanged=self.unchanged, failed=self.failed,
                    skipped=self.skipped))
        return Joined(text, " — ", msg("试运行,未写入")) if self.dry_run else text

    def first_errors(self, limit: int = 10) -> list[str]:
        """The first ``limit`` problems, each with its row, column and message, then how many rows
        more have errors: what a failed import says beside its error workbook."""
        lines: list[str] = []
        rows_shown = 0
        for number in sorted(self.errors):
            for column, label, message in self.errors[number]:
                if len(lines) == limit:
                    break
                where = (msg("第 %(row)s 行 %(column)s 列(%(label)s)", row=number, column=column_letter(column), label=label)
                         if column is not None else msg("第 %(row)s 行", row=number))
                lines.append(f"{where}: {message}")
            else:
                rows_shown += 1
                continue
            break
        if self.failed > rows_shown:
            lines.append(str(msg("… 另有 %(rows)s 行有错误,见错误报告", rows=self.failed - rows_shown)))
        return lines

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("total", "inserted", "updated", "unchanged", "failed", "skipped", "blank")}


def import_limits(app: Any) -> Limits:
    """What one import may hold: ``CRM_IMPORT_MAX_*`` (app config or environment, see app.io.limits)."""
    return Limits.of(app.config)


def max_rows(app: Any) -> int:
    """The row limit of one import: ``CRM_IMPORT_MAX_ROWS`` (app config or environment)."""
    return import_limits(app).rows


@dataclass
class Inspection:
    """A file's header row, a few sample rows and how the headers match (for the mapping step)."""

    headers: list[str]
    samples: list[list[Any]]
    plan: ColumnPlan
    header_row: int = 1  # the Excel row the headers are on (title rows above it skipped)


def inspect_file(app: Any, entity_name: str, path: str | Path, user: Any, mode: str = "insert", key: str | None = None,
                 mapping: dict[str, str] | None = None, samples: int = 3, header_row: int | None = None) -> Inspection:
    """Raises ImportFileError for a file that cannot be imported whatever the mapping."""
    crm = app.extensions["crm"]
    entity = _entity(crm.spec, entity_name, mode, key)
    sheet = open_sheet(Path(path), import_limits(app), sample=samples, header=header_choice(entity, header_row))
    rows = [values for _i, (_n, values) in zip(range(samples), sheet.rows, strict=False)]
    sheet.close()
    plan = plan_columns(crm.spec, entity, sheet.headers, user, crm.admin_role, mode, key, mapping, sheet.header_row)
    return Inspection(sheet.headers, rows, plan, sheet.header_row)


def header_choice(entity: Entity, header_row: int | None) -> HeaderChoice:
    """The row given (``--header-row``, the mapping step), else the row naming most of the entity's fields."""
    if header_row is not None and header_row < 1:
        raise ImportFileError([msg("表头行号须是从 1 开始的整数")])
    return header_row if header_row is not None else header_score(entity)


def _entity(spec: Spec, entity_name: str, mode: str, key: str | None) -> Entity:
    entity = spec.entity(entity_name)
    if entity is None:
        raise ImportFileError([msg("没有实体 %(entity)s", entity=entity_name)])
    if mode not in ("insert", "upsert") or (mode == "upsert" and not key):
        raise ImportFileError([msg("upsert 需要 --key 字段")])
    if key and entity.field(key) is None:
        raise ImportFileError([msg("没有字段 %(field)s", field=key)])
    return entity


def import_file(app: Any, entity_name: str, path: str | Path, mode: str = "insert", key: str | None = None, dry_run: bool = False,
                skip_bad_rows: bool = False, user: Any = None, report_path: str | Path | None = None,
                progress: Progress | None = None, mapping: dict[str, str] | None = None,
                finish: Callable[[sa.Connection, ImportReport], None] | None = None, header_row: int | None = None) -> ImportReport:
    """Import ``path`` into ``entity_name``; see the module docstring. ``user`` decides scope, hidden
    fields and ownership; ``finish`` runs inside the write transaction just before it commits."""
    from flask_appbuilder import Model

    path = Path(path)
    crm = app.extensions["crm"]
    spec: Spec = crm.spec
    entity = _entity(spec, entity_name, mode, key)
    limits = import_limits(app)
    sheet = open_sheet(path, limits, header=header_choice(entity, header_row))
    plan = plan_columns(spec, entity, sheet.headers, user, crm.admin_role, mode, key, mapping, sheet.header_row)
    if plan.problems:
        sheet.close()
        raise ImportFileError(plan.problems)
    report = ImportReport(notes=plan.notes, dry_run=dry_run, header_row=sheet.header_row)
    table = Model.metadata.tables[entity.name]
    now = dt.datetime.now().replace(microsecond=0)
    engine = crm.db.engine
    with (tempfile.TemporaryFile(prefix="crm-import-") as spool, tempfile.TemporaryFile(prefix="crm-import-errors-") as more,
          engine.connect() as conn):
        checker = _RowChecker(conn, spec, entity, table, dict(Model.metadata.tables), plan, key, user, crm.admin_role, now)
        batches = checker.run(sheet, spool, report, progress, more)
        conn.rollback()  # phase 1 only read
        report.skipped = report.failed if skip_bad_rows else 0
        if report.errors:  # before writing, so ``finish`` can keep it with the outcome
            report.report_path = write_error_report(path, report.errors, Path(report_path) if report_path else None, limits, more,
                                                    sheet.header_row)
        if report.failed and not skip_bad_rows:
            report.inserted = report.updated = report.unchanged = 0  # all or nothing: nothing
        elif not dry_run:
            _write_all(conn, spec, entity, table, _read_spool(spool, batches), now, getattr(user, "id", None), report, progress, finish)
    return report


# -- phase 1: check ------------------------------------------------------------------------------

class _Resolver:
    """Turns cell text into stored values: choices by value or label, links by name/code/id, users by login or name."""

    def __init__(self, conn: sa.Connection, spec: Spec, tables: dict[str, sa.Table], user: Any, admin_role: str):
        self.conn, self.spec, self.tables, self.user, self.admin_role = conn, spec, tables, user, admin_role
        self.cache: dict[str, Any] = {}
        self.links: dict[str, tuple[dict[str, tuple[int, ...]], set[int]]] = {}

    def converter(self, f: Field) -> Callable[[Any], Any]:
        """A function from a non-blank cell value to the column's value (raises ValueError)."""
        if f.type == "choice":
            options: dict[str, str] = {}
            for c in self.spec.choices.get(f.choices, ()):
                for text in (c.value, c.label, c.label_en):
                    if text:
                        options.setdefault(text, c.value)

            def choice(raw: Any) -> str:
                text = _text(raw)
                if text in options:
                    return options[text]
                raise ValueError(msg("'%(value)s' 不是可选值", value=text, choices=f.choices))

            return choice
        if f.type == "link":
            return lambda raw: self.link(f, raw)
        if f.type == "user":
            return self.person
        length = (int(f.max) if f.max else 255) if f.type == "string" else None
        if f.type == "boolean":
            return lambda raw: True if isinstance(raw, str) and raw.strip().lower() in YES else convert(raw, "boolean")
        if f.type in ("string", "text", "email", "phone"):
            read = lambda raw: convert(unneutralise(raw), f.type, length)  # noqa: E731
        else:
            read = lambda raw: convert(raw, f.type, length)  # noqa: E731

        def checked(raw: Any) -> Any:  # the field's own checks, as in the forms and the API
            value = read(raw)
            check_field(f, value)
            return value

        return checked

    def link(self, f: Field, value: Any) -> int:
        names, ids = self._names(f.link)
        text = _text(value)
        found = names.get(text, ())
        if len(found) == 1:
            return found[0]
        if found:  # a title two records share: which one is meant is the sheet's to say
            listing = "、".join(f"#{pk}" for pk in found[:5])
            raise ValueError(msg("'%(value)s' 对应多条%(label)s记录 (%(found)s),请填写编号或 #id", value=text, label=f.label,
                                 found=listing, entity=f.link))
        if text.lstrip("#").isdigit() and int(text.lstrip("#")) in ids:
            return int(text.lstrip("#"))
        raise ValueError(msg("找不到%(label)s '%(value)s'", label=f.label, value=text, entity=f.link))

    def visible_ids(self, entity_name: str) -> set[int]:
        return self._names(entity_name)[1]

    def _names(self, entity_name: str) -> tuple[dict[str, tuple[int, ...]], set[int]]:
        """title or code → the ids of the records so called, and every id (those this user may see)."""
        if entity_name not in self.links:
            e = self.spec.entity(entity_name)
            assert e is not None, entity_name  # a link's target: the validated workbook has it
            t = self.tables[entity_name]
            cols = [t.c.id] + ([t.c[e.title_field]] if e.title_field else []) + ([t.c.code] if e.numbering else [])
            q = sa.select(*cols)
            if self.user is not None:
                clause = scope_clause(self.spec, e, _ModelColumns(t), self.user, self.admin_role)
                if clause is not None:
                    q = q.where(clause)
            names: dict[str, tuple[int, ...]] = {}
            ids: set[int] = set()
            for row in self.conn.execute(q):
                pk = row[0]
                ids.add(pk)
                for text in {str(v) for v in row[1:] if v is not None}:
                    names[text] = (*names.get(text, ()), pk)
            self.links[entity_name] = (names, ids)
        return self.links[entity_name]

    def person(self, value: Any) -> int:
        """A user cell: a login, an e-mail or the name screens and exports show (尹嘉; "first last"
        for Latin names). A login or e-mail names one account; a name shared by two people is
        refused with both logins, so the sheet can say which one it means."""
        text = unneutralise(_text(value)).strip()
        if "user" not in self.cache:
            self.cache["user"] = self._people()
        found = self.cache["user"].get(text.casefold(), ())
        if len(found) == 1:
            return found[0][0]
        if found:
            logins = "、".join(sorted(login for _pk, login in found))
            raise ValueError(msg("'%(value)s' 对应多个用户 (%(logins)s),请填写登录名", value=text, logins=logins))
        raise ValueError(msg("找不到用户 '%(value)s',请填写登录名、邮箱或姓名", value=text))

    def owners(self, entity: Entity) -> set[int]:
        """Whom the records may be given to, as on screen (:func:`ownership.candidates`): the
        active users of an own-scope role, or every active user."""
        with Session(bind=self.conn) as session:  # in the import's transaction
            return {u.id for u in candidates(session, self.spec, entity, self.user, self.admin_role)}

    def _people(self) -> dict[str, tuple[tuple[int, str], ...]]:
        users = self.tables["ab_user"]
        unique: dict[str, tuple[int, str]] = {}  # logins and e-mails: one account each
        named: dict[str, set[tuple[int, str]]] = {}
        for pk, login, email, first, last in self.conn.execute(
                sa.select(users.c.id, users.c.username, users.c.email, users.c.first_name, users.c.last_name)):
            for key in (login, email):
                if key:
                    unique.setdefault(key.strip().casefold(), (pk, login))
            given, family = (first or "").strip(), (last or "").strip("- ").strip()
            for key in {person_name(login, first, last), f"{family}{given}", f"{given} {family}".strip()}:
                if key:
                    named.setdefault(key.casefold(), set()).add((pk, login))
        out = {key: tuple(sorted(who)) for key, who in named.items()}
        out.update({key: (who,) for key, who in unique.items()})  # a login beats a namesake's name
        return out


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class _ModelColumns:
    """Lets scope_clause read ``<owner>_id`` from a Core table like from an ORM model."""

    def __init__(self, table: sa.Table):
        self.table = table

    def __getattr__(self, name: str) -> Any:
        return self.table.c[name]


class _RowChecker:
    """Phase 1: every row converted, resolved, checked and graded like a save, without writing."""

    def __init__(self, conn: sa.Connection, spec: Spec, entity: Entity, table: sa.Table, tables: dict[str, sa.Table],
                 plan: ColumnPlan, key: str | None, user: Any, admin_role: str, now: dt.datetime):
        self.conn, self.spec, self.entity, self.table, self.now = conn, spec, entity, table, now
        self.tables = tables
        self.user_id = getattr(user, "id", None)
        self.default_owner = default_owner(spec, entity, user) if entity.owner_field else None
        self.resolver = resolver = _Resolver(conn, spec, tables, user, admin_role)
        self.columns = [(i, f, f.column, resolver.converter(f)) for i, f in sorted(plan.columns.items())]
        self.owners = resolver.owners(entity) if entity.owner_field else set()
        self.position = {f.name: i for i, f in plan.columns.items()}
        self.key_field = entity.field(key) if key else None
        # a key the system sets (the number) only finds records; blank means a new one
        self.system_key = self.key_field is not None and self.key_field.name in system_fields(spec, entity, user, admin_role)
        self.rules = rules_for(spec, entity)
        self.graded = graded_fields(spec, entity)
        self.existing: dict[Any, int] = {}
        self.out_of_scope: set[Any] = set()
        clause = scope_clause(spec, entity, _ModelColumns(table), user, admin_role) if user is not None else None
        if self.key_field is not None:
            q = sa.select(table.c[self.key_field.column], table.c.id)
            self.existing = {key: pk for key, pk in conn.execute(q if clause is None else q.where(clause))}
            if self.key_field.unique and clause is not None:  # keys of records this user may not change
                outside = sa.select(table.c[self.key_field.column]).where(sa.not_(clause))
                self.out_of_scope = {v for (v,) in conn.execute(outside)}
        self.unique = [f for f in entity.fields if f.unique and f != self.key_field and f.name in self.position]
        # the records this user may see (None: all): a value another one holds is refused without saying it exists
        self.in_scope: set[int] | None = None
        if self.unique and clause is not None:
            self.in_scope = {pk for (pk,) in conn.execute(sa.select(table.c.id).where(clause))}
        self.taken = {f.name: {value: pk for value, pk in conn.execute(sa.select(table.c[f.column], table.c.id).where(table.c[f.column].is_not(None)))}
                      for f in self.unique}
        self.seen_unique: dict[str, dict[Any, int]] = {f.name: {} for f in self.unique}
        self.seen_keys: dict[Any, int] = {}
        self.defaults = [(f.column, f) for f in defaulted_fields(entity)]
        self.field_columns = [(f.name, f.column) for f in entity.fields]
        self.column_of = dict(self.field_columns)
        # Conditions are pure functions of the values they name (``now`` is fixed for the run), so
        # rows with the same values share one evaluation: grades and rule messages are memoised on them.
        self.grade_names = [tuple(dict.fromkeys(g.names())) for g in self.graded]
        self.rule_names = tuple(dict.fromkeys(n for expr, _m, _t in self.rules.validations for n in expr.names))
        self.changed_names = tuple(dict.fromkeys(n for expr, _m, _t in self.rules.validations for n in expr.changed_names))
        self.memo: dict[Any, Any] = {}

    def run(self, sheet: Sheet, spool: IO[bytes], report: ImportReport, progress: Progress | None, more: IO[bytes]) -> int:
        """Check every row of ``sheet``; spool the good ones in batches; return the number of batches.
        Bad rows go to ``report.errors`` until it holds KEPT_ERRORS cells, then to ``more``: a file
        of 150,000 rows with every cell wrong holds 2 million messages (500 MB)."""
        batch: list[tuple[Any, ...]] = []
        batches = kept = 0
        flagged_rows = {r for r, _c in sheet.cell_problems}
        for number, values in sheet.rows:
            if number not in flagged_rows and all(v is None or v == "" or (isinstance(v, str) and not v.strip()) for v in values):
                report.blank += 1
                continue
            report.total += 1
            errors, op = self.row(number, values, sheet)
            if errors:
                report.failed += 1
                if kept < KEPT_ERRORS:
                    report.errors[number] = errors
                    kept += len(errors)
                else:
                    pickle.dump((number, errors), more, protocol=pickle.HIGHEST_PROTOCOL)
            elif op is None:
                report.unchanged += 1
            else:
                batch.append(op)
                if op[0] == "i":
                    report.inserted += 1
                else:
                    report.updated += 1
                if len(batch) >= BATCH:
                    pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)
                    batches += 1
                    batch = []
            if progress is not None and report.total % PROGRESS_ROWS == 0:
                progress("checking", report.total, sheet.total)
        if batch:
            pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)
            batches += 1
        if progress is not None:
            progress("checking", report.total, report.total)
        return batches

    def row(self, number: int, values: list[Any], sheet: Sheet) -> tuple[RowErrors, tuple[Any, ...] | None]:
        errors: RowErrors = []
        record: dict[str, Any] = {}
        width = len(values)
        for i, f, column, conv in self.columns:
            problem = sheet.cell_problems.get((number, i)) if sheet.cell_problems else None
            if problem:
                errors.append((i, f.label, problem))
                continue
            raw = values[i] if i < width else None
            if raw is None or raw == "" or (isinstance(raw, str) and not raw.strip()):
                record[column] = None
                continue
            if sheet.is_csv and isinstance(raw, str) and raw.startswith("="):
                errors.append((i, f.label, msg("CSV 里的公式不会被计算,请填写数值")))
                continue
            try:
                record[column] = conv(raw)
            except ValueError as exc:
                errors.append((i, f.label, str(exc)))
        target = None
        kf = self.key_field
        if kf is not None:
            key_value = record.get(kf.column)
            if key_value is None and not self.system_key:
                errors.append((self.position.get(kf.name), kf.label, msg("键值为空")))
            elif key_value is not None and key_value in self.seen_keys:
                errors.append((self.position.get(kf.name), kf.label,
                               msg("与第 %(row)s 行重复", context="key", row=self.seen_keys[key_value])))
            elif key_value is not None:
                self.seen_keys[key_value] = number
                target = self.existing.get(key_value)
                # another's record answers as a missing one would: a number unknown, or a new key
                # that cannot be used (as a unique value taken by a record out of sight)
                if target is None and self.system_key:
                    errors.append((self.position.get(kf.name), kf.label, msg("'%(value)s' 不存在;由系统编号的新记录请留空", value=key_value)))
                elif target is None and key_value in self.out_of_scope:
                    errors.append((self.position.get(kf.name), kf.label, uniques.taken(key_value, visible=False)))
            if self.system_key:
                record.pop(kf.column, None)  # identifies the record; never written
        for f in self.unique:
            v = record.get(f.column)
            if v is None:
                continue
            if v in self.seen_unique[f.name]:
                first = self.seen_unique[f.name][v]
                errors.append((self.position[f.name], f.label, msg("与第 %(row)s 行重复", context="value", row=first)))
            elif (holder := self.taken[f.name].get(v, target)) != target:
                seen = self.in_scope is None or holder in self.in_scope
                errors.append((self.position[f.name], f.label, uniques.taken(v, seen)))  # the forms' and the API's words
            self.seen_unique[f.name].setdefault(v, number)
        if errors:
            return errors, None
        return self.check(record, target)

    def check(self, record: dict[str, Any], target: int | None) -> tuple[RowErrors, tuple[Any, ...] | None]:
        """Fill what a save fills (defaults, owner, start state, grades) and check required fields and rules."""
        e = self.entity
        before: dict[str, Any] = {}
        if target is None:
            for column, f in self.defaults:
                if record.get(column) is None:
                    record[column] = default_value(f, self.now)
            columns_of = dict(self.field_columns)

            def put(f: Field, value: Any) -> None:
                record[f.column] = value

            fill_computed_defaults(self.spec, e, lambda path: record.get(columns_of.get(path, path)) if "." not in path else None,
                                   put, self.now)
            if e.owner_field and record.get(f"{e.owner_field}_id") is None:
                record[f"{e.owner_field}_id"] = self.default_owner
            for state, initial in self.rules.state_fields.items():
                record[state] = initial  # a new record starts where its workflow starts
            full = record
        else:
            before = dict(self.conn.execute(sa.select(self.table).where(self.table.c.id == target)).mappings().one())
            for column, value in record.items():  # the same value back (an export's \n, its rounded times): kept as stored
                if column in before and value is not before[column] and same_value(value, before[column]):
                    record[column] = before[column]
            full = {**before, **record}
        errors: RowErrors = []
        for n in self.rules.narrowed.values():  # a contact given with no customer: its customer, as a save fills it
            link, other = e.field(n.link), e.field(n.other)
            if link is not None and other is not None and full.get(other.column) is None and full.get(link.column) is not None:
                row = self._linked_row(link.link, full[link.column])
                if row is not None and row.get(n.column) is not None:
                    record[other.column] = full[other.column] = row[n.column]
                    if self.resolver.user is not None and row[n.column] not in self.resolver.visible_ids(other.link):  # type: ignore[arg-type]
                        # as if the sheet had named it: only a record this user may see
                        errors.append((self.position.get(other.name) or self.position.get(link.name), other.label,
                                       msg("由%(link)s带出的记录您无权查看", link=link.label, field_name=other.name, link_name=link.name)))
        values = {name: full.get(column) for name, column in self.field_columns}
        lookup = self._through_links(record_lookup(values), values)
        for f in e.fields:
            if f.required and values.get(f.name) is None and not (f.name == "code" and e.numbering):
                errors.append((self.position.get(f.name), f.label, msg("必填")))
        owner = f"{e.owner_field}_id" if e.owner_field in self.position else None
        if owner and record.get(owner) is not None and record[owner] != before.get(owner) and record[owner] not in self.owners:
            # a new owner is one of those the record page offers (the one it has may stay)
            errors.append((self.position.get(e.owner_field), e.field(e.owner_field).label,  # type: ignore[union-attr]
                           msg("不能做负责人:须是可分配的在职用户")))
        grades = []
        for g, names in zip(self.graded, self.grade_names, strict=True):
            rule, new, why = self._grade(g, names, lookup)
            record[g.field] = values[g.field] = new
            if g.reason_field:
                record[g.reason_field] = why
            if rule is not None and new != before.get(g.field):
                grades.append((g.field, before.get(g.field), new, rule.ref, why))
        columns = self.column_of
        changes = None if target is None else (lambda name: name in columns and before.get(columns[name]) != full.get(columns[name]))
        for name, messages in self._messages(lookup, changes).items():
            named = e.field(name)
            errors += [(self.position.get(name), named.label if named else name, m) for m in messages]
        if errors:
            return errors, None
        if target is None:
            return [], ("i", record, grades)
        changed = {k: v for k, v in record.items() if before.get(k) != v}
        # a grade that stays the same is not a change, however its reason is worded now (the
        # set-based regrade words it without the values looked at)
        reworded = {g.reason_field for g in self.graded if g.reason_field and g.field not in changed}
        if not set(changed) - reworded:
            return [], None
        return [], ("u", target, changed, {k: before.get(k) for k in changed}, before.get("version") or 1, grades)

    def _through_links(self, plain: Callable[[str], Any], values: dict[str, Any]) -> Callable[[str], Any]:
        """A row's values for a rule, paths through links included (``book.pages``): a link cell
        holds the linked record's id, so a path through it reads that record (once per id). It
        read as blank, and a rule such as ``not book or book.pages >= 10`` refused every row."""

        def lookup(path: str) -> Any:
            if "." not in path:
                return plain(path)
            parts = path.split(".")
            entity, value = self.entity, values.get(parts[0])
            for i, part in enumerate(parts[:-1]):
                f = entity.field(part)
                if f is None or value is None or f.type not in ("link", "user"):
                    return None
                row = self._linked_row("ab_user" if f.type == "user" else f.link, value)
                if row is None:
                    return None
                last = parts[i + 1]
                if f.type == "user":
                    return row.get(last) if i + 1 == len(parts) - 1 else None
                entity = self.spec.entity(f.link)  # type: ignore[assignment]
                g = entity.field(last) if entity is not None else None
                value = row.get(g.column if g is not None else last)
            return value

        return lookup

    def _linked_row(self, table_name: str, pk: Any) -> dict[str, Any] | None:
        key = ("row", table_name, pk)
        if key not in self.memo:
            table = self.tables[table_name]
            found = self.conn.execute(sa.select(table).where(table.c.id == pk)).mappings().first()
            self._remember(key, dict(found) if found is not None else None)
        return self.memo[key]  # type: ignore[no-any-return]

    def _grade(self, g: Any, names: tuple[str, ...], lookup: Callable[[str], Any]) -> tuple[Any, Any, str | None]:
        key = (g.field, *(lookup(n) for n in names))
        if key not in self.memo:
            hit = grade_lookup(lookup, g, self.now, self.spec.calendar)
            self._remember(key, (hit[0], hit[0].grade, explain(hit[0], hit[1], lookup)) if hit else (None, None, None))
        return self.memo[key]  # type: ignore[no-any-return]

    def _messages(self, lookup: Callable[[str], Any], changed: Callable[[str], bool] | None) -> dict[str, list[str]]:
        key = ("", *(lookup(n) for n in self.rule_names), *(bool(changed and changed(n)) for n in self.changed_names))
        if key not in self.memo:
            self._remember(key, validate_values(self.spec, self.rules, lookup, self.now, changed))
        return self.memo[key]  # type: ignore[no-any-return]

    def _remember(self, key: Any, value: Any) -> None:
        if len(self.memo) > 20_000:  # bounded: a file of all-different values must not grow it forever
            self.memo.clear()
        self.memo[key] = value


def _read_spool(spool: IO[bytes], batches: int) -> Iterator[list[tuple[Any, ...]]]:
    spool.seek(0)
    for _ in range(batches):
        # our own temporary file, written by _RowChecker.run in this process
        yield pickle.load(spool)  # noqa: S301  # nosec B301


# -- phase 2: write ------------------------------------------------------------------------------

def _write_all(conn: sa.Connection, spec: Spec, entity: Entity, table: sa.Table, batches: Iterator[list[tuple[Any, ...]]],
               now: dt.datetime, user_id: int | None, report: ImportReport, progress: Progress | None,
               finish: Callable[[sa.Connection, ImportReport], None] | None) -> None:
    from flask_appbuilder import Model

    todo = report.inserted + report.updated
    done = 0
    written: set[int] = set()
    left: dict[str, set[int]] = {}  # parents the updated rows left (their roll-ups lose them)
    parents = graph(spec).parents.get(entity.name, set())
    if progress is not None:
        progress("writing", 0, todo)  # before the transaction: on SQLite the last word until it commits
    try:
        with conn.begin():
            for batch in batches:
                ids, befores = _write_batch(conn, entity, table, batch, now, user_id)
                written.update(ids)
                for parent, column in parents:
                    left.setdefault(parent, set()).update(b[column] for b in befores if b.get(column) is not None)
                done += len(batch)
                if progress is not None:
                    progress("writing", done, todo)
            if graph(spec).watched(entity.name):  # formulas, lookups and roll-ups the rows feed, set-based
                propagate(conn, spec, dict(Model.metadata.tables), {entity.name: written}, dict(left), now)
            report.committed = True
            if finish is not None:
                finish(conn, report)
    except sa.exc.IntegrityError as exc:
        report.committed = False
        raise ImportFileError([Joined(msg("写入时数据库拒绝(检查之后数据被其他人修改了?):没有导入任何数据,请重新导入"),
                                      f": {str(exc.orig).splitlines()[0]}")]) from None
    except BaseException:
        report.committed = False
        raise


class ChangedMeanwhile(ImportFileError):
    """A record to update was edited by someone else between the check and the write."""


def _write_batch(conn: sa.Connection, entity: Entity, table: sa.Table, batch: list[tuple[Any, ...]], now: dt.datetime,
                 user_id: int | None) -> tuple[list[int], list[dict[str, Any]]]:
    """One batch in a few statements; its audit and grade-history rows are built by the functions
    the ORM's flush builds them with (``audit_row``, ``grade_change_row``), so both say the same.
    Returns the ids written and, of each update, the values its changed columns had."""
    written: list[int] = []
    befores: list[dict[str, Any]] = []
    inserts = [op for op in batch if op[0] == "i"]
    audit_rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    secret = secret_columns(table)
    if inserts:
        records = [op[1] for op in inserts]
        if entity.numbering:
            for r, code in zip(records, numbering.number_new(conn, entity, [r.get("code") for r in records], now), strict=True):
                r["code"] = code
        columns = {c.name for c in table.columns} - {"id"}
        keys = sorted({k for r in records for k in r if k in columns})  # one shape for every row of the batch
        rows = [{**{k: r.get(k) for k in keys}, "created_on": now, "changed_on": now, "created_by_fk": user_id,
                 "changed_by_fk": user_id, "version": 1} for r in records]
        for pk, (_i, r, grades) in zip(_insert(conn, table, rows), inserts, strict=True):
            written.append(pk)
            audit_rows.append(audit_row(entity.name, pk, "create", created_changes(r, secret), 1, user_id, WHERE, now))
            history += _grade_changes(entity, pk, grades, now)
    for op in batch:
        if op[0] != "u":
            continue
        _u, pk, changed, before, version, grades = op
        written.append(pk)
        befores.append(before)
        done = conn.execute(sa.update(table).where(table.c.id == pk, table.c.version == version)
                            .values({**changed, "changed_on": now, "changed_by_fk": user_id, "version": version + 1}))
        if done.rowcount != 1:
            raise ChangedMeanwhile([msg("记录 #%(id)s 在导入期间被其他人修改:没有导入任何数据,请重新导入", id=pk)])
        audit_rows.append(audit_row(entity.name, pk, "update", trail_changes({k: (before.get(k), v) for k, v in changed.items()}, secret),
                                    version + 1, user_id, WHERE, now))
        history += _grade_changes(entity, pk, grades, now)
    if audit_rows:
        conn.execute(AuditRow.__table__.insert(), audit_rows)
    if history:
        conn.execute(GradeChange.__table__.insert(), history)
    return written, befores


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows``; their ids in order.

    SQLite cannot return the ids of a multi-row INSERT in a guaranteed order (SQLAlchemy then sends
    one statement per row). But SQLite has one writer: once the first row is in, this transaction
    holds the write lock, and SQLite gave that row the next free id (above every id ever used, for
    AUTOINCREMENT tables too) — so the rest take the ids that follow, in one executemany."""
    if conn.dialect.name != "sqlite":
        return list(conn.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars())
    first = conn.execute(sa.insert(table).returning(table.c.id), rows[0]).scalar_one()
    ids = list(range(first, first + len(rows)))
    if len(rows) > 1:
        conn.execute(sa.insert(table), [{**r, "id": pk} for r, pk in zip(rows[1:], ids[1:], strict=True)])
    return ids


def _grade_changes(entity: Entity, pk: int, grades: list[tuple[str, Any, Any, str, str | None]], now: dt.datetime) -> list[dict[str, Any]]:
    """The grade-history rows of one record: (field, old, new, rule's reference, explanation) per change."""
    return [grade_change_row(entity.name, pk, fname, old, new, rule, why, now) for fname, old, new, rule, why in grades]


# -- the error report ----------------------------------------------------------------------------

def write_error_report(source: Path, errors: dict[int, RowErrors], target: Path | None = None, limits: Limits | None = None,
                       more: IO[bytes] | None = None, header_row: int = 1) -> Path:
    """The original rows with an error column; the bad cells filled red, the first COMMENTED of them
    with the message as a comment (openpyxl holds every comment until it saves). ``more``: the
    problems of the rows after ``errors``, pickled in row order (see _RowChecker.run)."""
    target = target or source.with_name(source.stem + "-错误报告.xlsx")
    sheet = open_sheet(source, limits, header=header_row)
    headers = sheet.headers
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("导入错误")
    ws.append([*headers, str(msg("错误"))])
    later = _pickled(more)
    waiting = next(later, None)
    commented = 0
    for number, values in sheet.rows:
        problems = errors.get(number)
        if problems is None and waiting is not None and waiting[0] == number:
            problems, waiting = waiting[1], next(later, None)
        if not problems:
            continue
        by_column: dict[int, list[str]] = {}
        for column, _label, message in problems:
            if column is not None:
                by_column.setdefault(column, []).append(message)
        cells: list[Any] = []
        for i in range(len(headers)):
            value = values[i] if i < len(values) else None
            c = WriteOnlyCell(ws, value=None if value == "" else value)
            if i in by_column:
                c.fill = BAD
                if commented < COMMENTED:
                    c.comment = Comment("; ".join(by_column[i]), "crm")
                    commented += 1
            cells.append(c)
        cells.append(f"第 {number} 行: " + "; ".join(f"{label}: {m}" for _c, label, m in problems))
        ws.append(cells)
    wb.save(target)
    return target


def _pickled(more: IO[bytes] | None) -> Iterator[tuple[int, RowErrors]]:
    if more is None:
        return
    more.seek(0)
    while True:
        try:
            yield pickle.load(more)  # noqa: S301  # nosec B301 - our own temporary file, written by _RowChecker.run
        except EOFError:
            return
