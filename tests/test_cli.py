"""The commands' one error boundary: a missing workbook, a setting that cannot be used or a
generated application that is not there is one line and exit code 1 — never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main


@pytest.mark.parametrize("command", [["check"], ["generate"], ["plan"], ["upgrade"], ["regrade"], ["rotate-key"]])
def test_a_missing_workbook_is_one_located_line(command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_WORKBOOK", str(tmp_path / "nowhere.xlsx"))
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'crm.sqlite'}")
    monkeypatch.setenv("CRM_GENERATED_DIR", str(tmp_path / "generated"))
    monkeypatch.setenv("CRM_OLD_ENCRYPTION_KEY", "an-old-key")
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "nowhere.xlsx" in result.output and "没有任何改动 (nothing changed)" in result.output
    assert not (tmp_path / "crm.sqlite").exists() and not (tmp_path / "generated").exists()


def test_development_secrets_in_production_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_ENV", "production")
    monkeypatch.delenv("CRM_SECRET_KEY", raising=False)
    monkeypatch.delenv("CRM_ENCRYPTION_KEY", raising=False)
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'crm.sqlite'}")
    result = CliRunner().invoke(main, ["export", "anything", str(tmp_path / "out.xlsx")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.output.strip().splitlines() == [
        "Error: CRM_ENV=production: set CRM_SECRET_KEY and CRM_ENCRYPTION_KEY (the development defaults are refused)"]


def test_no_generated_application_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GENERATED_DIR", str(tmp_path / "generated"))
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'crm.sqlite'}")
    result = CliRunner().invoke(main, ["export", "anything", str(tmp_path / "out.xlsx")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ") and "generated" in line


@pytest.mark.slow
def test_an_upgrade_syncs_the_rights_and_leaves_its_process_as_it_was(tmp_path: Path) -> None:
    """``crm upgrade`` syncs the roles' rights in a child process: the process that ran it holds no
    generated package afterwards (a test run, or ``crm up`` starting the app, may load one)."""
    import os
    import sqlite3
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from app.cli import main\n"
        "result = CliRunner().invoke(main, ['upgrade'], catch_exceptions=False)\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'crm_generated' not in sys.modules\n"
        "from app import create_app\n"
        "print(len(create_app({'CRM_SYNC_PERMISSIONS': '0'}).extensions['crm'].spec.entities))\n"
    )
    db = tmp_path / "crm.sqlite"
    env = {**os.environ, "CRM_DATABASE_URL": f"sqlite:///{db}", "CRM_VAR_DIR": str(tmp_path / "var")}
    env.pop("CRM_GENERATED_DIR", None)
    env.pop("CRM_WORKBOOK", None)
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,  # noqa: S603
                         cwd=Path(__file__).resolve().parent.parent, check=False)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert int(ran.stdout.strip().splitlines()[-1]) > 0
    with sqlite3.connect(db) as conn:
        grants = conn.execute("SELECT count(*) FROM ab_permission_view_role").fetchone()[0]
        digest = conn.execute("SELECT value FROM crm_state WHERE key = 'permissions'").fetchone()
    assert grants > 100 and digest is not None
