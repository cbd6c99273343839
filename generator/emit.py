"""Write rendered files into the generated package (the other stage that touches the disk)."""

from __future__ import annotations

import ast
import os
import tempfile
from pathlib import Path

from .migration import REVISION_FILE, RevisionFile


def stale_files(files: dict[str, str], out: Path) -> list[str]:
    """Names of files whose content on disk differs from ``files`` (missing counts as stale)."""
    stale = []
    for name, text in sorted(files.items()):
        path = out / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def emit_files(files: dict[str, str], out: Path) -> list[str]:
    """Write changed files atomically (temp file + rename); return the names written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in stale_files(files, out):
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(files[name])
        os.replace(tmp, target)
        written.append(name)
    return written


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
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("revision", "down_revision", "BASE_SCHEMA", "SCHEMA"):
                values[name] = ast.literal_eval(node.value)
    return RevisionFile(f"versions/{path.name}", str(values.get("revision") or path.name[:4]),
                        str(values["down_revision"]) if values.get("down_revision") else None,
                        str(values.get("BASE_SCHEMA") or ""), str(values.get("SCHEMA") or ""))


def remove_files(names: list[str], out: Path) -> None:
    """Remove generated files (revisions a database never applied), with their cached bytecode."""
    for name in names:
        target = out / name
        target.unlink(missing_ok=True)
        for cached in (target.parent / "__pycache__").glob(f"{target.stem}.*.pyc"):
            cached.unlink(missing_ok=True)


def save_files(names: list[str], out: Path) -> dict[str, str | None]:
    """The current text of ``names`` in ``out`` (None: absent), to put back with :func:`restore_files`."""
    return {name: (out / name).read_text(encoding="utf-8") if (out / name).exists() else None for name in names}


def restore_files(saved: dict[str, str | None], out: Path) -> None:
    """Put ``out`` back as :func:`save_files` found it: files written since are removed or get
    their old text back (with the bytecode Python cached for them), so a refused or failed
    upgrade leaves no revision and no updated spec behind."""
    for name, text in saved.items():
        target = out / name
        if text is None:
            remove_files([name], out)  # a new revision (and its bytecode, were it imported)
        elif not target.exists() or target.read_text(encoding="utf-8") != text:
            # (bytecode of a file put back is recompiled: it no longer matches the source's time)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
            os.replace(tmp, target)
