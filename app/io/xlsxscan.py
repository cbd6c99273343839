"""One pass over the first worksheet's XML, and over its shared texts, before anything reads them:
linear in the file, never holding more than one row of it.

The pass counts the rows that hold a value (refused as soon as the row limit is passed), finds
formulas whose result was never saved and error results (#DIV/0!), and refuses what would make
reading the file unsafe: a row larger than ``Limits.row_bytes`` (a cell, or a tag, that does not
end), a cell longer than ``Limits.cell_chars``, and shared texts that, written out in each cell
that uses them (as the reader does), pass ``Limits.unpacked_bytes`` — a 30 KB text used by 40,000
rows is 1.2 GB. It reads bytes as Excel, WPS and openpyxl write them (with or without a namespace
prefix); whatever it cannot see is still bounded by the reading process's own limits (sheetreader).
"""

from __future__ import annotations

import functools
import html
import re
from array import array
from collections.abc import Iterable, Iterator

from app.io.limits import ImportFileError, Limits, cell_too_long, row_too_large, size_text, too_many
from app.io.zipparts import Budget, unreadable
from app.messages import msg

DIMENSION = re.compile(rb'<(?:[\w.-]+:)?dimension\s+ref="[A-Z]*[0-9]*:?[A-Z]*([0-9]+)"')
REF = re.compile(rb'\br="([A-Z]+)([0-9]+)"')
TYPE_ERROR = re.compile(rb'\bt="e"')
TAG = re.compile(rb"<[^>]*>")
SHARED_UNIT = 4  # shared texts' sizes are kept in 4-byte units, two bytes each (up to 256 KB)
CELL_PROBLEMS = 100_000  # formula cells without a usable result that one file may have marked


class _Tags:
    """The byte patterns of one document's elements, with its namespace prefix (``x:`` or none)."""

    def __init__(self, prefix: bytes):
        p = re.escape(prefix)
        self.prefix = prefix
        self.row_end = b"</" + prefix + b"row>"
        self.data_end = b"</" + prefix + b"sheetData>"
        self.item_end = b"</" + prefix + b"si>"
        self.values = (b"<" + prefix + b"v>", b"<" + prefix + b"t>", b"<" + prefix + b"t ")
        self.formula = b"<" + prefix + b"f"
        self.cell = re.compile(rb"<" + p + rb"c\b([^>]*?)(?:/>|>(.*?)</" + p + rb"c>)", re.S)
        self.value = re.compile(rb"<" + p + rb"v>([^<]*)</" + p + rb"v>")
        self.row_number = re.compile(rb"<" + p + rb'row\b[^>]*?\sr="([0-9]+)"')
        self.cell_ref = re.compile(rb"<" + p + rb'c\b[^>]*?\sr="([A-Z]+[0-9]+)"')
        self.shared = re.compile(rb"<" + p + rb'c\b[^>]*?\st="s"[^>]*>\s*<' + p + rb"v>\s*([0-9]+)")

    @classmethod
    def of(cls, head: bytes, root: bytes) -> _Tags:
        """The patterns of a document whose root element (``worksheet``, ``sst``) starts in ``head``."""
        m = re.search(rb"<(?:([A-Za-z_][\w.-]*):)?" + root + rb"[\s>/]", head)
        if m is None:
            raise ImportFileError([unreadable(f"<{root.decode()}> not found")])
        return cls(m.group(1) + b":" if m.group(1) else b"")


def _chars(xml: bytes) -> int:
    """Characters of the text in a piece of XML (its tags left out, its entities read)."""
    return len(html.unescape(TAG.sub(b"", xml).decode("utf-8", "replace")))


def _items(chunks: Iterable[bytes], end: bytes, stop: bytes, limit: int) -> Iterator[tuple[bytes, list[bytes]]]:
    """The chunks cut after the last ``end`` tag: (the complete items' bytes, the items split on
    ``end``), up to ``stop``; the rest of the stream is read (so it is counted) but not kept. Bytes
    carried over between chunks are never more than ``limit``: past it, raises ``_Overlong``."""
    carry = b""
    chunks = iter(chunks)
    for chunk in chunks:
        seen = len(carry)
        data = carry + chunk if carry else chunk
        finished = data.find(stop, max(0, seen - len(stop) + 1))
        if finished >= 0:
            data = data[:finished]
        cut = data.rfind(end, max(0, seen - len(end) + 1))
        if cut < 0:
            carry = data
        else:
            complete, carry = data[:cut], data[cut + len(end):]
            yield complete, complete.split(end)
        if finished >= 0:
            for _rest in chunks:  # after the rows: read to the end, so that all of it is counted
                pass
            return
        if len(carry) > limit:
            raise _Overlong(carry)


class _Overlong(Exception):
    def __init__(self, data: bytes):
        self.data = data


# -- shared texts --------------------------------------------------------------------------------

def scan_shared_strings(chunks: Iterable[bytes], limits: Limits) -> array[int]:
    """The size of each shared text (in SHARED_UNIT bytes), refused when one is longer than a cell may be."""
    sizes: array[int] = array("H")
    chunks = iter(chunks)
    head = next(chunks, b"")
    tags = _Tags.of(head[:4096], b"sst")

    def too_long(item: int) -> ImportFileError:
        return ImportFileError([msg("共享文本第 %(item)s 项超过 %(limit)s 个字符(单元格上限)", item=f"{item:,}",
                                    limit=f"{limits.cell_chars:,}")])

    try:
        for _complete, items in _items(_chain(head, chunks), tags.item_end, b"</" + tags.prefix + b"sst>", limits.row_bytes):
            for item in items:
                if len(item) > limits.cell_chars and _chars(item) > limits.cell_chars:
                    raise too_long(len(sizes) + 1)
                sizes.append(min(0xFFFF, -(-len(item) // SHARED_UNIT)))
    except _Overlong:
        raise too_long(len(sizes) + 1) from None
    return sizes


def _chain(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from rest


# -- the worksheet -------------------------------------------------------------------------------

def scan_sheet(chunks: Iterable[bytes], limits: Limits, shared: array[int] | None,
               budget: Budget) -> tuple[int, dict[tuple[int, int], str]]:
    """Data rows (those with a value, the header aside) and the cells whose value cannot be used
    ((row number, column index) → message); refused as the module docstring says."""
    problems: dict[tuple[int, int], str] = {}
    said: dict[bytes, str] = {}
    rows = ends = 0
    chunks = iter(chunks)
    head = next(chunks, b"")
    tags = _Tags.of(head[:65536], b"worksheet")
    m = DIMENSION.search(head, 0, 65536)
    if m and int(m.group(1)) - 1 > limits.rows:
        raise too_many(limits.rows, int(m.group(1)) - 1)
    try:
        for complete, split in _items(_chain(head, chunks), tags.row_end, tags.data_end, limits.row_bytes):
            for row in split:
                if tags.values[0] in row or tags.values[1] in row or tags.values[2] in row:
                    rows += 1
                if tags.formula in row or b't="e"' in row:
                    _formula_problems(row, tags, problems, said)
                if len(row) > limits.cell_chars:  # a shorter row holds no cell longer than that
                    _long_cells(row, tags, limits.cell_chars)
            ends += len(split)
            if rows - 1 > limits.rows:
                raise too_many(limits.rows)
            if shared is not None and b't="s"' in complete:
                _spend_shared(complete, tags, shared, budget)
    except _Overlong as overlong:
        raise _row_too_large(overlong.data, tags, ends, limits) from None
    return max(rows - 1, 0), problems


def _formula_problems(row: bytes, tags: _Tags, problems: dict[tuple[int, int], str], said: dict[bytes, str]) -> None:
    """Cells of ``row`` whose formula has no saved result or an error result; ``said`` keeps one
    message per error value (#DIV/0!, #N/A …), however many cells show it."""
    for attrs, inner in tags.cell.findall(row):
        formula = tags.formula in inner
        error = TYPE_ERROR.search(attrs)
        if not formula and not error:
            continue
        ref = REF.search(attrs)
        if ref is None:
            raise ImportFileError([msg("表格含有公式但单元格没有位置信息,请在 Excel 中打开并保存后再导入")])
        value = tags.value.search(inner)
        where = (int(ref.group(2)), column_index(ref.group(1)))
        if error:
            shown = value.group(1) if value else b"#ERROR"
            if shown not in said:
                said[shown] = msg("公式结果是错误值 %(error)s", error=shown.decode(errors="replace"))
            problems[where] = said[shown]
        elif value is None or not value.group(1):
            problems[where] = _unsaved_result()
        if len(problems) > CELL_PROBLEMS:
            raise ImportFileError([msg("超过 %(limit)s 个公式单元格没有可用的结果;请在 Excel 中修正后再导入", limit=f"{CELL_PROBLEMS:,}")])


@functools.cache
def _unsaved_result() -> str:
    return msg("公式没有保存计算结果:请在 Excel 中打开并保存,或复制后“粘贴为数值”")


def _long_cells(row: bytes, tags: _Tags, limit: int) -> None:
    for attrs, inner in tags.cell.findall(row):
        if len(inner) > limit and (chars := _chars(inner)) > limit:
            ref = REF.search(attrs)
            raise cell_too_long(ref.group(1).decode() + ref.group(2).decode() if ref else "?", limit, chars)


def _spend_shared(complete: bytes, tags: _Tags, shared: array[int], budget: Budget) -> None:
    """Draw the shared texts these rows use, each time they use one, from ``budget``."""
    try:
        spent = SHARED_UNIT * sum(map(shared.__getitem__, map(int, tags.shared.findall(complete))))
    except IndexError:
        raise ImportFileError([unreadable("shared text index")]) from None
    if spent > budget.left:
        last = complete.rfind(b"<" + tags.prefix + b"row")
        m = tags.row_number.match(complete, last) if last >= 0 else None
        raise ImportFileError([msg("共享文本写入各单元格后,工作表超过 %(limit)s(到第 %(row)s 行);请拆分为多个文件后分别导入",
                                   limit=size_text(budget.limit), row=m.group(1).decode() if m else "?")])
    budget.spend(spent)


def _row_too_large(data: bytes, tags: _Tags, ends: int, limits: Limits) -> ImportFileError:
    """Where a row that never ends begins, and the cell that makes it so when there is one."""
    m = tags.row_number.search(data, 0, 4096)
    row = int(m.group(1)) if m else ends + 1
    last = max(data.rfind(b"<" + tags.prefix + b"c "), data.rfind(b"<" + tags.prefix + b"c>"))
    cell = tags.cell_ref.match(data, last) if last >= 0 else None
    if cell is not None:
        where = cell.group(1).decode()
        if _chars(data[cell.end():]) > limits.cell_chars:
            return cell_too_long(where, limits.cell_chars)
        return row_too_large(row, limits.row_bytes, where)
    return row_too_large(row, limits.row_bytes)


def column_index(letters: bytes | str) -> int:
    """0-based index of a column name (A → 0, AA → 26)."""
    n = 0
    for ch in letters if isinstance(letters, str) else letters.decode():
        n = n * 26 + ord(ch) - 64
    return n - 1
