"""The revision files of a generated package's ``versions/`` folder, as both sides read them: the
generator writes them (:mod:`generator.migration`), the runtime runs those a database has not run
yet (:mod:`app.migrate.applied`). A header is read as literals — the file is not run."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from .expr import AST_LOCK
from .model import Spec


@dataclass(frozen=True)
class RevisionFile:
    """A revision already in ``versions/``, as its header says (read without running it)."""

    name: str  # versions/NNNN_slug.py
    revision: str
    down: str | None
    base: str = ""  # the schema digest it starts from ('' in revisions of earlier releases)
    schema: str = ""  # the schema digest it leads to


def leads_to(tail: list[RevisionFile], start: str | None, base: str, target: str) -> bool:
    """Whether ``tail`` runs unbroken from revision ``start`` (schema digest ``base``) to ``target``."""
    at, shape = start, base
    for r in tail:
        if r.down != at or not r.base or r.base != shape:
            return False
        at, shape = r.revision, r.schema
    return shape == target


REVISION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]*\.py$")


def read_previous(out: Path) -> tuple[str | None, list[RevisionFile]]:
    """The spec.json generated last time (text) and the revisions already in ``versions/``, in order."""
    spec_file = out / "spec.json"
    previous = spec_file.read_text(encoding="utf-8") if spec_file.exists() else None
    versions = out / "versions"
    paths = sorted(p for p in versions.iterdir() if REVISION_FILE.match(p.name)) if versions.is_dir() else []
    return previous, [read_revision_file(p) for p in paths]


def read_revision_file(path: Path) -> RevisionFile:
    """A revision's header (ids and schema digests), read as literals: the file is not run."""
    values: dict[str, object] = {}
    with AST_LOCK:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("revision", "down_revision", "BASE_SCHEMA", "SCHEMA"):
                values[name] = ast.literal_eval(node.value)
    return RevisionFile(f"versions/{path.name}", str(values.get("revision") or path.name[:4]),
                        str(values["down_revision"]) if values.get("down_revision") else None,
                        str(values.get("BASE_SCHEMA") or ""), str(values.get("SCHEMA") or ""))


@dataclass(frozen=True)
class Base:
    """Where a database stands: the revision it was last upgraded to and the spec it then had."""

    revision: str | None
    spec: Spec | None
