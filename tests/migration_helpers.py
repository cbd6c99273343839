"""An office that edits its workbook and upgrades a live database, for the migration tests."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from app.cli import main
from tests.conftest import require_service
from tests.workbooks import write_workbook

Sheets = dict[str, list[dict[str, Any]]]


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database: a SQLite file, or a new schema in the PostgreSQL test database."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.sqlite'}"
        return
    base = os.environ.get("CRM_TEST_POSTGRES_URL", "")
    ok, reason = bool(base), "set CRM_TEST_POSTGRES_URL"
    if base:
        try:
            engine = sa.create_engine(base)
            with engine.connect():
                pass
        except sa.exc.OperationalError as exc:
            ok, reason = False, str(exc).splitlines()[0]
    require_service("PostgreSQL", ok, reason)
    schema = f"crm_test_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


class Office:
    """Keeps the workbook as dicts; every edit rewrites it; commands run as IT would run them."""

    def __init__(self, tmp_path: Path, sheets: Sheets, url: str, monkeypatch: pytest.MonkeyPatch):
        self.tmp = tmp_path
        self.sheets = copy.deepcopy(sheets)
        self.url = url
        self.workbook = tmp_path / "office.xlsx"
        self.generated = tmp_path / "generated"
        self.var = tmp_path / "var"
        for key, value in {"CRM_WORKBOOK": self.workbook, "CRM_GENERATED_DIR": self.generated, "CRM_DATABASE_URL": url,
                           "CRM_VAR_DIR": self.var}.items():
            monkeypatch.setenv(key, str(value))
        self.engine = sa.create_engine(url)
        self.save()

    def save(self) -> None:
        write_workbook(self.workbook, self.sheets)

    def edit(self, change: Callable[[Sheets], Any]) -> None:
        change(self.sheets)
        self.save()

    def field(self, entity: str, name: str) -> dict[str, Any]:
        return next(r for r in self.sheets["fields"] if r["entity"] == entity and r["name"] == name)

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    def upgrade(self, *args: str) -> Result:
        return self.run("upgrade", *args)

    def plan(self) -> dict[str, Any]:
        result = self.run("plan", "--json")
        assert result.exit_code == 0 and result.stdout.lstrip().startswith("{"), result.output
        return json.loads(result.stdout)

    def plan_text(self, lang: str = "en") -> list[str]:
        p = self.plan()
        return [line[lang] for line in p["pending"] + p["regenerate"]]

    def insert(self, table: str, *rows: dict[str, Any]) -> None:
        now = dt.datetime(2026, 11, 1, 9, 0)
        t = sa.table(table, *[sa.column(k) for k in {**rows[0], "created_on": 0, "changed_on": 0}])
        with self.engine.begin() as conn:
            conn.execute(sa.insert(t), [{"created_on": now, "changed_on": now, **r} for r in rows])

    def rows(self, table: str, *columns: str) -> list[tuple[Any, ...]]:
        t = sa.table(table, sa.column("id"), *[sa.column(c) for c in columns])
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(t.c.id, *[t.c[c] for c in columns]).order_by(t.c.id))]

    def columns(self, table: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return {c["name"]: c for c in sa.inspect(conn).get_columns(table)}

    def snapshot(self) -> dict[str, Any]:
        """Every table's columns and rows, to compare a database before and after."""
        with self.engine.connect() as conn:
            insp = sa.inspect(conn)
            out = {}
            for table in sorted(insp.get_table_names()):
                cols = sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table))
                data = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()  # noqa: S608 - names from reflection
                out[table] = (cols, sorted(map(repr, data)))
            return out
