"""Rules in plain words (issue 24, part 2): a daily user reads a grade's reason as the workbook's
note, or its condition in words; the administrator, and a role the workbook grants ``see_rules``,
read the expression and its ``Sheet!Cell`` — on screens and in exports alike. The outbox shows
labels, never its stored keys or ``None``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from app.record.tables import OutboxMessage
from tests.conftest import ADMIN_PASSWORD, api_token, login, person

PASSWORD = "words-Pass-1"  # noqa: S105 - test-only
# what a rule looks like to a machine: a comparison written as code, a field's identifier, a cell
TECHNICAL = re.compile(r"==|!=|<=|>=|\bgrading!|\bworkflows!|annual_demand|employee_count|urgency ==|← ")


@pytest.fixture(scope="module")
def record(app: Any) -> int:
    person(app, "words_sales", ["业务员"], PASSWORD)
    person(app, "words_gm", ["总经理"], PASSWORD)  # may export
    h = api_token(app.test_client(), "words_sales", PASSWORD)
    r = app.test_client().post("/api/v1/customer/", json={"name": "规则说明客户", "urgency": "urgent", "annual_demand": 800000},
                               headers=h)
    assert r.status_code == 201, r.text
    pk = int(r.json["id"])
    # a second save, so the history holds a change of the reason (old → new)
    version = app.test_client().get(f"/api/v1/customer/{pk}", headers=h).json["result"]["version"]
    r = app.test_client().put(f"/api/v1/customer/{pk}", json={"version": version, "urgency": "normal"}, headers=h)
    assert r.status_code == 200, r.text
    return pk


def pages(app: Any, who: str, password: str, pk: int, export: bool = True) -> dict[str, str]:
    c = app.test_client()
    login(c, who, password)
    out = {}
    for name, url in (("show", f"/customerview/show/{pk}"), ("list", "/customerview/list/?_flt_0_name=规则说明客户"),
                      ("history", f"/customerview/history/{pk}")):
        r = c.get(url)
        assert r.status_code == 200, (name, r.status_code)
        out[name] = r.text
    for name, url in (("export", "/customerview/export/?_flt_0_name=规则说明客户"), ("history_export", f"/customerview/history/{pk}/export/")):
        if name == "export" and not export:  # the role has no export right
            continue
        r = c.get(url)
        assert r.status_code == 200, (name, r.status_code)
        out[name] = "\n".join(str(v) for ws in load_workbook(io.BytesIO(r.data)) for row in ws.iter_rows(values_only=True)
                              for v in row if v is not None)
    return out


@pytest.mark.parametrize("who, export", [("words_sales", False), ("words_gm", True)])
def test_daily_users_read_the_rules_note_never_its_expression_nor_its_cell(app: Any, record: int, who: str, export: bool) -> None:
    seen = pages(app, who, PASSWORD, record, export)
    for name, text in seen.items():
        assert not TECHNICAL.search(text), (name, TECHNICAL.search(text))
    # the note of the rule that decided (B: urgent but below A's size), on the page and in the export
    assert "B级:一般需求状态" in seen["show"] and (not export or "B级:一般需求状态" in seen["export"])
    assert "A级:需求规模较大" in seen["history"] and "A级:需求规模较大" in seen["history_export"]  # the reason before


def test_the_administrator_reads_the_expression_and_its_cell(app: Any, record: int) -> None:
    seen = pages(app, "admin", ADMIN_PASSWORD, record)
    for name in ("show", "history", "export", "history_export"):
        assert "urgency in ('urgent', 'normal')" in seen[name].replace("&#39;", "'") or "[grading!" in seen[name], name
        assert "[grading!" in seen[name], name


def test_a_role_the_workbook_grants_see_rules_reads_them(app: Any, record: int, monkeypatch: pytest.MonkeyPatch) -> None:
    crm = app.extensions["crm"]
    assert not TECHNICAL.search(pages(app, "words_gm", PASSWORD, record)["show"])  # not granted: words
    granted = tuple(dataclasses.replace(r, see_rules=True) if r.name == "总经理" else r for r in crm.spec.roles)
    monkeypatch.setattr(crm, "spec", dataclasses.replace(crm.spec, roles=granted))
    seen = pages(app, "words_gm", PASSWORD, record)
    assert "[grading!" in seen["show"] and "[grading!" in seen["export"] and "[grading!" in seen["history"]
    assert not TECHNICAL.search(pages(app, "words_sales", PASSWORD, record, export=False)["show"])  # others still read words


def test_a_refused_step_says_its_condition_in_words_and_its_cell_only_to_readers_of_rules(app: Any, record: int) -> None:
    """The reason a workflow button is grey: words for everyone; the expression and cell for the administrator."""
    from app.record import workflow

    crm = app.extensions["crm"]
    spec = crm.spec
    t = next(t for t in spec.workflows if t.condition)
    e = spec.entity(t.entity)
    obj = type("Record", (), {t.state_field: t.source})()
    with app.test_request_context():
        sm = crm.appbuilder.sm
        sales, admin = sm.find_user(username="words_sales"), sm.find_user(username="admin")
        said = {who.username: next(o.reason for o in workflow.options(spec, e, obj, who, crm.admin_role) if o.transition == t)
                for who in (admin, sales) if who is not None}
    assert "条件不满足" in said["words_sales"] and t.ref not in said["words_sales"] and t.condition not in said["words_sales"]
    assert t.ref in said["admin"] and t.condition in said["admin"]


def test_without_a_note_the_condition_is_said_with_labels_and_choice_labels(app: Any) -> None:
    from app.web.ruletext import plain_reason

    spec = app.extensions["crm"].spec
    rule = next(r for r in spec.grading if "working_hours" in r.condition)
    bare = dataclasses.replace(spec, grading=tuple(dataclasses.replace(r, note="") if r is rule else r for r in spec.grading))
    stored = f"{rule.grade}: {rule.condition} ← area_type=urban [{rule.ref}]"
    with app.test_request_context():
        said = plain_reason(bare, bare.entity(rule.entity), stored)
        assert said == "市区/郊区 = 「市区」 且 叫修时间至到达时间的工作小时数 ≤ 6", said
        assert plain_reason(spec, spec.entity(rule.entity), stored) == rule.note  # with a note: the note


def test_the_outbox_shows_labels_not_keys_nor_none(app: Any) -> None:
    t = OutboxMessage.__table__
    now = dt.datetime.now()
    with app.app_context():
        session = app.extensions["crm"].db.session
        session.execute(sa.insert(t).values(key="words.outbox.1", source="master_data_pending", entity="master_data_request", record_id=7,
                                            occurrence="2026-12-01", step=0, channel="inapp", subject="主数据申请待处理:MD-1",
                                            status="pending", attempts=0, next_attempt_at=now, created_on=now))
        session.commit()
        pk = session.execute(sa.select(t.c.id).where(t.c.key == "words.outbox.1")).scalar_one()
    c = app.test_client()
    login(c, "admin", ADMIN_PASSWORD)
    for url in ("/outbox/list/", f"/outbox/show/{pk}"):
        page = c.get(url)
        assert page.status_code == 200
        row = next(r for r in re.findall(r"<tr.*?</tr>", page.text, re.S) if "MD-1" in r) if "list" in url else page.text
        cells = " ".join(re.findall(r"<td[^>]*>(.*?)</td>", row, re.S))  # this message's (other tests write others)
        for raw in ("master_data_pending", "master_data_request", "inapp", "None", "pending", "words.outbox.1"):
            assert not re.search(rf"(?<![\w.]){re.escape(raw)}(?![\w.])", cells), (url, raw)
        assert "站内信" in cells and "主数据申请待处理" in cells and "待发送" in cells and "—" in cells


def test_see_rules_is_a_validated_yes_no_column(tmp_path: Any) -> None:
    from generator import load_spec
    from generator.problems import WorkbookError
    from tests.workbooks import library_sheets, write_workbook

    sheets = library_sheets()
    role = sheets["roles"][0]["role"]
    sheets["roles"][0]["see_rules"] = "yes"
    spec, problems = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    assert not problems and next(r for r in spec.roles if r.name == role).see_rules
    sheets["roles"][0]["see_rules"] = "也许"
    with pytest.raises(WorkbookError) as refused:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert "roles!" in str(refused.value) and "也许" in str(refused.value)


def test_the_audit_log_says_where_changes_came_from_in_words(app: Any, tmp_path: Any) -> None:
    """Its 来源 column read ``import`` and ``cli/task``; a change with no user read ``None``."""
    from openpyxl import Workbook

    from tests.test_excel import run

    wb = Workbook()
    wb.active.append(["客户名称", "需求迫切程度"])
    wb.active.append(["审计来源客户", "normal"])
    wb.save(tmp_path / "audit.xlsx")
    assert run(app, "admin", "customer", tmp_path / "audit.xlsx").committed
    c = app.test_client()
    login(c, "admin", ADMIN_PASSWORD)
    page = c.get("/auditlog/?entity=customer")
    assert page.status_code == 200
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page.text, re.S)
    assert "导入" in cells and not {"import", "cli/task", "None"} & set(cells), sorted(set(cells))[:40]
    export = load_workbook(io.BytesIO(c.get("/auditlog/export/?entity=customer").data)).active
    sources = {row[2] for row in export.iter_rows(min_row=2, values_only=True)}
    assert "导入" in sources and not {"import", "cli/task"} & sources, sources
