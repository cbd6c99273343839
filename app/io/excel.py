"""Excel out: a list (its filters, sort, row scope; hidden fields left out) as an .xlsx with Chinese
headers, typed cells and widths, spreadsheet formulas neutralised; and the import template of an
entity (required columns marked, help as comments, dropdowns for choices and yes/no)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from app.spec.model import Entity, Field, Spec

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
REQUIRED_FONT = Font(bold=True, color="C00000")
WIDTHS = {"text": 40, "date": 12, "datetime": 17, "money": 14, "decimal": 12, "integer": 10, "boolean": 8, "choice": 12}


def _reads_as_formula(value: str) -> bool:
    """Whether a text, its leading quotes taken off, starts as a formula would."""
    rest = value.lstrip("'")
    return rest[:1] != "" and rest.startswith(FORMULA_START)


def sheet_title(text: str, fallback: str = "Sheet") -> str:
    """A worksheet name Excel accepts: without \\ / * ? : [ ], not starting or ending with a quote,
    31 characters at most (an entity labelled 患者/家属 made every download a 500)."""
    title = re.sub(r"[\\/*?:\[\]]", "-", text or "").strip().strip("'")[:31].strip("'")
    return title or fallback


def neutralise(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula is kept as text (leading quote); a
    text that already starts with quotes before such a character gets one more, so that
    ``unneutralise`` gives every text back as it was (``'=abc`` included)."""
    if isinstance(value, str) and _reads_as_formula(value):
        return "'" + value
    return value


def unneutralise(value: Any) -> Any:
    """The text an export neutralised (``'=…``), as it was: so an exported list imports back unchanged."""
    if isinstance(value, str) and value[:1] == "'" and _reads_as_formula(value):
        return value[1:]
    return value


def label(f: Field, lang: str = "zh") -> str:
    return f.label_en if lang == "en" and f.label_en else f.label


def cell_value(spec: Spec, f: Field, value: Any) -> Any:
    if value is None:
        return None
    if f.type == "choice":
        options = {c.value: c.label for c in spec.choices.get(f.choices, ())}
        return options.get(value, value)
    if f.type == "boolean":
        return "是" if value else "否"
    if f.type in ("link", "user"):
        return neutralise(str(value))
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | int | float):
        return value
    return neutralise(str(value))


def export_rows(spec: Spec, entity: Entity, fields: list[Field], records: Iterable[Any], path: Path | Any,
                reworded: dict[str, Callable[[Any], Any]] | None = None) -> int:
    """Write ``records`` (ORM objects) to an .xlsx at ``path`` (a path or a binary file);
    ``reworded``: field → how its stored value reads for this reader (a grade's reason)."""
    reworded = reworded or {}
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet_title(entity.label, entity.name))
    for i, f in enumerate(fields, start=1):
        ws.column_dimensions[get_column_letter(i)].width = WIDTHS.get(f.type, 18)
    ws.freeze_panes = "A2"
    ws.append([label(f) for f in fields])
    n = 0
    for obj in records:
        row = []
        for f in fields:
            value = getattr(obj, f.name, None)
            if f.name in reworded:
                value = reworded[f.name](value)
            row.append(cell_value(spec, f, value))
        ws.append(row)
        n += 1
    wb.save(path)
    return n


def write_template(spec: Spec, entity: Entity, fields: list[Field], path: Path | Any, required: set[str] | None = None) -> None:
    """An empty import workbook for ``entity``: one header per field, help and dropdowns; the
    ``required`` columns (by default the fields marked required) with ``*``."""
    required = {f.name for f in fields if f.required} if required is None else required
    wb = Workbook()
    ws = wb.active
    ws.title = sheet_title(entity.label, entity.name)
    lists = wb.create_sheet("选项")
    list_col = 1
    for i, f in enumerate(fields, start=1):
        letter = get_column_letter(i)
        cell = ws.cell(row=1, column=i, value=label(f) + (" *" if f.name in required else ""))
        cell.fill = HEADER_FILL
        if f.name in required:
            cell.font = REQUIRED_FONT
        note = [f"字段 {f.name},类型 {f.type}" + (",必填" if f.name in required else "")]
        if f.help:
            note.append(f.help)
        if f.type == "link":
            note.append(f"填写关联{f.link}的名称或编号")
        if f.type in ("date", "datetime"):
            note.append("日期如 2026-11-22 或 2026/11/22 或 2026年11月22日")
        cell.comment = Comment("\n".join(note), "crm")
        ws.column_dimensions[letter].width = max(WIDTHS.get(f.type, 18), len(cell.value) * 2 + 2)
        options: list[str] = []
        if f.type == "choice":
            options = [c.label for c in spec.choices.get(f.choices, ())]
        elif f.type == "boolean":
            options = ["是", "否"]
        if options:
            col = get_column_letter(list_col)
            for r, text in enumerate(options, start=1):
                lists.cell(row=r, column=list_col, value=text)
            dv = DataValidation(type="list", formula1=f"='选项'!${col}$1:${col}${len(options)}", allow_blank=not f.required)
            dv.error = f"请从下拉列表选择 {label(f)}"
            ws.add_data_validation(dv)
            dv.add(f"{letter}2:{letter}10000")
            list_col += 1
    ws.freeze_panes = "A2"
    lists.sheet_state = "hidden"
    wb.save(path)
