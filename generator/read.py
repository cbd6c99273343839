"""Read a configuration workbook into plain rows whose every value remembers its `Sheet!Cell`.

This is one of the two stages that touch the disk. It knows nothing about what the sheets mean:
it turns an `.xlsx` file into :class:`Workbook` (sheets of header-keyed rows) and reports what it
cannot read (not a spreadsheet, password-protected, merged cells, formulas without a cached value)
as :class:`~generator.problems.Problem` values instead of raising.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from .problems import Problem, msg

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MERGE_RE = re.compile(rb'<mergeCell\s+ref="([A-Z]+[0-9]+(?::[A-Z]+[0-9]+)?)"')


@dataclass(frozen=True)
class Cell:
    """One value read from a sheet, with the place it came from (e.g. ``fields!E14``)."""

    value: Any
    ref: str

    @property
    def text(self) -> str:
        """The value as trimmed text ('' for blank); whole floats lose their '.0'."""
        v = self.value
        if v is None:
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, dt.datetime) and v.time() == dt.time(0):
            return v.date().isoformat()
        if isinstance(v, dt.date | dt.datetime):
            return v.isoformat()
        return str(v).strip()

    @property
    def blank(self) -> bool:
        return self.text == ""


@dataclass(frozen=True)
class Row:
    """A data row: column key → Cell. ``ref`` is the row's first cell, for row-level messages."""

    sheet: str
    number: int
    cells: dict[str, Cell]

    def get(self, key: str) -> Cell:
        return self.cells.get(key) or Cell(None, f"{self.sheet}!A{self.number}")

    def text(self, key: str) -> str:
        return self.get(key).text

    @property
    def ref(self) -> str:
        return f"{self.sheet}!A{self.number}"


@dataclass(frozen=True)
class Sheet:
    name: str  # the name as written in the workbook (may be a Chinese alias)
    headers: dict[str, str]  # header text as written → column letter
    rows: list[Row]


@dataclass
class Workbook:
    path: str
    sheets: dict[str, Sheet] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return Path(self.path).name


def read_workbook(path: str | Path) -> Workbook:
    """Read every sheet of ``path``. Unreadable input becomes problems, never an exception."""
    path = Path(path)
    book = Workbook(str(path))
    if not path.exists():
        book.problems.append(Problem(path.name, msg("file_missing", path=str(path))))
        return book
    if path.is_dir():
        book.problems.append(Problem(path.name, msg("file_is_folder", path=str(path))))
        return book
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:  # no permission, a broken mount …
        book.problems.append(Problem(path.name, msg("file_unreadable", error=type(exc).__name__)))
        return book
    if not head:
        book.problems.append(Problem(path.name, msg("file_empty")))
        return book
    if head.startswith(OLE_MAGIC):
        book.problems.append(Problem(path.name, msg("file_protected")))
        return book
    if not zipfile.is_zipfile(path):
        book.problems.append(Problem(path.name, msg("file_not_xlsx")))
        return book
    try:
        wb = load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for damaged files
        book.problems.append(Problem(path.name, msg("file_unreadable", error=type(exc).__name__)))
        return book
    cached: Any = None  # a data_only copy, loaded only if a formula is met
    try:
        merges = _merged_ranges(path, wb)
        for ws in wb.worksheets:
            rows_iter = ws.iter_rows()
            header_cells = next(rows_iter, ())
            headers: dict[str, str] = {}
            columns: list[tuple[str, str] | None] = []  # per position: (header, letter)
            for i, c in enumerate(header_cells):
                text = "" if c.value is None else str(c.value).strip()
                letter = get_column_letter(i + 1)
                if text in headers:  # the same header twice: which column counts? the office says
                    book.problems.append(Problem(f"{ws.title}!{letter}1", msg("column_duplicate", column=text)))
                    text = ""
                columns.append((text, letter) if text else None)
                if text:
                    headers[text] = letter
            rows: list[Row] = []
            for number, r in enumerate(rows_iter, start=2):
                cells: dict[str, Cell] = {}
                for i, c in enumerate(r):
                    if i >= len(columns) or columns[i] is None:
                        continue
                    header, letter = columns[i]  # type: ignore[misc]
                    ref = f"{ws.title}!{letter}{number}"
                    value = c.value
                    if c.data_type == "f" or (isinstance(value, str) and value.startswith("=")):
                        if cached is None:
                            cached = load_workbook(path, read_only=True, data_only=True)
                        value = cached[ws.title][f"{letter}{number}"].value
                        if value is None:
                            book.problems.append(Problem(ref, msg("formula_no_value")))
                    if isinstance(value, str):
                        value = value.strip() or None
                    cells[header] = Cell(value, ref)
                if any(not cell.blank for cell in cells.values()):
                    rows.append(Row(ws.title, number, cells))
            for rng in merges.get(ws.title, []):
                book.problems.append(Problem(f"{ws.title}!{rng.split(':')[0]}", msg("merged_cells", range=rng)))
            book.sheets[ws.title] = Sheet(ws.title, headers, rows)
    finally:
        wb.close()
        if cached is not None:
            cached.close()
    return book


def _merged_ranges(path: Path, wb: Any) -> dict[str, list[str]]:
    """Merged ranges per sheet, read from the sheet XML (read-only mode does not expose them)."""
    result: dict[str, list[str]] = {}
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        for ws in wb.worksheets:
            member = getattr(ws, "_worksheet_path", "").lstrip("/")
            if member not in names:
                continue
            with z.open(member) as f:
                data = f.read()
            if b"<mergeCell" in data:
                result[ws.title] = [m.decode() for m in _MERGE_RE.findall(data)]
    return result
