"""The database shape of a Spec: one :class:`Col` per field, shared by the generated models and
the generated migrations, so the two can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .spec import Entity, Field, Spec

SA_TYPES = {
    "text": "Text",
    "integer": "Integer",
    "decimal": "Numeric(18, 4)",
    "money": "Numeric(18, 2)",
    "boolean": "Boolean",
    "date": "Date",
    "datetime": "DateTime",
    "choice": "String(64)",
    "email": "String(254)",
    "phone": "String(40)",
    "file": "String(255)",
    "link": "Integer",
    "user": "Integer",
}


@dataclass(frozen=True)
class Col:
    """A column as the generator means it (plain data; rendered into models and migrations)."""

    name: str
    type: str  # a field type of the workbook
    length: int | None = None  # strings only
    nullable: bool = True
    unique: bool = False
    index: bool = False
    fk: str = ""  # "table.id"
    default: Any = None
    encrypted: bool = False

    @property
    def sa_type(self) -> str:
        if self.encrypted:
            return "EncryptedText"
        if self.type == "string":
            return f"String({self.length or 255})"
        return SA_TYPES[self.type]


def column_of(e: Entity, f: Field) -> Col:
    unique = f.unique or (bool(e.numbering) and f.name == "code")
    index = not unique and (f.is_relation or f.filter or f.search or f.name in (e.owner_field, e.title_field))
    length = None
    if f.type == "string":
        length = int(f.max) if f.max is not None and f.max >= 1 else 255
    fk = f"{f.link}.id" if f.type == "link" else "ab_user.id" if f.type == "user" else ""
    return Col(f.column, f.type, length, not f.required, unique, index, fk, f.default, f.encrypted)


def columns_of(e: Entity) -> list[Col]:
    return [column_of(e, f) for f in e.fields]


def schema_of(spec: Spec) -> dict[str, list[Col]]:
    """table → columns (without id and the audit columns every table has)."""
    return {e.name: columns_of(e) for e in spec.entities}
