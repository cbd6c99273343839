"""``days_since``/``days_until`` compared with a constant compile to a plain range on the column
(so an index serves it): the SQL must agree with the Python evaluation for every date, datetime,
missing value, operator and constant — on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from app.spec.expr import parse
from app.spec.model import Entity, Field, Spec
from app.spec.sqlexpr import compile_condition
from tests.conftest import require_service

NOW = dt.datetime(2026, 11, 22, 15, 30)
ENTITY = Entity("thing", "东西", (Field("due_on", "到期", "date"), Field("closed_at", "结束", "datetime")))
SPEC = Spec("t.xlsx", (ENTITY,))
META = sa.MetaData()
TABLE = sa.Table("thing", META, sa.Column("id", sa.Integer, primary_key=True), sa.Column("due_on", sa.Date),
                 sa.Column("closed_at", sa.DateTime))
OPS = ["<", "<=", ">", ">=", "=="]
DAYS = [NOW.date() + dt.timedelta(days=d) for d in range(-12, 13)]
ROWS = [{"id": i + 1, "due_on": d, "closed_at": dt.datetime.combine(d, dt.time(h, m))}
        for i, (d, h, m) in enumerate((d, h, m) for d in DAYS for h, m in ((0, 0), (9, 15), (23, 59)))]
ROWS.append({"id": len(ROWS) + 1, "due_on": None, "closed_at": None})


def _engines() -> list[tuple[str, Any]]:
    engines = [("sqlite", sa.create_engine("sqlite://"))]
    url = os.environ.get("CRM_TEST_POSTGRES_URL", "")
    if url:
        engines.append(("postgresql", sa.create_engine(url)))
    return engines


@pytest.fixture(scope="module")
def databases() -> Any:
    if os.environ.get("CRM_REQUIRE_SERVICES") == "1":
        require_service("PostgreSQL", bool(os.environ.get("CRM_TEST_POSTGRES_URL")), "set CRM_TEST_POSTGRES_URL")
    out = []
    for dialect, engine in _engines():
        conn = engine.connect()
        conn.begin()  # never committed: the rows vanish when the connection closes
        if dialect == "postgresql":
            conn.execute(sa.text("CREATE TEMPORARY TABLE thing (id integer primary key, due_on date, closed_at timestamp)"))
        else:
            META.create_all(conn)
        conn.execute(sa.insert(TABLE), ROWS)
        out.append((dialect, conn))
    yield out
    for _dialect, conn in out:
        conn.close()


@settings(max_examples=60, deadline=None)
@given(fn=st.sampled_from(["days_since", "days_until"]), column=st.sampled_from(["due_on", "closed_at"]),
       op=st.sampled_from(OPS), k=st.integers(-14, 14), constant_first=st.booleans(), negate=st.booleans())
def test_date_ranges_agree_with_python(databases: Any, fn: str, column: str, op: str, k: int, constant_first: bool, negate: bool) -> None:
    call = f"{fn}({column})"
    text = f"{k} {op} {call}" if constant_first else f"{call} {op} {k}"
    if negate:
        text = f"not ({text})"
    expr = parse(text)
    expected = sorted(r["id"] for r in ROWS if expr.test(lambda name, r=r: r[name], NOW))
    for dialect, conn in databases:
        clause = compile_condition(expr, SPEC, ENTITY, TABLE, {"thing": TABLE}, NOW, dialect)
        assert "days" not in str(clause) and "julianday" not in str(clause)  # a plain range
        got = sorted(conn.execute(sa.select(TABLE.c.id).where(clause)).scalars())
        assert got == expected, (dialect, text)
