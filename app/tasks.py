"""Celery, wired the Flask way (STACK-NOTES): a Task class whose ``__call__`` runs in the app
context, thin ``shared_task`` wrappers, and a beat that only *dispatches* — due work lives in
rows (the outbox), so a lost, duplicated or late task never loses or doubles a message.

Broker: ``CRM_BROKER_URL`` (default: kombu's SQLAlchemy transport on ``var/broker.sqlite``, no
server; one worker with ``--pool=solo -B``), Redis/RabbitMQ in production. A worker process gets
its Flask app from this module: ``celery -A app.tasks:celery_app worker``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from celery import Celery, Task, shared_task

TICK_SECONDS = 60.0
DELIVER_SECONDS = 10.0
DELIVER_LIMIT = 500  # per task run; the task loops over claim batches until nothing is due


def celery_config(app: Any) -> dict[str, Any]:
    var = Path(app.config.get("CRM_VAR_DIR") or "var")
    broker = app.config.get("CRM_BROKER_URL") or f"sqla+sqlite:///{var / 'broker.sqlite'}"
    backend = app.config.get("CRM_RESULT_BACKEND") or (f"db+sqlite:///{var / 'results.sqlite'}" if broker.startswith("sqla+") else broker)
    return {
        "broker_url": broker,
        "result_backend": backend,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "timezone": app.extensions["crm"].spec.settings.timezone if "crm" in app.extensions else "UTC",
        "enable_utc": False,
        "beat_schedule_filename": str(var / "celerybeat-schedule"),
        "beat_schedule": {
            "crm-tick": {"task": "app.tasks.tick_task", "schedule": TICK_SECONDS},
            "crm-deliver": {"task": "app.tasks.deliver_task", "schedule": DELIVER_SECONDS},
            "crm-imports": {"task": "app.tasks.revive_imports_task", "schedule": TICK_SECONDS},
        },
    }


def celery_init_app(app: Any) -> Celery:
    """Create the Celery app for ``app`` (tasks run inside its app context)."""

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(app))
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def celery_app_for(app: Any) -> Celery:
    """The Celery app of ``app``, created on first use."""
    return app.extensions.get("celery") or celery_init_app(app)


@shared_task(name="app.tasks.tick_task", ignore_result=True)
def tick_task(now: str | None = None) -> dict[str, Any]:
    """One scheduling pass (``now`` ISO time for replays; default the clock)."""
    from flask import current_app

    from .runtime.schedules import tick

    return tick(current_app._get_current_object(), dt.datetime.fromisoformat(now) if now else None)  # type: ignore[attr-defined]


@shared_task(name="app.tasks.deliver_task", ignore_result=True)
def deliver_task(limit: int = DELIVER_LIMIT) -> dict[str, int]:
    """Send what is due from the outbox."""
    from flask import current_app

    from .runtime.outbox import deliver_due

    d = deliver_due(current_app.extensions["crm"].db.session, limit)
    return {"sent": d.sent, "recorded": d.recorded, "retry": d.retry, "failed": d.failed, "released": d.released}


@shared_task(name="app.tasks.import_task", ignore_result=True)
def import_task(job_id: int) -> str:
    """Run one import job of ``crm_import_job`` as the user who started it (see runtime/importjobs)."""
    from flask import current_app

    from .runtime.importjobs import run_job

    return run_job(current_app._get_current_object(), job_id)  # type: ignore[attr-defined]


@shared_task(name="app.tasks.revive_imports_task", ignore_result=True)
def revive_imports_task() -> int:
    """Queue again the import jobs whose worker died (silent past the lease)."""
    from flask import current_app

    from .runtime.importjobs import revive_stale

    return revive_stale(current_app._get_current_object())  # type: ignore[attr-defined]


_worker_app: Celery | None = None


def __getattr__(name: str) -> Any:
    """``celery -A app.tasks:celery_app``: build the Flask app (from the environment) lazily, so
    importing this module from the web process creates nothing."""
    global _worker_app
    if name != "celery_app":
        raise AttributeError(name)
    if _worker_app is None:
        from . import create_app

        _worker_app = celery_app_for(create_app())
    return _worker_app
