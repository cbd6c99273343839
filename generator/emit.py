"""Write rendered files into the generated package (the other stage that touches the disk)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
