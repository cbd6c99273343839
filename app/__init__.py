"""The hand-written, generic application. ``create_app`` (in :mod:`app.factory`) serves whichever
generated package ``CRM_GENERATED_DIR`` points at.

How it fits together (README, "How it fits together"): ``app.spec`` is the kernel every other part
imports — the Spec, the condition language, schedules, the working calendar, column types and
migration steps; ``generator`` turns a workbook into ``app/generated``; the runtime packages
(``record``, ``access``, ``web``, ``io``, ``messaging``, ``reports``, ``migrate``) serve it; ``ops``
holds what the commands do, and ``cli`` is the thin command line over it.

Importing ``app`` (or ``app.spec``) loads nothing else: the web stack comes with ``create_app``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None, serve: bool = True) -> Flask:
    """Build the application for the configured workbook, generated package and database
    (``serve=False``: screens built but not routed, for a process that only syncs the rights)."""
    from .factory import create_app as build

    return build(config, serve=serve)
