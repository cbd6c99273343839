"""Things a test runs in a fresh interpreter, because one process serves one generated app.

``python -m tests.probes NAME`` with CRM_GENERATED_DIR / CRM_DATABASE_URL set prints a JSON
result; tests call :func:`run_probe` and assert on it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text as sa_text

ROOT = Path(__file__).resolve().parent.parent


def run_probe(name: str, env: dict[str, str], *args: str, timeout: int = 120) -> Any:
    full_env = {**os.environ, **env}
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "tests.probes", name, *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"probe {name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert m
    return m.group(1)


def _app() -> Any:
    from app import create_app
    from app.access.accounts import create_first_admin
    from app.migrate.create import create_schema

    application = create_app({"TESTING": True})
    create_schema(application)
    create_first_admin(application, "admin", "admin-Pass-123")
    return application


def probe_library() -> dict[str, Any]:
    """The library workbook of tests/workbooks.py, exercised end to end."""
    app = _app()
    c = app.test_client()
    token = c.post("/api/v1/security/login", json={"username": "admin", "password": "admin-Pass-123", "provider": "db"}).json
    h = {"Authorization": f"Bearer {token['access_token']}"}
    out: dict[str, Any] = {}
    r = c.post("/api/v1/book/", json={"title": "红楼梦", "isbn": "978-7-02", "pages": 1606, "genre": "novel"}, headers=h)
    out["book_create"] = [r.status_code, r.json.get("id")]
    r = c.post("/api/v1/book/", json={"title": "x", "pages": 0, "genre": "poetry"}, headers=h)
    out["book_invalid"] = [r.status_code, sorted(r.json["message"])]
    r = c.post("/api/v1/member/", json={"full_name": "张三", "email": "zs@example.cn"}, headers=h)
    out["member_create"] = r.status_code
    r = c.post("/api/v1/loan/", json={"book": 1, "member": 1, "due_on": "2026-12-01"}, headers=h)
    out["loan_create"] = r.status_code
    r = c.get("/api/v1/loan/1", headers=h)
    out["loan_show"] = [r.status_code, r.json["result"]["book"]["title"], r.json["label_columns"]["due_on"]]
    version = c.get("/api/v1/book/1", headers=h).json["result"]["version"]
    r = c.put("/api/v1/book/1", json={"pages": 1700, "version": version}, headers=h)
    out["book_edit"] = r.status_code
    out["book_after_edit"] = c.get("/api/v1/book/1", headers=h).json["result"]["pages"]
    r = c.get("/api/v1/book/?q=(filters:!((col:title,opr:ct,value:红楼)))", headers=h)
    out["book_search"] = r.json["count"]
    page = c.get("/login/")
    c.post("/login/", data={"username": "admin", "password": "admin-Pass-123", "csrf_token": _csrf(page.text)})
    page = c.get("/bookview/add")
    out["ui_add_form"] = [page.status_code, "书名" in page.text, "小说" in page.text]
    r = c.post("/bookview/add", data={"title": "三体", "genre": "science", "pages": "302", "csrf_token": _csrf(page.text)})
    out["ui_add"] = r.status_code
    page = c.get("/bookview/list/")
    out["ui_list"] = [page.status_code, "三体" in page.text, "红楼梦" in page.text, "科普" in page.text]
    show = c.get("/memberview/show/1")
    out["ui_show_related"] = [show.status_code, "借阅" in show.text]
    page = c.get("/bookview/edit/1")
    r = c.post("/bookview/delete/2", data={"csrf_token": _csrf(page.text)})
    out["ui_delete"] = [r.status_code, c.get("/api/v1/book/2", headers=h).status_code]
    menu = c.get("/", follow_redirects=True).text  # home is the dashboard after login
    out["menu"] = ["馆藏" in menu, "读者" in menu]
    panel = c.get("/dashboard/panel/books_by_genre").json
    out["dashboard"] = [panel["title"], [c["label"] for c in panel["categories"]], panel["series"]]
    return out


def probe_step_parity() -> dict[str, Any]:
    """Every workflow step of the workbook through its dialog and the API (tests/step_parity.py)."""
    from app.ops.demo import make_demo_data
    from tests.step_parity import check_every_step

    app = _app()
    make_demo_data(app, 6, seed=5, related=12)
    c = app.test_client()
    token = c.post("/api/v1/security/login", json={"username": "admin", "password": "admin-Pass-123", "provider": "db"}).json
    page = c.get("/login/")
    c.post("/login/", data={"username": "admin", "password": "admin-Pass-123", "csrf_token": _csrf(page.text)})
    routes = {n: "/" + v.__name__.lower() for n, v, *_rest in app.extensions["crm"].generated.views.REGISTRY}
    return check_every_step(app, c, {"Authorization": f"Bearer {token['access_token']}"}, routes)


def probe_injection() -> dict[str, Any]:
    """Pages of a workbook whose labels carry markup and code show them as inert text."""
    app = _app()
    c = app.test_client()
    page = c.get("/login/")
    c.post("/login/", data={"username": "admin", "password": "admin-Pass-123", "csrf_token": _csrf(page.text)})
    lst = c.get("/thingview/list/").text
    add = c.get("/thingview/add").text
    return {
        "raw_script": "<script>alert('label')</script>" in lst + add,
        "escaped": "&lt;script&gt;" in lst + add,
        "pwned": (ROOT / "var" / "PWNED").exists(),
    }


def probe_library_search() -> dict[str, Any]:
    """The quick search of the library workbook: grouped results, the loan's number, the list box
    and title links, and a librarian's own members only (its member grant's scope is ``own``)."""
    from app.access.accounts import add_user

    app = _app()
    for name in ("lib1", "lib2"):
        add_user(app, name, ["馆员"], "Lib-Pass-123")

    def client(user: str, password: str) -> tuple[Any, dict[str, str]]:
        c = app.test_client()
        c.post("/login/", data={"username": user, "password": password, "csrf_token": _csrf(c.get("/login/").text)})
        token = c.post("/api/v1/security/login", json={"username": user, "password": password, "provider": "db"}).json
        return c, {"Authorization": f"Bearer {token['access_token']}"}

    def groups(c: Any, q: str) -> list[list[Any]]:
        found = c.get("/search/json", query_string={"q": q}).json
        return [[g["entity"], g["label"], [i["title"] for i in g["items"]], g["items"][0]["url"]] for g in found["groups"]]

    admin, h = client("admin", "admin-Pass-123")
    lib1, h1 = client("lib1", "Lib-Pass-123")
    lib2, _h2 = client("lib2", "Lib-Pass-123")
    admin.post("/api/v1/book/", json={"title": "红楼梦", "isbn": "978-7-02", "pages": 1606, "genre": "novel"}, headers=h)
    admin.post("/api/v1/book/", json={"title": "三体", "isbn": "978-7-53", "pages": 302, "genre": "science"}, headers=h)
    lib1.post("/api/v1/member/", json={"full_name": "王读者", "email": "w@example.cn"}, headers=h1)
    admin.post("/api/v1/loan/", json={"book": 1, "member": 1, "due_on": "2026-12-01"}, headers=h)
    page = admin.get("/bookview/list/", query_string={"q": "红楼"}).text
    return {
        "book": groups(admin, "红楼"),
        "loan_by_number": groups(admin, "JY-"),
        "member_grouped": [g[0] for g in groups(admin, "王读")],
        "list_box": ["红楼梦" in page, "三体" in page, 'class="crm-title-link" href="/bookview/show/1"' in page],
        "librarian_own": [[t for g in groups(lib1, "王读") for t in g[2]], [t for g in groups(lib2, "王读") for t in g[2]]],
    }


def probe_library_effects() -> dict[str, Any]:
    """The library's own step effects (tests/effect_library.py): a librarian reports a loan lost —
    the book marked lost, the member blocked, a numbered fine created and linked — and the same
    step on a loan of a member outside their scope is refused whole."""
    from app.access.accounts import add_user

    app = _app()
    add_user(app, "lib1", ["馆员"], "Lib-Pass-123")
    add_user(app, "lib2", ["馆员"], "Lib-Pass-123")

    def client(who: str, password: str) -> tuple[Any, dict[str, str]]:
        c = app.test_client()
        page = c.get("/login/")
        c.post("/login/", data={"username": who, "password": password, "csrf_token": _csrf(page.text)})
        token = c.post("/api/v1/security/login", json={"username": who, "password": password, "provider": "db"}).json
        return c, {"Authorization": f"Bearer {token['access_token']}"}

    admin, h = client("admin", "admin-Pass-123")
    lib1, h1 = client("lib1", "Lib-Pass-123")

    def loan(title: str, owner: str, email: str | None = "reader@example.cn") -> tuple[int, int, int]:
        book = admin.post("/api/v1/book/", json={"title": title}, headers=h).json["id"]
        member = client(owner, "Lib-Pass-123")[0].post("/api/v1/member/", json={"full_name": f"{title}的读者", "email": email},
                                                       headers=client(owner, "Lib-Pass-123")[1]).json["id"]
        pk = admin.post("/api/v1/loan/", json={"book": book, "member": member, "due_on": "2026-12-01"}, headers=h).json["id"]
        return book, member, pk

    def state(book: int, member: int, pk: int) -> dict[str, Any]:
        with app.app_context():
            s = app.extensions["crm"].db.session
            one = s.execute
            fine = one(sa_text("SELECT f.code, f.amount, f.member_id, l.state FROM loan l LEFT JOIN fine f ON f.id = l.fine_id "
                               "WHERE l.id = :i"), {"i": pk}).one()
            out = {"book": one(sa_text("SELECT status FROM book WHERE id = :i"), {"i": book}).scalar(),
                   "blocked": bool(one(sa_text("SELECT blocked FROM member WHERE id = :i"), {"i": member}).scalar()),
                   "loan_state": fine[3], "fine": {"code": fine[0], "amount": float(fine[1] or 0), "member_is_loans": fine[2] == member},
                   "fines": one(sa_text("SELECT count(*) FROM fine")).scalar(),
                   "fine_step": one(sa_text("SELECT step FROM crm_audit WHERE entity = 'fine' ORDER BY id DESC")).scalar()}
            s.remove()
        return out

    mine = loan("遗失之书", "lib1")
    r = lib1.post(f"/api/v1/loan/{mine[2]}/transition", json={"action": "Report lost"}, headers=h1)
    own = {"status": r.status_code, **state(*mine), "page": lib1.get(f"/loanview/show/{mine[2]}").text}
    theirs = loan("他人之书", "lib2")
    page = lib1.get(f"/loanview/show/{theirs[2]}").text
    r = lib1.post(f"/loanview/transition/{theirs[2]}", data={"csrf_token": _csrf(page), "action": "state:open:lost"},
                  headers={"Accept": "application/json"})
    other = {"status": r.status_code, "message": (r.get_json(silent=True) or {}).get("message", ""), **state(*theirs)}
    # the second effect meets the member's lock: the state change and the book's status go back too
    locked = loan("无邮箱之书", "lib1", email=None)
    r = lib1.post(f"/api/v1/loan/{locked[2]}/transition", json={"action": "挂失"}, headers=h1)
    return {"own": own, "other": other, "locked": {"status": r.status_code, "message": (r.get_json(silent=True) or {}).get("message", ""),
                                                   **state(*locked)}}


def probe_demo_data() -> dict[str, Any]:
    """Demo data of the workbook in CRM_WORKBOOK: what :func:`tests.demo_checks.demo_problems`
    finds wrong, the rows made, the demo logins (each signed in through the form) and a few subjects."""
    import datetime as dt

    from app.ops.demo import DEMO_PASSWORD, demo_logins, make_demo_data
    from tests.demo_checks import demo_problems

    app = _app()
    now = dt.datetime.now().replace(microsecond=0)
    made = make_demo_data(app, 40, seed=8, now=now, related=120)
    with app.app_context():
        problems = demo_problems(app, now)
        logins = [(login.username, login.role) for login in demo_logins(app)]
    signed_in = []
    for username, _role in logins:
        c = app.test_client()
        r = c.post("/login/", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": _csrf(c.get("/login/").text)})
        signed_in.append(r.status_code == 302 and "/login" not in r.headers["Location"])
    return {"made": made, "problems": problems[:20], "logins": logins, "signed_in": signed_in}



def probe_library_homes() -> dict[str, Any]:
    """Home pages of the library workbook (with a reminder on members' card expiry, see
    tests/test_homes.py): a librarian's overdue and due-today members, the ids their links list,
    and the panels each role gets."""
    import datetime as dt
    import json as _json

    from app.access.accounts import add_user

    app = _app()
    add_user(app, "lib1", ["馆员"], "Lib-Pass-123")
    add_user(app, "vol1", ["志愿者"], "Vol-Pass-1234")

    def client(user: str, password: str) -> tuple[Any, dict[str, str]]:
        c = app.test_client()
        c.post("/login/", data={"username": user, "password": password, "csrf_token": _csrf(c.get("/login/").text)})
        token = c.post("/api/v1/security/login", json={"username": user, "password": password, "provider": "db"}).json
        return c, {"Authorization": f"Bearer {token['access_token']}"}

    lib, h = client("lib1", "Lib-Pass-123")
    vol, _hv = client("vol1", "Vol-Pass-1234")
    today = dt.date.today()
    made = {}
    for name, days in (("过期甲", -3), ("过期乙", -1), ("今天丙", 0), ("未到丁", 20)):
        r = lib.post("/api/v1/member/", json={"full_name": name, "card_expires": str(today + dt.timedelta(days=days))}, headers=h)
        made[name] = r.json["id"]

    def home(c: Any) -> dict[str, Any]:
        text = c.get("/dashboard/").text
        cards = dict(re.findall(r'data-work="([^"]+)">\s*<span class="crm-work-count">(\d+)</span>', text))
        links = dict(re.findall(r'href="([^"]+)" data-work="([^"]+)"', text))
        panels = _json.loads(re.search(r'id="crm-panels">(.*?)</script>', text, re.S).group(1))
        listed = {key: sorted(int(i) for i in set(re.findall(r"/memberview/show/(\d+)", c.get(url.replace("&amp;", "&")).text)))
                  for url, key in links.items()}
        return {"cards": {k: int(v) for k, v in cards.items()}, "listed": listed, "panels": sorted(p["name"] for p in panels)}

    return {"made": made, "librarian": home(lib), "volunteer": home(vol)}


if __name__ == "__main__":
    probe = globals()[f"probe_{sys.argv[1]}"]
    print(json.dumps(probe(*sys.argv[2:]), ensure_ascii=False))
