"""Schema evolution, the kernel's part: the steps between two Specs as plain data, and the
fingerprint of the shape they compare. What a step checks, how it describes itself and how it is
applied is :mod:`app.migrate`'s business; the revision file that declares them is the generator's
(:mod:`generator.migration`). Renames come from ``previous_name``; a removed field or entity keeps
its column or table (retired, not dropped).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from .columns import Col, column_of
from .model import Entity, Spec


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
