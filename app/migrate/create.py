"""Bring the database of the loaded application to the generated schema (migrations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.migrate.data import UPGRADE_LOCK_TIMEOUT_MS
from app.migrate.upgrade import UpgradeResult, finish_online, one_upgrade_at_a_time, upgrade_database


def create_schema(app: Any, allow_destructive: bool = False) -> UpgradeResult:
    """Apply pending generated migrations (creating every table on a fresh database)."""
    with app.app_context():
        db = app.extensions["crm"].db
        backups = Path(app.config["CRM_VAR_DIR"]) / "backups"
        spec = app.extensions["crm"].spec
        with one_upgrade_at_a_time(db.engine):
            done = upgrade_database(db.engine, app.config["CRM_GENERATED_DIR"], backups, spec, allow_destructive,
                                    app.config.get("CRM_UPGRADE_LOCK_TIMEOUT_MS", UPGRADE_LOCK_TIMEOUT_MS))
            return finish_online(db.engine, done)
