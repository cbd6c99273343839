"""The first worksheet of an .xlsx read by python-calamine in a process of its own, under a memory
and a CPU-time limit; its rows are written to a file for the importing process to stream.

calamine holds the whole sheet in memory, as a rectangle from the first cell to the last (a cell
in A1 and one in XFD1048576 make 17 billion), and a Rust allocation that fails aborts the process.
Run here, whatever the workbook holds costs at most this process's limit, and the web or worker
process that imports it keeps its own memory. ``spreadsheet.py`` runs it as
``python -I sheetreader.py WORKBOOK OUT MEMORY_BYTES CPU_SECONDS MAX_ROWS MAX_CELL_CHARS ROWS``;
it imports nothing of the project (``-I``: neither the environment nor the project is on the path).

``OUT`` receives pickles: the sheet's shape (``start``, ``size``, ``merged``), then lists of rows,
each a list of values (the header row first). The last line on stdout says how it went, as JSON:
``{"rows": rows with a value}``, ``{"refused": "rows"}`` (more than MAX_ROWS of them, the header
aside), ``{"refused": "cell", "cell": "B7", "chars": n}`` (longer than MAX_CELL_CHARS), or
``{"error": "memory" | calamine's message}``. ROWS > 0: only that many rows are wanted.
"""

from __future__ import annotations

import json
import pickle  # nosec B403 - our own temporary file, read back by spreadsheet.py
import resource
import sys
from typing import Any

BATCH = 2000  # rows per pickle


def limit(kind: int, value: int) -> None:
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):  # a platform without this limit: the other limits still hold
        pass


def letters(index: int) -> str:
    """A column's name (0 → A, 26 → AA); openpyxl's ``get_column_letter`` here would import all of
    openpyxl into a process that is started for every workbook read."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def read(path: str, out: str, max_rows: int, max_chars: int, wanted: int) -> dict[str, Any]:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(path)
        sheet = book.get_sheet_by_index(0)
        shape = {"start": sheet.start, "size": (sheet.height, sheet.width), "merged": sheet.merged_cell_ranges or []}
    except CalamineError as exc:
        return {"error": str(exc)}
    top, left = sheet.start or (0, 0)
    rows = 0
    with open(out, "wb") as fh:
        pickle.dump(shape, fh, protocol=pickle.HIGHEST_PROTOCOL)
        batch: list[list[Any]] = []
        for number, row in enumerate(sheet.iter_rows(), start=1):
            if len(row) != row.count(""):  # calamine gives "" for an empty cell
                rows += 1
                if rows - 1 > max_rows:
                    return {"refused": "rows"}
                for column, value in enumerate(row):
                    if value.__class__ is str and len(value) > max_chars:
                        return {"refused": "cell", "cell": f"{letters(left + column)}{top + number}", "chars": len(value)}
            batch.append(row)
            if len(batch) >= BATCH or (wanted and number >= wanted):
                pickle.dump(batch, fh, protocol=pickle.HIGHEST_PROTOCOL)
                batch = []
                if wanted and number >= wanted:
                    return {"rows": rows, "partial": True}
        if batch:
            pickle.dump(batch, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return {"rows": rows}


def main(argv: list[str]) -> None:
    path, out, memory, seconds, max_rows, max_chars, wanted = argv[1], argv[2], *map(int, argv[3:8])
    limit(resource.RLIMIT_DATA, memory)
    limit(resource.RLIMIT_CPU, seconds)
    limit(resource.RLIMIT_CORE, 0)  # an abort writes no core file
    try:
        outcome = read(path, out, max_rows, max_chars, wanted)
    except MemoryError:
        outcome = {"error": "memory"}
    print(json.dumps(outcome))


if __name__ == "__main__":
    main(sys.argv)
