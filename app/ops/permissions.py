"""The roles' rights brought to the generated screens after an upgrade (FAB's security tables,
:mod:`app.access.permsync`), once per deploy rather than by every web worker."""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.access.permsync import recall, rights_source, sync_security
from app.loader import MODULE
from app.spec.model import Spec


def sync_permissions(out: str | Path, engine: sa.Engine, spec: Spec) -> None:
    """Bring the roles' rights to the screens of ``out`` (generated from ``spec``), forced (hand
    edits of the tables are put right too).

    When nothing they are worked out from changed since the last sync (:func:`rights_source`: no
    screen, menu, role or grant added or changed, the same code), against the wanted state kept
    then, in this process. Otherwise the app of ``out`` is built in a child process, which syncs
    and keeps its wanted state for next time.

    A process holds one generated package, and the caller's process must stay as it was (it may
    serve another package, or this one as it was before it was generated again; ``crm up`` starts
    this one right after). The child is this process forked, when it holds no generated package
    and runs no other thread (``crm upgrade``: no second interpreter to start); else a child of a
    server that has the web stack imported and no generated package, started once per process."""
    source = rights_source(spec)
    with engine.begin() as conn:
        want = recall(conn, source)
        if want is not None:
            sync_security(conn, want, force=True)
            return
    context: Any
    if MODULE not in sys.modules and threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["app.factory"])
    child = context.Process(target=_sync_in_child, args=(str(out), dict(os.environ)), name="crm-permissions")
    gc.freeze()  # a forked child's collections leave the inherited heap alone instead of copying every page of it
    try:
        child.start()
    finally:
        gc.unfreeze()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"syncing the roles' rights for {out} failed (exit code {child.exitcode}; its error is above)")


def _sync_in_child(out: str, environ: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environ)  # the caller's settings (database, keys), not the server's
    from app.factory import create_app

    create_app({"CRM_GENERATED_DIR": out, "CRM_SYNC_PERMISSIONS": "always"}, serve=False)
