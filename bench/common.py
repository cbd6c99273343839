"""What the benchmarks share: a fresh embedded database with the shipped application on it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def fresh_app() -> Any:
    """The shipped app on a new SQLite file in a temporary folder (schema by the migrations)."""
    tmp = Path(tempfile.mkdtemp())
    os.environ["CRM_DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite'}"
    os.environ["CRM_VAR_DIR"] = str(tmp)
    from app import create_app
    from app.runtime.schema import create_schema

    app = create_app()
    create_schema(app)
    return app
