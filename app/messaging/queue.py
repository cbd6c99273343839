"""Celery, wired the Flask way (STACK-NOTES): a Task class whose ``__call__`` runs in the app
context, and a beat that only *dispatches* (the tasks themselves: :mod:`app.tasks`).

Broker: ``CRM_BROKER_URL`` (default: kombu's SQLAlchemy transport on ``var/broker.sqlite``, no
server; one worker with ``--pool=solo -B``), Redis/RabbitMQ in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery, Task

TICK_SECONDS = 60.0


DELIVER_SECONDS = 10.0


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
