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
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(files[name])
        os.replace(tmp, out / name)
        written.append(name)
    return written
