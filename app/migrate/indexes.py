"""The list indexes (``lx_*``: sort, owner-scope and trigram search indexes from
:func:`app.spec.columns.indexes_of`): they hold no data, so every upgrade brings them to what the
lists need; on big PostgreSQL tables they are built after the commit, concurrently."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from app.migrate import data
from app.migrate.constraints import pending_constraints
from app.migrate.data import LOCK_NOT_AVAILABLE, _blockers_text, _Have, _index_catalogue, _rows_at_least, _waiting
from app.migrate.declared import INTERNAL_PREFIXES

log = logging.getLogger(__name__)


def trigram_opclass(conn: sa.Connection, install: bool = True) -> str | None:
    """``<schema>.gin_trgm_ops`` where pg_trgm is installed (installing it into ``public`` when
    the server has it, we may, and ``install``), else None: searches then scan (still correct, slower)."""
    if conn.dialect.name != "postgresql":
        return None
    where = sa.text("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'")
    schema = conn.execute(where).scalar()
    if schema is None and install and conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first():
        public = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")).first() is not None
        try:
            with conn.begin_nested():  # no privilege, or another upgrade racing us: not fatal
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm" + (" SCHEMA public" if public else "")))
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) == LOCK_NOT_AVAILABLE:
                raise  # busy, not missing: the upgrade tries again
            log.warning("pg_trgm not installed (%s): text searches will scan", str(exc).splitlines()[0])
        schema = conn.execute(where).scalar()
    return None if schema is None else f"{conn.dialect.identifier_preparer.quote(schema)}.gin_trgm_ops"


@dataclass(frozen=True)
class IndexBuild:
    """An index the workbook asks for: a list index (``lx_*``, by name) or a field's own (``ix_*``:
    any valid index on exactly its column will do, so one kept through a rename is not doubled)."""

    name: str
    table: str
    columns: tuple[str, ...]
    opclass: str | None = None  # a trigram (GIN) index with this operator class

    def sql(self, prep: Any, concurrently: bool = False) -> str:
        target = (f"USING gin ({prep.quote(self.columns[0])} {self.opclass})" if self.opclass
                  else f"({', '.join(prep.quote(c) for c in self.columns)})")
        return f"CREATE INDEX{' CONCURRENTLY' if concurrently else ''} {prep.quote(self.name)} ON {prep.quote(self.table)} {target}"

    def describe(self) -> str:
        kind = "trigram" if self.opclass else "btree"
        return f"index {self.name} ({kind}: {', '.join(self.columns)})"


def ensure_indexes(conn: sa.Connection, declared: sa.MetaData) -> tuple[list[str], list[IndexBuild]]:
    """Bring the list indexes (``lx_*``) to what the workbook's lists need: drop those no list
    needs any more and create the missing. Indexes hold no data, so this is safe on every upgrade.
    It runs in the upgrade's transaction. On PostgreSQL it also builds the fields' own indexes
    (``ix_*``) the steps left out, and those of a big table (``ONLINE_INDEX_ROWS``) are not built
    here, where its table would stay locked until the commit: they are the second value, for
    :func:`build_indexes_online` after the commit. The first is what was done, one line each."""
    insp = sa.inspect(conn)
    tables = {t for t in insp.get_table_names() if not t.startswith(INTERNAL_PREFIXES)}
    wanted = {i.name: i for i in declared.info.get("crm_indexes", []) if i.table in tables}
    op = Operations(MigrationContext.configure(conn))
    done, have = [], set()
    for table in sorted(tables):
        for ix in insp.get_indexes(table):
            have.add(ix["name"])
            if ix["name"] and ix["name"].startswith("lx_") and ix["name"] not in wanted:
                op.drop_index(ix["name"], table_name=table)
                done.append(f"drop index {ix['name']}")
    builds = _list_builds(conn, wanted)
    prep = conn.dialect.identifier_preparer
    online: list[IndexBuild] = []
    if conn.dialect.name == "postgresql":
        for build, need, big in _missing_indexes(conn, declared, tables, builds):
            if big:
                online.append(build)  # a big table: built after the commit, without locking it
                continue
            if need == "rebuild":
                conn.execute(sa.text(f"DROP INDEX {prep.quote(build.name)}"))
            conn.execute(sa.text(build.sql(prep)))
            done.append(f"create {build.describe()}")
    else:
        for build in builds:
            if build.name not in have:
                conn.execute(sa.text(build.sql(prep)))
                done.append(f"create {build.describe()}")
    for line in done:
        log.info("indexes: %s", line)
    return done, online


def _list_builds(conn: sa.Connection, wanted: dict[str, Any], install: bool = True) -> list[IndexBuild]:
    opclass = trigram_opclass(conn, install) if any(i.kind == "trigram" for i in wanted.values()) else None
    # without pg_trgm (SQLite …) a search index is a plain one: equality and prefix searches use it
    return [IndexBuild(i.name, i.table, tuple(i.columns), opclass if i.kind == "trigram" else None) for i in wanted.values()]


def _missing_indexes(conn: sa.Connection, declared: sa.MetaData, tables: set[str],
                     builds: list[IndexBuild]) -> Iterator[tuple[IndexBuild, str, bool]]:
    """(build, "build" or "rebuild", on a big table) of the fields' own and the list indexes
    the database lacks or holds invalid (PostgreSQL); reads only."""
    fields = [IndexBuild(str(ix.name), name, tuple(c.name for c in ix.columns))
              for name, table in declared.tables.items() if name in tables
              for ix in sorted(table.indexes, key=lambda i: str(i.name)) if not str(ix.name).startswith("lx_")]
    catalogue = _index_catalogue(conn)
    claimed = {b.name: b for b in fields + builds}
    big: dict[str, bool] = {}
    for build in fields + builds:
        need = _needed(build, catalogue, claimed)
        if need is None:
            continue
        if build.table not in big:
            big[build.table] = _rows_at_least(conn, build.table, data.ONLINE_INDEX_ROWS)
        yield build, need, big[build.table]


def owed_online(conn: sa.Connection, declared: sa.MetaData) -> list[str]:
    """What an upgrade still owes big tables after its commit (an interrupted run's work, say), in
    words: the next ``crm upgrade`` does it while the system stays in use (PostgreSQL; reads only)."""
    if conn.dialect.name != "postgresql":
        return []
    tables = {t for t in sa.inspect(conn).get_table_names() if not t.startswith(INTERNAL_PREFIXES)}
    wanted = {i.name: i for i in declared.info.get("crm_indexes", []) if i.table in tables}
    return [job.describe() for job in pending_constraints(conn, declared)] + [
        f"build {build.describe()}" for build, _need, big in _missing_indexes(conn, declared, tables, _list_builds(conn, wanted, False))
        if big]


def _needed(build: IndexBuild, catalogue: dict[str, _Have], claimed: dict[str, IndexBuild] | None = None) -> str | None:
    """None if ``build`` is there and valid; "create" if missing; "rebuild" if left invalid by an
    interrupted build, or if its name is held by an index of other columns (a field renamed away
    and its name used again)."""
    found = catalogue.get(build.name)
    if found is not None:
        same = (found.table, found.columns) == (build.table, build.columns)
        return None if found.valid and same else "rebuild"
    claimed = claimed or {}
    if not build.name.startswith("lx_") and any(
            (h.table, h.columns) == (build.table, build.columns) and h.valid and h.plain
            and (name not in claimed or claimed[name] == build) for name, h in catalogue.items()):
        return None  # a field's own index under another name (one no other build claims)
    return "create"


def build_indexes_online(engine: sa.Engine, builds: list[IndexBuild],
                         progress: Callable[[str], None] = log.info) -> tuple[list[str], list[str]]:
    """PostgreSQL, after the upgrade's commit: build the indexes ``builds`` asks for that are
    missing, with ``CREATE INDEX CONCURRENTLY`` — pages keep reading and saving while a million
    rows are indexed. An index left invalid by an interrupted build is dropped and built again.
    Each wait of a build for older transactions lasts at most ``INDEX_WAIT_MS``. Returns (what was
    done, what could not be done and why): the lists work without the index, only slower, until
    the next ``crm upgrade`` builds it. Called once the generated files of the upgrade are kept:
    the schema change is committed whatever happens here."""
    done: list[str] = []
    failed: list[str] = []
    claimed = {b.name: b for b in builds}
    for build in builds:
        started = time.perf_counter()
        try:
            # one each: a build cancelled or killed spoils no other
            with engine.connect() as conn, _waiting(conn, data.INDEX_WAIT_MS) as conn:  # read at call time (settable)
                prep = conn.dialect.identifier_preparer
                need = _needed(build, _index_catalogue(conn), claimed)  # another upgrade may have built it meanwhile
                if need is None:
                    continue
                progress(f"build {build.describe()} concurrently")
                if need == "rebuild":  # left invalid by an interrupted build, or a stale index under this name
                    conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {prep.quote(build.name)}"))
                conn.execute(sa.text(build.sql(prep, concurrently=True)))
        except sa.exc.DBAPIError as exc:
            reason = str(exc.orig if exc.orig is not None else exc).splitlines()[0]
            failed.append(f"{build.describe()} on {build.table}: {reason}{_blockers_text(engine, [build.table])}")
            log.warning("index not built: %s", failed[-1])
            continue
        done.append(f"create {build.describe()} concurrently, {time.perf_counter() - started:.1f} s")
        log.info("indexes: %s", done[-1])
    return done, failed


