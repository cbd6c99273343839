"""The Celery tasks: thin ``shared_task`` wrappers around work that lives in rows (the outbox, the
import jobs), so a lost, duplicated or late task never loses or doubles a message. They run in the
app context of the process's Flask app (:mod:`app.messaging.queue`); a worker process gets its app
from :mod:`app.worker` (``celery -A app.worker:celery_app worker``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task

DELIVER_LIMIT = 500  # per task run; the task loops over claim batches until nothing is due


@shared_task(name="app.tasks.tick_task", ignore_result=True)
def tick_task(now: str | None = None) -> dict[str, Any]:
    """One scheduling pass (``now`` ISO time for replays; default the clock)."""
    from flask import current_app

    from app.messaging.schedules import tick

    return tick(current_app._get_current_object(), dt.datetime.fromisoformat(now) if now else None)  # type: ignore[attr-defined]


@shared_task(name="app.tasks.deliver_task", ignore_result=True)
def deliver_task(limit: int = DELIVER_LIMIT) -> dict[str, int]:
    """Send what is due from the outbox."""
    from flask import current_app

    from app.messaging.outbox import deliver_due

    d = deliver_due(current_app.extensions["crm"].db.session, limit)
    return {"sent": d.sent, "recorded": d.recorded, "retry": d.retry, "failed": d.failed, "released": d.released}


@shared_task(name="app.tasks.import_task", ignore_result=True)
def import_task(job_id: int) -> str:
    """Run one import job of ``crm_import_job`` as the user who started it (see app.io.importjobs)."""
    from flask import current_app

    from app.io.importjobs import run_job

    return run_job(current_app._get_current_object(), job_id)  # type: ignore[attr-defined]


@shared_task(name="app.tasks.revive_imports_task", ignore_result=True)
def revive_imports_task() -> int:
    """Queue again the import jobs whose worker died (silent past the lease)."""
    from flask import current_app

    from app.io.importjobs import revive_stale

    return revive_stale(current_app._get_current_object())  # type: ignore[attr-defined]
