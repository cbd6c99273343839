"""Benchmark: bringing FAB's security tables up to date for the shipped workbook — Flask-AppBuilder's
own update (``FAB_UPDATE_PERMS``: statement by statement, the baseline) against ``app.access.permsync``
(one pass of set differences and bulk writes), on a new database and on one already up to date.

    python -m bench.permissions [--runs 3] [--postgres]

Each run starts from a new database (SQLite file, or a new PostgreSQL schema with ``--postgres``
and ``CRM_TEST_POSTGRES_URL``). The baseline writes the screens' and menus' permissions only (the
roles of the sheet come on top of it in the application); permsync writes those and every role of
the sheet. Printed: median seconds and statements of each, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a file (python bench/x.py) as well as a module

from bench.common import drop_postgres_schema, postgres_url  # noqa: E402


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *_args: Any) -> None:
        self.n += 1


def measure(work: Callable[[], Any]) -> tuple[float, int]:
    counter = Counter()
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", counter)
    try:
        started = time.perf_counter()
        work()
        return time.perf_counter() - started, counter.n
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", counter)


def new_database(postgres: bool) -> tuple[str, Callable[[], None]]:
    if postgres:
        schema = f"bench_perms_{uuid.uuid4().hex[:8]}"
        return postgres_url(schema), lambda: drop_postgres_schema(schema)
    return f"sqlite:///{Path(tempfile.mkdtemp()) / 'perms.sqlite'}", lambda: None


def fab_update(crm: Any) -> None:
    crm.appbuilder.add_permissions(update_perms=True)
    crm.db.session.commit()


def permsync(crm: Any, want: Any, force: bool) -> None:
    from app.access.permsync import sync_security

    with crm.db.engine.begin() as conn:
        sync_security(conn, want, force=force)


def one_run(postgres: bool) -> dict[str, tuple[float, int]]:
    from app.factory import create_app, wanted_security

    found = {}
    for way in ("fab", "permsync"):
        url, drop = new_database(postgres)
        try:
            app = create_app({"SQLALCHEMY_DATABASE_URI": url, "CRM_SYNC_PERMISSIONS": False, "TESTING": True})
            crm = app.extensions["crm"]
            with app.app_context():
                if way == "fab":
                    found["FAB's own update, new database"] = measure(partial(fab_update, crm))
                    found["FAB's own update, up to date"] = measure(partial(fab_update, crm))
                else:
                    want = wanted_security(crm.appbuilder, crm.generated)
                    found["permsync, new database"] = measure(partial(permsync, crm, want, False))
                    found["permsync, up to date (digest read)"] = measure(partial(permsync, crm, want, False))
                    found["permsync, up to date (forced: compared)"] = measure(partial(permsync, crm, want, True))
                crm.db.session.remove()
                crm.db.engine.dispose()
        finally:
            drop()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("CRM_VAR_DIR", tempfile.mkdtemp())
    runs = [one_run(args.postgres) for _ in range(args.runs)]
    print(f"{'PostgreSQL' if args.postgres else 'SQLite'}, shipped workbook, median of {args.runs} runs")
    medians = {k: (statistics.median(r[k][0] for r in runs), statistics.median(r[k][1] for r in runs)) for k in runs[0]}
    for name, (seconds, statements) in medians.items():
        print(f"  {name:42} {seconds * 1000:9.1f} ms {statements:7.0f} statements")
    for case, base in (("new database", "FAB's own update, new database"), ("up to date", "FAB's own update, up to date")):
        ours = medians["permsync, new database" if case == "new database" else "permsync, up to date (forced: compared)"]
        print(f"  ratio permsync / FAB, {case}: {ours[0] / medians[base][0]:.3f} in time, {ours[1] / medians[base][1]:.3f} in statements")


if __name__ == "__main__":
    main()
