"""The generator: sheets/*.xlsx → validated Spec → source text → app/generated/.

Four stages, one direction (DESIGN §2)::

    read_workbook → validate_workbook → render → emit_files
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .emit import emit_files, read_previous, stale_files
from .migration import Step, diff_specs
from .problems import Problem, WorkbookError
from .read import read_workbook
from .render import render
from .spec import Spec
from .validate import validate_workbook, workbook_language


@dataclass
class Result:
    spec: Spec
    files: dict[str, str]
    steps: list[Step] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def load_spec(workbook: str | Path) -> tuple[Spec, list[Problem]]:
    """Read and validate a workbook; raise WorkbookError listing every problem found."""
    book = read_workbook(workbook)  # openpyxl → rows whose values keep their Sheet!Cell
    spec, problems = validate_workbook(book)  # every problem in one pass, each with a hint
    warnings = [p for p in problems if p.warning]
    if spec is None:
        lang = workbook_language(book)
        raise WorkbookError([p for p in problems if not p.warning], book.filename, lang, warnings)
    return spec, warnings


def generate(workbook: str | Path, out: str | Path, check: bool = False) -> Result:
    """Validate ``workbook`` and write the generated package into ``out`` (or only compare)."""
    spec, warnings = load_spec(workbook)
    previous_text, revisions = read_previous(Path(out))  # what was generated last time
    previous = Spec.from_json(previous_text) if previous_text and revisions else None
    steps = diff_specs(previous, spec)  # schema steps since then (all of it the first time)
    files = render(spec, steps, revisions)  # pure: Spec → {file name: source text}
    result = Result(spec, files, steps=steps, warnings=warnings)
    if check:
        result.stale = stale_files(files, Path(out))
    else:
        result.written = emit_files(files, Path(out))  # atomic writes of changed files only
    return result


__all__ = ["generate", "load_spec", "render", "read_workbook", "validate_workbook", "Spec", "WorkbookError", "Problem"]
