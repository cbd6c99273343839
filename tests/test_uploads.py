"""Real files in fields of type ``file``: uploaded through the record's form, checked (extension,
content, size), stored under a random name, downloaded byte-identical only by those who may read
the record and see the field; no path traversal; the REST API cannot point a field at a file."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.access.accounts import add_user
from app.web import uploads
from tests.conftest import api_token, csrf_token, login

PASSWORD = "upload-Pass-1"  # noqa: S105 - test-only
BASE = "/masterdatarequestview"  # the shipped workbook's entity with a file field (evidence)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + os.urandom(3000) + b"\n%%EOF\n"


def png_bytes() -> bytes:
    """A real 2×2 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes([255, 0, 0] * 2) for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module", autouse=True)
def upload_dir(app: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    before = app.config["CRM_VAR_DIR"]
    app.config["CRM_VAR_DIR"] = str(tmp_path_factory.mktemp("var"))
    yield Path(app.config["CRM_VAR_DIR"]) / "uploads"
    app.config["CRM_VAR_DIR"] = before


@pytest.fixture(scope="module")
def users(app: Any) -> dict[str, str]:
    made = {}
    for key, role in (("a", "业务员"), ("b", "业务员"), ("boss", "系统管理员")):
        made[key] = f"upl_{key}"
        add_user(app, made[key], [role], PASSWORD, departments=[f"上传{key}部"])
    return made


def signed_in(app: Any, users: dict[str, str], who: str) -> Any:
    c = app.test_client()
    login(c, users[who], PASSWORD)
    return c


def raw(app: Any, sql: str, **params: Any) -> list[Any]:
    with app.app_context():
        return list(app.extensions["crm"].db.session.execute(sa.text(sql), params).all())


def stored_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def add_request(c: Any, name: str, data: bytes | None = None, filename: str = "") -> Any:
    form: dict[str, Any] = {"csrf_token": csrf_token(c.get(f"{BASE}/add").text), "request_type": "create",
                            "customer_name": name, "reason": "上传测试"}
    if data is not None:
        form["evidence"] = (io.BytesIO(data), filename)
    return c.post(f"{BASE}/add", data=form, content_type="multipart/form-data")


def record_of(app: Any, name: str) -> tuple[int, Any] | None:
    rows = raw(app, "SELECT id, evidence FROM master_data_request WHERE customer_name = :n", n=name)
    return (rows[0][0], rows[0][1]) if rows else None


def edit_request(c: Any, app: Any, pk: int, data: bytes, filename: str) -> Any:
    page = c.get(f"{BASE}/edit/{pk}").text
    version = re.search(r'name="crm_version"[^>]*value="(\d+)"', page) or re.search(r'value="(\d+)"[^>]*name="crm_version"', page)
    name = raw(app, "SELECT customer_name FROM master_data_request WHERE id = :i", i=pk)[0][0]
    form = {"csrf_token": csrf_token(page), "request_type": "create", "customer_name": name, "reason": "上传测试",
            "crm_version": version.group(1) if version else "", "evidence": (io.BytesIO(data), filename)}
    return c.post(f"{BASE}/edit/{pk}", data=form, content_type="multipart/form-data")


def test_pdf_and_png_upload_and_download_byte_identical(app: Any, users: dict[str, str], upload_dir: Path) -> None:
    c = signed_in(app, users, "a")
    r = add_request(c, "上传PDF客户", PDF, "账务分析 2026.pdf")
    assert r.status_code == 302, r.text
    pk, reference = record_of(app, "上传PDF客户")
    token, name = reference.split("/")
    assert re.fullmatch(r"[0-9a-f]{32}", token) and name == "账务分析 2026.pdf"
    assert (upload_dir / token).read_bytes() == PDF  # stored under the random name only
    show = c.get(f"{BASE}/show/{pk}").text
    assert f'href="{BASE}/file/{pk}/evidence"' in show and "账务分析 2026.pdf" in show
    got = c.get(f"{BASE}/file/{pk}/evidence")
    assert got.status_code == 200 and got.data == PDF
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert got.headers["X-Content-Type-Options"] == "nosniff" and got.mimetype == "application/pdf"
    # replacing it with a PNG through the edit form
    png = png_bytes()
    r = edit_request(c, app, pk, png, "现场照片.png")
    assert r.status_code == 302, r.text
    _, reference2 = record_of(app, "上传PDF客户")
    assert reference2.endswith("/现场照片.png") and reference2 != reference
    got = c.get(f"{BASE}/file/{pk}/evidence")
    assert got.data == png and got.mimetype == "image/png"
    assert "现场照片.png" in c.get(f"{BASE}/edit/{pk}").text  # the form says which file it holds
    # an edit without a new file keeps the current one; posted text cannot replace it
    page = c.get(f"{BASE}/edit/{pk}").text
    version = re.search(r'name="crm_version"[^>]*value="(\d+)"', page) or re.search(r'value="(\d+)"[^>]*name="crm_version"', page)
    form = {"csrf_token": csrf_token(page), "request_type": "create", "customer_name": "上传PDF客户", "reason": "只改理由",
            "crm_version": version.group(1), "evidence": "../../etc/passwd"}
    assert c.post(f"{BASE}/edit/{pk}", data=form).status_code == 302
    assert record_of(app, "上传PDF客户")[1] == reference2


def test_an_optional_file_can_be_removed_and_the_trail_says_so(app: Any, users: dict[str, str], upload_dir: Path) -> None:
    """The edit form offers "删除此文件" for an optional file field: ticked, the field is emptied
    (audited: the old reference is in the trail); a new upload wins over the box."""
    import json

    c = signed_in(app, users, "a")
    assert add_request(c, "删除附件客户", PDF, "待删除.pdf").status_code == 302
    pk, reference = record_of(app, "删除附件客户")
    page = c.get(f"{BASE}/edit/{pk}").text
    assert 'name="evidence__remove"' in page and "删除此文件" in page
    version = re.search(r'name="crm_version"[^>]*value="(\d+)"', page) or re.search(r'value="(\d+)"[^>]*name="crm_version"', page)
    form = {"csrf_token": csrf_token(page), "request_type": "create", "customer_name": "删除附件客户", "reason": "上传测试",
            "crm_version": version.group(1), "evidence__remove": "1", "evidence": (io.BytesIO(png_bytes()), "新照片.png")}
    assert c.post(f"{BASE}/edit/{pk}", data=form, content_type="multipart/form-data").status_code == 302
    _, replaced = record_of(app, "删除附件客户")
    assert replaced.endswith("/新照片.png")  # a new file and the box together: the new file is kept
    page = c.get(f"{BASE}/edit/{pk}").text
    version = re.search(r'name="crm_version"[^>]*value="(\d+)"', page) or re.search(r'value="(\d+)"[^>]*name="crm_version"', page)
    form = {"csrf_token": csrf_token(page), "request_type": "create", "customer_name": "删除附件客户", "reason": "上传测试",
            "crm_version": version.group(1), "evidence__remove": "1"}
    assert c.post(f"{BASE}/edit/{pk}", data=form).status_code == 302
    assert record_of(app, "删除附件客户")[1] is None
    assert c.get(f"{BASE}/file/{pk}/evidence").status_code == 404
    assert 'name="evidence__remove"' not in c.get(f"{BASE}/edit/{pk}").text  # nothing left to remove
    changes = [json.loads(r[0]) for r in raw(app, "SELECT changes FROM crm_audit WHERE entity = 'master_data_request' "
                                                  "AND record_id = :i AND action = 'update' ORDER BY id", i=pk)]
    assert changes[-1]["evidence"] == [replaced, None]
    assert (upload_dir / replaced.split("/")[0]).is_file()  # the trail still names it: the file is kept


@pytest.mark.parametrize(("data", "filename", "message"), [
    (b"MZ\x90\x00" + os.urandom(200), "setup.exe", "不接受此类文件"),
    (b"<html><script>alert(1)</script></html>", "report.pdf", "文件内容与扩展名 .pdf 不符"),
    (b"PK\x03\x04 not really a zip", "data.xlsx", "文件内容与扩展名 .xlsx 不符"),
    (b"", "empty.txt", "文件是空的"),
])
def test_refused_files_are_named_on_the_field_and_nothing_is_stored(app: Any, users: dict[str, str], upload_dir: Path,
                                                                    data: bytes, filename: str, message: str) -> None:
    c = signed_in(app, users, "a")
    before = stored_files(upload_dir)
    name = f"拒绝{filename}"
    r = add_request(c, name, data, filename)
    assert r.status_code == 200 and message in r.text and "(" in r.text
    assert record_of(app, name) is None and stored_files(upload_dir) == before


def test_oversize_file_is_refused(app: Any, users: dict[str, str], upload_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_UPLOAD_MAX_BYTES", 1024)
    c = signed_in(app, users, "a")
    before = stored_files(upload_dir)
    r = add_request(c, "超大文件客户", PDF, "big.pdf")
    assert r.status_code == 200 and "文件过大" in r.text and "file too large" not in r.text  # the page's language only
    c.get("/lang/en")
    r = add_request(c, "超大文件客户", PDF, "big.pdf")
    assert r.status_code == 200 and "file too large: the limit is 1,024 bytes" in r.text and "文件过大" not in r.text
    c.get("/lang/zh")
    assert record_of(app, "超大文件客户") is None and stored_files(upload_dir) == before
    # an existing record keeps its file when a replacement is refused
    monkeypatch.setitem(app.config, "CRM_UPLOAD_MAX_BYTES", 1_000_000)
    assert add_request(c, "保留原文件客户", PDF, "ok.pdf").status_code == 302
    pk, reference = record_of(app, "保留原文件客户")
    r = edit_request(c, app, pk, b"<html></html>", "fake.png")
    assert r.status_code == 200 and "不符" in r.text and record_of(app, "保留原文件客户")[1] == reference


def _many_parts(n: int) -> bytes:
    """An .xlsx-looking zip of ``n`` empty parts: a table of contents of several MB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for i in range(n):
            z.writestr(f"xl/p{i}.xml", b"")
    return out.getvalue()


def test_office_files_that_unpack_to_gigabytes_are_refused_at_once(app: Any, users: dict[str, str], upload_dir: Path,
                                                                    tmp_path: Path) -> None:
    """A file field checks an .xlsx/.docx as the import checks its workbook (issue 30): one that
    says it unpacks to 1.1 GB, one that says 10 KB but inflates to 1.1 GB, and one of 60,000
    parts are each refused within a second or two, named on the field, nothing stored."""
    import time

    from tests.test_import_limits import one_huge_cell, workbook

    bomb = workbook(tmp_path / "bomb.xlsx", one_huge_cell(1100)).read_bytes()
    liar = workbook(tmp_path / "liar.xlsx", one_huge_cell(1100), claimed={"xl/worksheets/sheet1.xml": 10_000}).read_bytes()
    crowd = _many_parts(60_000)
    assert all(len(data) < uploads.MAX_BYTES for data in (bomb, liar, crowd))
    c = signed_in(app, users, "a")
    before = stored_files(upload_dir)
    for data, said in ((bomb, "文件解压后超过 256 MB,不予接受(可能是压缩炸弹):bomb.xlsx"),
                       (liar, "文件结构异常,不予接受:bomb.xlsx"), (crowd, "文件结构异常,不予接受:bomb.xlsx")):
        started = time.monotonic()
        r = add_request(c, "压缩炸弹客户", data, "bomb.xlsx")
        assert time.monotonic() - started < 5
        assert r.status_code == 200 and said in r.text, re.sub(r"<[^>]+>", " ", r.text)[-3000:]
    assert record_of(app, "压缩炸弹客户") is None and stored_files(upload_dir) == before
    c.get("/lang/en")
    r = add_request(c, "压缩炸弹客户", bomb, "bomb.xlsx")
    assert "unpacks to more than 256 MB" in r.text and "解压" not in r.text
    c.get("/lang/zh")


def test_another_salespersons_file_and_history_are_not_reachable(app: Any, users: dict[str, str]) -> None:
    assert add_request(signed_in(app, users, "b"), "乙的附件客户", PDF, "乙的.pdf").status_code == 302
    pk, _ = record_of(app, "乙的附件客户")
    c = signed_in(app, users, "a")
    for path in (f"{BASE}/file/{pk}/evidence", f"{BASE}/history/{pk}", f"{BASE}/history/{pk}/export/", f"{BASE}/show/{pk}"):
        r = c.get(path)
        assert r.status_code in (403, 404), path
        assert PDF[:40] not in r.data and "乙的.pdf" not in r.get_data(as_text=True)
    assert signed_in(app, users, "boss").get(f"{BASE}/file/{pk}/evidence").data == PDF


def test_a_hidden_file_field_is_not_downloadable(app: Any, users: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    c = signed_in(app, users, "a")
    assert add_request(c, "隐藏附件客户", PDF, "机密.pdf").status_code == 302
    pk, _ = record_of(app, "隐藏附件客户")
    state = app.extensions["crm"]
    hiding = tuple(dataclasses.replace(p, hidden_fields=(*p.hidden_fields, "evidence"))
                   if p.role == "业务员" and p.entity == "master_data_request" else p for p in state.spec.permissions)
    monkeypatch.setattr(state, "spec", dataclasses.replace(state.spec, permissions=hiding))
    r = c.get(f"{BASE}/file/{pk}/evidence")
    assert r.status_code == 403 and PDF[:40] not in r.data
    assert "机密.pdf" not in c.get(f"{BASE}/show/{pk}").text
    monkeypatch.undo()
    assert c.get(f"{BASE}/file/{pk}/evidence").data == PDF


def test_no_path_traversal(app: Any, users: dict[str, str], upload_dir: Path, tmp_path: Path) -> None:
    secret = Path(app.config["CRM_VAR_DIR"]) / "secret.txt"
    secret.write_text("不该被下载", encoding="utf-8")
    c = signed_in(app, users, "boss")
    # a crafted upload name keeps only its last part
    assert add_request(c, "路径客户", PDF, "../../secret.pdf").status_code == 302
    pk, reference = record_of(app, "路径客户")
    assert reference.endswith("/secret.pdf") and ".." not in reference
    assert stored_files(upload_dir.parent) >= {"uploads", "secret.txt"}
    # crafted field names and crafted stored values lead nowhere
    for path in (f"{BASE}/file/{pk}/..%2Fsecret.txt", f"{BASE}/file/{pk}/../../secret.txt", f"{BASE}/file/{pk}/reason",
                 f"{BASE}/file/{pk}/%2e%2e"):
        r = c.get(path)
        assert r.status_code == 404 and "不该被下载" not in r.get_data(as_text=True), path
    for crafted in ("../secret.txt", "../../var/secret.txt", "0123456789abcdef0123456789abcdef/../../secret.txt",
                    "../secret.txt/x.pdf", "/etc/passwd"):
        with app.app_context():
            session = app.extensions["crm"].db.session
            session.execute(sa.text("UPDATE master_data_request SET evidence = :e WHERE id = :i"), {"e": crafted, "i": pk})
            session.commit()
        r = c.get(f"{BASE}/file/{pk}/evidence")
        assert r.status_code == 404 and "不该被下载" not in r.get_data(as_text=True), crafted
        assert uploads.path_of(crafted, app) is None


def test_rest_api_shows_the_reference_and_refuses_to_point_at_files(app: Any, users: dict[str, str]) -> None:
    c = signed_in(app, users, "a")
    assert add_request(c, "接口附件甲", PDF, "甲.pdf").status_code == 302
    assert add_request(signed_in(app, users, "b"), "接口附件乙", PDF, "乙.pdf").status_code == 302
    pk, reference = record_of(app, "接口附件甲")
    _, other = record_of(app, "接口附件乙")
    headers = api_token(app.test_client(), users["a"], PASSWORD)
    api = app.test_client()
    body = api.get(f"/api/v1/master_data_request/{pk}", headers=headers).json["result"]
    assert body["evidence"] == reference
    for bad in ("../../etc/passwd", other, "0123456789abcdef0123456789abcdef/x.pdf"):
        r = api.put(f"/api/v1/master_data_request/{pk}", json={"evidence": bad, "version": body["version"]}, headers=headers)
        assert r.status_code == 422 and "evidence" in r.json["message"], bad
        r = api.post("/api/v1/master_data_request/", json={"request_type": "create", "customer_name": "接口新建",
                                                           "reason": "x", "evidence": bad}, headers=headers)
        assert r.status_code == 422 and "evidence" in r.json["message"]
    assert record_of(app, "接口附件甲")[1] == reference and record_of(app, "接口附件新建") is None
    # repeating the current value or clearing it is fine
    r = api.put(f"/api/v1/master_data_request/{pk}", json={"evidence": reference, "reason": "同值", "version": body["version"]},
                headers=headers)
    assert r.status_code == 200, r.text
    r = api.put(f"/api/v1/master_data_request/{pk}", json={"evidence": None, "version": body["version"] + 1}, headers=headers)
    assert r.status_code == 200 and record_of(app, "接口附件甲")[1] is None


def _zip(folder: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr(f"{folder}document.xml", "<x/>")
    return out.getvalue()


@pytest.mark.parametrize(("filename", "data", "ok"), [
    ("a.xlsx", _zip("xl/"), True), ("a.docx", _zip("word/"), True), ("a.xlsx", _zip("word/"), False),
    ("a.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), True), ("a.doc", b"MZ" + bytes(100), False),
    ("a.csv", "名称,数量\n甲,1\n".encode(), True), ("a.txt", "\ufeff说明".encode(), True), ("a.txt", b"\x00\x01\x02binary", False),
    ("gbk.csv", "名称,数量\n甲,1\n".encode("gbk"), True), ("a.txt", bytes(range(0x80, 0x100)) * 4, False),
    ("a.jpg", b"\xff\xd8\xff\xe0" + bytes(50), True), ("a.gif", b"GIF89a" + bytes(20), True), ("a.png", PDF, False),
    ("a.PDF", PDF, True), ("a.html", b"<html></html>", False), ("noext", PDF, False),
])
def test_type_check_by_extension_and_content(filename: str, data: bytes, ok: bool) -> None:
    if ok:
        assert uploads.check(filename, data, 10_000_000) == filename
    else:
        with pytest.raises(uploads.UploadRefused):
            uploads.check(filename, data, 10_000_000)


def test_safe_names_fit_the_column() -> None:
    assert uploads.safe_name("C:\\Users\\x\\报告.pdf") == "报告.pdf"
    assert uploads.safe_name("a\x00b<>.pdf") == "a_b__.pdf"
    long = uploads.safe_name("长" * 400 + ".pdf")
    assert long.endswith(".pdf") and len(f"{'0' * 32}/{long}") <= 255
    assert uploads.safe_name("../..") == "file"
