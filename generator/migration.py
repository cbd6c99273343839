"""Schema evolution, generator side: the steps between the previously generated Spec and the new
one, and the Alembic revision file that declares them.

Steps are plain data; what they check, how they describe themselves and how they are applied is
the runtime's business (``app.runtime.migrate``). Renames come from ``previous_name`` (Alembic
cannot detect them); a removed field or entity keeps its column or table (retired, not dropped).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace

from .schema import Col, column_of
from .spec import Entity, Spec


@dataclass(frozen=True)
class CreateTable:
    table: str
    label: str
    columns: tuple[Col, ...]


@dataclass(frozen=True)
class RenameTable:
    old: str
    new: str
    label: str


@dataclass(frozen=True)
class RetireTable:
    table: str
    label: str


@dataclass(frozen=True)
class AddColumn:
    table: str
    col: Col
    label: str


@dataclass(frozen=True)
class RenameColumn:
    table: str
    old: str
    new: str
    label: str
    old_field: str = ""  # the field's names (a link's column is <field>_id): history keyed by them follows
    new_field: str = ""


@dataclass(frozen=True)
class AlterColumn:
    table: str
    old: Col
    new: Col
    label: str
    allowed: tuple[str, ...] = ()  # the values a choice column may hold afterwards


@dataclass(frozen=True)
class RetireColumn:
    table: str
    col: Col
    label: str


@dataclass(frozen=True)
class MapValues:
    table: str
    column: str
    mapping: tuple[tuple[str, str], ...]  # (old value, new value)
    label: str


@dataclass(frozen=True)
class RequireValues:
    """Choice values were removed from a list: rows that still hold them stop the upgrade."""

    table: str
    column: str
    removed: tuple[str, ...]
    label: str


Step = CreateTable | RenameTable | RetireTable | AddColumn | RenameColumn | AlterColumn | RetireColumn | MapValues | RequireValues
STEP_TYPES = (CreateTable, RenameTable, RetireTable, AddColumn, RenameColumn, AlterColumn, RetireColumn, MapValues, RequireValues)


def _label(e: Entity, field_label: str = "") -> str:
    return f"{e.label}.{field_label}" if field_label else e.label


def diff_specs(old: Spec | None, new: Spec) -> list[Step]:
    """Steps that take a database shaped by ``old`` to the shape of ``new`` (all of it if old is None)."""
    if old is None:
        return [CreateTable(e.name, e.label, tuple(column_of(e, f) for f in e.fields)) for e in new.entities]
    renames: list[Step] = []
    creates: list[Step] = []
    columns: list[Step] = []
    retires: list[Step] = []
    matched: set[str] = set()
    for e in new.entities:
        before = old.entity(e.name)
        previous = old.entity(e.previous_name) if e.previous_name else None
        if before is None and previous is not None:
            renames.append(RenameTable(previous.name, e.name, e.label))
            before = previous
        if before is None:
            creates.append(CreateTable(e.name, e.label, tuple(column_of(e, f) for f in e.fields)))
            continue
        matched.add(before.name)
        columns.extend(_diff_fields(old, before, new, e))
    for e in old.entities:
        if e.name not in matched:
            retires.append(RetireTable(e.name, e.label))
    return renames + creates + columns + retires


def _diff_fields(old_spec: Spec, before: Entity, new_spec: Spec, e: Entity) -> list[Step]:
    steps: list[Step] = []
    used: set[str] = set()
    for f in e.fields:
        old_f = before.field(f.name)
        if old_f is None and f.previous_name:
            old_f = before.field(f.previous_name)
            if old_f is not None:
                old_col = column_of(before, old_f)
                new_name = f.column
                if old_col.name != new_name:
                    steps.append(RenameColumn(e.name, old_col.name, new_name, _label(e, f.label), old_f.name, f.name))
        if old_f is None:
            steps.append(AddColumn(e.name, column_of(e, f), _label(e, f.label)))
            continue
        used.add(old_f.name)
        old_col = replace(column_of(before, old_f), name=f.column)
        new_col = column_of(e, f)
        if old_col.type in ("link", "user") and new_col.type not in ("link", "user") or (
            new_col.type in ("link", "user") and old_col.type not in ("link", "user")
        ):
            # the column name itself changes (x ↔ x_id): treat as retire + add
            steps.append(RetireColumn(e.name, column_of(before, old_f), _label(e, old_f.label)))
            steps.append(AddColumn(e.name, new_col, _label(e, f.label)))
            continue
        old_values = [c.value for c in old_spec.choices.get(old_f.choices, ())] if old_f.type == "choice" else []
        new_choices = new_spec.choices.get(f.choices, ()) if f.type == "choice" else ()
        new_values = [c.value for c in new_choices]
        if f.type == "choice" and old_f.type == "choice":
            mapping = tuple((c.previous_value, c.value) for c in new_choices
                            if c.previous_value and c.previous_value in old_values and c.previous_value not in new_values)
            if mapping:
                steps.append(MapValues(e.name, new_col.name, mapping, _label(e, f.label)))
            mapped = {m[0] for m in mapping}
            removed = tuple(v for v in old_values if v not in new_values and v not in mapped)
            if removed:
                steps.append(RequireValues(e.name, new_col.name, removed, _label(e, f.label)))
        if _schema_key(old_col) != _schema_key(new_col):
            steps.append(AlterColumn(e.name, old_col, new_col, _label(e, f.label), tuple(new_values)))
    for old_f in before.fields:
        if old_f.name not in used:
            steps.append(RetireColumn(e.name, column_of(before, old_f), _label(before, old_f.label)))
    return steps


def _schema_key(c: Col) -> tuple[object, ...]:
    """What a migration must act on (a python-side default is not in the database)."""
    return (c.type, c.length, c.nullable, c.unique, c.index, c.fk, c.encrypted)


def schema_changed(old: Spec | None, new: Spec) -> bool:
    return bool(diff_specs(old, new))


def schema_digest(spec: Spec | None) -> str:
    """A short fingerprint of what :func:`diff_specs` compares: table names, columns as the schema
    has them, the values of choice columns. Two specs with one digest need no migration between
    them; a revision names the digests it starts from and leads to, so a chain of revisions can
    be checked against the database it is about to run on."""
    if spec is None:
        return ""
    shape = [[e.name, [[*_schema_key(column_of(e, f)), f.column] for f in e.fields],
              {f.column: [c.value for c in spec.choices.get(f.choices, ())] for f in e.fields if f.type == "choice"}]
             for e in sorted(spec.entities, key=lambda e: e.name)]
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RevisionFile:
    """A revision already in ``versions/``, as its header says (read without running it)."""

    name: str  # versions/NNNN_slug.py
    revision: str
    down: str | None
    base: str = ""  # the schema digest it starts from ('' in revisions of earlier releases)
    schema: str = ""  # the schema digest it leads to


@dataclass(frozen=True)
class Base:
    """Where a database stands: the revision it was last upgraded to and the spec it then had."""

    revision: str | None
    spec: Spec | None


@dataclass
class Chain:
    """What the ``versions/`` folder becomes: the revisions kept, those dropped (generated for a
    database that never applied them), the new revision's steps, number and predecessor, and the
    revision a database is at once it has run the chain (``head``)."""

    keep: list[RevisionFile]
    drop: list[RevisionFile]
    steps: list[Step]
    number: str | None
    down: str | None
    head: str | None


def _number(revision: str | None) -> int:
    return int(revision) if revision else 0


def leads_to(tail: list[RevisionFile], start: str | None, base: str, target: str) -> bool:
    """Whether ``tail`` runs unbroken from revision ``start`` (schema digest ``base``) to ``target``."""
    at, shape = start, base
    for r in tail:
        if r.down != at or not r.base or r.base != shape:
            return False
        at, shape = r.revision, r.schema
    return shape == target


def next_chain(files: list[RevisionFile], previous: Spec | None, spec: Spec, base: Base | None) -> Chain:
    """The revisions that take a database to ``spec``.

    With ``base`` (a database that recorded what it was upgraded to) the revisions after its
    revision were generated but never applied there: one revision from ``base`` to ``spec``
    replaces them, so an edit undone in the workbook is undone in the plan (the same revision,
    when they already were just that). Revisions up to ``base`` are history and never rewritten.
    Without ``base`` (no database to ask, or a new one) the folder is the history: ``previous``
    (the spec generated last) is its head, and a change is stacked on it.
    """
    if base is None or base.spec is None:
        last = files[-1].revision if files else None
        steps = diff_specs(previous if files else None, spec)
        number = f"{_number(last) + 1:04d}" if steps else None
        return Chain(list(files), [], steps, number, last, number or last)
    applied = [f for f in files if _number(f.revision) <= _number(base.revision)]
    tail = [f for f in files if _number(f.revision) > _number(base.revision)]
    steps = diff_specs(base.spec, spec)
    number = f"{_number(base.revision) + 1:04d}" if steps else None
    return Chain(applied, tail, steps, number, base.revision, number or base.revision)


def slug(steps: list[Step]) -> str:
    if not steps:
        return "no_change"
    first = steps[0]
    kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(first).__name__).lower()
    table = getattr(first, "table", None) or getattr(first, "new", "")
    more = f"_and_{len(steps) - 1}_more" if len(steps) > 1 else ""
    return f"{kind}_{table}{more}"[:60]


def _render_step(step: Step) -> str:
    """One step as Python source: a constructor call of literals (reprs), a column per line."""
    if isinstance(step, CreateTable):
        cols = "".join(f"        {c!r},\n" for c in step.columns)
        return f"    CreateTable(table={step.table!r}, label={step.label!r}, columns=(\n{cols}    )),"
    return f"    {step!r},"


def comment_text(text: str) -> str:
    """``text`` (a workbook's file name) made safe inside a ``#`` comment or a docstring of generated
    source: line breaks, other unprintable characters, quotes and backslashes become ``_``, so a file
    name can neither end the comment nor close the docstring."""
    return "".join(ch if ch.isprintable() and ch not in "\"'\\" else "_" for ch in text)


def render_revision(revision: str, down_revision: str | None, steps: list[Step], workbook: str, base: str = "", schema: str = "") -> str:
    """An Alembic revision declaring ``steps`` (every value rendered with repr), naming the schema
    digests it starts from (``base``) and leads to (``schema``)."""
    lines = [
        f"# generated from {comment_text(workbook)} — do not edit; run `crm generate` instead.",
        f'"""Schema change {revision}: {len(steps)} step(s)."""',
        "",
        "from app.runtime.migrate import run_steps",
        "from generator.migration import (  # noqa: F401",
        "    AddColumn, AlterColumn, CreateTable, MapValues, RenameColumn, RenameTable, RequireValues, RetireColumn,",
        "    RetireTable,",
        ")",
        "from generator.schema import Col  # noqa: F401",
        "",
        f"revision = {revision!r}",
        f"down_revision = {down_revision!r}",
        "branch_labels = None",
        "depends_on = None",
        f"BASE_SCHEMA = {base!r}  # the schema it starts from (generator.migration.schema_digest)",
        f"SCHEMA = {schema!r}  # the schema it leads to",
        "",
        "STEPS = [",
    ]
    lines += [_render_step(step) for step in steps]
    lines += [
        "]",
        "",
        "",
        "def upgrade() -> None:",
        "    run_steps(STEPS)",
        "",
        "",
        "def downgrade() -> None:",
        "    raise RuntimeError('a downgrade is a restore: crm upgrade keeps a backup (SQLite) or runs in one transaction')",
        "",
    ]
    return "\n".join(lines)


REVISION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]*\.py$")
