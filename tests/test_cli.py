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
