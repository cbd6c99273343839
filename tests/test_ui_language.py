"""Chinese by default, English on request: the app's catalogs are compiled from their sources,
every screen text of the runtime's templates has an English translation, FAB's gaps in Chinese
are filled, and error pages help in the person's language."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

from app.web.translations import DIRECTORY, compiled
from tests.conftest import ADMIN_PASSWORD, login

TEMPLATES = Path(__file__).resolve().parent.parent / "app" / "templates"


def test_compiled_catalogs_match_their_sources() -> None:
    sources = sorted(DIRECTORY.glob("*/LC_MESSAGES/messages.po"))
    assert {p.parent.parent.name for p in sources} == {"zh", "en"}
    for po in sources:
        assert po.with_suffix(".mo").read_bytes() == compiled(po), f"run `python -m app.web.translations` ({po})"


def test_every_screen_text_of_the_runtime_has_english() -> None:
    with (DIRECTORY / "en" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        english = {m.id: m.string for m in read_po(f) if m.id}
    used = set()
    for page in TEMPLATES.rglob("*.html"):
        used |= {m.group(2) for m in re.finditer(r"""_\(\s*(["'])(.+?)\1""", page.read_text(encoding="utf-8"))}
    from app.web.errors import PAGES

    used |= {text for pair in PAGES.values() for text in pair}
    missing = sorted(t for t in used if re.search(r"[\u4e00-\u9fff]", t) and not english.get(t))
    assert not missing, f"add these to app/translations/en/LC_MESSAGES/messages.po: {missing}"


def test_error_pages_help_in_both_languages(client: Any) -> None:
    login(client, "admin", ADMIN_PASSWORD)
    page = client.get("/no-such-page")
    assert page.status_code == 404 and "页面不存在" in page.text and "返回首页" in page.text
    assert 'class="navbar' in page.text  # inside the normal menu
    api = client.get("/api/v1/no-such-thing/")
    assert api.status_code == 404 and api.is_json
    client.get("/lang/en")
    try:
        page = client.get("/no-such-page")
        assert "Page not found" in page.text and "页面不存在" not in page.text
        home = client.get("/dashboard/").text  # the home page (own work, then the panels)
        assert "Home" in home and "My work" in home
    finally:
        client.get("/lang/zh")


def test_flask_appbuilder_gaps_are_chinese(client: Any) -> None:
    login(client, "admin", ADMIN_PASSWORD)
    page = client.get("/groups/list/")
    assert page.status_code == 200 and "部门列表" in page.text and "List Groups" not in page.text


def test_flask_appbuilder_dialogs_and_dropdowns_speak_the_page_language(client: Any) -> None:
    """FAB's delete dialog said Cancel/OK and its dropdowns "Select a State" on Chinese screens."""
    login(client, "admin", ADMIN_PASSWORD)
    page = client.get("/customerview/list/").text
    assert "取消" in page and ">Cancel<" not in page and ">OK<" not in page
    tag = re.search(r'<script src="[^"]*crm/select2_lang\.js"[^>]*>', page)
    assert tag and 'data-placeholder="请选择"' in tag.group(0) and 'data-no-results="没有匹配的记录"' in tag.group(0)
    assert page.index("select2.min.js") < tag.start() < page.index("js/ab.js")  # between Select2 and FAB's set-up
    assert client.get(re.search(r'src="([^"]+)"', tag.group(0)).group(1)).status_code == 200
    client.get("/lang/en")
    try:
        english = client.get("/customerview/list/").text
        assert ">Cancel<" in english and 'data-placeholder="Select…"' in english
    finally:
        client.get("/lang/zh")


def test_user_screens_say_yes_or_no(client: Any) -> None:
    """FAB's user list and 个人信息 printed 是否激活 as True/False."""
    login(client, "admin", ADMIN_PASSWORD)
    for path in ("/users/list/", "/users/userinfo/"):
        page = client.get(path)
        assert page.status_code == 200, path
        cells = re.sub(r"<[^>]+>", "\n", re.sub(r"<script.*?</script>", "", page.text, flags=re.S))
        assert not re.search(r"^\s*(True|False)\s*$", cells, re.M), path
        assert re.search(r"^\s*是\s*$", cells, re.M), path
