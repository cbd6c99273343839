"""The dashboard on PostgreSQL (to_char/date_trunc buckets, casts, concurrent panel queries):
every panel equals the independent pandas computation, as on SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.migration_helpers import database
from tests.test_dashboard import _compare, _expected, _panel

pytestmark = pytest.mark.postgres


def test_every_panel_matches_pandas_on_postgres(tmp_path: Path) -> None:
    from app import create_app
    from app.access.accounts import create_first_admin
    from app.migrate.create import create_schema
    from app.ops.demo import make_demo_data
    from tests.conftest import login

    with database("postgres", tmp_path) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "RATELIMIT_ENABLED": False})
        create_schema(app)
        create_first_admin(app, "admin", "admin-Pass-123")
        make_demo_data(app, 80, seed=9)
        client: Any = app.test_client()
        login(client, "admin", "admin-Pass-123")
        page = client.get("/dashboard/")
        assert page.status_code == 200
        for report in app.extensions["crm"].spec.reports:
            _compare(_panel(client, report.name), _expected(app, report), report)
        with app.app_context():
            app.extensions["crm"].db.session.remove()
            app.extensions["crm"].db.engine.dispose()
