"""The generator: sheets/*.xlsx → validated Spec → source text → app/generated/.

Four stages, one direction (DESIGN §2)::

    read_workbook → validate_workbook → render → emit_files
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from app.spec.model import Spec
from app.spec.revisions import Base, read_previous
from app.spec.steps import Step, schema_digest

from .emit import emit_files, remove_files, stale_files
from .migration import Chain, next_chain
from .problems import Problem, WorkbookError
from .read import read_workbook
from .render import render
from .validate import validate_workbook, workbook_language


@dataclass
class Result:
    spec: Spec
    files: dict[str, str]
    chain: Chain
    dropped: list[str] = field(default_factory=list)  # revisions a database never applied, replaced by this generation
    written: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        """The schema steps of the revision this generation adds (none: the folder already leads to the spec)."""
        return self.chain.steps


_LOADED: OrderedDict[tuple[str, bytes], tuple[Spec, list[Problem]]] = OrderedDict()
LOADED_KEPT = 8  # valid workbooks a process keeps read, by content (plan, generate and upgrade read the same one)


def load_spec(workbook: str | Path) -> tuple[Spec, list[Problem]]:
    """Read and validate a workbook; raise WorkbookError listing every problem found. A valid
    workbook read before in this process, byte for byte the same, is not read again."""
    path = Path(workbook)
    try:
        key: tuple[str, bytes] | None = (str(path.resolve()), hashlib.sha256(path.read_bytes()).digest())
    except OSError:
        key = None  # read_workbook says what is wrong with the path
    if key is not None and key in _LOADED:
        _LOADED.move_to_end(key)
        known, kept = _LOADED[key]
        return known, list(kept)
    book = read_workbook(workbook)  # openpyxl → rows whose values keep their Sheet!Cell
    spec, problems = validate_workbook(book)  # every problem in one pass, each with a hint
    warnings = [p for p in problems if p.warning]
    if spec is None:
        lang = workbook_language(book)
        raise WorkbookError([p for p in problems if not p.warning], book.filename, lang, warnings)
    if key is not None:
        _LOADED[key] = (spec, list(warnings))
        while len(_LOADED) > LOADED_KEPT:
            _LOADED.popitem(last=False)
    return spec, warnings


def generate(workbook: str | Path, out: str | Path, check: bool = False, base: Base | None = None) -> Result:
    """Validate ``workbook`` and write the generated package into ``out`` (or only compare)."""
    spec, warnings = load_spec(workbook)
    return generate_spec(spec, out, check, base, warnings)


def generate_spec(spec: Spec, out: str | Path, check: bool = False, base: Base | None = None,
                  warnings: list[Problem] | None = None) -> Result:
    """Write the generated package of a validated ``spec`` into ``out`` (or only compare).

    ``base`` is where the database stands (see :func:`generator.migration.next_chain`): revisions
    generated after it that do not lead to ``spec`` are replaced by one that does."""
    previous_text, revisions = read_previous(Path(out))  # what was generated last time
    previous = Spec.from_json(previous_text) if previous_text and revisions else None
    chain = next_chain(revisions, previous, spec, base)  # keep, drop, or add one revision
    start = base.spec if base is not None and base.spec is not None else previous
    files = render(spec, chain, schema_digest(start))  # pure: Spec → {file name: source text}
    dropped = [r.name for r in chain.drop if r.name not in files]  # one rendered again as it was is kept
    result = Result(spec, files, chain, dropped, warnings=list(warnings or []))
    if check:
        result.stale = stale_files(files, Path(out)) + result.dropped
    else:
        remove_files(result.dropped, Path(out))
        result.written = emit_files(files, Path(out))  # atomic writes of changed files only
    return result


__all__ = ["generate", "generate_spec", "load_spec", "render", "read_workbook", "validate_workbook", "Base", "Spec", "WorkbookError",
           "Problem"]
