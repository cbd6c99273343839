"""Files of fields of type ``file``: checked, stored under ``<CRM_VAR_DIR>/uploads/`` with a random
server-side name, referenced from the record's column as ``<32 hex>/<safe original name>``, and
served back only to people who may read the record and see the field.

A file is accepted when its extension is on the allowlist *and* its first bytes are of that kind
(a PDF starts with ``%PDF-``, an .xlsx is a zip holding ``xl/``…), within ``CRM_UPLOAD_MAX_BYTES``.
An Office file (a zip) is held to the import's limits before it is accepted (``app.io.zipparts``):
a table of contents under 1 MB (some 20,000 parts at most), no part encrypted or oddly compressed,
and every part inflated in bounded chunks to exactly the size it claims, all of them together
within ``CRM_IMPORT_MAX_UNPACKED_BYTES`` — so a zip bomb is refused in well under a second and is
never kept to be opened by a colleague's Excel.
The reference's random part alone names the file on disk, so no stored or requested value can
reach outside the uploads folder.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

from flask import abort, current_app, request, send_file, url_for
from markupsafe import Markup, escape
from werkzeug.datastructures import FileStorage
from wtforms import Field as WTField
from wtforms.utils import unset_value
from wtforms.validators import ValidationError

from app.io.limits import MAX_UNPACKED_BYTES, ImportFileError, Limits, UnpacksTooLarge, size_text
from app.io.zipparts import Budget, drain, open_package
from app.messages import Joined, localized, msg
from app.web.i18n import pick

MAX_BYTES = 10 * 1024 * 1024  # default of CRM_UPLOAD_MAX_BYTES
# extension → the kind its content must sniff as
KINDS = {".pdf": "pdf", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif", ".xlsx": "xlsx", ".docx": "docx",
         ".xls": "ole", ".doc": "ole", ".txt": "text", ".csv": "text"}
MIMETYPES = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
             ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             ".xls": "application/vnd.ms-excel", ".doc": "application/msword", ".txt": "text/plain", ".csv": "text/csv"}
MAGIC = (("pdf", b"%PDF-"), ("png", b"\x89PNG\r\n\x1a\n"), ("jpeg", b"\xff\xd8\xff"), ("gif", b"GIF87a"), ("gif", b"GIF89a"),
         ("zip", b"PK\x03\x04"), ("ole", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"))
ZIP_PARTS = {"xlsx": "xl/", "docx": "word/"}  # an Office Open XML file is a zip with this folder
REFERENCE = re.compile(r"^([0-9a-f]{32})/([^/\\\x00-\x1f\x7f]{1,200})$")
NAME_MAX = 200


class UploadRefused(ValueError):
    """A file that is not kept; the message is bilingual and says what to do."""


def max_bytes(app: Any = None) -> int:
    """The size cap of one file: ``CRM_UPLOAD_MAX_BYTES`` (app config or environment)."""
    app = app or current_app
    return int(app.config.get("CRM_UPLOAD_MAX_BYTES") or os.environ.get("CRM_UPLOAD_MAX_BYTES") or MAX_BYTES)


def uploads_dir(app: Any = None) -> Path:
    app = app or current_app
    return Path(app.config["CRM_VAR_DIR"]) / "uploads"


def _is_text(data: bytes) -> bool:
    """Plain text in UTF-8 or in GB18030/GBK (what Chinese Excel and Notepad write), no control bytes."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return not any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f" for ch in text)
    return False


def _zip_kind(data: bytes, unpacked: int) -> str | None:
    """xlsx, docx or zip by the parts of a zip checked as an import checks it (``app.io.zipparts``);
    None when it is no zip at all; :class:`ImportFileError` (:class:`UnpacksTooLarge`: it inflates
    past ``unpacked`` bytes) when it is one that cannot be kept."""
    if not zipfile.is_zipfile(io.BytesIO(data)):  # its end record only: no table of contents read yet
        return None
    fh = io.BytesIO(data)
    z = open_package(fh, unpacked)  # refuses a table of contents over 1 MB, encrypted parts, sizes past the limit
    budget = Budget(unpacked)
    for info in z.infolist():  # inflated once, in 1 MB chunks: a part larger than it claims stops at once
        drain(fh, info, budget)
    names = z.namelist()
    return next((k for k, folder in ZIP_PARTS.items() if any(n.startswith(folder) for n in names)), "zip")


def sniff(data: bytes, unpacked: int = MAX_UNPACKED_BYTES) -> str | None:
    """The kind of a file from its content: pdf, png, jpeg, gif, xlsx, docx, zip, ole, text, or None
    (a zip checked within ``unpacked`` bytes, see :func:`_zip_kind`)."""
    for kind, magic in MAGIC:
        if data.startswith(magic):
            return kind if kind != "zip" else _zip_kind(data, unpacked)
    return "text" if data and _is_text(data) else None


def safe_name(filename: str) -> str:
    """The original name without folders, control or reserved characters, at most 200 characters
    (the extension kept)."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join("_" if unicodedata.category(ch).startswith("C") or ch in '<>:"|?*' else ch for ch in name).strip(" .")
    if len(name) > NAME_MAX:
        stem, ext = os.path.splitext(name)
        name = stem[: NAME_MAX - len(ext)] + ext
    return name or "file"


def check(filename: str, data: bytes, limit: int, unpacked: int = MAX_UNPACKED_BYTES) -> str:
    """The file's safe name, or :class:`UploadRefused` saying why it is not accepted (``limit``: its
    bytes; ``unpacked``: what an Office file may inflate to)."""
    name = safe_name(filename)
    ext = os.path.splitext(name)[1].lower()
    if ext not in KINDS:
        raise UploadRefused(msg("不接受此类文件:%(name)s(允许 %(kinds)s)", name=name, kinds="、".join(sorted(KINDS)),
                                kinds_en=", ".join(sorted(KINDS))))
    if len(data) > limit:
        raise UploadRefused(msg("文件过大:%(size)s 字节,上限 %(limit)s 字节", size=f"{len(data):,}", limit=f"{limit:,}"))
    if not data:
        raise UploadRefused(msg("文件是空的:%(name)s", name=name))
    try:
        kind = sniff(data, unpacked)
    except UnpacksTooLarge:
        raise UploadRefused(msg("文件解压后超过 %(limit)s,不予接受(可能是压缩炸弹):%(name)s", limit=size_text(unpacked), name=name)) from None
    except ImportFileError as exc:  # too many parts, encrypted ones, a part larger than it says …
        raise UploadRefused(Joined(msg("文件结构异常,不予接受:%(name)s", name=name), " (", *exc.problems, ")")) from None
    if kind != KINDS[ext]:
        raise UploadRefused(msg("文件内容与扩展名 %(ext)s 不符:%(name)s", ext=ext, name=name))
    return name


def store(data: bytes, name: str, app: Any = None) -> str:
    """Write a checked file under a random name; returns its reference ``<32 hex>/<name>``."""
    folder = uploads_dir(app)
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    tmp = folder / f".{token}.part"
    tmp.write_bytes(data)
    tmp.replace(folder / token)  # whole or absent, never half a file under its final name
    return f"{token}/{name}"


def parse(reference: Any) -> tuple[str, str] | None:
    """(random id, original name) of a well-formed reference, else None."""
    m = REFERENCE.match(reference) if isinstance(reference, str) else None
    return (m.group(1), m.group(2)) if m else None


def display_name(reference: Any) -> str:
    parsed = parse(reference)
    return parsed[1] if parsed else ("" if reference is None else str(reference))


def path_of(reference: Any, app: Any = None) -> Path | None:
    """Where a reference's file is, if the reference is well formed and the file exists."""
    parsed = parse(reference)
    if parsed is None:
        return None
    path = uploads_dir(app) / parsed[0]
    return path if path.is_file() else None


# -- forms --------------------------------------------------------------------------------------
REMOVE_SUFFIX = "__remove"  # the form key of an optional file field's "remove" box


class FileInputWidget:
    """A file input, with the current file's name (a download link on an existing record) and,
    when the field is optional, a box to remove it."""

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        current = field.object_data if parse(field.object_data) else None
        parts = [Markup('<input type="file" id="{}" name="{}" class="form-control">').format(field.id, field.name)]
        if current:
            link = field.link() if callable(getattr(field, "link", None)) else None
            name = display_name(current)
            shown = Markup('<a href="{}">{}</a>').format(link, name) if link else escape(name)
            parts.append(Markup('<p class="help-block crm-current-file">{} {}</p>').format(pick("当前文件:", "Current file:"), shown))
            if not field.required:
                parts.append(Markup('<label class="checkbox-inline crm-remove-file"><input type="checkbox" name="{}{}" value="1"> {}'
                                    '</label>').format(field.name, REMOVE_SUFFIX, pick("删除此文件", "Remove this file")))
        return Markup("").join(parts)


class FileUploadField(WTField):
    """A ``file`` field of a form: an upload is checked on validate and stored on populate (so a
    refused form stores nothing); no upload keeps the current file, unless the "remove" box of an
    optional field is ticked. Posted text is ignored, so a form can never point the field at
    another file."""

    widget = FileInputWidget()
    upload: FileStorage | None  # the file posted, until it is stored
    checked: tuple[str, bytes] | None  # its stored name and content, once checked

    def __init__(self, *args: Any, required: bool = False, link: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.required, self.link, self.upload, self.checked, self.remove = required, link, None, None, False

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        super().process(formdata, data, extra_filters)
        # "remove" counts for an optional field only, and never together with a new upload
        self.remove = bool(formdata is not None and not self.required and formdata.get(f"{self.name}{REMOVE_SUFFIX}"))

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.upload = next((v for v in valuelist if isinstance(v, FileStorage) and v.filename), None)
        self.data = self.object_data

    def pre_validate(self, form: Any) -> None:
        self.checked = None
        if self.upload is None:
            if self.required and not parse(self.object_data):
                raise ValidationError(msg("请选择文件").localized())
            return
        limit = max_bytes()
        data = self.upload.stream.read(limit + 1)
        try:
            name = check(self.upload.filename or "", data, limit, Limits.of(current_app.config).unpacked_bytes)
        except UploadRefused as exc:
            raise ValidationError(localized(exc.args[0])) from exc
        self.checked = (name, data)

    def populate_obj(self, obj: Any, name: str) -> None:
        """A checked upload is stored and referenced; "remove" empties the field (the audit trail
        records the old reference; the stored file is kept, as the trail's history names it)."""
        if self.checked is not None:
            setattr(obj, name, store(self.checked[1], self.checked[0]))
            self.checked = None
        elif self.remove and self.upload is None:
            setattr(obj, name, None)


def form_field(label: Any, description: str, required: bool, link: Any = None) -> FileUploadField:
    return FileUploadField(label, description=description, required=required, link=link)


# -- the record page and the download --------------------------------------------------------
def show_link(view: Any, field: str) -> Any:
    """A formatter: on the record's own page the file's name links to its download; elsewhere the
    name alone (a list does not know which record a value belongs to)."""

    def fmt(value: Any) -> Any:
        if value in (None, ""):
            return ""
        pk = (request.view_args or {}).get("pk")
        if parse(value) and pk is not None and request.endpoint == f"{view.endpoint}.show":
            return Markup('<a class="crm-file" href="{}">{}</a>').format(url_for(f"{view.endpoint}.file", pk=pk, field=field),
                                                                        display_name(value))
        return display_name(value)

    return fmt


def send(reference: Any) -> Any:
    """The file of a reference as a download (never rendered inline by the browser)."""
    path = path_of(reference)
    if path is None:
        abort(404)
    name = display_name(reference)
    ext = os.path.splitext(name)[1].lower()
    response = send_file(path, as_attachment=True, download_name=name, mimetype=MIMETYPES.get(ext, "application/octet-stream"),
                         max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def download(view: Any, pk: Any, field: str) -> Any:
    """A record's file for someone who may read the record (row scope) and see the field."""
    from app.access.scope import current_hidden

    entity = current_app.extensions["crm"].spec.entity(view.entity)
    f = entity.field(field) if entity is not None else None
    if f is None or f.type != "file":
        abort(404)
    item = view.datamodel.get(pk, view._base_filters)
    if item is None:
        abort(404)
    if field in current_hidden(view.entity):
        abort(403)
    return send(getattr(item, field, None))


def api_refusals(entity: Any, body: Any, item: Any) -> dict[str, list[str]]:
    """A REST body may leave a file field out, clear it (null) or repeat its current value — never
    point it at another file: files arrive by upload only."""
    if not isinstance(body, dict):
        return {}
    refused: dict[str, list[str]] = {}
    for f in entity.fields:
        if f.type == "file" and f.name in body:
            value = body[f.name]
            if value is None or (item is not None and value == getattr(item, f.name, None)):
                continue
            refused[f.name] = [msg("文件只能通过上传设置,不能填写引用")]
    return refused


def edit_link(view: Any, field: str) -> Any:
    """The current file's download link on the record's edit form (None elsewhere)."""

    def link() -> str | None:
        pk = (request.view_args or {}).get("pk")
        if pk is None or request.endpoint != f"{view.endpoint}.edit":
            return None
        return url_for(f"{view.endpoint}.file", pk=pk, field=field)

    return link
