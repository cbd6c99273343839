"""What every sheet's check shares: the problems found so far, the cell reader, the rows of a sheet
(none when it cannot be checked), the choice lists, and lookups of an entity, a field, roles and
a field path that report what they cannot find."""

from __future__ import annotations

from typing import Any

from app.spec.model import Choice, Entity, Field, split_names

from ..problems import Problems, did_you_mean, msg
from ..read import Cell
from .headers import SheetRows, cell_at, unreadable
from .reader import Reader


def entity_ctx(entity: str, field: str = "") -> str:
    return f"entity {entity}, field {field}" if field else f"entity {entity}"


class Context:
    """One workbook being checked; each sheet's check is a function of it."""

    def __init__(self, filename: str, sheets: SheetRows, p: Problems):
        self.filename = filename
        self.sheets = sheets.rows
        self.p = p
        self.r = Reader(p)
        self.skipped = unreadable(sheets, p)
        self.choice_lists: dict[str, tuple[Choice, ...]] = {}  # the choices sheet's, once it is read
        self.formula_cells: dict[tuple[str, str], Cell] = {}  # (entity, field) → its formula's or computed default's cell

    def rows(self, sheet: str) -> list[tuple[dict[str, Cell], Any]]:
        if sheet in self.skipped:
            return []
        return [(row, lambda k, row=row: cell_at(row, k, sheet)) for row in self.sheets.get(sheet, [])]

    def entity_of(self, cell: Cell, emap: dict[str, Entity]) -> Entity | None:
        name = cell.text
        if not name:
            self.p.add(cell.ref, msg("required", what="实体", what_en="entity"))
            return None
        if name not in emap:
            self.p.add(cell.ref, msg("unknown_entity", value=name), did_you_mean(name, emap))
            return None
        return emap[name]

    def field_of(self, cell: Cell, entity: Entity, required: bool = True) -> Field | None:
        name = cell.text
        if not name:
            if required:
                self.p.add(cell.ref, msg("required", what="字段", what_en="field"), context=entity_ctx(entity.name))
            return None
        f = entity.field(name)
        if f is None:
            self.p.add(
                cell.ref,
                msg("unknown_field", entity=entity.name, value=name),
                did_you_mean(name, [x.name for x in entity.fields]),
                entity_ctx(entity.name),
            )
        return f

    def roles_of(self, cell: Cell, role_names: set[str]) -> tuple[str, ...]:
        roles = split_names(cell.text)
        for r in roles:
            if r not in role_names:
                self.p.add(cell.ref, msg("unknown_role", value=r), did_you_mean(r, role_names))
        return roles


BASE_FIELDS = ("id", "created_on", "changed_on", "created_by", "changed_by")


def resolve_path(entity: Entity, path: str, emap: dict[str, Entity], allow_base: bool = True) -> tuple[str, list[str]] | None:
    """None when ``path`` (``a.b.c``) names a field through links; else (bad part, options)."""
    current: Entity | None = entity
    parts = path.split(".")
    for i, part in enumerate(parts):
        if current is None:
            return part, []
        f = current.field(part)
        if f is None:
            if allow_base and part in BASE_FIELDS and (i == len(parts) - 1 or part in ("created_by", "changed_by")):
                if part in ("created_by", "changed_by"):
                    return None
                continue
            return part, [x.name for x in current.fields] + list(BASE_FIELDS)
        if f.type == "link":
            current = emap.get(f.link)
        elif f.type == "user":
            return None  # a user's attributes (email, first_name …) are the login system's
        elif i < len(parts) - 1:
            return parts[i + 1], []
    return None
