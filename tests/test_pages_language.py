"""One language per page (issue 25 part 4).

Every generated page — each entity's list, record, add and edit forms and import page, the
dashboard, the inbox, the audit log, the survey page and the login — of the shipped workbook and a
second-domain one is read in Chinese for English in brackets and raw keys, and in English for
Chinese interface text; the data is told from the interface by markers (tests/page_world.py).
Then the pieces: messages in JSON, templates, flashes and import results said in the reader's
language; people's names in the order of their language; numbers to their places.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import jsonify, render_template_string

from app.messages import msg
from tests.page_world import findings, visible_text
from tests.world_server import WORKBOOKS, run_world, world_env

MIXED = "此操作需要填写意见 (this action needs a comment)"


@pytest.mark.slow  # a fresh app with demo data per workbook, in its own interpreter
@pytest.mark.parametrize("which", WORKBOOKS)
def test_every_generated_page_speaks_one_language(which: str, tmp_path: Path) -> None:
    report = run_world("scan", world_env(which, tmp_path))
    assert report["pages"] >= 5 * report["entities"] + 4, report  # list, add, import, show, edit each; home, dashboard, inbox, audit
    assert report["status"] == {}, report["status"]  # every page answers
    assert report["found"] == {}, json.dumps(report["found"], ensure_ascii=False, indent=1)


def test_the_scan_sees_mixed_language_and_raw_keys_but_not_data() -> None:
    """The scan can fail: the issue's own examples are found, the markers of data are not."""
    page = (f"<h1>{MIXED}</h1><p>(total 3: inserted 0 …)</p><td>last_contact_on</td><td>None</td>"
            '<input type="submit" value="提交 Submit"><span title="保存 (save)">x</span><td>QX3R12F4</td>'
            "<script>var x = 'skip (this is code)';</script>")
    zh = findings(visible_text(page), "zh", set())
    assert "(this action needs a comment)" in zh and "(total 3: inserted 0 …)" in zh and "(save)" in zh
    assert "last_contact_on" in zh and "None" in zh
    assert not any("QX" in f or "code" in f for f in zh), zh
    en = findings(visible_text("<title>满意度调查 Satisfaction survey</title><td>QX1R1F1</td><td>客户维护体系</td>"), "en",
                  {"客户维护体系"})
    assert en == ["满意度调查 Satisfaction survey"], en  # the office's name allowed, the marker is data


def test_messages_in_json_templates_and_flashes_are_in_the_readers_language(app: Any) -> None:
    said = msg("此操作需要填写意见")
    assert str(said) == MIXED  # kept bilingual for the CLI and logs
    for query, expected in (("?_l_=zh", "此操作需要填写意见"), ("?_l_=en", "this action needs a comment")):
        with app.test_request_context(f"/{query}"):
            assert json.loads(jsonify(message=said, errors={"f": [said]}).get_data(as_text=True)) == {
                "message": expected, "errors": {"f": [expected]}}
            assert render_template_string("<p>{{ m }}</p>", m=said) == f"<p>{expected}</p>"


def test_an_import_result_is_kept_in_both_languages_and_shown_in_one() -> None:
    from app.io.importer import ImportReport
    from app.io.importjobs import said, said_both

    report = ImportReport(total=3, inserted=0, failed=3)
    kept = said_both(report.summary())
    assert said(kept, "zh").startswith("共 3 行:新增 0") and "total" not in said(kept, "zh")
    assert said(kept, "en").startswith("total 3") and "共" not in said(kept, "en")
    assert str(report.summary()).startswith("共 3 行") and "(total 3" in str(report.summary())  # the CLI says both


def test_names_follow_their_language_in_the_top_bar_too(app: Any) -> None:
    from app.access.accounts import add_user, person_name
    from tests.conftest import login

    assert person_name("wn", "娜", "韦") == "韦娜"  # 姓 + 名, no space
    assert person_name("admin", "admin", "Admin") == "admin"  # the first administrator of earlier releases
    assert person_name("jd", "John", "Doe") == "John Doe"
    assert person_name("x", "x", "-") == "x"
    password = "Wei-Na-Pass-2026"  # noqa: S105 - test-only
    with app.app_context():
        add_user(app, "wei_na_top", ["业务员"], password, first_name="娜", last_name="韦")
    c = app.test_client()
    login(c, "wei_na_top", password)
    page = c.get("/customerview/list/").get_data(as_text=True)
    assert "韦娜" in page and "娜 韦" not in page


def test_numbers_to_their_places_money_with_separators() -> None:
    from app.spec.model import Field
    from app.web.fields import number_text, value_formatter

    assert number_text(Decimal("1.5000")) == "1.5" and number_text(Decimal("478.5900")) == "478.59"
    assert number_text(Decimal("1234567.0000")) == "1,234,567" and number_text(Decimal("0E-4")) == "0"
    assert number_text(Decimal("478.59"), "money") == "478.59" and number_text(Decimal("1234567.5"), "money") == "1,234,567.50"
    hours = value_formatter(Field(name="hours", label="工时", type="decimal"))
    assert hours(Decimal("1.5000")) == "1.5" and hours(None) == ""
