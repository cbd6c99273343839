"""The Celery worker's entry point: ``celery -A app.worker:celery_app worker`` (what ``crm worker``
runs). The Flask app is built from the environment on first use, so importing this module creates
nothing."""

from __future__ import annotations

from typing import Any

from celery import Celery

from app import tasks as _tasks  # noqa: F401 - registers the shared tasks with every Celery app
from app.messaging.queue import celery_app_for

_worker_app: Celery | None = None


def __getattr__(name: str) -> Any:
    """``celery_app``: the Celery app of a Flask app built (once) from the environment."""
    global _worker_app
    if name != "celery_app":
        raise AttributeError(name)
    if _worker_app is None:
        from app.factory import create_app

        _worker_app = celery_app_for(create_app())
    return _worker_app
