"""The second-domain workbook (tests/workbooks.py ``library_sheets``) given step effects of its own:
reporting a loan's book lost marks the book lost, blocks the member (a lock: only one with an e-mail)
and opens a numbered fine that the loan then links to. Shared by the effects tests and their probe (one process serves one app)."""

from __future__ import annotations

from typing import Any

from tests.workbooks import library_sheets

LOST_EFFECTS = "book.status = 'lost'; member.blocked = True\ncreate fine(member = member, amount = 80, reason = 'lost book'); fine = created"


def library_with_effects(effects: str = LOST_EFFECTS) -> dict[str, list[dict[str, Any]]]:
    sheets = library_sheets()
    sheets["entities"].append({"name": "fine", "label": "罚款", "label_en": "Fine", "menu": "借阅", "title_field": "code",
                               "numbering": "FK-{YYYY}-{###}"})
    sheets["fields"] += [
        {"entity": "book", "name": "status", "label": "馆藏状态", "type": "choice", "choices": "book_status", "default": "available",
         "required": "yes", "list": "yes"},
        {"entity": "member", "name": "blocked", "label": "暂停借阅", "type": "boolean", "default": "no", "list": "yes"},
        {"entity": "fine", "name": "code", "label": "罚款号", "type": "string", "readonly": "yes", "list": "yes"},
        {"entity": "fine", "name": "member", "label": "读者", "type": "link", "link": "member", "required": "yes", "list": "yes"},
        {"entity": "fine", "name": "amount", "label": "金额", "type": "money", "required": "yes", "min": 1, "list": "yes"},
        {"entity": "fine", "name": "reason", "label": "原因", "type": "string", "max": 40},
        {"entity": "loan", "name": "state", "label": "借阅状态", "type": "choice", "choices": "loan_state", "default": "open",
         "required": "yes", "list": "yes"},
        {"entity": "loan", "name": "fine", "label": "罚款", "type": "link", "link": "fine"},
    ]
    sheets["choices"] += [
        {"list": "book_status", "value": "available", "label": "在馆"}, {"list": "book_status", "value": "lost", "label": "遗失"},
        {"list": "loan_state", "value": "open", "label": "借出"}, {"list": "loan_state", "value": "returned", "label": "已归还"},
        {"list": "loan_state", "value": "lost", "label": "已挂失"},
    ]
    # a librarian sees the members they look after (own scope), every loan, book and fine
    for p in sheets["permissions"]:
        if p["role"] == "馆员" and p["entity"] == "member":
            p["scope"] = "own"
    sheets["permissions"].append({"role": "馆员", "entity": "fine", "list": "yes", "show": "yes", "add": "yes", "edit": "yes"})
    # a lock of the validations sheet on the member: one without an e-mail cannot be told, so is not blocked
    sheets["validations"] = [{"entity": "member", "condition": "not changed(blocked) or email",
                              "message": "没有邮箱的读者不能暂停借阅"}]
    sheets["workflows"] = [
        {"entity": "loan", "state_field": "state", "from": "open", "to": "returned", "action": "归还", "roles": "馆员"},
        {"entity": "loan", "state_field": "state", "from": "open", "to": "lost", "action": "挂失", "action_en": "Report lost",
         "roles": "馆员", "效果": effects},
    ]
    return sheets
