"""Imports started from the screens run on Celery; their state lives in ``crm_import_job``.

The web request stores the upload in a job row and queues ``import_task(job id)``; the worker
claims the job (a guarded status change, so a duplicate delivery does nothing), runs the import as
the user who started it (their scope, hidden fields, ownership; their import right checked
again), and commits progress as it goes, so any web worker can answer the progress bar. The
outcome is written *inside* the import's own transaction, guarded by the claim: a worker that lost
its claim (it stalled past the lease and another took over) rolls its import back, so a job never
imports twice. On SQLite, which has one writer, progress stops moving while the rows are written
(a few seconds); the page says "writing".
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.io.importer import ImportFileError, ImportReport, Inspection, import_file, inspect_file
from app.messages import Text, msg
from app.record.tables import ImportJob

log = logging.getLogger(__name__)
JOBS = ImportJob.__table__
LEASE_SECONDS = 45  # a running job whose worker was silent this long may be taken over (CRM_IMPORT_LEASE_SECONDS)
HEARTBEAT_SECONDS = 10  # a running job's worker says it is alive this often (at most a quarter of the lease)
IMPORT_MAX_BYTES = 64 * 1024 * 1024  # an import upload (CRM_IMPORT_MAX_BYTES); other requests keep MAX_CONTENT_LENGTH
PROGRESS_SECONDS = 0.5
PROGRESS_STEPS = 20  # and at least every 5 % of the rows, however fast they go
KEEP = dt.timedelta(days=30)  # uploads and reports of finished jobs are dropped after this
SHOWN_ERRORS = 50
CHECK_SHARE = 0.6  # of the bar: checking the rows; writing them is the rest (measured: about 60/40)


class LostClaim(RuntimeError):
    """Another worker took the job over: this run must not commit."""


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


def create_job(engine: sa.Engine, entity: str, user_id: int, filename: str, data: bytes, options: dict[str, Any],
               status: str = "queued") -> dict[str, Any]:
    """A new job holding the uploaded file; returns its row."""
    token = uuid.uuid4().hex
    with engine.begin() as conn:
        conn.execute(JOBS.update().where(JOBS.c.finished_at < _now() - KEEP).values(upload=None, report=None))
        conn.execute(JOBS.insert().values(token=token, entity=entity, user_id=user_id, filename=filename[:255], upload=data,
                                          options=json.dumps(options, ensure_ascii=False), status=status, done=0,
                                          created_on=_now()))
    return job_by_token(engine, token)  # type: ignore[return-value]


def inspect_upload(app: Any, entity: str, filename: str, data: bytes, user: Any, options: dict[str, Any]) -> Inspection:
    """The header check of an upload (in the web request, so a bad file is reported at once)."""
    with tempfile.TemporaryDirectory(prefix="crm-upload-") as folder:
        path = Path(folder) / ("upload" + Path(filename).suffix.lower())
        path.write_bytes(data)
        return inspect_file(app, entity, path, user, options.get("mode", "insert"), options.get("key") or None,
                            options.get("mapping") or None, header_row=options.get("header_row"))


def job_by_token(engine: sa.Engine, token: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(JOBS).where(JOBS.c.token == token)).mappings().first()
    return dict(row) if row is not None else None


def set_options(engine: sa.Engine, job_id: int, options: dict[str, Any]) -> bool:
    """The mapping step's answer: the job leaves ``mapping`` for ``queued`` (once)."""
    with engine.begin() as conn:
        done = conn.execute(JOBS.update().where(JOBS.c.id == job_id, JOBS.c.status == "mapping")
                            .values(options=json.dumps(options, ensure_ascii=False), status="queued"))
    return done.rowcount == 1


def dispatch(app: Any, job_id: int) -> bool:
    """Queue the job's task on ``app``'s Celery; a broker that cannot be reached fails the job."""
    from app.messaging.queue import celery_app_for

    engine = app.extensions["crm"].db.engine
    try:
        celery_app_for(app).tasks["app.tasks.import_task"].delay(job_id)
        return True
    except Exception:  # noqa: BLE001 - kombu raises many kinds of connection errors
        log.exception("cannot queue import job %s", job_id)
        with engine.begin() as conn:
            conn.execute(JOBS.update().where(JOBS.c.id == job_id, JOBS.c.status == "queued")
                         .values(status="failed", upload=None, finished_at=_now(),
                                 result=json.dumps({"problems": [said_both(msg("任务队列不可用,导入没有开始"))]}, ensure_ascii=False)))
        return False


def revive(app: Any, job: dict[str, Any]) -> bool:
    """Queue a job again when its worker died (silent past the lease) or its message was lost
    (queued that long); called while someone watches its progress. The claim guard makes a
    duplicate harmless, and a slow worker that was presumed dead loses its claim and rolls back."""
    engine = app.extensions["crm"].db.engine
    limit = _now() - lease(app)
    silent = sa.func.coalesce(JOBS.c.heartbeat_at, JOBS.c.created_on) < limit
    with engine.begin() as conn:
        moved = conn.execute(JOBS.update().where(JOBS.c.id == job["id"], JOBS.c.status.in_(("queued", "checking", "writing")), silent)
                             .values(status="queued", claim=None, heartbeat_at=_now())).rowcount
    if moved != 1:
        return False
    log.warning("import job %s was silent past its lease: queued again", job["id"])
    return dispatch(app, job["id"])


def allow_large_import_upload() -> None:
    """``before_request``, ahead of CSRF (which reads the form): an import upload may be larger
    than any other request — 150,000 rows of a spreadsheet exceed the general 16 MB."""
    from flask import current_app, request

    if request.method == "POST" and request.path.endswith("/import/"):
        request.max_content_length = int(current_app.config.get("CRM_IMPORT_MAX_BYTES") or IMPORT_MAX_BYTES)


def revive_stale(app: Any) -> int:
    """Beat's sweep (every minute): queue again every job silent past its lease, whether or not
    anyone is watching its progress bar; returns how many were queued again."""
    engine = app.extensions["crm"].db.engine
    limit = _now() - lease(app)
    silent = sa.func.coalesce(JOBS.c.heartbeat_at, JOBS.c.created_on) < limit
    with engine.connect() as conn:
        stale = conn.execute(sa.select(JOBS.c.id).where(JOBS.c.status.in_(("queued", "checking", "writing")), silent)
                             .order_by(JOBS.c.id)).scalars().all()
    return sum(revive(app, {"id": job_id}) for job_id in stale)


def progress_of(job: dict[str, Any]) -> dict[str, Any]:
    """What the progress bar shows: rows done / total, ETA, and the outcome when finished."""
    total, done = job["total"], job["done"] or 0
    eta = None
    if job["status"] in ("checking", "writing") and job["started_at"] and total and done:
        spent = (job["heartbeat_at"] - job["started_at"]).total_seconds() if job["heartbeat_at"] else 0
        # checking is most of the time; writing the rows takes about a third more
        eta = max(0, round(spent / done * (total - done) + (spent / 3 if job["status"] == "checking" else 0)))
    result = json.loads(job["result"]) if job["result"] else None
    share = done / total if total else 0.0
    percent = {"checking": CHECK_SHARE * share, "writing": CHECK_SHARE + (1 - CHECK_SHARE) * share, "done": 1.0, "failed": 1.0}
    return {"status": job["status"], "total": total, "done": done, "eta_seconds": eta,
            "percent": round(100 * percent.get(job["status"], 0.0)), "result": result, "has_report": job["report"] is not None}


def run_job(app: Any, job_id: int) -> str:
    """The task's body: claim, import as the job's user, record the outcome; returns the new status."""
    crm = app.extensions["crm"]
    engine = crm.db.engine
    claim = uuid.uuid4().hex
    now = _now()
    with engine.begin() as conn:
        free = sa.or_(JOBS.c.status == "queued",
                      sa.and_(JOBS.c.status.in_(("checking", "writing")), JOBS.c.heartbeat_at < now - lease(app)))
        if conn.execute(JOBS.update().where(JOBS.c.id == job_id, free)
                        .values(status="checking", claim=claim, started_at=now, heartbeat_at=now, done=0)).rowcount != 1:
            return "skipped"  # done already, or another worker has it
        job = dict(conn.execute(sa.select(JOBS).where(JOBS.c.id == job_id)).mappings().one())
    options = json.loads(job["options"])
    with tempfile.TemporaryDirectory(prefix="crm-import-") as folder:
        source = Path(folder) / ("upload" + Path(job["filename"]).suffix.lower())
        source.write_bytes(job["upload"] or b"")
        report_path = Path(folder) / "errors.xlsx"
        try:
            with _heartbeat(engine, job_id, claim, min(HEARTBEAT_SECONDS, lease(app).total_seconds() / 4)):
                return _run(app, job, job_id, claim, engine, source, report_path, options)
        except ImportFileError as exc:
            return _fail(engine, job_id, claim, exc.problems)
        except LostClaim:
            return "lost"
        except Exception:  # noqa: BLE001 - the job row must say it failed; the log keeps the traceback
            log.exception("import job %s failed", job_id)
            return _fail(engine, job_id, claim, [msg("导入时发生内部错误,没有导入任何数据;请联系管理员")])


def _run(app: Any, job: dict[str, Any], job_id: int, claim: str, engine: sa.Engine, source: Path, report_path: Path,
         options: dict[str, Any]) -> str:
    """Import the job's file as its user; the outcome recorded under the claim."""
    user = _acting_user(app, job)
    report = import_file(app, job["entity"], source, mode=options.get("mode", "insert"), key=options.get("key") or None,
                         dry_run=bool(options.get("dry_run")), skip_bad_rows=bool(options.get("skip_bad_rows")), user=user,
                         report_path=report_path, mapping=options.get("mapping") or None, header_row=options.get("header_row"),
                         progress=_progress_writer(engine, job_id, claim),
                         finish=lambda conn, rep: _finish(conn, job_id, claim, rep))
    if not report.committed:  # bad rows, or a dry run: nothing written, the outcome still recorded
        with engine.begin() as conn:
            _finish(conn, job_id, claim, report)
    return "done"


@contextmanager
def _heartbeat(engine: sa.Engine, job_id: int, claim: str, every: float) -> Iterator[None]:
    """While the job runs, a thread stamps its ``heartbeat_at`` every ``every`` seconds, whatever
    the import is doing (a long parse writes no progress): a worker that died is silent within
    ``every`` and is taken over once the lease runs out — under a minute, not ten. The stamp is
    guarded by the claim, and stops when the claim is lost (the progress writer raises then)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                with engine.begin() as conn:
                    moved = conn.execute(JOBS.update().where(JOBS.c.id == job_id, JOBS.c.claim == claim)
                                         .values(heartbeat_at=_now())).rowcount
            except sa.exc.OperationalError:  # SQLite's one write lock held by the import: it commits soon
                continue
            if moved != 1:
                return

    thread = threading.Thread(target=beat, name=f"import-job-{job_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)


def lease(app: Any) -> dt.timedelta:
    seconds = app.config.get("CRM_IMPORT_LEASE_SECONDS") or os.environ.get("CRM_IMPORT_LEASE_SECONDS") or LEASE_SECONDS
    return dt.timedelta(seconds=int(seconds))


def _acting_user(app: Any, job: dict[str, Any]) -> Any:
    """The user who started the job, who must still be active and hold the import right."""
    crm = app.extensions["crm"]
    sm = crm.appbuilder.sm
    user = sm.get_user_by_id(job["user_id"])
    view = next((v for name, v, *_rest in crm.generated.views.REGISTRY if name == job["entity"]), None)
    if user is None or not user.active or view is None or not sm._has_view_access(user, "can_import", view.class_permission_name):
        raise ImportFileError([msg("发起导入的用户已无导入权限")])
    return user


def _progress_writer(engine: sa.Engine, job_id: int, claim: str) -> Any:
    last: dict[str, Any] = {"at": 0.0, "phase": "", "done": 0}
    single_writer = engine.dialect.name == "sqlite"

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase == "writing" and single_writer and done:
            return  # the import's transaction holds SQLite's only write lock until it commits
        now = time.monotonic()
        step = bool(total) and (done - last["done"]) * PROGRESS_STEPS >= total  # type: ignore[operator]
        if now - last["at"] < PROGRESS_SECONDS and phase == last["phase"] and done != total and not step:
            return
        last.update(at=now, phase=phase, done=done)
        values: dict[str, Any] = {"status": phase, "done": done, "heartbeat_at": _now()}
        if total is not None:
            values["total"] = total
        try:
            with engine.begin() as conn:
                moved = conn.execute(JOBS.update().where(JOBS.c.id == job_id, JOBS.c.claim == claim).values(values)).rowcount
        except sa.exc.OperationalError:  # a busy SQLite: the next report will do
            return
        if moved != 1:
            raise LostClaim(job_id)

    return progress


def said_both(text: Any) -> Any:
    """A message kept for a page that is drawn later, for a reader not known yet: in both languages
    (``{"zh": …, "en": …}``; the page shows its reader's, :func:`said`); other text as it is."""
    return {"zh": text.render("zh"), "en": text.render("en")} if isinstance(text, Text) else text


def said(kept: Any, language: str) -> Any:
    """A text :func:`said_both` kept, in ``language``."""
    return kept.get(language) or kept.get("zh", "") if isinstance(kept, dict) else kept


def _result(report: ImportReport) -> dict[str, Any]:
    shown = dict(list(report.errors.items())[:SHOWN_ERRORS])
    return {"counts": report.counts(), "committed": report.committed, "dry_run": report.dry_run,
            "notes": [said_both(n) for n in report.notes], "summary": said_both(report.summary()),
            "errors": [[n, [[label, said_both(m)] for _c, label, m in errs]] for n, errs in shown.items()],
            "more_errors": max(0, report.failed - len(shown))}


def _finish(conn: sa.Connection, job_id: int, claim: str, report: ImportReport) -> None:
    data = report.report_path.read_bytes() if report.report_path and report.report_path.exists() else None
    done = conn.execute(JOBS.update().where(JOBS.c.id == job_id, JOBS.c.claim == claim)
                        .values(status="done", done=report.total, total=report.total, result=json.dumps(_result(report), ensure_ascii=False),
                                report=data, upload=None, finished_at=_now(), heartbeat_at=_now()))
    if done.rowcount != 1:
        raise LostClaim(job_id)  # raised inside the import's transaction: it rolls back


def _fail(engine: sa.Engine, job_id: int, claim: str, problems: list[str]) -> str:
    with engine.begin() as conn:
        conn.execute(JOBS.update().where(JOBS.c.id == job_id, JOBS.c.claim == claim)
                     .values(status="failed", result=json.dumps({"problems": [said_both(p) for p in problems]}, ensure_ascii=False), upload=None,
                             finished_at=_now(), heartbeat_at=_now()))
    return "failed"
