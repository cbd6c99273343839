"""Imports from the screens run as Celery jobs: upload → (mapping step) → live progress → result
and error workbook. Unit tests run the task eagerly; the real-worker tests start a Celery worker
process on Redis and PostgreSQL and watch its progress from another connection, then kill one
mid-import and show the job is imported exactly once after a restart."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery
from openpyxl import Workbook, load_workbook

from app.io import importjobs
from app.io.importjobs import JOBS, create_job, run_job
from tests.conftest import ADMIN_PASSWORD, ROOT, csrf_token, login, person
from tests.migration_helpers import database
from tests.test_excel import PASSWORD, count, xlsx
from tests.test_worker import redis_url, start_worker, stop, wait_for


@pytest.fixture(scope="module")
def people(app: Any) -> None:
    person(app, "xl_sales", ["业务员"], PASSWORD, departments=["导入一部"])
    person(app, "xl_manager", ["销售经理"], PASSWORD, departments=["导入一部"])


@pytest.fixture
def eager(app: Any) -> Iterator[None]:
    """Tasks run in the calling process (unit tests only: no serialisation, no broker)."""
    conf = app.extensions["celery"].conf
    conf.task_always_eager = True
    yield
    conf.task_always_eager = False


def upload(client: Any, path: Path, **fields: Any) -> Any:
    page = client.get("/customerview/import/")
    data = {"csrf_token": csrf_token(page.text), "mode": "insert", **fields, "file": (path.open("rb"), path.name)}
    return client.post("/customerview/import/", data=data, content_type="multipart/form-data")


def token_of(response: Any) -> str:
    m = re.search(r"/import/job/([0-9a-f]{32})", response.headers.get("Location", ""))
    assert m, (response.status_code, response.headers.get("Location"), response.text[:500])
    return m.group(1)


def manager(app: Any) -> Any:
    c = app.test_client()
    login(c, "xl_manager", PASSWORD)  # 销售经理: import right, team scope
    return c


def test_an_upload_runs_as_a_job_with_progress_and_a_summary(app: Any, people: None, tmp_path: Path, eager: None) -> None:
    c = manager(app)
    assert app.test_client().get("/customerview/import/").status_code in (302, 403)
    r = upload(c, xlsx(tmp_path / "ok.xlsx", [["客户名称", "需求迫切程度"], *[[f"作业客户{i}", "normal"] for i in range(3)]]))
    token = token_of(r)
    assert r.headers["Location"].endswith(f"/import/job/{token}")
    progress = c.get(f"/customerview/import/job/{token}/progress").json
    assert progress["status"] == "done" and (progress["done"], progress["total"], progress["percent"]) == (3, 3, 100)
    assert progress["result"]["counts"]["inserted"] == 3 and progress["result"]["committed"]
    page = c.get(f"/customerview/import/job/{token}")
    assert page.status_code == 200 and "新增 3" in page.text and "crm-progress" not in page.text
    with app.app_context():
        me = app.extensions["crm"].appbuilder.sm.find_user(username="xl_manager").id
    assert count(app, "SELECT count(*) FROM customer WHERE name LIKE '作业客户%' AND owner_id = :me", me=me) == 3
    assert count(app, "SELECT count(*) FROM crm_import_job WHERE token = :t AND upload IS NULL", t=token) == 1  # the file is dropped
    other = app.test_client()
    login(other, "admin", ADMIN_PASSWORD)
    assert other.get(f"/customerview/import/job/{token}/progress").status_code == 404  # someone else's job


def test_a_running_job_shows_a_progress_bar_that_polls(app: Any, people: None, tmp_path: Path) -> None:
    c = manager(app)
    token = _job(app, "xl_manager", xlsx(tmp_path / "q.xlsx", [["客户名称", "需求迫切程度"], ["排队客户", "normal"]]))["token"]
    page = c.get(f"/customerview/import/job/{token}")
    assert 'class="progress crm-progress"' in page.text and f"/import/job/{token}/progress" in page.text
    assert c.get(f"/customerview/import/job/{token}/progress").json["status"] == "queued"
    with app.app_context():
        engine = app.extensions["crm"].db.engine
    with engine.begin() as conn:  # what a worker commits while it checks row 500 of 2000
        conn.execute(JOBS.update().where(JOBS.c.token == token).values(
            status="checking", total=2000, done=500, started_at=dt.datetime.now() - dt.timedelta(seconds=10),
            heartbeat_at=dt.datetime.now(), claim="x" * 32))
    p = c.get(f"/customerview/import/job/{token}/progress").json
    assert (p["status"], p["done"], p["total"], p["percent"]) == ("checking", 500, 2000, 15)  # checking is 60 % of the bar
    assert 30 <= p["eta_seconds"] <= 45  # 10 s for 500 rows: 30 s for the rest, and a little for writing


def test_unsure_headers_go_through_the_mapping_step(app: Any, people: None, tmp_path: Path, eager: None) -> None:
    c = manager(app)
    path = xlsx(tmp_path / "m.xlsx", [["客户名", "迫切程度", "内部编号"], ["映射步骤客户", "normal", "X9"]])
    r = upload(c, path)
    assert "/map" in r.headers["Location"]
    token = token_of(r)
    page = c.get(f"/customerview/import/job/{token}/map")
    assert page.status_code == 200 and "第 1 行 A 列 '客户名':未知列" in html.unescape(page.text)
    assert "unknown column" not in page.text  # the page's language only
    c.get("/lang/en")
    english = html.unescape(c.get(f"/customerview/import/job/{token}/map").text)
    c.get("/lang/zh")
    assert "row 1, column A '客户名': unknown column '客户名'" in english and "未知列" not in english
    selected = dict(re.findall(r'<select name="(map_\d)".*?<option value="(\w+)" selected', page.text, re.S))
    assert selected == {"map_0": "name", "map_1": "urgency"}  # best guesses pre-filled; 内部编号 left as "do not import"
    assert "<div>映射步骤客户</div>" in page.text and "<div>X9</div>" in page.text  # a sample under each header
    form = {"csrf_token": csrf_token(page.text), "map_0": "name", "map_1": "name", "map_2": ""}
    again = c.post(f"/customerview/import/job/{token}/map", data=form)
    assert again.status_code == 200 and "列 '迫切程度' 与第 1 列都对应字段" in html.unescape(again.text)
    c.get("/lang/en")
    again = c.post(f"/customerview/import/job/{token}/map", data=form)
    c.get("/lang/zh")
    assert again.status_code == 200 and "both fill 'name'" in html.unescape(again.text) and "都对应字段" not in again.text
    assert count(app, "SELECT count(*) FROM crm_import_job WHERE token = :t AND status = 'mapping'", t=token) == 1
    form["map_1"] = "urgency"
    done = c.post(f"/customerview/import/job/{token}/map", data=form)
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/import/job/{token}")
    assert c.get(f"/customerview/import/job/{token}/progress").json["result"]["counts"]["inserted"] == 1
    assert count(app, "SELECT count(*) FROM customer WHERE name = '映射步骤客户'") == 1


def test_bad_rows_leave_nothing_and_offer_the_error_workbook(app: Any, people: None, tmp_path: Path, eager: None) -> None:
    c = manager(app)
    token = token_of(upload(c, xlsx(tmp_path / "bad.xlsx", [["客户名称", "需求迫切程度"], ["好行", "normal"], ["坏行", "非常急"]])))
    p = c.get(f"/customerview/import/job/{token}/progress").json
    assert p["status"] == "done" and not p["result"]["committed"] and p["has_report"]
    assert p["result"]["errors"][0][0] == 3 and "非常急" in p["result"]["errors"][0][1][0][1]
    assert count(app, "SELECT count(*) FROM customer WHERE name = '好行'") == 0
    page = c.get(f"/customerview/import/job/{token}")
    assert "没有导入任何数据" in page.text and "crm-import-report" in page.text and "第 3 行" in page.text
    c.get("/lang/en")
    assert "Row 3" in c.get(f"/customerview/import/job/{token}").text
    c.get("/lang/zh")
    ws = load_workbook(io.BytesIO(c.get(f"/customerview/import/job/{token}/report").data)).active
    assert ws.max_row == 2 and ws.cell(2, 1).value == "坏行" and ws.cell(2, 2).fill.fgColor.rgb.endswith("FFC7CE")


def test_an_import_upload_may_be_larger_than_other_requests_up_to_its_own_cap(app: Any, people: None, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 100_000)  # any request
    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_BYTES", 1_000_000)  # an import upload
    rows = "".join(f"大文件客户{i},normal\n" for i in range(12_000))  # ~250 KB
    big = tmp_path / "big.csv"
    big.write_text("客户名称,需求迫切程度\n" + rows, encoding="utf-8")
    assert 100_000 < big.stat().st_size < 1_000_000
    c = manager(app)
    token_of(upload(c, big))  # taken: a job was made
    page = c.get("/customerview/add")
    r = c.post("/customerview/add", data={"csrf_token": csrf_token(page.text), "name": "大表单客户", "urgency": "normal",
                                          "notes": "x" * 150_000})
    assert r.status_code == 413 and "文件太大" in r.text and "没有保存任何内容" in r.text
    huge = tmp_path / "huge.csv"
    huge.write_text("客户名称,需求迫切程度\n" + rows * 5, encoding="utf-8")
    r = upload(c, huge)
    assert r.status_code == 413 and "文件太大" in r.text
    assert count(app, "SELECT count(*) FROM customer WHERE name = '大表单客户'") == 0


def test_files_that_cannot_be_imported_are_reported_at_once(app: Any, people: None, tmp_path: Path) -> None:
    c = manager(app)
    jobs = count(app, "SELECT count(*) FROM crm_import_job")
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"not a workbook at all")
    r = upload(c, junk)
    assert r.status_code == 200 and "这不是 .xlsx 或 .csv 文件" in r.text and "not an .xlsx" not in r.text
    dup = xlsx(tmp_path / "dup.xlsx", [["客户名称", "name"], ["x", "y"]])
    r = upload(c, dup)
    assert r.status_code == 200 and "列 'name' 与第 1 列都对应字段" in html.unescape(r.text)
    c.get("/lang/en")
    try:
        r = upload(c, junk)
        assert r.status_code == 200 and "not an .xlsx or .csv file" in r.text and "这不是" not in r.text
        r = upload(c, dup)
        assert r.status_code == 200 and "both fill 'name'" in html.unescape(r.text)
    finally:
        c.get("/lang/zh")
    assert count(app, "SELECT count(*) FROM crm_import_job") == jobs


def _job(app: Any, username: str, path: Path, **options: Any) -> dict[str, Any]:
    with app.app_context():
        crm = app.extensions["crm"]
        user = crm.appbuilder.sm.find_user(username=username)
        return create_job(crm.db.engine, "customer", user.id, path.name, path.read_bytes(), {"mode": "insert", **options})


def test_the_job_acts_as_its_user_and_checks_the_right_again(app: Any, people: None, tmp_path: Path) -> None:
    path = xlsx(tmp_path / "r.xlsx", [["客户名称", "需求迫切程度"], ["无权导入客户", "normal"]])
    job = _job(app, "xl_sales", path)  # 业务员 has no import right (e.g. withdrawn after the upload)
    with app.app_context():
        assert run_job(app, job["id"]) == "failed"
    assert count(app, "SELECT count(*) FROM customer WHERE name = '无权导入客户'") == 0
    with app.app_context():
        row = app.extensions["crm"].db.session.execute(sa.select(JOBS.c.result).where(JOBS.c.id == job["id"])).scalar()
    problem = json.loads(row)["problems"][0]  # kept in both languages: the page shows its reader's only
    assert "may no longer import" in problem["en"] and problem["zh"] == "发起导入的用户已无导入权限"


def test_a_job_runs_once_however_often_it_is_delivered(app: Any, people: None, tmp_path: Path) -> None:
    job = _job(app, "xl_manager", xlsx(tmp_path / "once.xlsx", [["客户名称", "需求迫切程度"], ["只导入一次", "normal"]]))
    with app.app_context():
        assert run_job(app, job["id"]) == "done"
        assert run_job(app, job["id"]) == "skipped"
    assert count(app, "SELECT count(*) FROM customer WHERE name = '只导入一次'") == 1


def test_a_worker_that_lost_its_claim_rolls_its_import_back(app: Any, people: None, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    job = _job(app, "xl_manager", xlsx(tmp_path / "lost.xlsx", [["客户名称", "需求迫切程度"], ["失去认领", "normal"]]))
    real = importjobs._progress_writer
    with app.app_context():
        engine = app.extensions["crm"].db.engine

    def stealing(engine_: Any, job_id: int, claim: str) -> Any:
        write = real(engine_, job_id, claim)

        def progress(phase: str, done: int, total: int | None) -> None:
            write(phase, done, total)
            if phase == "checking" and done == total:  # checked; another worker takes over before the write
                with engine.begin() as conn:
                    conn.execute(JOBS.update().where(JOBS.c.id == job_id).values(claim="another-worker"))

        return progress

    monkeypatch.setattr(importjobs, "_progress_writer", stealing)
    with app.app_context():
        assert run_job(app, job["id"]) == "lost"
    assert count(app, "SELECT count(*) FROM customer WHERE name = '失去认领'") == 0
    assert count(app, "SELECT count(*) FROM crm_import_job WHERE id = :id AND status = 'checking'", id=job["id"]) == 1


def test_a_silent_job_is_queued_again_when_watched(app: Any, people: None, tmp_path: Path, eager: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    c = manager(app)
    job = _job(app, "xl_manager", xlsx(tmp_path / "s.xlsx", [["客户名称", "需求迫切程度"], ["复活客户", "normal"]]))
    with app.app_context():
        engine = app.extensions["crm"].db.engine
    with engine.begin() as conn:  # a worker claimed it and died
        conn.execute(JOBS.update().where(JOBS.c.id == job["id"]).values(status="checking", claim="dead" * 8,
                                                                         heartbeat_at=dt.datetime.now() - dt.timedelta(seconds=30)))
    assert c.get(f"/customerview/import/job/{job['token']}/progress").json["status"] == "checking"  # within the lease
    monkeypatch.setitem(app.config, "CRM_IMPORT_LEASE_SECONDS", 20)
    assert c.get(f"/customerview/import/job/{job['token']}/progress").json["status"] == "done"
    assert count(app, "SELECT count(*) FROM customer WHERE name = '复活客户'") == 1


def test_beat_queues_a_silent_job_again_with_nobody_watching(app: Any, people: None, tmp_path: Path, eager: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    dead = _job(app, "xl_manager", xlsx(tmp_path / "d.xlsx", [["客户名称", "需求迫切程度"], ["清扫客户", "normal"]]))
    alive = _job(app, "xl_manager", xlsx(tmp_path / "a.xlsx", [["客户名称", "需求迫切程度"], ["在跑客户", "normal"]]))
    with app.app_context():
        engine = app.extensions["crm"].db.engine
    old = dt.datetime.now() - dt.timedelta(seconds=60)
    with engine.begin() as conn:  # one worker died an hour ago, the other is busy (its heartbeat is fresh)
        conn.execute(JOBS.update().where(JOBS.c.id == dead["id"]).values(status="checking", claim="dead" * 8, heartbeat_at=old))
        conn.execute(JOBS.update().where(JOBS.c.id == alive["id"]).values(status="checking", claim="busy" * 8,
                                                                          heartbeat_at=dt.datetime.now()))
    monkeypatch.setitem(app.config, "CRM_IMPORT_LEASE_SECONDS", 20)
    with app.app_context():
        assert app.extensions["celery"].tasks["app.tasks.revive_imports_task"].apply().get() == 1
    with engine.connect() as conn:
        states = dict(conn.execute(sa.select(JOBS.c.id, JOBS.c.status).where(JOBS.c.id.in_((dead["id"], alive["id"])))).all())
    assert states == {dead["id"]: "done", alive["id"]: "checking"}, "the dead job ran again; the busy one was left alone"
    assert count(app, "SELECT count(*) FROM customer WHERE name = '清扫客户'") == 1
    assert count(app, "SELECT count(*) FROM customer WHERE name = '在跑客户'") == 0
    with app.app_context():
        assert importjobs.revive_stale(app) == 0, "a second sweep finds nothing to do"


def test_a_dead_worker_is_noticed_within_a_minute(app: Any, people: None, tmp_path: Path, eager: None) -> None:
    """With the default lease, a job whose worker went silent a minute ago runs again when watched."""
    c = manager(app)
    job = _job(app, "xl_manager", xlsx(tmp_path / "m.xlsx", [["客户名称", "需求迫切程度"], ["一分钟客户", "normal"]]))
    with app.app_context():
        engine = app.extensions["crm"].db.engine
    with engine.begin() as conn:  # a worker claimed it and died a minute ago, at 15 %
        conn.execute(JOBS.update().where(JOBS.c.id == job["id"]).values(status="checking", claim="dead" * 8, done=1, total=4,
                                                                         heartbeat_at=dt.datetime.now() - dt.timedelta(seconds=60)))
    assert c.get(f"/customerview/import/job/{job['token']}/progress").json["status"] == "done"
    assert count(app, "SELECT count(*) FROM customer WHERE name = '一分钟客户'") == 1


def test_a_live_worker_beats_while_a_long_step_writes_no_progress(app: Any, people: None, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that reports nothing for longer than the lease (a long parse) keeps the job's heartbeat
    fresh, so the job is not taken from a worker that is alive."""
    job = _job(app, "xl_manager", xlsx(tmp_path / "slow.xlsx", [["客户名称", "需求迫切程度"], ["慢步骤客户", "normal"]]))
    with app.app_context():
        engine = app.extensions["crm"].db.engine
    real, seen = importjobs.import_file, []

    def slow(*args: Any, **kwargs: Any) -> Any:
        def beat() -> Any:
            with engine.connect() as conn:
                return conn.execute(sa.select(JOBS.c.heartbeat_at).where(JOBS.c.id == job["id"])).scalar()
        seen.append(beat())
        time.sleep(2.5)  # past the lease of 1 s: silent but alive
        seen.append(beat())
        return real(*args, **kwargs)

    monkeypatch.setattr(importjobs, "import_file", slow)
    monkeypatch.setitem(app.config, "CRM_IMPORT_LEASE_SECONDS", 1)
    with app.app_context():
        assert run_job(app, job["id"]) == "done"
    assert seen[1] > seen[0] and dt.datetime.now() - seen[1] < dt.timedelta(seconds=2)
    assert count(app, "SELECT count(*) FROM customer WHERE name = '慢步骤客户'") == 1


# -- a real worker process -----------------------------------------------------------------------

def big_file(path: Path, rows: int, prefix: str) -> Path:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("客户")
    ws.append(["客户名称", "需求迫切程度", "年需求规模(元)", "所属区域"])
    for i in range(rows):
        ws.append([f"{prefix}{i}", "normal", 1000 * i, "华东"])
    wb.save(path)
    return path


def prepare(tmp: Path, url: str, broker: str) -> dict[str, str]:
    env = {**os.environ, "CRM_DATABASE_URL": url, "CRM_VAR_DIR": str(tmp), "CRM_BROKER_URL": broker, "CRM_IMPORT_LEASE_SECONDS": "3"}
    code = ("from app import create_app; from app.migrate.create import create_schema; from app.access.accounts import create_first_admin; "
            "a = create_app(); create_schema(a); create_first_admin(a, 'admin', 'worker-Pass-1')")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, timeout=180)  # noqa: S603
    return env


def queue(engine: sa.Engine, path: Path, broker: str) -> int:
    with engine.connect() as conn:
        admin = conn.execute(sa.text("SELECT id FROM ab_user WHERE username = 'admin'")).scalar_one()
    job = create_job(engine, "customer", admin, path.name, path.read_bytes(), {"mode": "insert"})
    send(broker, job["id"])
    return int(job["id"])


def send(broker: str, job_id: int) -> None:
    sender = Celery(broker=broker)
    sender.conf.broker_connection_retry_on_startup = True
    sender.send_task("app.tasks.import_task", args=[job_id])
    sender.close()


def snapshot(engine: sa.Engine, job_id: int) -> tuple[str, int, int | None]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(JOBS.c.status, JOBS.c.done, JOBS.c.total).where(JOBS.c.id == job_id)).one()
    return row[0], row[1], row[2]


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_on_redis_and_postgresql_reports_progress_while_it_imports(tmp_path: Path) -> None:
    broker = redis_url()
    with database("postgresql", tmp_path) as url:
        env = prepare(tmp_path, url, broker)
        engine = sa.create_engine(url)
        worker = start_worker(env, tmp_path, "importer")
        try:
            job_id = queue(engine, big_file(tmp_path / "big.xlsx", 4000, "进度客户"), broker)
            seen: list[tuple[str, int, int | None]] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                seen.append(snapshot(engine, job_id))
                if seen[-1][0] in ("done", "failed"):
                    break
                time.sleep(0.02)
        finally:
            stop(worker)
        assert seen[-1] == ("done", 4000, 4000), seen[-5:]
        assert any(s == "checking" and 0 < d < 4000 and t == 4000 for s, d, t in seen), "no progress seen while checking"
        assert any(s == "writing" and 0 < d < 4000 for s, d, t in seen), "no progress seen while writing (PostgreSQL)"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM customer WHERE name LIKE '进度客户%'")).scalar() == 4000
            assert conn.execute(sa.text("SELECT count(DISTINCT code) FROM customer")).scalar() == 4000
        engine.dispose()


@pytest.mark.slow
def test_a_worker_killed_mid_import_leaves_nothing_and_the_job_runs_once_after_a_restart(tmp_path: Path) -> None:
    broker = redis_url()
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    env = prepare(tmp_path, url, broker)
    engine = sa.create_engine(url)
    first = start_worker(env, tmp_path, "first")
    try:
        job_id = queue(engine, big_file(tmp_path / "kill.xlsx", 6000, "中断客户"), broker)
        wait_for(lambda: snapshot(engine, job_id)[0] == "checking" and snapshot(engine, job_id)[1] > 0, 90, "the import to be checking",
                 tmp_path)
    finally:
        stop(first, signal.SIGKILL)
    status, done, total = snapshot(engine, job_id)
    assert status == "checking" and done < 6000, "the kill came after the import: nothing tested"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customer")).scalar() == 0  # nothing half-imported
    second = start_worker(env, tmp_path, "second")
    try:
        time.sleep(5)  # the dead worker's lease (CRM_IMPORT_LEASE_SECONDS=3, heartbeats kept to the second) runs out
        send(broker, job_id)  # taken over
        send(broker, job_id)  # and a duplicate delivery does nothing
        wait_for(lambda: snapshot(engine, job_id)[0] == "done", 120, "the job to finish after the restart", tmp_path,
                 lambda: snapshot(engine, job_id))
        time.sleep(1)
    finally:
        stop(second)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customer WHERE name LIKE '中断客户%'")).scalar() == 6000
        assert conn.execute(sa.text("SELECT count(DISTINCT name) FROM customer")).scalar() == 6000
    engine.dispose()
