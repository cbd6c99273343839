"""Forms with context on a second domain (the library of tests/workbooks.py, plus a physical copy
of a book that a loan may name), run in a fresh interpreter as tests/probes.py runs its probes:
``python -m tests.probe_forms`` with CRM_WORKBOOK / CRM_GENERATED_DIR / CRM_DATABASE_URL set prints
a JSON result. The tie copy → book comes from the structure alone: no validation names it."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.probes import _app, _csrf

PASSWORD = "Probe-Pass-123"  # noqa: S105 - test-only


def library_with_copies(sheets: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The library, with copies of books (a loan may name the copy lent), members' e-mail hidden
    from 馆员, and a loan's due date theirs to see but not to set."""
    sheets["entities"].append({"name": "book_copy", "label": "副本", "label_en": "Copy", "menu": "馆藏", "title_field": "barcode"})
    sheets["fields"] += [
        {"entity": "book_copy", "name": "barcode", "label": "条码", "type": "string", "required": "yes", "list": "yes", "search": "yes"},
        {"entity": "book_copy", "name": "book", "label": "图书", "type": "link", "link": "book", "required": "yes", "list": "yes"},
        {"entity": "loan", "name": "book_copy", "label": "副本", "type": "link", "link": "book_copy", "list": "yes"},
    ]
    for p in sheets["permissions"]:
        if p["role"] == "馆员" and p["entity"] == "member":
            p["hidden_fields"] = "email"
        if p["role"] == "馆员" and p["entity"] == "loan":  # a field they may see but not set: empty on a new loan
            p["readonly_fields"] = "due_on"
    sheets["permissions"].append({"role": "馆员", "entity": "book_copy", "list": "yes", "show": "yes", "add": "yes", "edit": "yes"})
    return sheets


def probe() -> dict[str, Any]:
    from app.access.accounts import add_user

    app = _app()
    add_user(app, "librarian", ["馆员"], PASSWORD)
    c = app.test_client()
    token = c.post("/api/v1/security/login", json={"username": "admin", "password": "admin-Pass-123", "provider": "db"}).json
    h = {"Authorization": f"Bearer {token['access_token']}"}
    ids: dict[str, int] = {}
    for key, title in (("红楼梦", "红楼梦"), ("三体", "三体")):
        ids[key] = c.post("/api/v1/book/", json={"title": title}, headers=h).json["id"]
    for barcode, book in (("HL-001", "红楼梦"), ("HL-002", "红楼梦"), ("ST-001", "三体")):
        ids[barcode] = c.post("/api/v1/book_copy/", json={"barcode": barcode, "book": ids[book]}, headers=h).json["id"]
    ids["member"] = c.post("/api/v1/member/", json={"full_name": "张三", "email": "zs@example.cn"}, headers=h).json["id"]

    page = c.get("/login/")
    c.post("/login/", data={"username": "librarian", "password": PASSWORD, "csrf_token": _csrf(page.text)})
    out: dict[str, Any] = {"ids": ids}
    url = f"/loanview/add?_flt_0_book={ids['红楼梦']}"
    form = c.get(url).text
    fixed = form[form.index("crm-fixed"):].split("</div>\n    </div>", 1)[0]
    copy_select = re.search(r'<select[^>]*name="book_copy"[^>]*>', form)
    out["fixed"] = ["红楼梦" in fixed, f'name="book" value="{ids["红楼梦"]}"' in fixed,
                    bool(re.search(r'<select[^>]*name="book"', form)), 'data-crm-within="book"' in (copy_select.group(0) if copy_select else "")]
    out["lookup"] = sorted(r["id"] for r in c.get(f"/loanview/lookup/book_copy?within={ids['红楼梦']}").json["results"])
    out["locked_absent"] = ['id="due_on"' not in form]
    data = {"csrf_token": _csrf(form), "book": str(ids["红楼梦"]), "member": str(ids["member"]), "due_on": "2026-12-20"}
    r = c.post(url, data={**data, "book_copy": str(ids["ST-001"])})
    out["mismatch"] = [r.status_code, "副本须属于所选的图书“红楼梦”" in r.text]
    r = c.post(url, data={**data, "book_copy": str(ids["HL-002"])})
    out["saved"] = [r.status_code, r.headers.get("Location", "")]
    loans = c.get("/api/v1/loan/", headers=h).json["result"]
    out["loans"] = [[x["book"]["title"], (x.get("book_copy") or {}).get("barcode")] for x in loans]
    loan_ids = c.get("/api/v1/loan/?q=(columns:!(id))", headers=h).json["ids"]
    out["locked_absent"].append('crm-locked" id="due_on"' in c.get(f"/loanview/edit/{loan_ids[0]}").text)  # shown on the edit form

    add = c.get("/memberview/add").text
    edit = c.get(f"/memberview/edit/{ids['member']}").text
    out["hidden_absent"] = ['name="email"' not in add + edit, "无权查看" not in add + edit, "邮箱" not in add + edit]
    version = re.search(r'name="crm_version" type="hidden" value="(\d+)"', edit)
    r = c.post(f"/memberview/edit/{ids['member']}", data={"csrf_token": _csrf(edit), "crm_version": version.group(1) if version else "",
                                                          "full_name": "张三丰", "email": "changed@example.cn"})
    member = c.get(f"/api/v1/member/{ids['member']}", headers=h).json["result"]
    out["hidden_kept"] = [r.status_code, member["full_name"], member["email"]]
    return out


if __name__ == "__main__":
    print(json.dumps(probe(), ensure_ascii=False))
