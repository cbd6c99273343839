"""The scheduling pass narrows its candidates in SQL (outbox rows already told about an anchor or
period, anniversaries near today; for escalations, reminders of occurrences no longer current). Narrowing must never change what is written: on SQLite and on
PostgreSQL, a week of passes over demo data writes exactly the messages the un-narrowed pass (the
exact Python test alone) writes — and a repeated pass writes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.messaging import schedules
from app.messaging.outbox import OUTBOX
from tests.migration_helpers import database

pytestmark = pytest.mark.slow  # the narrowed pass against the exact test at many moments, on both databases

NOW = dt.datetime(2026, 11, 2, 10, 0)  # a Monday
PASSES = [NOW, NOW + dt.timedelta(hours=3), NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=3, hours=5), NOW + dt.timedelta(days=8)]


def written(app: Any) -> set[tuple[Any, ...]]:
    with app.app_context():
        session = app.extensions["crm"].db.session
        rows = session.execute(sa.select(OUTBOX.c.key, OUTBOX.c.occurrence, OUTBOX.c.step, OUTBOX.c.status)).all()
        session.commit()
    return {tuple(r) for r in rows}


def week_of_passes(app: Any) -> set[tuple[Any, ...]]:
    with app.app_context():
        session = app.extensions["crm"].db.session
        session.execute(sa.delete(OUTBOX))
        session.commit()
    for moment in PASSES:
        schedules.tick(app, moment)
        before = written(app)
        schedules.tick(app, moment)
        assert written(app) == before, f"a repeated pass at {moment} wrote more"
    return written(app)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_narrowed_pass_writes_exactly_what_the_exact_test_writes(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import create_app
    from app.migrate.create import create_schema
    from app.ops.demo import make_demo_data

    with database(kind, tmp_path) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
        create_schema(app)
        make_demo_data(app, 600, seed=4, now=NOW, related=3000)
        with app.app_context():  # birthdays around the week, so anniversaries are in play
            crm = app.extensions["crm"]
            for e in crm.spec.entities:
                if e.field("birthday") is not None:
                    table = sa.Table(e.name, sa.MetaData(), autoload_with=crm.db.engine)
                    ids = [r[0] for r in crm.db.session.execute(sa.select(table.c.id).order_by(table.c.id).limit(40))]
                    for i, rid in enumerate(ids):
                        day = (NOW + dt.timedelta(days=i % 12 - 2)).date().replace(year=1980 + i % 20)
                        crm.db.session.execute(sa.update(table).where(table.c.id == rid).values(birthday=day))
            crm.db.session.commit()
        narrowed = week_of_passes(app)
        assert len({k for k, *_ in narrowed}) > 200, "the week must exercise many schedules"
        sources = {k.split(".")[0] for k, *_ in narrowed}
        assert len(sources) >= 10, sources
        monkeypatch.setattr(schedules._Pass, "_not_yet_told", lambda self, *args: None)
        monkeypatch.setattr(schedules._Pass, "_still_current", lambda self, *args: None)
        exact = week_of_passes(app)
        assert narrowed == exact
        with app.app_context():
            app.extensions["crm"].db.session.remove()
            app.extensions["crm"].db.engine.dispose()
