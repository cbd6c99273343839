"""The roles' rights brought to the generated screens after an upgrade (FAB's security tables,
:mod:`app.access.permsync`), once per deploy rather than by every web worker."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

from app.loader import MODULE


def sync_permissions(out: str | Path) -> None:
    """Build the app of ``out`` and sync, forced (hand edits of the tables are put right too).

    In this process when it serves no generated package yet (``crm upgrade``). A process holds one
    generated package, so one that holds another (or this one as it was before it was generated
    again) does it in a child forked from a server that has the web stack imported and no
    generated package (started once per process: a child costs the app's start, not Python's)."""
    if MODULE not in sys.modules:
        _sync(str(out))
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["app.factory"])
    child = context.Process(target=_sync_in_child, args=(str(out), dict(os.environ)), name="crm-permissions")
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"syncing the roles' rights for {out} failed (exit code {child.exitcode}; its error is above)")


def _sync(out: str) -> None:
    from app.factory import create_app

    create_app({"CRM_GENERATED_DIR": out, "CRM_SYNC_PERMISSIONS": "always"})


def _sync_in_child(out: str, environ: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environ)  # the caller's settings (database, keys), not the server's
    _sync(out)
