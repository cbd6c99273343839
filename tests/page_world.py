"""A fresh app whose data is marked, and every page it generates, for the page tests
(tests/test_pages_language.py, tests/test_phones_browser.py). One process serves one generated app, so
this runs in a fresh interpreter (CRM_WORKBOOK / CRM_GENERATED_DIR / CRM_DATABASE_URL / CRM_VAR_DIR set):

* ``python -m tests.page_world scan`` prints, as JSON, what every page says in the wrong language;
* ``python -m tests.page_world serve`` prints ``{"url": …, "pages": […]}`` and serves until killed.

The data tells itself from the interface: every record is made by the demo-data generator (valid
by the workbook's rules), then every text it holds — strings, texts (encrypted ones sealed again),
e-mails, people's names — is overwritten by a marker of capitals and digits (``QX12F3``; an
encrypted field's column seals it). Whatever
Chinese an English page shows is then the interface's, and so is any English word in brackets or
``snake_case`` key on a Chinese page. Choices, grades and yes/no are the interface's: their labels
come from the workbook in both languages.
"""

from __future__ import annotations

import html
import json
import re
import sys
from typing import Any

PASSWORD = "Page-World-Pass-2026"  # noqa: S105 - test-only
TEXT_TYPES = ("string", "text", "email")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")
# English in brackets: a word of three lowercase letters or more inside (…) or （…）, no Chinese in it
BRACKETED = re.compile(r"[(（][^()（）\u4e00-\u9fff]*[a-z]{3,}[^()（）\u4e00-\u9fff]*[)）]")
RAW_KEY = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b|\b(?:None|True|False|nan)\b")
VISIBLE_ATTRS = re.compile(r'\s(?:title|placeholder|aria-label|alt|data-placeholder)="([^"]*)"')
SUBMIT_VALUES = re.compile(r'<input[^>]*type="(?:submit|button)"[^>]*value="([^"]*)"')


def marker(table_index: int, row_id: int, field_index: int) -> str:
    """Data text: capitals and digits only (no lowercase word, no Chinese, no underscore)."""
    return f"QX{table_index}R{row_id}F{field_index}"


def build_app() -> Any:
    from app import create_app
    from app.access.accounts import create_first_admin
    from app.migrate.create import create_schema

    app = create_app({"TESTING": True, "RATELIMIT_ENABLED": False, "WTF_CSRF_ENABLED": True})
    create_schema(app)
    create_first_admin(app, "admin", PASSWORD)
    return app


def seed(app: Any) -> dict[str, int]:
    """Records in every entity (demo data), their texts and the people's names replaced by markers;
    returns entity → the id of a record to open."""
    import sqlalchemy as sa
    from flask_appbuilder import Model

    from app.ops.demo import make_demo_data

    make_demo_data(app, 3, related=2, seed=7)
    with app.app_context():
        crm = app.extensions["crm"]
        session = crm.db.session
        first: dict[str, int] = {}
        for t, e in enumerate(crm.spec.entities):
            table = Model.metadata.tables[e.name]
            texts = [(i, f) for i, f in enumerate(e.fields) if f.type in TEXT_TYPES and f.name in table.c]
            for row_id in session.execute(sa.select(table.c.id)).scalars().all():
                values: dict[str, Any] = {}
                for n, (i, f) in enumerate(texts):
                    text = marker(t, row_id, i)
                    if n == 0 and e.name not in first:  # one long word per entity: a phone must break it, not widen
                        text += "W" * 60
                    if f.type == "email":
                        text = f"{text.lower()}@example.com".replace("qx", "mk")
                    values[f.name] = text  # an encrypted field's column type seals it on the way in
                if values:
                    session.execute(table.update().where(table.c.id == row_id).values(**values))
                first.setdefault(e.name, row_id)
        users = sa.table("ab_user", sa.column("id"), sa.column("first_name"), sa.column("last_name"), sa.column("username"))
        for uid, login in session.execute(sa.select(users.c.id, users.c.username)).all():
            if login != "admin":
                session.execute(users.update().where(users.c.id == uid).values(first_name=f"QXU{uid}", last_name="-"))
        session.commit()
    return first


def pages(app: Any, first: dict[str, int]) -> list[str]:
    """Every generated page: each entity's list, record, add and edit forms and import page; the
    dashboard, the inbox, the audit log, a survey's page (when the workbook has surveys)."""
    from flask import url_for

    from app.messaging.jobs import surveys_of
    from app.messaging.links import make_token

    out = ["/", "/dashboard/", "/inbox/", "/auditlog/"]
    with app.test_request_context():
        crm = app.extensions["crm"]
        views = {v.__class__.__name__: v for v in app.appbuilder.baseviews}
        for e in crm.spec.entities:
            view = next((v for v in views.values() if getattr(v, "entity", None) == e.name and hasattr(v, "datamodel")), None)
            if view is None:
                continue
            name = view.__class__.__name__
            out.append(url_for(f"{name}.list"))
            out.append(url_for(f"{name}.add"))
            out.append(url_for(f"{name}.import_file"))
            if e.name in first:
                out.append(url_for(f"{name}.show", pk=first[e.name]))
                out.append(url_for(f"{name}.edit", pk=first[e.name]))
        for survey in surveys_of(crm.spec).values():
            if survey.entity in first:
                out.append(f"/survey/{make_token(app, survey.name, survey.entity, first[survey.entity])}")
    return out


def visible_text(page: str) -> str:
    """What a person reads on a page: its text outside scripts and styles, and the titles,
    placeholders, labels for screen readers and button captions."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    body = re.sub(r"<!--.*?-->", " ", body, flags=re.S)
    extras = VISIBLE_ATTRS.findall(body) + SUBMIT_VALUES.findall(body)
    text = re.sub(r"<[^>]+>", "\n", body)
    return html.unescape("\n".join([text, *extras]))


def one_language_texts(spec: Any) -> set[str]:
    """What the workbook writes in one language only, so that a page can say it in no other: every
    text of the Spec but those with an English twin given (``label``/``label_en``, ``menu``/``menu_en``
    …): help texts, form sections, grading notes, survey questions, the office's name."""
    import dataclasses

    found: set[str] = set()

    def walk(value: Any) -> None:
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                inner = getattr(value, f.name)
                if isinstance(inner, str) and getattr(value, f"{f.name}_en", ""):
                    continue  # said in English too: an English page must use the twin
                walk(inner)
        elif isinstance(value, str):
            if CJK.search(value):
                found.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(spec)
    return found


def rule_texts(spec: Any) -> set[str]:
    """The conditions of the workbook, which its administrator reads as written (issue 24: rules in
    words for daily users, expressions for the administrator)."""
    return {r.condition for r in (*spec.grading, *spec.workflows, *spec.validations) if getattr(r, "condition", "")}


RULE_DETAIL = re.compile(r"←[^\n\[]*|\[[A-Za-z_]+![A-Z]+\d+\]")  # a rule reader's values looked at, and its cell


def findings(text: str, language: str, allowed: set[str]) -> list[str]:
    """The snippets of ``text`` said in the wrong language (``allowed``: what may stand as it is —
    the workbook's one-language texts and the languages' own names on English pages, logins and
    the administrator's expressions on Chinese ones)."""
    for word in sorted(allowed, key=len, reverse=True):
        text = text.replace(word, " ")
    text = RULE_DETAIL.sub(" ", text)
    found: list[str] = []
    if language == "zh":
        found += [m.group(0) for m in BRACKETED.finditer(text)]
        found += [m.group(0) for m in RAW_KEY.finditer(text)]
    else:
        for m in CJK.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            found.append(text[line_start:line_end if line_end >= 0 else None].strip()[:80])
    return sorted(set(found))


def login(client: Any, language: str) -> None:
    page = client.get("/login/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    r = client.post("/login/", data={"username": "admin", "password": PASSWORD, "csrf_token": token.group(1)})
    assert r.status_code in (200, 302), r.status_code
    client.get(f"/lang/{language}")


def scan() -> dict[str, Any]:
    app = build_app()
    first = seed(app)
    urls = pages(app, first)
    crm = app.extensions["crm"]
    with app.app_context():
        import sqlalchemy as sa

        logins = set(crm.db.session.execute(sa.text("SELECT username FROM ab_user")).scalars())
    allowed = {"zh": {f"({login})" for login in logins} | rule_texts(crm.spec),
               "en": one_language_texts(crm.spec) | {crm.spec.settings.app_name, *(v["name"] for v in app.config["LANGUAGES"].values())}}
    report: dict[str, Any] = {"pages": len(urls) + 1, "entities": len(crm.spec.entities), "found": {}, "status": {}}
    for language in ("zh", "en"):
        anonymous = app.test_client()
        anonymous.get(f"/lang/{language}")
        checked = [("/login/", anonymous.get("/login/"))]
        client = app.test_client()
        login(client, language)
        # the survey page speaks the workbook's language whatever the reader chose (no account, no choice)
        checked += [(url, client.get(url, follow_redirects=True)) for url in urls if language == crm.spec.settings.language or not url.startswith("/survey/")]
        for url, r in checked:
            if r.status_code != 200:
                report["status"][f"{language} {url}"] = r.status_code
                continue
            bad = findings(visible_text(r.get_data(as_text=True)), language, allowed[language])
            if bad:
                report["found"][f"{language} {url}"] = bad
    return report


def serve() -> None:
    from werkzeug.serving import make_server

    app = build_app()
    first = seed(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_port}", "pages": pages(app, first), "password": PASSWORD}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        print(json.dumps(scan(), ensure_ascii=False))
