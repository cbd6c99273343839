"""Create the database tables of the loaded application."""

from __future__ import annotations

from typing import Any

from flask_appbuilder import Model


def create_schema(app: Any) -> None:
    """Create every missing table (FAB's and the generated entities')."""
    with app.app_context():
        db = app.extensions["crm"].db
        Model.metadata.create_all(db.engine)
