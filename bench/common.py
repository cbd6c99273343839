"""What the benchmarks share: a fresh embedded database with the shipped application on it, or
the shipped application on a dedicated schema of the PostgreSQL test database."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def fresh_app() -> Any:
    """The shipped app on a new SQLite file in a temporary folder (schema by the migrations)."""
    tmp = Path(tempfile.mkdtemp())
    os.environ["CRM_DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite'}"
    os.environ["CRM_VAR_DIR"] = str(tmp)
    from app import create_app
    from app.migrate.create import create_schema

    app = create_app()
    create_schema(app)
    return app


def postgres_url(schema: str) -> str:
    """``CRM_TEST_POSTGRES_URL`` pointed at ``schema`` (created if missing)."""
    base = os.environ.get("CRM_TEST_POSTGRES_URL", "")
    if not base:
        raise SystemExit("set CRM_TEST_POSTGRES_URL (e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/test)")
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def drop_postgres_schema(schema: str) -> None:
    engine = sa.create_engine(os.environ["CRM_TEST_POSTGRES_URL"])
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def postgres_app(schema: str, **config: Any) -> Any:
    """The shipped app on PostgreSQL schema ``schema`` (brought to the generated schema)."""
    tmp = Path(tempfile.mkdtemp())
    os.environ["CRM_DATABASE_URL"] = postgres_url(schema)
    os.environ["CRM_VAR_DIR"] = str(tmp)
    from app import create_app
    from app.migrate.create import create_schema

    app = create_app({"RATELIMIT_ENABLED": False, **config})
    create_schema(app)
    return app


def replay(cursor: Any, statements: list[tuple[str, Any]]) -> float:
    """Seconds to run ``statements`` (captured SQL with its parameters) and fetch every row: the
    floor a page or a panel cannot go below."""
    start = time.perf_counter()
    for statement, parameters in statements:
        cursor.execute(statement, parameters)
        cursor.fetchall()
    return time.perf_counter() - start

