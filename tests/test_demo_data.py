"""A first contact that works: `crm demo-data` says each demo login, its role and the password;
its rows read like an office's (dates agree with one another and with today, every workbook
validation holds, numbers in range, subjects that are not counters); `crm up` says nothing that
contradicts what it does next (issue 25, part 5)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import FAST_PASSWORD_HASH, ROOT, login
from tests.demo_checks import demo_problems
from tests.probes import run_probe
from tests.workbooks import library_sheets, write_workbook

NOW = dt.datetime.now().replace(second=0, microsecond=0)


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The shipped workbook's app on a database of its own, filled with demo data as of now."""
    from app import create_app
    from app.migrate.create import create_schema
    from app.ops.demo import make_demo_data

    db = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    application = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db}", "TESTING": True, "RATELIMIT_ENABLED": False,
                              **FAST_PASSWORD_HASH})
    create_schema(application)
    make_demo_data(application, 150, seed=11, now=NOW, related=1300)
    with application.app_context():
        yield application


def test_the_words_of_a_date_field_say_whether_it_is_past_due_or_planned() -> None:
    """The shipped fields read as an office reads them: what happened, what is due, what is planned."""
    from app.ops.demodates import kind
    from app.spec.model import Field

    spec = _shipped_spec()
    kinds = {(e.name, f.name): kind(f) for e in spec.entities for f in e.fields if f.type in ("date", "datetime")}
    for past in [("customer", "last_contact_on"), ("customer", "first_contacted_on"), ("complaint", "received_at"),
                 ("follow_up", "done_on"), ("complaint", "closed_at"), ("maintenance_contract", "notice_sent_on"),
                 ("maintenance_contract", "signed_on"), ("service_call", "reported_at"), ("meeting_minutes", "sent_on")]:
        assert kinds[past] == "past", past
    for due in [("complaint", "deadline"), ("meeting_minutes", "due_date"), ("confidential_formula", "review_due"),
                ("maintenance_contract", "end_date")]:
        assert kinds[due] == "due", due
    for plan in [("follow_up", "planned_on"), ("follow_up", "next_follow_on"), ("visit_request", "visit_at")]:
        assert kinds[plan] == "plan", plan
    assert kinds[("customer", "birthday")] == "birth"
    assert kind(Field("due_on", "应还日期", "date")) == "due" and kind(Field("returned_on", "归还日期", "date")) == "past"


def test_demo_rows_of_the_shipped_workbook_read_like_an_office(demo_app: Any) -> None:
    """No date meaning the past after today, no due or planned date before the record's start,
    every validation of the workbook holds on every row, numbers within min/max."""
    problems = demo_problems(demo_app, NOW)
    assert not problems, problems[:20]


def test_due_dates_follow_what_they_are_due_from(demo_app: Any) -> None:
    """The pairs an office checks first: a complaint's deadline from its receipt, the minutes'
    due date from the meeting, a contract's end from its start; a date a state stands for (a
    follow-up's done date, a complaint's closing time) only in that state."""
    models = demo_app.extensions["crm"].generated.models.MODELS
    session = demo_app.extensions["crm"].db.session
    complaints = session.query(models["complaint"]).all()
    assert complaints and all(c.deadline >= c.received_at.date() for c in complaints)
    assert all(c.received_at <= NOW and (c.closed_at is None or c.received_at <= c.closed_at <= NOW) for c in complaints)
    assert all(c.closed_at is None for c in complaints if c.status != "closed"), "closed only once closed"
    calls = session.query(models["service_call"]).all()
    assert all(c.dispatched_at is None and c.arrived_at is None for c in calls if c.status == "registered"), \
        "dispatched (and arrived) only once dispatched"
    assert all(c.closed_at for c in calls if c.status == "closed")
    minutes = session.query(models["meeting_minutes"]).all()
    assert all(m.due_date is None or m.due_date >= m.meeting_date for m in minutes)
    contracts = session.query(models["maintenance_contract"]).all()
    assert all(c.end_date > c.start_date for c in contracts)
    assert any(c.end_date > NOW.date() for c in contracts), "some contracts still run"
    follow_ups = session.query(models["follow_up"]).all()
    assert all(f.done_on is None for f in follow_ups if f.status != "done"), "a planned follow-up has no done date"
    assert any(f.planned_on >= NOW.date() for f in follow_ups if f.status == "planned"), "some follow-ups are ahead"
    customers = session.query(models["customer"]).all()
    assert all(c.last_contact_on <= NOW.date() for c in customers if c.last_contact_on)


def test_subjects_and_numbers_read_like_work(demo_app: Any) -> None:
    """Subjects are made of the row's own choice labels and work topics, never "跟进记录00990";
    money and hours in an office's ranges."""
    models = demo_app.extensions["crm"].generated.models.MODELS
    session = demo_app.extensions["crm"].db.session
    follow_ups = session.query(models["follow_up"]).all()
    subjects = {f.subject for f in follow_ups}
    assert len(subjects) > len(follow_ups) // 3, "subjects vary"
    assert not [s for s in subjects if re.search(r"\d", s)], subjects
    method_labels = {"电话", "拜访", "邮件", "微信", "传真/邮寄资料", "研讨会/巡展"}
    assert any(any(s.startswith(m) for m in method_labels) for s in subjects), "some subjects say how (电话:…)"
    calls = session.query(models["service_call"]).all()
    assert all(c.fee is None or 50 <= c.fee <= 10_000 for c in calls), sorted(c.fee for c in calls if c.fee)[-3:]
    assert all(c.labor_hours is None or c.labor_hours <= 8 for c in calls)
    contracts = session.query(models["maintenance_contract"]).all()
    assert all(c.name == f"{min(c.signed_on or c.start_date, c.start_date).year}年度维保合同" for c in contracts), \
        [(c.name, c.signed_on, c.start_date) for c in contracts][:5]
    names = [c.name for c in session.query(models["customer"]).all()]
    assert sum(bool(re.search(r"-\d+$", n)) for n in names) < len(names) // 10, "a firm's name is numbered only when taken"


def test_demo_logins_say_the_role_and_fall_back_without_an_english_label() -> None:
    from app.access.accounts import login_stems

    roles = [SimpleNamespace(name="馆长", label="Director"), SimpleNamespace(name="业务员", label="Salesperson"),
             SimpleNamespace(name="客服专员", label="Customer service"), SimpleNamespace(name="巡检员", label="巡检"),
             SimpleNamespace(name="复核员", label=""), SimpleNamespace(name="销售", label="Salesperson")]
    assert login_stems(roles) == {"馆长": "director", "业务员": "salesperson", "客服专员": "customer_service",
                                  "巡检员": "role4-", "复核员": "role5-", "销售": "role6-"}


def test_crm_demo_data_prints_each_login_with_its_role_and_the_password_that_signs_it_in(tmp_path: Path) -> None:
    """Parse what `crm demo-data` prints; sign in with each login through the login form."""
    from app import create_app
    from app.access.accounts import password_problem

    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    env = {**os.environ, "CRM_DATABASE_URL": url, "CRM_VAR_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "app.cli", "demo-data", "--customers", "12", "--related", "26"],  # noqa: S603
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r"^示例登录,密码均为 (\S+) \(demo logins, each with the password \1\)$", run.stdout, re.M)
    assert found, run.stdout[-2000:]
    password = found.group(1)
    assert password_problem(password) is None
    logins = re.findall(r"^  (\S+)\s+(\S+) \(([^)]*)\) · (\S+)$", run.stdout, re.M)
    spec = _shipped_spec()
    shipped = {r.name: r.label for r in spec.roles if not r.admin}
    assert {role for _u, role, _l, _d in logins} == set(shipped), run.stdout
    assert all(label == shipped[role] for _u, role, label, _d in logins)
    assert ("salesperson1", "业务员", "Salesperson", "演示一部") in logins and ("technician2", "技术员", "Technician", "演示二部") in logins
    assert not [u for u, *_ in logins if re.fullmatch(r"demo\d+", u)]
    application = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "RATELIMIT_ENABLED": False})
    sm = application.extensions["crm"].appbuilder.sm
    for username, role, _label, _department in logins:
        c = application.test_client()
        r = login(c, username, password)
        assert r.status_code == 302 and "/login" not in r.headers["Location"], username
        assert c.get("/dashboard/").status_code == 200, username
        with application.app_context():
            assert [x.name for x in sm.find_user(username=username).roles] == [role]
    assert "No user yet created" not in run.stdout + run.stderr


def test_the_second_domain_gets_coherent_demo_data_and_logins_from_its_sheets(tmp_path: Path) -> None:
    """The library workbook, plus a validation tying a loan's due date to its loan date: every
    row keeps it, its logins are named after its roles' labels and sign in."""
    from generator import generate

    sheets = library_sheets()
    sheets["fields"].insert(-2, {"entity": "loan", "name": "lent_on", "label": "借出日期", "type": "date", "required": "yes"})
    sheets["validations"] = [{"entity": "loan", "condition": "not due_on or due_on >= lent_on", "message": "应还日期不能早于借出日期。"}]
    workbook = write_workbook(tmp_path / "library.xlsx", sheets)
    out = tmp_path / "library_app"
    generate(workbook, out)
    env = {"CRM_WORKBOOK": str(workbook), "CRM_GENERATED_DIR": str(out), "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'library.sqlite'}"}
    r = run_probe("demo_data", env, timeout=300)
    assert r["made"]["loan"] >= 40 and not r["problems"], r["problems"]
    assert [u for u, _role in r["logins"]] == ["librarian1", "librarian2", "volunteer1", "volunteer2"]
    assert all(r["signed_in"]), r


@pytest.mark.slow
def test_crm_up_says_what_it_does_and_nothing_else(tmp_path: Path) -> None:
    """`crm up` on a fresh var dir: no FAB "No user yet created, use flask fab command" right
    before it creates the administrator itself; it names the admin login and where it serves."""
    from tests.test_serve import free_port, wait_healthy

    env = {**os.environ, "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'up.sqlite'}", "CRM_VAR_DIR": str(tmp_path / "var"),
           "PYTHONUNBUFFERED": "1", "CRM_ADMIN_USER": "chief"}
    env.pop("CRM_ADMIN_PASSWORD", None)
    port = free_port()
    up = subprocess.Popen([sys.executable, "-m", "app.cli", "up", "--port", str(port)], cwd=ROOT, env=env,  # noqa: S603
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.time() + 180
        for line in up.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("serving on"):
                break
            assert time.time() < deadline, "crm up did not start"
        wait_healthy(port, deadline, up, "crm up did not serve")
    finally:
        up.terminate()
        rest = up.communicate(timeout=60)[0]
    before = "".join(lines)
    output = before + rest
    assert "No user yet created" not in output and "flask fab" not in output, output[:3000]
    admin = re.search(r"^管理员账号已创建 \(first admin created\): user 'chief', password '(\S+)'", before, re.M)
    assert admin, before
    assert f"serving on http://127.0.0.1:{port}/" in before


def _shipped_spec() -> Any:
    from generator import load_spec

    spec, problems = load_spec(ROOT / "sheets" / "crm.xlsx")
    assert not problems
    return spec
