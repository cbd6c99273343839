"""What a DBA sets for the database connections, and what the web processes guard against.

- **Pool** (server databases only; SQLite keeps SQLAlchemy's own): ``CRM_DB_POOL_SIZE`` connections
  per process (default 5), ``CRM_DB_MAX_OVERFLOW`` more under a burst (10), ``CRM_DB_POOL_TIMEOUT``
  seconds a request waits for one (30), ``CRM_DB_POOL_RECYCLE`` seconds after which a connection is
  replaced (1800, under the usual firewall and PgBouncer idle limits), ``CRM_DB_PRE_PING`` (1): a
  connection is tested when taken from the pool, so a database restart or failover costs no user a
  500. Web processes × (size + overflow) must stay under PostgreSQL's ``max_connections``.
- **Runaway queries** (PostgreSQL, web processes only: ``crm serve`` and ``crm up``): every statement
  a page runs is stopped after ``CRM_WEB_STATEMENT_TIMEOUT_MS`` (30,000; 0 = never), set when the
  connection starts. The person gets a 503 page saying the query took too long and nothing was
  saved; the connection stays usable. Workers, imports and ``crm`` commands are not limited.
- **Slow requests**: a request slower than ``CRM_SLOW_REQUEST_MS`` (1,000; 0 = never) is logged on
  ``crm.requests`` at WARNING with its SQL: how many statements, their total time and the slowest.
- **SQLite** (the embedded default): the database is kept in WAL mode, so pages keep reading while
  an import (or anything else) writes, and a statement waiting for the one write lock waits up to
  ``CRM_SQLITE_BUSY_TIMEOUT_MS`` (20,000: under gunicorn's 30 s worker timeout). A save that still
  finds the lock taken is answered 503 "busy, nothing saved, try again", never a 500.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask, g, has_request_context, request, session

POOL_DEFAULTS = {"pool_size": ("CRM_DB_POOL_SIZE", 5), "max_overflow": ("CRM_DB_MAX_OVERFLOW", 10),
                 "pool_timeout": ("CRM_DB_POOL_TIMEOUT", 30), "pool_recycle": ("CRM_DB_POOL_RECYCLE", 1800)}
WEB_STATEMENT_TIMEOUT_MS = 30_000
SLOW_REQUEST_MS = 1_000
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout
SQLITE_BUSY_TIMEOUT_MS = 20_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of write-ahead log kept once it has been copied back
SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # SQLite's primary result codes for a lock another connection holds

log = logging.getLogger("crm.requests")


def engine_options(config: dict[str, Any]) -> dict[str, Any]:
    """``SQLALCHEMY_ENGINE_OPTIONS`` for the configured database (the caller's own options win)."""
    url = sa.engine.make_url(config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        return {}
    options: dict[str, Any] = {key: int(config.get(name, default)) for key, (name, default) in POOL_DEFAULTS.items()}
    options["pool_pre_ping"] = bool(int(config.get("CRM_DB_PRE_PING", 1)))
    timeout = int(config.get("CRM_WEB_STATEMENT_TIMEOUT_MS", WEB_STATEMENT_TIMEOUT_MS))
    if config.get("CRM_WEB_PROCESS") and timeout > 0 and url.get_backend_name() == "postgresql":
        # a startup option: no round trip, and it holds for every connection the pool ever opens
        given = url.query.get("options", "")
        given = " ".join(given) if isinstance(given, tuple) else given
        options["connect_args"] = {"options": f"{given} -c statement_timeout={timeout}".strip()}
    return options


def is_query_canceled(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "pgcode", None) == QUERY_CANCELED


def install_sqlite_tuning(engine: sa.Engine, config: dict[str, Any]) -> None:
    """On SQLite, every connection the engine opens waits for a lock up to the busy timeout and
    keeps the database in WAL mode (readers never wait for a writer; persistent in the file, so
    the commands' own engines find it too). Nothing on other databases."""
    if engine.dialect.name != "sqlite":
        return
    busy_ms = int(config.get("CRM_SQLITE_BUSY_TIMEOUT_MS", SQLITE_BUSY_TIMEOUT_MS))

    @sa.event.listens_for(engine, "connect")
    def _tune(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {max(busy_ms, 0)}")  # first: switching to WAL may wait too
            cursor.execute("PRAGMA journal_mode = WAL")  # an in-memory database answers "memory": fine
            cursor.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")  # a big import's WAL shrinks back after it
        finally:
            cursor.close()


def is_database_busy(exc: BaseException) -> bool:
    """A statement that gave up waiting for a lock another connection holds (SQLite's "database
    is locked" after the busy timeout)."""
    code = getattr(getattr(exc, "orig", None), "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (SQLITE_BUSY, SQLITE_LOCKED)


def install_request_watch(app: Flask, engine: sa.Engine) -> None:
    """Log requests slower than ``CRM_SLOW_REQUEST_MS`` with what their SQL cost."""
    threshold = int(app.config.get("CRM_SLOW_REQUEST_MS", SLOW_REQUEST_MS))
    if threshold <= 0:
        return

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _started(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info["crm_t"] = time.perf_counter()

    def finished(conn: Any, statement: str) -> None:
        started = conn.info.pop("crm_t", None)
        if started is None or not has_request_context() or "_crm_sql" not in g:
            return
        spent = time.perf_counter() - started
        sql = g._crm_sql
        sql[0] += 1
        sql[1] += spent
        if spent > sql[2]:
            sql[2], sql[3] = spent, statement

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _finished(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
        finished(conn, statement)

    @sa.event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:  # a statement stopped by the timeout is the one to name
        if context.connection is not None and context.statement:
            finished(context.connection, context.statement)

    @app.before_request
    def _start() -> None:
        g._crm_started = time.perf_counter()
        g._crm_sql = [0, 0.0, 0.0, ""]

    @app.after_request
    def _report(response: Any) -> Any:
        started = g.get("_crm_started")
        if started is None:
            return response
        ms = (time.perf_counter() - started) * 1000
        if ms >= threshold:
            count, total, slowest, statement = g._crm_sql
            user = session.get("_user_id")  # who, without asking the database again
            log.warning("slow request %s %s: %.0f ms, status %s, user %s, %d SQL statements %.0f ms, slowest %.0f ms: %s",
                        request.method, request.full_path.rstrip("?"), ms, response.status_code, user, count,
                        total * 1000, slowest * 1000, " ".join(statement.split())[:300])
        return response
