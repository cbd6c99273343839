"""Authoring the configuration workbook: blank workbook, stable text dump, round trip of the
running configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from openpyxl import load_workbook

from app.cli import main
from generator import load_spec
from generator.author import dump, spec_rows, write_sheets
from generator.sheets import SHEETS
from tests.conftest import SHIPPED


def _strip_refs(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _strip_refs(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name not in ("ref", "workbook", "previous_name", "previous_value")}
    if isinstance(value, tuple | list):
        return [_strip_refs(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_refs(v) for k, v in value.items()}
    return value


def test_blank_workbook_has_every_sheet_explained(tmp_path: Path) -> None:
    path = tmp_path / "new.xlsx"
    assert CliRunner().invoke(main, ["sheets", "new", str(path)]).exit_code == 0
    wb = load_workbook(path)
    assert wb.sheetnames == [s.name for s in SHEETS]
    fields = wb["fields"]
    assert [c.value for c in fields[1]] == [c.name for c in SHEETS[1].columns]
    assert fields["E1"].comment is not None and fields.data_validations.dataValidation


def test_running_configuration_round_trips(tmp_path: Path) -> None:
    spec, _ = load_spec(SHIPPED)
    path = tmp_path / "export.xlsx"
    write_sheets(path, spec_rows(spec))
    again, warnings = load_spec(path)
    assert not warnings
    assert _strip_refs(again) == _strip_refs(spec)


def test_dump_is_stable_and_shows_changes_line_by_line(tmp_path: Path) -> None:
    first = dump(SHIPPED)
    assert first == dump(SHIPPED)
    assert first.startswith("## entities\n2: name=customer; label=")
    spec, _ = load_spec(SHIPPED)
    write_sheets(tmp_path / "same.xlsx", spec_rows(spec))
    rows = spec_rows(spec)
    rows["fields"][1]["label"] = "客户全称"
    write_sheets(tmp_path / "changed.xlsx", rows)
    original = dump(tmp_path / "same.xlsx").splitlines()
    changed = dump(tmp_path / "changed.xlsx").splitlines()
    diff = [(a, b) for a, b in zip(original, changed, strict=True) if a != b]
    assert len(diff) == 1 and "label=客户全称" in diff[0][1]
