"""The database shape of a Spec: one :class:`Col` per field, shared by the generated models and
the generated migrations, so the two can never disagree; and the indexes that keep big lists fast
(:func:`indexes_of`), derived from how the lists are used."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .model import Entity, Field, Spec

# the one field type -> column type table: the SQLAlchemy type's name and arguments (a string's
# length is its field's max); the generated models write it out, the migrations build it
COLUMN_TYPES: dict[str, tuple[str, tuple[int, ...]]] = {
    "string": ("String", (255,)),
    "text": ("Text", ()),
    "integer": ("Integer", ()),
    "decimal": ("Numeric", (18, 4)),
    "money": ("Numeric", (18, 2)),
    "boolean": ("Boolean", ()),
    "date": ("Date", ()),
    "datetime": ("DateTime", ()),
    "choice": ("String", (64,)),
    "email": ("String", (254,)),
    "phone": ("String", (40,)),
    "file": ("String", (255,)),
    "link": ("Integer", ()),
    "user": ("Integer", ()),
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
    def column_type(self) -> tuple[str, tuple[int, ...]]:
        """The stored type (an encrypted column stores its ciphertext as text: :attr:`sa_type`)."""
        name, args = COLUMN_TYPES[self.type]
        return (name, (self.length,)) if self.type == "string" and self.length else (name, args)

    @property
    def sa_type(self) -> str:
        """The column's type as Python source, for the generated models."""
        if self.encrypted:
            return "EncryptedText"
        name, args = self.column_type
        return f"{name}({', '.join(map(str, args))})" if args else name


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


TEXT_SEARCH = ("string", "text", "email", "phone")  # what a trigram index serves (ILIKE '%…%')


@dataclass(frozen=True)
class Idx:
    """An index a big list needs beyond the per-column ones of :class:`Col` (``index``/``unique``).

    kind: ``btree``, or ``trigram`` (PostgreSQL GIN ``gin_trgm_ops``, for contains-searches,
    Chinese included; where pg_trgm is unavailable — SQLite, a locked-down server — a plain index
    that serves equality and prefix searches, and contains-searches scan)."""

    name: str
    table: str
    columns: tuple[str, ...]
    kind: str = "btree"


def list_order(e: Entity) -> tuple[str, str]:
    """The default order of an entity's lists: newest number first, else newest first."""
    return ("code", "desc") if e.numbering else ("id", "desc")


def index_name(table: str, *parts: str) -> str:
    """``lx_<table>_<parts>`` (lx: a list index, told apart from the per-column ix_ ones), shortened with a hash past PostgreSQL's 63 characters."""
    return fit_name("_".join(("lx", table, *parts)))


def fit_name(name: str) -> str:
    """``name``, shortened with a hash past PostgreSQL's 63 characters (which it would truncate
    silently, so the name found in the catalogue would not be the one given)."""
    if len(name) <= 63:
        return name
    return f"{name[:54]}_{hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]}"  # a name, not a secret


def indexes_of(e: Entity) -> list[Idx]:
    """Indexes for the lists of ``e``, derived from the workbook's flags:

    * every sortable list column: ``(column, id)`` — a sorted page is an index walk, ties by id;
    * the owner with the default order: ``(owner, order column, id)`` — an ``own``-scoped page
      reads just that person's first rows;
    * every searchable text column: a trigram index, so "contains" searches do not scan.
    """
    cols = {f.name: column_of(e, f) for f in e.fields}
    found: dict[str, Idx] = {}
    for f in e.fields:
        c = cols[f.name]
        if f.list and not f.is_relation and not c.unique and not c.encrypted and f.type not in ("text", "file"):
            idx = Idx(index_name(e.name, c.name, "sort"), e.name, (c.name, "id"))
            found[idx.name] = idx
    if e.owner_field and e.owner_field in cols:
        order = list_order(e)[0]
        columns = (cols[e.owner_field].name, "id") if order == "id" else (cols[e.owner_field].name, order, "id")
        idx = Idx(index_name(e.name, "scope"), e.name, columns)
        found[idx.name] = idx
    for f in e.fields:
        c = cols[f.name]
        if f.search and f.type in TEXT_SEARCH and not c.encrypted:
            idx = Idx(index_name(e.name, c.name, "trgm"), e.name, (c.name,), "trigram")
            found[idx.name] = idx
    return list(found.values())
