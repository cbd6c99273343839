"""Imports stay bounded in time and memory whatever the file: workbooks that unpack to gigabytes
(one huge cell; sizes that lie; a shared text repeated in every row; a used range of 17 billion
cells), formula errors and merged blocks by the million, CSV lines and fields without end — each
refused within seconds with a located message, while the importing process and the process that
reads the workbook stay under their bounds (measured in a process of their own)."""

from __future__ import annotations

import html
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from app.access.accounts import add_user
from app.io import importer
from app.io.importer import import_limits
from app.io.importjobs import JOBS, create_job, run_job
from app.io.limits import MAX_MEMORY_MB
from tests.conftest import ROOT, csrf_token, login
from tests.test_excel import PASSWORD, count, raw_xlsx, refused, run, text_cell, xlsx

MB = 1 << 20
SECONDS = 10  # a hostile file is refused within this
GROWTH_MB = 64  # what refusing them may add to the importing process's peak memory
WORKBOOK = {
    "[Content_Types].xml": b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="xml" ContentType="application/xml"/></Types>',
    "_rels/.rels": b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    b"</Relationships>",
    "xl/workbook.xml": b'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="data" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    b"</Relationships>",
}
SHEET_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
              b'<row r="1"><c r="A1" t="inlineStr"><is><t>\xe5\xae\xa2\xe6\x88\xb7\xe5\x90\x8d\xe7\xa7\xb0</t></is></c></row>')  # 客户名称
SHEET_TAIL = b"</sheetData></worksheet>"


SALES, MANAGER = "limits_sales", "limits_manager"


@pytest.fixture(scope="module")
def people(app: Any) -> None:
    add_user(app, SALES, ["业务员"], PASSWORD, departments=["限额部"])
    add_user(app, MANAGER, ["销售经理"], PASSWORD, departments=["限额部"])


def package(path: Path, parts: dict[str, Iterable[bytes]], claimed: dict[str, int] | None = None) -> Path:
    """A zip written by hand, for sizes no real file has: each part is deflated piece by piece,
    with a full flush after each, so a piece given again (the same bytes) is compressed once and
    its output repeated — a gigabyte costs a second to write. ``claimed``: the size the zip
    declares for a part, when it should lie."""
    central = []
    with path.open("wb") as out:
        for name, pieces in parts.items():
            offset, raw = out.tell(), name.encode()
            out.write(b"\0" * (30 + len(raw)))  # the local header, written once the sizes are known
            packer = zlib.compressobj(9, zlib.DEFLATED, -15)
            done: dict[bytes, bytes] = {}
            size = packed = crc = 0
            for piece in _grouped(pieces):
                if piece not in done:
                    done[piece] = packer.compress(piece) + packer.flush(zlib.Z_FULL_FLUSH)
                out.write(done[piece])
                size, packed, crc = size + len(piece), packed + len(done[piece]), zlib.crc32(piece, crc)
                if len(piece) < MB:
                    del done[piece]  # kept only to be repeated
            end = packer.flush()
            out.write(end)
            packed += len(end)
            said = (claimed or {}).get(name, size)
            here = out.tell()
            out.seek(offset)
            out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, packed, said, len(raw), 0) + raw)
            out.seek(here)
            central.append(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, packed, said, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        start = out.tell()
        out.write(b"".join(central))
        out.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(central), len(central), out.tell() - start, start, 0))
    return path


def _grouped(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Small pieces (rows) joined into one, so that they compress together; large ones as they are."""
    small: list[bytes] = []
    for piece in pieces:
        if len(piece) >= MB:
            yield b"".join(small)
            small = []
            yield piece
        else:
            small.append(piece)
            if len(small) >= 10_000:
                yield b"".join(small)
                small = []
    yield b"".join(small)


def workbook(path: Path, sheet: Iterable[bytes], shared: bytes | None = None, claimed: dict[str, int] | None = None) -> Path:
    parts: dict[str, Iterable[bytes]] = {name: [text] for name, text in WORKBOOK.items()}
    parts["xl/worksheets/sheet1.xml"] = sheet
    if shared is not None:
        parts["xl/sharedStrings.xml"] = [shared]
    return package(path, parts, claimed)


def one_huge_cell(megabytes: int) -> Iterator[bytes]:
    """The attack of issue 30: one inline text of ``megabytes`` MB in cell A2."""
    yield SHEET_HEAD + b'<row r="2"><c r="A2" t="inlineStr"><is><t>'
    block = b"a" * MB
    for _ in range(megabytes):
        yield block
    yield b"</t></is></c></row>" + SHEET_TAIL


def rows(texts: Iterable[bytes]) -> Iterator[bytes]:
    yield SHEET_HEAD
    yield from texts
    yield SHEET_TAIL


MEASURE = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))  # however it goes, the machine running the tests keeps its memory
from pathlib import Path
from app.io.limits import ImportFileError, Limits
from app.io.spreadsheet import open_sheet

def peak_mb():  # this process's own peak (ru_maxrss would count the parent's size at the fork)
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024

started = peak_mb()
outcomes = []
for path, settings in json.loads(sys.argv[1]):
    start = time.monotonic()
    try:
        sheet = open_sheet(Path(path), Limits(**settings))
        said = ["read %s rows" % sum(1 for _ in sheet.rows)]
    except ImportFileError as exc:
        said = [str(p) for p in exc.problems]
    except MemoryError:
        said = ["MemoryError"]
    outcomes.append({"seconds": time.monotonic() - start, "said": " ".join(said)})
print(json.dumps({"outcomes": outcomes, "started_mb": started, "importing_mb": peak_mb(),
                  "reading_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def measure(cases: list[tuple[Path, dict[str, int]]]) -> dict[str, Any]:
    """Each file opened as an import opens it, in a fresh process: what was said and how long it
    took, and the peak memory of that process (when it started and in the end) and of the process
    that read the workbooks (Linux)."""
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([[str(p), s] for p, s in cases])],  # noqa: S603
                          capture_output=True, text=True, timeout=60 + SECONDS * len(cases), cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_workbooks_that_unpack_to_gigabytes_are_refused_in_seconds_with_memory_bounded(tmp_path: Path) -> None:
    bomb = workbook(tmp_path / "bomb.xlsx", one_huge_cell(1100))  # 1.1 MB that unpacks to 1.1 GB
    liar = workbook(tmp_path / "liar.xlsx", one_huge_cell(1100), claimed={"xl/worksheets/sheet1.xml": 10_000})
    text = b"\xe5\xae\xa2" * 10_000  # 30,000 bytes of 客, used by each of 40,000 rows: 1.2 GB written out
    shared = workbook(tmp_path / "shared.xlsx", rows(b'<row r="%d"><c r="A%d" t="s"><v>0</v></c></row>' % (n, n) for n in range(2, 40_002)),
                      shared=b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>' + text + b"</t></si></sst>")
    corners = workbook(tmp_path / "corners.xlsx", rows([b'<row r="1048576"><c r="XFD1048576"><v>2</v></c></row>']))
    prefixed = workbook(tmp_path / "prefixed.xlsx", (piece.replace(b"<", b"<x:").replace(b"<x:/", b"</x:").replace(b"<x:?", b"<?")
                                                     .replace(b"xmlns=", b"xmlns:x=") if len(piece) < MB else piece for piece in one_huge_cell(1100)))
    assert bomb.stat().st_size < 2 * MB and shared.stat().st_size < MB
    result = measure([(bomb, {}), (bomb, {"unpacked_bytes": 8 << 30}), (liar, {}), (shared, {}), (corners, {}),
                      (prefixed, {"unpacked_bytes": 8 << 30})])
    said = [o["said"] for o in result["outcomes"]]
    assert "the file unpacks to 1.1 GB, more than the limit of 256 MB" in said[0]  # its table of contents says so
    assert "cell A2 holds more than 32,767 characters, the limit" in said[1]  # an operator allowing 8 GB: the cell's limit holds
    assert "xl/worksheets/sheet1.xml in the file unpacks to more than it declares" in said[2]
    assert "with its shared texts written into each cell that uses them, the sheet is larger than 256 MB by row" in said[3]
    # A1 and XFD1048576: calamine would size 17 billion cells (and abort); the reading process's limit stops it
    assert f"reading this file needs more than {MAX_MEMORY_MB} MB of memory" in said[4]
    assert "cell A2 holds more than 32,767 characters, the limit" in said[5]  # <x:c r="A2"> as some libraries write it
    assert all(o["seconds"] < SECONDS for o in result["outcomes"]), result
    assert result["importing_mb"] - result["started_mb"] < GROWTH_MB and result["reading_mb"] < MAX_MEMORY_MB + 64, result


def test_workbooks_as_excel_and_others_write_them_still_import(app: Any, people: None, tmp_path: Path) -> None:
    """Shared texts (rich text too) and a namespace prefix on every element, as Excel, WPS and the
    .NET libraries write them: the checks read them, the rows import."""
    ns = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    sst = (b"<sst " + ns + b' count="4" uniqueCount="4"><si><t>\xe5\xae\xa2\xe6\x88\xb7\xe5\x90\x8d\xe7\xa7\xb0</t></si>'  # 客户名称
           b"<si><t>\xe5\x85\xb1\xe4\xba\xab &amp; \xe7\x94\xb2</t></si>"  # 共享 & 甲
           b"<si><r><t>\xe5\x85\xb1\xe4\xba\xab</t></r><r><rPr><b/></rPr><t>\xe4\xb9\x99</t></r></si><si><t>normal</t></si></sst>")  # 共享 | 乙
    sheet = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n<worksheet ' + ns + b'><dimension ref="A1:B3"/><sheetData>'
             b'<row r="1" spans="1:2"><c r="A1" t="s"><v>0</v></c><c r="B1" t="inlineStr"><is><t>\xe9\x9c\x80\xe6\xb1\x82\xe8\xbf\xab'
             b'\xe5\x88\x87\xe7\xa8\x8b\xe5\xba\xa6</t></is></c></row>'  # 需求迫切程度
             b'<row r="2" spans="1:2"><c r="A2" s="1" t="s"><v>1</v></c><c r="B2" t="s"><v>3</v></c></row>'
             b'<row r="3" spans="1:2"><c r="A3" t="s"><v>2</v></c><c r="B3" t="s"><v>3</v></c></row></sheetData></worksheet>')
    report = run(app, SALES, "customer", workbook(tmp_path / "shared.xlsx", [sheet], shared=sst))
    assert report.committed and report.inserted == 2, report.errors
    assert count(app, "SELECT count(*) FROM customer WHERE name IN ('共享 & 甲', '共享乙')") == 2
    prefixed = (sheet.replace(b"<", b"<x:").replace(b"<x:/", b"</x:").replace(b"<x:?", b"<?")
                .replace(b"xmlns=", b"xmlns:x=").replace(b"\xe5\x85\xb1\xe4\xba\xab", b"\xe5\x89\x8d\xe7\xbc\x80"))  # 共享 → 前缀
    report = run(app, SALES, "customer", workbook(tmp_path / "prefixed.xlsx", [prefixed], shared=sst.replace(
        b"\xe5\x85\xb1\xe4\xba\xab", b"\xe5\x89\x8d\xe7\xbc\x80")))
    assert report.committed and report.inserted == 2 and report.total == 2, report.errors
    assert count(app, "SELECT count(*) FROM customer WHERE name IN ('前缀 & 甲', '前缀乙')") == 2


def test_csv_lines_and_fields_without_end_are_refused_in_seconds(tmp_path: Path) -> None:
    line = tmp_path / "line.csv"
    with line.open("wb") as fh:
        fh.write("客户名称,需求迫切程度\n".encode())
        for _ in range(40):
            fh.write(b"a" * MB)  # 40 MB with no line break
    field = tmp_path / "field.csv"
    field.write_text("客户名称,需求迫切程度\nnormal," + "长" * 100_000 + "\n", encoding="utf-8")
    carriage = tmp_path / "carriage.csv"  # lines ended by \r alone (old Mac files) are lines too
    carriage.write_bytes("客户名称,需求迫切程度\r".encode() + b"x,normal\r" * 10)
    result = measure([(line, {}), (field, {}), (carriage, {"rows": 3})])
    said = [o["said"] for o in result["outcomes"]]
    assert "row 2 is larger than 4 MB and cannot be imported" in said[0]
    assert "cell B2 holds 100,000 characters, more than the limit of 32,767" in said[1]
    assert "the file has more than 3 data rows" in said[2]
    assert all(o["seconds"] < SECONDS for o in result["outcomes"]), result
    assert result["importing_mb"] - result["started_mb"] < GROWTH_MB, result


def test_formula_errors_and_merged_blocks_by_the_hundred_thousand_are_refused(app: Any, people: None, tmp_path: Path) -> None:
    header = '<row r="1">' + text_cell("A1", "客户名称") + text_cell("B1", "需求迫切程度") + "</row>"
    errors = (f'<row r="{n}">' + "".join(f'<c r="{c}{n}" t="e"><v>#N/A</v></c>' for c in "ABCDEFGHIJK") + "</row>" for n in range(2, 10_002))
    refused(app, raw_xlsx(tmp_path / "errors.xlsx", [header, *errors]), "more than 100,000 formula cells have no usable result", SALES)
    merged = (f'<row r="{n}">' + text_cell(f"A{n}", f"合并{n}") + text_cell(f"B{n}", "normal") + "</row>" for n in range(2, 60_002))
    refused(app, raw_xlsx(tmp_path / "merged.xlsx", [header, *merged], merges="A2:B60001"), "merged cells cover more than 100,000 cells", SALES)


def test_the_limits_are_configurable(app: Any, people: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    header = '<row r="1">' + text_cell("A1", "客户名称") + text_cell("B1", "需求迫切程度") + "</row>"
    path = raw_xlsx(tmp_path / "long.xlsx", [header, '<row r="2">' + text_cell("A2", "长" * 200) + text_cell("B2", "normal") + "</row>"])
    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_CELL_CHARS", 100)
    refused(app, path, "cell A2 holds 200 characters, more than the limit of 100", SALES)
    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_CELL_CHARS", 1000)
    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_UNPACKED_BYTES", 1000)
    refused(app, path, "the file unpacks to", SALES)
    monkeypatch.setenv("CRM_IMPORT_MAX_MEMORY_MB", "123")  # from the environment when the config does not say
    assert import_limits(app).memory_mb == 123 and import_limits(app).unpacked_bytes == 1000


def test_a_file_wrong_everywhere_keeps_a_bounded_part_of_its_errors_in_memory_and_reports_all(
        app: Any, people: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """150,000 rows with every cell wrong are 2 million messages (500 MB held, and as many comments
    openpyxl holds until it saves): past KEPT_ERRORS cells they wait in a file, past COMMENTED the
    cells are only filled."""
    monkeypatch.setattr(importer, "KEPT_ERRORS", 4)
    monkeypatch.setattr(importer, "COMMENTED", 3)
    path = xlsx(tmp_path / "wrong.xlsx", [["客户名称", "需求迫切程度"], *[[f"处处错客户{i}", "非常急"] for i in range(10)]])
    report = run(app, SALES, "customer", path)
    assert not report.committed and report.failed == 10 and list(report.errors) == [2, 3, 4, 5]
    ws = load_workbook(report.report_path).active
    rows = list(ws.iter_rows(min_row=2))
    assert [r[2].value.split(":")[0] for r in rows] == [f"第 {n} 行" for n in range(2, 12)]  # every bad row, in order
    assert all("'非常急'" in r[2].value and r[1].fill.fgColor.rgb in ("00FFC7CE", "FFFFC7CE") for r in rows)
    assert [r[1].comment is not None for r in rows] == [True] * 3 + [False] * 7


def peak_rss_reset() -> bool:
    """Restart this process's peak memory count (Linux); False where that cannot be done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def test_the_web_import_and_its_job_refuse_a_workbook_bomb_at_once_without_growing(app: Any, people: None, tmp_path: Path) -> None:
    bomb = workbook(tmp_path / "bomb.xlsx", one_huge_cell(1100))
    text = b"\xe5\xae\xa2" * 10_000
    shared = workbook(tmp_path / "shared.xlsx", rows(b'<row r="%d"><c r="A%d" t="s"><v>0</v></c></row>' % (n, n) for n in range(2, 40_002)),
                      shared=b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>' + text + b"</t></si></sst>")
    c = app.test_client()
    login(c, MANAGER, PASSWORD)
    jobs = count(app, "SELECT count(*) FROM crm_import_job")
    measured = peak_rss_reset()
    before = peak_rss_mb()
    for path, said in ((bomb, "文件解压后有 1.1 GB,超过单次导入上限 256 MB"), (shared, "共享文本写入各单元格后,工作表超过 256 MB")):
        page = c.get("/customerview/import/")
        start = time.monotonic()
        r = c.post("/customerview/import/", data={"csrf_token": csrf_token(page.text), "mode": "insert", "file": (path.open("rb"), path.name)},
                   content_type="multipart/form-data")
        assert time.monotonic() - start < SECONDS
        assert r.status_code == 200 and said in html.unescape(r.text), r.text[-2000:]
    assert count(app, "SELECT count(*) FROM crm_import_job") == jobs
    with app.app_context():  # a job whose file was stored before the check (as one queued before this version)
        crm = app.extensions["crm"]
        user = crm.appbuilder.sm.find_user(username=MANAGER)
        job = create_job(crm.db.engine, "customer", user.id, shared.name, shared.read_bytes(), {"mode": "insert"})
        start = time.monotonic()
        assert run_job(app, job["id"]) == "failed" and time.monotonic() - start < SECONDS
        result = json.loads(crm.db.session.execute(sa.select(JOBS.c.result).where(JOBS.c.id == job["id"])).scalar())
    assert "the sheet is larger than 256 MB by row" in result["problems"][0]["en"]  # kept in both languages, shown in one
    if measured:
        assert peak_rss_mb() - before < GROWTH_MB
