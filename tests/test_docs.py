"""The README stays true: every sheet, column and command is documented there."""

from __future__ import annotations

import re

from app.cli import main
from generator.sheets import SHEETS
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_sheet_and_column_is_documented() -> None:
    table = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\w+) \| [^|]*?: ([^|]*) \|$", README, re.M)}
    for sheet in SHEETS:
        assert sheet.name in table, f"sheet {sheet.name} is not in the README's workbook table"
        documented = {c.strip().split(" ")[0] for c in table[sheet.name].split(",")}
        missing = {c.name for c in sheet.columns} - documented
        assert not missing, f"README does not document columns {missing} of sheet {sheet.name}"


def test_every_command_is_documented() -> None:
    for name in main.commands:
        assert f"`crm {name}" in README, f"crm {name} is not documented in the README"


def test_readme_has_exactly_two_setup_commands() -> None:
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in setup.splitlines() if line.startswith("    ")]
    assert len(commands) == 2
    assert commands[0].endswith("crm up") and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    test_command = [line.strip() for line in setup.splitlines() if line.startswith("    ")][1]
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
