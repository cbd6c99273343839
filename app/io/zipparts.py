"""The zip around an .xlsx, checked before anything in it is inflated, and its parts inflated with
their real size counted.

A zip says how large each part is, but the size is only a claim: the inflater that reads it later
(python-calamine's) stops where the compressed stream stops, not where the claim does. So the
claims are checked against the limit first (``open_package``: a 1 MB file that says it holds
1.5 GB is refused at once), then every part is inflated here once, in bounded chunks, and must
come out exactly as large as claimed, with its checksum (``inflate``), all parts together within
the limit: what the reader later finds in the file is what was counted here.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

from app.io.limits import ImportFileError, size_text, too_large
from app.messages import Joined, msg

CHUNK = 1 << 20
TABLE_OF_CONTENTS = 1 << 20  # a workbook lists a few dozen parts (a few KB); 1 MB lists ~20,000


def unreadable(detail: str) -> Joined:
    """Cannot read this Excel file, with a technical detail (a part's name, an exception's)."""
    return Joined(msg("无法读取此 Excel 文件"), f": {detail}")


class Budget:
    """Bytes that may still be unpacked; every part inflated and every shared text written out draws on it."""

    def __init__(self, limit: int):
        self.limit = limit
        self.left = limit

    def spend(self, n: int, problem: str | None = None) -> None:
        """Draw ``n`` bytes; past the limit, refused with ``problem`` (or: the file unpacks to too much)."""
        self.left -= n
        if self.left < 0:
            raise ImportFileError([problem]) if problem else too_large(self.limit)


class _SingleReadCap:
    """The file as zipfile reads it, but no single read of more than TABLE_OF_CONTENTS: zipfile
    reads the whole central directory at once, and parses every entry of it into memory."""

    def __init__(self, fh: IO[bytes]):
        self.fh = fh

    def read(self, n: int | None = -1) -> bytes:
        data = self.fh.read(TABLE_OF_CONTENTS + 1 if n is None or n < 0 or n > TABLE_OF_CONTENTS else n)
        if len(data) > TABLE_OF_CONTENTS:
            raise ImportFileError([unreadable("table of contents > 1 MB")])
        return data

    def __getattr__(self, name: str) -> Any:  # seek, tell, seekable …
        return getattr(self.fh, name)


def open_package(fh: IO[bytes], limit: int) -> zipfile.ZipFile:
    """The zip of ``fh`` once its table of contents passes: a size below 1 MB, names unique (also
    ignoring case: readers look some parts up that way), parts stored or deflated and not
    encrypted, and the sizes they claim within ``limit`` in all."""
    try:
        z = zipfile.ZipFile(_SingleReadCap(fh))  # type: ignore[arg-type]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, ImportFileError):
            raise
        raise ImportFileError([unreadable(type(exc).__name__)]) from None
    infos = z.infolist()
    if len({i.filename.lower() for i in infos}) != len(infos):
        raise ImportFileError([unreadable("duplicate parts")])
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
            raise ImportFileError([unreadable(f"{info.filename}: compression {info.compress_type}")])
    claimed = sum(i.file_size for i in infos)
    if claimed > limit:
        raise too_large(limit, claimed)
    return z


def inflate(fh: IO[bytes], info: zipfile.ZipInfo, budget: Budget) -> Iterator[bytes]:
    """The part ``info`` of the zip in ``fh``, in chunks of at most 1 MB, each drawn from
    ``budget``; refused when it inflates to more than it claims or its checksum is wrong."""
    fh.seek(info.header_offset)
    header = fh.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise ImportFileError([unreadable(f"{info.filename}: bad header")])
    fh.seek(info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little"))
    left = info.compress_size
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
    pending = b""
    size = crc = 0
    while True:
        if not pending and left > 0:
            pending = fh.read(min(CHUNK, left))
            if not pending:
                break  # the file ends early: the size check below refuses it
            left -= len(pending)
        if inflater is None:
            data, pending = pending, b""
        else:
            try:
                data = inflater.decompress(pending, CHUNK)
            except zlib.error:
                raise ImportFileError([unreadable(f"{info.filename}: bad data")]) from None
            pending = inflater.unconsumed_tail
        if not data:
            if not pending and (left <= 0 or (inflater is not None and inflater.eof)):
                break
            continue
        size += len(data)
        if size > info.file_size:
            raise ImportFileError([msg("文件中的 %(part)s 解压后比它声明的大:文件已损坏或被改动过", part=info.filename)])
        budget.spend(len(data))
        crc = zlib.crc32(data, crc)
        yield data
    if size != info.file_size or crc != info.CRC or (inflater is not None and not inflater.eof):
        raise ImportFileError([unreadable(f"{info.filename}: size or checksum")])


def drain(fh: IO[bytes], info: zipfile.ZipInfo, budget: Budget) -> None:
    """Inflate a part only to count it."""
    for _chunk in inflate(fh, info, budget):
        pass


def read_small(fh: IO[bytes], info: zipfile.ZipInfo, cap: int = 4 << 20) -> bytes:
    """A small part whole (the workbook, its relationships), at most ``cap`` bytes; counted again
    with the others when every part is."""
    if info.file_size > cap:
        raise ImportFileError([unreadable(f"{info.filename} > {size_text(cap)}")])
    return b"".join(inflate(fh, info, Budget(cap)))


def member(z: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    """The part called ``name``, ignoring case as readers do."""
    wanted = name.lower()
    return next((i for i in z.infolist() if i.filename.lower() == wanted), None)

