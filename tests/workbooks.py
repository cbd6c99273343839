"""Build small workbooks in code, so each test shows the rows it depends on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook


def write_workbook(path: Path, sheets: dict[str, list[dict[str, Any]]]) -> Path:
    """Write ``{sheet: [row dict, …]}`` to ``path``; headers are the union of the rows' keys."""
    wb = Workbook(write_only=True)  # streamed: a third of the time of a workbook held in memory
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        headers: list[str] = []
        for row in rows:
            for key in row:
                if key not in headers:
                    headers.append(key)
        ws.append(headers)
        for row in rows:
            ws.append([row.get(h) for h in headers])
    wb.save(path)
    return path


def read_sheets(path: Path) -> dict[str, list[dict[str, Any]]]:
    """``{sheet: [row dict, …]}`` of a workbook (the shipped one, to edit in code and write again)."""
    wb = load_workbook(path, read_only=True)
    sheets: dict[str, list[dict[str, Any]]] = {}
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        headers = [h for h in rows[0] if h]
        sheets[ws.title] = [dict(zip(headers, r, strict=False)) for r in rows[1:] if any(v is not None for v in r)]
    wb.close()
    return sheets


def library_sheets() -> dict[str, list[dict[str, Any]]]:
    """A second domain (a small library), sharing nothing with the shipped CRM workbook."""
    return {
        "entities": [
            {"name": "book", "label": "图书", "label_en": "Book", "menu": "馆藏", "title_field": "title"},
            {
                "name": "member",
                "label": "读者",
                "label_en": "Member",
                "menu": "读者",
                "title_field": "full_name",
                "owner_field": "librarian",
            },
            {"name": "loan", "label": "借阅", "label_en": "Loan", "menu": "借阅", "title_field": "code", "numbering": "JY-{YYYY}-{####}"},
        ],
        "fields": [
            {"entity": "book", "name": "title", "label": "书名", "type": "string", "required": "yes", "list": "yes", "search": "yes"},
            {"entity": "book", "name": "isbn", "label": "ISBN", "type": "string", "unique": "yes", "list": "yes", "max": 20},
            {"entity": "book", "name": "pages", "label": "页数", "type": "integer", "min": 1, "max": 5000, "list": "yes"},
            {"entity": "book", "name": "genre", "label": "类别", "type": "choice", "choices": "genre", "filter": "yes", "list": "yes"},
            {"entity": "member", "name": "full_name", "label": "姓名", "type": "string", "required": "yes", "list": "yes", "search": "yes"},
            {"entity": "member", "name": "email", "label": "邮箱", "type": "email", "list": "yes"},
            {"entity": "member", "name": "librarian", "label": "管理员", "type": "user"},
            {"entity": "loan", "name": "code", "label": "借阅号", "type": "string", "readonly": "yes", "list": "yes"},
            {"entity": "loan", "name": "book", "label": "图书", "type": "link", "link": "book", "required": "yes", "list": "yes"},
            {"entity": "loan", "name": "member", "label": "读者", "type": "link", "link": "member", "required": "yes", "list": "yes"},
            {"entity": "loan", "name": "due_on", "label": "应还日期", "type": "date", "list": "yes"},
            {"entity": "loan", "name": "returned", "label": "已归还", "type": "boolean", "default": "no", "list": "yes"},
        ],
        "choices": [
            {"list": "genre", "value": "novel", "label": "小说", "color": "blue"},
            {"list": "genre", "value": "science", "label": "科普", "color": "green"},
        ],
        "roles": [
            {"role": "馆长", "label": "Director", "admin": "yes"},
            {"role": "馆员", "label": "Librarian"},
            {"role": "志愿者", "label": "Volunteer"},
        ],
        "permissions": [
            {"role": "馆员", "entity": "book", "list": "yes", "show": "yes", "add": "yes", "edit": "yes", "delete": "no"},
            {"role": "馆员", "entity": "member", "list": "yes", "show": "yes", "add": "yes", "edit": "yes", "delete": "yes"},
            {"role": "馆员", "entity": "loan", "list": "yes", "show": "yes", "add": "yes", "edit": "yes"},
            {"role": "志愿者", "entity": "book", "list": "yes", "show": "yes"},
        ],
        "settings": [{"key": "app_name", "value": "社区图书馆"}],
    }


# Dashboard panels of the library (kept apart: migration tests remove and rename the fields they use)
LIBRARY_REPORTS = [
    {"name": "books_by_genre", "label": "各类图书", "entity": "book", "group_by": "genre", "measure": "count, avg(pages)"},
    {"name": "loans_due", "label": "每月应还", "entity": "loan", "group_by": "due_on", "period": "month", "chart": "line",
     "condition": "not returned", "roles": "馆员"},
]
