"""What one import may hold, and the words for a file that holds more.

Every limit is checked before the rows are read, so whatever a file holds, an import costs bounded
time and memory: ``rows`` (data rows), ``unpacked_bytes`` (what an .xlsx inflates to, its shared
texts counted in every cell that uses them), ``cell_chars`` (one cell; Excel's own limit is
32,767) and ``memory_mb`` (the process that reads a workbook, see ``sheetreader``). Operators set
them with ``CRM_IMPORT_MAX_ROWS``, ``CRM_IMPORT_MAX_UNPACKED_BYTES``, ``CRM_IMPORT_MAX_CELL_CHARS``
and ``CRM_IMPORT_MAX_MEMORY_MB``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.messages import Message, msg

MAX_ROWS = 150_000  # calamine holds the sheet: a 150,000 × 15 sheet of short texts takes ~230 MB to read
MAX_UNPACKED_BYTES = 256 << 20  # that sheet is 136 MB of XML when its texts are inline
MAX_CELL_CHARS = 32_767  # as many as an Excel cell holds
MAX_MEMORY_MB = 400  # the reading process's data (RLIMIT_DATA); reading that sheet needs ~300


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (not a spreadsheet, too many rows, unknown columns …)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class UnpacksTooLarge(ImportFileError):
    """The file inflates (or says it inflates) to more than the unpacked limit."""


@dataclass(frozen=True)
class Limits:
    rows: int = MAX_ROWS
    unpacked_bytes: int = MAX_UNPACKED_BYTES
    cell_chars: int = MAX_CELL_CHARS
    memory_mb: int = MAX_MEMORY_MB

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Limits:
        """The limits an app's config sets (``CRM_IMPORT_MAX_*``, else the environment, else the defaults)."""

        def setting(name: str, default: int) -> int:
            return int(config.get(name) or os.environ.get(name) or default)

        return cls(setting("CRM_IMPORT_MAX_ROWS", MAX_ROWS), setting("CRM_IMPORT_MAX_UNPACKED_BYTES", MAX_UNPACKED_BYTES),
                   setting("CRM_IMPORT_MAX_CELL_CHARS", MAX_CELL_CHARS), setting("CRM_IMPORT_MAX_MEMORY_MB", MAX_MEMORY_MB))

    @property
    def row_bytes(self) -> int:
        """The largest row (of a sheet's XML, or a CSV line) read whole: room for several cells at their limit."""
        return max(4 << 20, 96 * self.cell_chars)


def size_text(n: int) -> str:
    """A byte count as people read it: 1.5 GB, 256 MB, 12 KB."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} B"


def too_many(limit: int, rows: int | None = None) -> ImportFileError:
    """The file has more rows than one import takes (``rows`` when the sheet says how many)."""
    if rows is not None:
        return ImportFileError([msg("文件有 %(rows)s 行数据,超过单次导入上限 %(limit)s 行;请拆分为多个文件后分别导入",
                                    rows=f"{rows:,}", limit=f"{limit:,}")])
    return ImportFileError([msg("文件超过 %(limit)s 行数据(单次导入上限);请拆分为多个文件后分别导入", limit=f"{limit:,}")])


def too_large(limit: int, size: int | None = None) -> UnpacksTooLarge:
    """The file unpacks to more than ``limit`` bytes (``size`` when its table of contents says so)."""
    if size is not None:
        return UnpacksTooLarge([msg("文件解压后有 %(size)s,超过单次导入上限 %(limit)s;请拆分为多个文件后分别导入",
                                    size=size_text(size), limit=size_text(limit))])
    return UnpacksTooLarge([msg("文件解压后超过 %(limit)s(单次导入上限);请拆分为多个文件后分别导入", limit=size_text(limit))])


def cell_too_long(cell: str, limit: int, chars: int | None = None) -> ImportFileError:
    """Cell ``cell`` (B7) holds more than ``limit`` characters (``chars`` when counted)."""
    if chars is not None:
        return ImportFileError([msg("单元格 %(cell)s 有 %(chars)s 个字符,超过上限 %(limit)s", cell=cell, chars=f"{chars:,}",
                                    limit=f"{limit:,}")])
    return ImportFileError([msg("单元格 %(cell)s 超过 %(limit)s 个字符(上限)", cell=cell, limit=f"{limit:,}")])


def row_too_large(row: int, size: int, cell: str | None = None) -> ImportFileError:
    """Row ``row`` is larger than ``size`` bytes (from ``cell`` on, when known): a cell or a tag that never ends."""
    problem: Message = (msg("第 %(row)s 行从单元格 %(cell)s 起超过 %(size)s,无法导入", row=f"{row:,}", cell=cell, size=size_text(size))
                        if cell else msg("第 %(row)s 行超过 %(size)s,无法导入", row=f"{row:,}", size=size_text(size)))
    return ImportFileError([problem])
