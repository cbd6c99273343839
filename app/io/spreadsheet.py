"""Reading an uploaded spreadsheet safely, before any row is imported.

``open_sheet`` sniffs what the file really is (an .xlsx, a CSV in UTF-8 or GBK, a password-protected
workbook, an old .xls, something else), refuses a sheet above the row limit early (from the sheet's
``<dimension>`` or a streaming count of its rows, before anything is loaded), and finds what the
values alone would hide: formulas whose result was never saved, error results (#DIV/0!), merged
cells. Values are then read with python-calamine (Rust, ~20× faster than openpyxl); it loads the
sheet into memory, which the row limit bounds. Only this module touches the uploaded file.
"""

from __future__ import annotations

import codecs
import csv
import re
import zipfile
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree

from app.messages import Joined, msg

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # the stream of an encrypted OOXML file
MAX_ROWS = 150_000  # default for CRM_IMPORT_MAX_ROWS: calamine holds the sheet, ~1.5 KB per row of 15 columns (≈ 400 MB peak)
CHUNK = 1 << 20
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
      "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
      "p": "http://schemas.openxmlformats.org/package/2006/relationships"}
DIMENSION = re.compile(rb'<dimension\s+ref="[A-Z]*[0-9]*:?[A-Z]*([0-9]+)"')
CELL = re.compile(rb"<c\b([^>]*?)(?:/>|>(.*?)</c>)", re.S)
REF = re.compile(rb'\br="([A-Z]+)([0-9]+)"')
TYPE_ERROR = re.compile(rb'\bt="e"')
VALUE = re.compile(rb"<v>([^<]*)</v>")
NOT_A_SPREADSHEET = msg("这不是 .xlsx 或 .csv 文件")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (not a spreadsheet, too many rows, unknown columns …)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class Sheet:
    """The header row, an iterator of (Excel row number, values) and what the pre-scan found."""

    headers: list[str]
    rows: Generator[tuple[int, list[Any]], None, None]
    total: int | None  # data rows (without the header), when known before reading them
    cell_problems: dict[tuple[int, int], str] = field(default_factory=dict)  # (row number, column index) → message
    is_csv: bool = False
    release: Callable[[], None] = lambda: None  # frees the file, also when the rows were never read

    def close(self) -> None:
        self.rows.close()
        self.release()


def column_index(letters: bytes | str) -> int:
    """0-based index of a column name (A → 0, AA → 26)."""
    n = 0
    for ch in letters if isinstance(letters, str) else letters.decode():
        n = n * 26 + ord(ch) - 64
    return n - 1


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def too_many(limit: int, rows: int | None = None) -> ImportFileError:
    """The file has more rows than one import takes (``rows`` when the sheet says how many)."""
    if rows is not None:
        return ImportFileError([msg("文件有 %(rows)s 行数据,超过单次导入上限 %(limit)s 行;请拆分为多个文件后分别导入",
                                    rows=f"{rows:,}", limit=f"{limit:,}")])
    return ImportFileError([msg("文件超过 %(limit)s 行数据(单次导入上限);请拆分为多个文件后分别导入", limit=f"{limit:,}")])


def open_sheet(path: Path, max_rows: int = MAX_ROWS) -> Sheet:
    """The first worksheet of an .xlsx, or a CSV; raises ImportFileError with the reason otherwise."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if not head:
        raise ImportFileError([msg("文件是空的")])
    if head.startswith(OLE_MAGIC):
        if ENCRYPTED_PACKAGE in path.read_bytes():
            raise ImportFileError([msg("文件受密码保护,请在 Excel 中取消密码后再导入")])
        raise ImportFileError([msg("这是旧版 .xls(或其他 Office)文件,请在 Excel 中另存为 .xlsx")])
    if zipfile.is_zipfile(path):
        return _open_xlsx(path, max_rows)
    if path.suffix.lower() in (".xlsx", ".xlsm"):  # named a workbook but is none: never read it as text
        raise ImportFileError([NOT_A_SPREADSHEET])
    return _open_csv(path, max_rows)


# -- .xlsx ---------------------------------------------------------------------------------------

def _first_sheet_part(z: zipfile.ZipFile) -> str:
    """The zip member of the workbook's first worksheet (workbook order, not file-name order)."""
    names = set(z.namelist())
    if "xl/workbook.xml" not in names:
        raise ImportFileError([NOT_A_SPREADSHEET])
    try:  # small XML parts of the package; expat refuses external entities
        book = ElementTree.fromstring(z.read("xl/workbook.xml"))  # noqa: S314
        rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))  # noqa: S314
    except (KeyError, ElementTree.ParseError):
        raise ImportFileError([NOT_A_SPREADSHEET]) from None
    first = book.find("m:sheets/m:sheet", NS)
    rid = first.get(f"{{{NS['r']}}}id") if first is not None else None
    target = next((r.get("Target", "") for r in rels.findall("p:Relationship", NS) if r.get("Id") == rid), "")
    part = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
    if part not in names:
        raise ImportFileError([msg("工作簿里没有工作表")])
    return part


def _prescan(z: zipfile.ZipFile, part: str, max_rows: int) -> tuple[int, dict[tuple[int, int], str]]:
    """Stream the sheet's XML once: rows with a value (refused above ``max_rows`` as soon as it is
    passed), and formula cells whose saved result is missing or an error."""
    problems: dict[tuple[int, int], str] = {}
    rows = 0
    carry = b""
    with z.open(part) as fh:
        head = fh.read(4096)
        m = DIMENSION.search(head)
        if m and int(m.group(1)) - 1 > max_rows:
            raise too_many(max_rows, int(m.group(1)) - 1)
        data = head
        while data:
            data = carry + data
            cut = data.rfind(b"</row>")
            if cut < 0:
                carry, data = data, fh.read(CHUNK)
                continue
            cut += len(b"</row>")
            complete, carry = data[:cut], data[cut:]
            for row in complete.split(b"</row>"):
                if b"<v>" in row or b"<t>" in row or b"<t " in row:
                    rows += 1
                if b"<f" in row or b't="e"' in row:
                    _formula_problems(row, problems)
            if rows - 1 > max_rows:
                raise too_many(max_rows)
            data = fh.read(CHUNK)
    return max(rows - 1, 0), problems


def _formula_problems(row: bytes, problems: dict[tuple[int, int], str]) -> None:
    for attrs, inner in CELL.findall(row):
        formula = b"<f" in inner
        error = TYPE_ERROR.search(attrs)
        if not formula and not error:
            continue
        ref = REF.search(attrs)
        if ref is None:
            raise ImportFileError([msg("表格含有公式但单元格没有位置信息,请在 Excel 中打开并保存后再导入")])
        value = VALUE.search(inner)
        where = (int(ref.group(2)), column_index(ref.group(1)))
        if error:
            shown = value.group(1).decode(errors="replace") if value else "#ERROR"
            problems[where] = msg("公式结果是错误值 %(error)s", error=shown)
        elif value is None or not value.group(1):
            problems[where] = msg("公式没有保存计算结果:请在 Excel 中打开并保存,或复制后“粘贴为数值”")


def _open_xlsx(path: Path, max_rows: int) -> Sheet:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        with zipfile.ZipFile(path) as z:
            part = _first_sheet_part(z)
            total, problems = _prescan(z, part, max_rows)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, ImportFileError):
            raise
        raise ImportFileError([Joined(msg("无法读取此 Excel 文件"), f": {type(exc).__name__}")]) from None
    try:
        book = CalamineWorkbook.from_path(str(path))
        sheet = book.get_sheet_by_index(0)
    except CalamineError as exc:
        raise ImportFileError([Joined(msg("无法读取此 Excel 文件"), f": {exc}")]) from None
    for (r0, c0), (r1, c1) in sheet.merged_cell_ranges or []:
        if r0 == 0:
            raise ImportFileError([msg("标题行有合并单元格 %(cells)s,请取消合并", cells=f"{column_letter(c0)}1:{column_letter(c1)}{r1 + 1}")])
        for r in range(r0, r1 + 1):  # a merged block keeps its value in the top-left cell only
            for c in range(c0, c1 + 1):
                if (r, c) != (r0, c0):
                    problems.setdefault((r + 1, c), msg("合并单元格 %(cells)s:请取消合并并在每一行填写",
                                                        cells=f"{column_letter(c0)}{r0 + 1}:{column_letter(c1)}{r1 + 1}"))
    pad = [""] * (sheet.start[1] if sheet.start else 0)  # calamine starts rows at the first used column
    rows = sheet.iter_rows()
    headers = [_header(h) for h in pad + list(next(rows, []))]

    def release() -> None:
        try:
            book.close()
        except CalamineError:  # closed already
            pass

    def values() -> Generator[tuple[int, list[Any]], None, None]:
        try:
            for number, row in enumerate(rows, start=2):
                yield number, pad + row if pad else row
        finally:
            release()

    return Sheet(headers, values(), total, problems, release=release)


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


def _open_csv(path: Path, max_rows: int) -> Sheet:
    encoding = _encoding(path)
    lines = 0
    with path.open("rb") as fh:  # an upper bound (quoted cells may hold line breaks), counted streaming
        for block in iter(lambda: fh.read(CHUNK), b""):
            lines += block.count(b"\n")
            if lines - 1 > max_rows:
                raise too_many(max_rows)
    text = path.open(encoding=encoding, newline="")
    reader = csv.reader(text)
    try:
        headers = [_header(h) for h in next(reader, [])]
    except (UnicodeDecodeError, csv.Error):
        text.close()
        raise ImportFileError([NOT_A_SPREADSHEET]) from None

    def values() -> Generator[tuple[int, list[Any]], None, None]:
        try:
            for number, row in enumerate(reader, start=2):
                yield number, list(row)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ImportFileError([Joined(msg("第 %(line)s 行无法读取", line=reader.line_num), f": {exc}")]) from None
        finally:
            text.close()

    return Sheet(headers, values(), max(lines - 1, 0), {}, is_csv=True, release=text.close)

