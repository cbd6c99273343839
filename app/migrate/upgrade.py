"""One upgrade of a database, all or nothing: the pending revisions' steps in one transaction
(SQLite: a backup first), the applied spec recorded, one upgrade at a time per database, locks
waited for briefly and tried again, then what is owed online finished after the commit."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from app.messages import NOTHING_CHANGED, msg
from app.migrate.apply import ensure_base_columns, run_steps
from app.migrate.constraints import finish_constraints
from app.migrate.data import LOCK_NOT_AVAILABLE, UPGRADE_LOCK_TIMEOUT_MS, _blockers_text
from app.migrate.declared import INTERNAL_PREFIXES, declared_metadata
from app.migrate.describe import PlanLine, RefusedUpgrade, plan_lines
from app.migrate.indexes import IndexBuild, build_indexes_online, ensure_indexes
from app.migrate.retire import backup_sqlite, drop_retired, retired_columns, sqlite_path
from app.migrate.system import ensure_system_tables
from app.record.computed import fill_changed
from app.spec.model import Spec

log = logging.getLogger(__name__)


UPGRADE_LOCK_ATTEMPTS = 5  # the whole transaction is tried this often,


UPGRADE_LOCK_PAUSE_S = 2.0  # pausing this long times the attempt in between


class BusyUpgrade(Exception):
    """PostgreSQL could not give the upgrade its locks in time (other sessions hold its tables);
    nothing was changed."""


class UpgradeRunning(BusyUpgrade):
    """Another upgrade of the same database is under way; nothing was changed."""


@dataclass
class UpgradeResult:
    applied: list[str]
    lines: list[PlanLine]
    backup: Path | None
    dropped: list[PlanLine] = field(default_factory=list)
    builds: list[IndexBuild] = field(default_factory=list)  # left for after the commit: finish_online
    declared: sa.MetaData | None = None  # what the workbook declares (the constraint work is read against it)
    finished: list[str] = field(default_factory=list)  # done after the commit (PostgreSQL)
    unfinished: list[str] = field(default_factory=list)  # could not be done: the next upgrade tries again
    filled: int = 0  # rows given a default after the commit (their grades must be computed again)


def upgrade_database(engine: sa.Engine, generated_dir: str | Path, backup_dir: Path, spec: Spec,
                     allow_destructive: bool = False, lock_timeout_ms: int = UPGRADE_LOCK_TIMEOUT_MS,
                     attempts: int = UPGRADE_LOCK_ATTEMPTS) -> UpgradeResult:
    """Run the generated revisions the database has not run yet and record ``spec`` as what it
    was upgraded to (and, if allowed, drop what ``spec`` no longer has), all or nothing; on
    PostgreSQL then build the indexes it asks for, online."""
    from app.migrate.applied import pending_revisions, read_applied, record_applied, stamp

    declared = declared_metadata(spec)
    sqlite = sqlite_path(engine.url)
    backup = None
    with engine.connect() as conn:
        state = read_applied(conn, generated_dir)
        pending = pending_revisions(generated_dir, state, spec)
        lines = plan_lines([s for _, steps in pending for s in steps], conn)
        refused = [line for line in lines if line.refused]
        if refused:
            raise RefusedUpgrade(refused)
        needs_backup = bool(pending) or (allow_destructive and retired_columns(conn, declared))
    if sqlite is not None and needs_backup:
        backup = backup_sqlite(sqlite, backup_dir)
    dropped: list[PlanLine] = []
    ensure_system_tables(engine)
    head = pending[-1][0] if pending else state.revision
    for attempt in range(1, max(1, attempts) + 1):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    # the database's write lock from the start, and the schema changes inside
                    # the transaction (pysqlite would run them outside it): all or nothing,
                    # while the office's saves wait for the commit
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                if conn.dialect.name == "postgresql" and lock_timeout_ms > 0:
                    conn.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": f"{int(lock_timeout_ms)}ms"})
                with Operations.context(MigrationContext.configure(conn)):
                    for _revision, steps in pending:
                        run_steps(steps)
                if head is not None:
                    stamp(conn, head)
                record_applied(conn, head, spec)  # the database now stands here, whatever is generated next
                ensure_base_columns(conn, declared)
                # new or rewritten formulas, lookups and roll-ups filled in bulk, in this transaction
                fill_changed(conn, state.spec, spec, dict(declared.tables))
                _done, builds = ensure_indexes(conn, declared)
                if allow_destructive:
                    dropped = drop_retired(conn, backup_dir, declared)
            break
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != LOCK_NOT_AVAILABLE:
                raise
            if attempt >= attempts:
                raise _busy(engine, declared, lock_timeout_ms, attempts) from None
            log.warning("upgrade: a lock was not had within %s ms (try %s of %s); trying again", lock_timeout_ms, attempt, attempts)
            time.sleep(UPGRADE_LOCK_PAUSE_S * attempt)
    return UpgradeResult([rev for rev, _ in pending], lines, backup, dropped, builds=builds, declared=declared)


@contextmanager
def one_upgrade_at_a_time(engine: sa.Engine) -> Iterator[None]:
    """Held for a whole upgrade of one database: the plan, the generated files, the transaction,
    the work after its commit and the regrade. Two upgrades at once would write the same
    generated files, and the second's plan (read before the first committed) would no longer be
    true when applied. Upgrades of other databases (another office's schema, even from the same
    checkout) go on.

    * PostgreSQL (a database several machines' checkouts may share): a session advisory lock keyed
      by the schema, on its own connection in autocommit — an open transaction would make this
      upgrade's own ``CREATE INDEX CONCURRENTLY`` wait for it for ever.
    * SQLite: an exclusive lock on ``<database file>.upgrade-lock`` beside it (which says who holds
      it); an in-memory database is one process's own.

    Taken without waiting: a second upgrade stops at once (:class:`UpgradeRunning`, naming the
    first) and changes nothing. A process that dies lets go."""
    me = f"crm upgrade pid {os.getpid()} on {socket.gethostname()}"
    if engine.dialect.name == "postgresql":
        with _database_upgrade_lock(engine, me):
            yield
        return
    database = sqlite_path(engine.url)
    if database is None:
        yield
        return
    path = database.with_name(f"{database.name}.upgrade-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise UpgradeRunning(_running(f.read().strip() or "?", str(path))) from None
        f.seek(0)
        f.truncate()
        f.write(f"{me} since {dt.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)


_UPGRADE_KEY = "hashtext('crm upgrade'), hashtext(current_schema())"


@contextmanager
def _database_upgrade_lock(engine: sa.Engine, me: str) -> Iterator[None]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.execute(sa.text("SELECT current_schema()")).scalar() is None:
            raise BusyUpgrade(f"{msg('PostgreSQL 的 search_path 里没有已存在的 schema:先建好它 (CREATE SCHEMA …) 再运行 crm upgrade')}; "
                              f"{NOTHING_CHANGED}")
        if not conn.execute(sa.text(f"SELECT pg_try_advisory_lock({_UPGRADE_KEY})")).scalar_one():
            holder = conn.execute(sa.text(
                "SELECT a.application_name, a.pid, host(a.client_addr), a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = CAST(hashtext('crm upgrade') AS oid) AND l.objid = CAST(hashtext(current_schema()) AS oid)")).first()
            who = (f"{holder[0] or '?'} (PostgreSQL session {holder[1]} from {holder[2] or 'local'}, "
                   f"since {holder[3]:%Y-%m-%d %H:%M:%S %z})") if holder else "?"
            raise UpgradeRunning(_running(who, f"schema {conn.execute(sa.text('SELECT current_schema()')).scalar_one()}"))
        try:
            conn.execute(sa.text("SELECT set_config('application_name', :me, false)"), {"me": me[:63]})
            yield
        finally:
            conn.execute(sa.text(f"SELECT pg_advisory_unlock({_UPGRADE_KEY})"))
            conn.execute(sa.text("RESET application_name"))


def _running(who: str, where: str) -> str:
    return f"{msg('另一个升级正在进行,本次没有任何改动;等它结束后再运行 crm upgrade')}: {who} [{where}]"


def finish_online(engine: sa.Engine, result: UpgradeResult, progress: Callable[[str], None] = log.info) -> UpgradeResult:
    """What an upgrade left for after its commit (PostgreSQL, big tables): the constraint work
    (:func:`finish_constraints`: defaults filled first, so a regrade after this sees them), then
    the indexes (:func:`build_indexes_online`); ``progress`` is told of each as it starts. Notes
    in ``result`` what was done and what not."""
    done, failed, result.filled = finish_constraints(engine, result.declared, progress) if result.declared is not None else ([], [], 0)
    built, unbuilt = build_indexes_online(engine, result.builds, progress)
    result.finished, result.unfinished = done + built, failed + unbuilt
    return result


def _busy(engine: sa.Engine, declared: sa.MetaData, lock_timeout_ms: int, attempts: int) -> BusyUpgrade:
    in_the_way = _blockers_text(engine, [t for t in declared.tables if not t.startswith(INTERNAL_PREFIXES)])
    return BusyUpgrade(msg("升级在 %(ms)s 毫秒内拿不到表锁(试了 %(attempts)s 次),没有任何改动;等占着表的会话结束后再运行 "
                           "crm upgrade,或调大 CRM_UPGRADE_LOCK_TIMEOUT_MS", ms=lock_timeout_ms, attempts=attempts) + in_the_way)
