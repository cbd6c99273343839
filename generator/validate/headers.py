"""Which sheet and column of the format each title and header of a workbook is: a misspelt header is
read as the column it most likely is, a missing one is reported once, and a sheet that refers to a
broken one waits for its fix."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from ..problems import Problems, did_you_mean, hint, msg
from ..read import Cell, Row, Workbook
from ..sheets import SHEETS, sheet_format


@dataclass
class SheetRows:
    """The sheets of a workbook by canonical name, with what their header rows left unreadable."""

    rows: dict[str, list[dict[str, Cell]]] = dataclass_field(default_factory=dict)  # rows keyed by canonical column
    titles: dict[str, str] = dataclass_field(default_factory=dict)  # canonical name → title as written
    broken: set[str] = dataclass_field(default_factory=set)  # a required column or required sheet is missing


def map_sheets(book: Workbook, p: Problems) -> SheetRows:
    """Map sheet titles and headers to the format's names. A misspelt header with a close match is
    reported once and read as the column it most likely is, so its rows are checked for real
    mistakes instead of each repeating the header's; a sheet missing a required column is
    ``broken`` (its rows cannot be read)."""
    result = SheetRows()
    all_names = [s.name for s in SHEETS] + [a for s in SHEETS for a in s.aliases]
    for title, sheet in book.sheets.items():
        fmt = sheet_format(title)
        if fmt is None:
            p.add(f"{title}!A1", msg("sheet_unknown", sheet=title), did_you_mean(title.lower(), all_names), warning=True)
            continue
        if fmt.name in result.rows:
            p.add(f"{title}!A1", msg("duplicate", what="工作表", what_en="sheet", value=fmt.name, first=fmt.name))
            continue
        mapping: dict[str, str] = {}
        unknown: list[tuple[str, str]] = []
        for header, letter in sheet.headers.items():
            col = fmt.column(header)
            if col is None:
                unknown.append((header, letter))
            elif col.name in mapping.values():
                p.add(f"{title}!{letter}1", msg("column_duplicate", column=col.name))
            else:
                mapping[header] = col.name
        for header, letter in unknown:  # after the known ones: a guess never takes a column that is there
            options = [c.name for c in fmt.columns if c.name not in mapping.values()]
            options += [a for c in fmt.columns if c.name not in mapping.values() for a in c.aliases]
            close = difflib.get_close_matches(header.lower(), options, n=1, cutoff=0.6)
            if not close:
                taken = did_you_mean(header.lower(), [c.name for c in fmt.columns] + [a for c in fmt.columns for a in c.aliases])
                p.add(f"{title}!{letter}1", msg("column_unknown", column=header), taken, warning=taken is None)
                continue
            guess = fmt.column(close[0])
            assert guess is not None
            mapping[header] = guess.name
            p.add(f"{title}!{letter}1", msg("column_unknown", column=header), hint("read_as", value=close[0], column=guess.name))
        for col in fmt.columns:
            if col.required and col.name not in mapping.values():
                p.add(f"{title}!A1", msg("column_missing", column=col.name), hint("add_column", column=col.name))
                result.broken.add(fmt.name)
        result.rows[fmt.name] = [_canonical(row, mapping) for row in sheet.rows]
        result.titles[fmt.name] = title
    for fmt in SHEETS:
        if fmt.required and fmt.name not in result.rows:
            p.add(book.filename, msg("sheet_missing", sheet=fmt.name), hint("add_sheet", sheet=fmt.name))
            result.broken.add(fmt.name)
    return result


def _canonical(row: Row, mapping: dict[str, str]) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}
    for header, cell in row.cells.items():
        if header in mapping:
            cells[mapping[header]] = cell
    cells["__row__"] = Cell(row.number, row.ref)
    return cells


def cell_at(row: dict[str, Cell], key: str, sheet: str) -> Cell:
    if key in row:
        return row[key]
    # an absent optional column: point at the row (sheet as written) so messages have a place
    return Cell(None, row["__row__"].ref)


def unreadable(sheets: SheetRows, p: Problems) -> set[str]:
    """The broken sheets and every sheet that refers to one (through ``needs``, transitively).
    Their rows are not checked: each would report the same root cause again (no field 'x',
    unknown entity …) while the header or sheet it comes from is reported once already. A
    warning says which sheets wait for the fix."""
    skipped = set(sheets.broken)
    changed = True
    while changed:
        changed = False
        for fmt in SHEETS:
            if fmt.name not in skipped and skipped & set(fmt.needs):
                skipped.add(fmt.name)
                changed = True
    for fmt in SHEETS:
        if fmt.name in skipped and fmt.name not in sheets.broken and sheets.rows.get(fmt.name):
            causes = ", ".join(n for n in sorted(skipped & set(fmt.needs)) if n in sheets.broken) or \
                ", ".join(sorted(sheets.broken))
            p.add(f"{sheets.titles[fmt.name]}!A1", msg("sheet_not_checked", sheet=sheets.titles[fmt.name], cause=causes),
                  warning=True)
    return skipped


def workbook_language(book: Workbook) -> str:
    """settings.language of a workbook even when it does not validate ('zh' by default)."""
    for title, sheet in book.sheets.items():
        fmt = sheet_format(title)
        if fmt is None or fmt.name != "settings":
            continue
        for row in sheet.rows:
            cells = list(row.cells.values())
            if len(cells) >= 2 and cells[0].text == "language" and cells[1].text in ("zh", "en"):
                return cells[1].text
    return "zh"
