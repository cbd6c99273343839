"""Reading an uploaded spreadsheet safely, before any row is imported.

``open_sheet`` sniffs what the file really is (an .xlsx, a CSV in UTF-8 or GBK, a password-protected
workbook, an old .xls, something else) and refuses what one import may not hold (see ``limits``)
before anything is loaded: more rows than the limit, a cell longer than a cell may be, a file that
unpacks to more than the limit. An .xlsx is checked in one linear pass over its parts (``zipparts``:
the zip and each part's real size; ``xlsxscan``: rows, cells, shared texts), which also finds what
the values alone would hide: formulas whose result was never saved, error results (#DIV/0!), merged
cells. Its values are then read by python-calamine (Rust, ~20× faster than openpyxl), which loads
the sheet into memory: in a process of its own under a memory limit (``sheetreader``), so that no
file, however made, can take the web or worker process's memory. A CSV is read as a stream. Only
this module and those it calls touch the uploaded file.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import pickle  # nosec B403 - the reading process's output, a temporary file of ours
import re
import signal
import subprocess  # nosec B404 - runs our own sheetreader.py with this interpreter
import sys
import tempfile
import zipfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any
from xml.etree import ElementTree

from openpyxl.utils import get_column_letter

from app.io.limits import MAX_ROWS, ImportFileError, Limits, cell_too_long, row_too_large, too_many
from app.io.xlsxscan import column_index, scan_shared_strings, scan_sheet
from app.io.zipparts import Budget, drain, inflate, member, open_package, read_small, unreadable
from app.messages import Joined, msg

__all__ = ["MAX_ROWS", "ImportFileError", "Limits", "Sheet", "column_index", "column_letter", "open_sheet", "too_many"]

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # the stream of an encrypted OOXML file
CHUNK = 1 << 20
LINE_BREAK = re.compile(rb"\r\n?|\n")  # as the csv module reads lines
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
      "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
      "p": "http://schemas.openxmlformats.org/package/2006/relationships"}
NOT_A_SPREADSHEET = msg("这不是 .xlsx 或 .csv 文件")
READER = Path(__file__).with_name("sheetreader.py")
READ_CPU_SECONDS = 120  # 150,000 rows take ~5 s of CPU to read
READ_SECONDS = 600  # of the clock, on a busy machine
MERGED_CELLS = 100_000  # cells merged blocks may cover; each is marked in the row it leaves empty
HEADER_SEARCH = 10  # rows an office sheet may put above its header (a title, a date, a blank line)
# where the header row is: its Excel row number, or a score of a row's cells (how many name a field;
# the best row among the first HEADER_SEARCH wins), or None: the first row
HeaderChoice = int | Callable[[list[str]], int] | None


@dataclass
class Sheet:
    """The header row, an iterator of (Excel row number, values) and what the pre-scan found."""

    headers: list[str]
    rows: Generator[tuple[int, list[Any]], None, None]
    total: int | None  # data rows (without the header), when known before reading them
    cell_problems: dict[tuple[int, int], str] = field(default_factory=dict)  # (row number, column index) → message
    is_csv: bool = False
    release: Callable[[], None] = lambda: None  # frees the file, also when the rows were never read
    header_row: int = 1  # the Excel row number of the header (title rows above it are not data)

    def close(self) -> None:
        self.rows.close()
        self.release()


def column_letter(index: int) -> str:
    """A column's name from its 0-based index (0 → A, 26 → AA)."""
    return str(get_column_letter(index + 1))


def open_sheet(path: Path, limits: Limits | None = None, sample: int | None = None, header: HeaderChoice = None) -> Sheet:
    """The first worksheet of an .xlsx, or a CSV; raises ImportFileError with the reason otherwise.
    ``sample``: only the header and that many rows are wanted (the file is checked whole all the same).
    ``header``: which row is the header (see ``HeaderChoice``); the rows above it are skipped."""
    limits = limits or Limits()
    with path.open("rb") as fh:
        head = fh.read(8)
    if not head:
        raise ImportFileError([msg("文件是空的")])
    if head.startswith(OLE_MAGIC):
        if ENCRYPTED_PACKAGE in path.read_bytes():
            raise ImportFileError([msg("文件受密码保护,请在 Excel 中取消密码后再导入")])
        raise ImportFileError([msg("这是旧版 .xls(或其他 Office)文件,请在 Excel 中另存为 .xlsx")])
    if zipfile.is_zipfile(path):
        return _open_xlsx(path, limits, sample, header)
    if path.suffix.lower() in (".xlsx", ".xlsm"):  # named a workbook but is none: never read it as text
        raise ImportFileError([NOT_A_SPREADSHEET])
    return _open_csv(path, limits, header)


def find_header(rows: Iterator[tuple[int, list[Any]]], header: HeaderChoice) -> tuple[int, list[str], Iterator[tuple[int, list[Any]]]]:
    """The header row of ``rows`` ((Excel row number, values) from the top): its number, its
    cells, and the rows after it. A score picks, among the first HEADER_SEARCH rows, the first
    that scores best (at least 1, more than every row above); none does: the first row."""
    if isinstance(header, int):
        for number, row in rows:
            if number == header:
                return number, [_header(h) for h in row], rows
            if number > header:
                break
        raise ImportFileError([msg("第 %(row)s 行不在文件中:请检查表头所在的行号", row=header)])
    seen: list[tuple[int, list[Any]]] = []
    for item in rows:
        seen.append(item)
        if len(seen) >= (HEADER_SEARCH if header is not None else 1):
            break
    if not seen:
        return 1, [], rows
    scores = [header([_header(h) for h in row]) if header is not None else 0 for _n, row in seen]
    best = max(range(len(seen)), key=lambda i: (scores[i], -i))  # the first of the best
    at = best if scores[best] > 0 else 0
    number, row = seen[at]
    after = seen[at + 1:]

    def rest() -> Iterator[tuple[int, list[Any]]]:
        yield from after
        yield from rows

    return number, [_header(h) for h in row], rest()


# -- .xlsx ---------------------------------------------------------------------------------------

def _first_sheet_part(z: zipfile.ZipFile, fh: IO[bytes]) -> str:
    """The zip member of the workbook's first worksheet (workbook order, not file-name order)."""
    book_info, rels_info = member(z, "xl/workbook.xml"), member(z, "xl/_rels/workbook.xml.rels")
    if book_info is None or rels_info is None:
        raise ImportFileError([NOT_A_SPREADSHEET])
    try:  # small XML parts of the package; expat refuses external entities
        book = ElementTree.fromstring(read_small(fh, book_info))  # noqa: S314
        rels = ElementTree.fromstring(read_small(fh, rels_info))  # noqa: S314
    except ElementTree.ParseError:
        raise ImportFileError([NOT_A_SPREADSHEET]) from None
    first = book.find("m:sheets/m:sheet", NS)
    rid = first.get(f"{{{NS['r']}}}id") if first is not None else None
    target = next((r.get("Target", "") for r in rels.findall("p:Relationship", NS) if r.get("Id") == rid), "")
    part = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
    if part not in set(z.namelist()):
        raise ImportFileError([msg("工作簿里没有工作表")])
    return part


def _check_xlsx(path: Path, limits: Limits) -> tuple[int, dict[tuple[int, int], str]]:
    """The package and the first sheet checked (see zipparts and xlsxscan): its data rows and cell problems."""
    with path.open("rb") as fh:
        z = open_package(fh, limits.unpacked_bytes)
        part = _first_sheet_part(z, fh)
        budget = Budget(limits.unpacked_bytes)
        strings = member(z, "xl/sharedStrings.xml")
        shared = scan_shared_strings(inflate(fh, strings, budget), limits) if strings is not None else None
        for info in z.infolist():  # every part the reader might open, counted with its real size
            if info is not strings and info.filename != part:
                drain(fh, info, budget)
        return scan_sheet(inflate(fh, z.getinfo(part), budget), limits, shared, budget)


def _open_xlsx(path: Path, limits: Limits, sample: int | None, header: HeaderChoice) -> Sheet:
    try:
        total, problems = _check_xlsx(path, limits)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, ImportFileError):
            raise
        raise ImportFileError([unreadable(type(exc).__name__)]) from None
    wanted = header if isinstance(header, int) else HEADER_SEARCH if header is not None else 1
    spool = read_workbook(path, limits, sample + wanted - 1 if sample is not None else None)
    try:
        (top, left), (height, width) = spool.shape["start"] or (0, 0), spool.shape["size"]
        pad = [""] * left  # calamine starts rows at the first used column, and at the first used row
        numbered = ((top + i, pad + row if pad else row) for i, row in enumerate(spool.rows(), start=1))
        header_row, headers, rows_read = find_header(numbered, header)
        _mark_merged(spool.shape["merged"], header_row, top + height, left + width, problems)
    except BaseException:
        spool.close()
        raise
    if total is not None:  # the pre-scan counted every row with a value but one header; title rows are not data
        total = max(total - (header_row - top - 1), 0)

    def values() -> Generator[tuple[int, list[Any]], None, None]:
        try:
            yield from rows_read
        finally:
            spool.close()

    return Sheet(headers, values(), total, problems, release=spool.close, header_row=header_row)


def _mark_merged(merged: list[Any], header_row: int, bottom: int, right: int, problems: dict[tuple[int, int], str]) -> None:
    """Merged blocks: refused in the header row; a title above it may be merged; below, a block
    keeps its value in its top-left cell only, so the others are marked in the rows they leave empty."""
    covered = 0
    for (r0, c0), (r1, c1) in merged:
        if r1 + 1 < header_row:
            continue
        cells = f"{column_letter(c0)}{r0 + 1}:{column_letter(c1)}{r1 + 1}"
        if r0 + 1 <= header_row:
            raise ImportFileError([msg("标题行有合并单元格 %(cells)s,请取消合并", cells=cells)])
        problem = msg("合并单元格 %(cells)s:请取消合并并在每一行填写", cells=cells)
        rows, columns = range(r0, min(r1, bottom - 1) + 1), range(c0, min(c1, right - 1) + 1)
        covered += len(rows) * len(columns)
        if covered > MERGED_CELLS:
            raise ImportFileError([msg("合并单元格超过 %(limit)s 格,请取消合并后再导入", limit=f"{MERGED_CELLS:,}")])
        for r in rows:
            for c in columns:
                if (r, c) != (r0, c0):
                    problems.setdefault((r + 1, c), problem)


class _Spool:
    """The rows the reading process wrote, read back a batch at a time; ``close`` deletes them."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = path.open("rb")
        self.shape: dict[str, Any] = pickle.load(self.fh)  # noqa: S301  # nosec B301 - written by sheetreader for us

    def rows(self) -> Iterator[list[Any]]:
        while True:
            try:
                batch = pickle.load(self.fh)  # noqa: S301  # nosec B301
            except EOFError:
                return
            yield from batch

    def close(self) -> None:
        self.fh.close()
        self.path.unlink(missing_ok=True)


def read_workbook(path: Path, limits: Limits, sample: int | None = None) -> _Spool:
    """The first sheet of ``path`` read by python-calamine in a process of its own (sheetreader),
    within ``limits.memory_mb`` and READ_CPU_SECONDS; refused, whatever went wrong, with the reason."""
    fd, name = tempfile.mkstemp(prefix="crm-sheet-", suffix=".rows")
    os.close(fd)
    out = Path(name)
    command = [sys.executable, "-I", str(READER), str(path), name, str(limits.memory_mb << 20), str(READ_CPU_SECONDS),
               str(limits.rows), str(limits.cell_chars), str(sample + 1 if sample is not None else 0)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=READ_SECONDS,  # noqa: S603  # nosec B603
                              check=False)
        _refuse_unless_read(done, limits)
        return _Spool(out)
    except subprocess.TimeoutExpired:  # run() has killed it
        out.unlink(missing_ok=True)
        raise ImportFileError([msg("读取此文件超过 %(seconds)s 秒,已停止", seconds=READ_SECONDS)]) from None
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _refuse_unless_read(done: subprocess.CompletedProcess[str], limits: Limits) -> None:
    try:
        outcome = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    except (IndexError, ValueError):
        outcome = {}
    if "rows" in outcome:
        return
    if outcome.get("refused") == "rows":
        raise too_many(limits.rows)
    if outcome.get("refused") == "cell":
        raise cell_too_long(outcome["cell"], limits.cell_chars, outcome["chars"])
    if outcome.get("error") == "memory" or done.returncode == -signal.SIGKILL or "memory allocation" in done.stderr:
        raise ImportFileError([msg("读取此文件需要超过 %(limit)s 内存(单次导入上限);没有导入任何数据", limit=f"{limits.memory_mb:,} MB")])
    if done.returncode == -signal.SIGXCPU:
        raise ImportFileError([msg("读取此文件超过 %(seconds)s 秒,已停止", seconds=READ_CPU_SECONDS)])
    said = outcome.get("error") or next(iter(done.stderr.strip().splitlines()[-1:]), f"exit status {done.returncode}")
    raise ImportFileError([unreadable(str(said)[:200])])


def _header(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


# -- .csv ----------------------------------------------------------------------------------------

def _encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) or GB18030 (a superset of GBK/GB2312), judged on the first 64 KB."""
    with path.open("rb") as fh:
        sample = fh.read(1 << 16)
    if b"\x00" in sample[:4096]:
        raise ImportFileError([NOT_A_SPREADSHEET])
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    raise ImportFileError([NOT_A_SPREADSHEET])


def _open_csv(path: Path, limits: Limits, header: HeaderChoice) -> Sheet:
    encoding = _encoding(path)
    lines = _count_lines(path, limits)
    text = path.open(encoding=encoding, newline="")
    reader = csv.reader(text)

    def checked(row: list[str]) -> list[str]:
        if row and max(map(len, row)) > limits.cell_chars:
            column = next(i for i, v in enumerate(row) if len(v) > limits.cell_chars)
            raise cell_too_long(f"{column_letter(column)}{reader.line_num}", limits.cell_chars, len(row[column]))
        return row

    def numbered() -> Generator[tuple[int, list[Any]], None, None]:
        number = 0
        try:
            for number, row in enumerate(reader, start=1):
                yield number, checked(row)
        except (UnicodeDecodeError, csv.Error) as exc:
            if number == 0:  # not even a first line reads as text: no table at all
                raise ImportFileError([NOT_A_SPREADSHEET]) from None
            raise ImportFileError([Joined(msg("第 %(line)s 行无法读取", line=reader.line_num), f": {exc}")]) from None

    try:
        header_row, headers, rest = find_header(numbered(), header)
    except ImportFileError:
        text.close()
        raise

    def values() -> Generator[tuple[int, list[Any]], None, None]:
        try:
            yield from rest
        finally:
            text.close()

    return Sheet(headers, values(), max(lines - header_row, 0), {}, is_csv=True, release=text.close, header_row=header_row)


def _count_lines(path: Path, limits: Limits) -> int:
    """Line breaks, counted streaming: an upper bound of the rows (quoted cells may hold line
    breaks), refused above the row limit; and no line longer than ``limits.row_bytes``."""
    lines = run = 0
    after_cr = False
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            if after_cr and block.startswith(b"\n"):  # \r\n cut in two by the block boundary
                block = block[1:]
            after_cr = block.endswith(b"\r")
            parts = LINE_BREAK.split(block)
            run += len(parts[0])
            if max(run, max(map(len, parts[1:]), default=0)) > limits.row_bytes:
                at = 0 if run > limits.row_bytes else next(i for i, part in enumerate(parts) if i and len(part) > limits.row_bytes)
                raise row_too_large(lines + at + 1, limits.row_bytes)
            if len(parts) > 1:
                run = len(parts[-1])
            lines += len(parts) - 1
            if lines - 1 > limits.rows:
                raise too_many(limits.rows)
    return lines
