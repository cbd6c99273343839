"""The app's own translation catalogs (``app/translations``): Chinese for Flask-AppBuilder strings
its zh catalog lacks, English for the runtime's screen texts (written in Chinese). The ``.po`` files
are the source; ``compile_catalogs`` writes the ``.mo`` files Babel reads, and a test keeps them
in step."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DIRECTORY = Path(__file__).resolve().parent.parent / "translations"


class _Stable(Catalog):
    """A catalog whose compiled header does not name the Babel release that compiled it, so the
    committed ``.mo`` files stay equal to their sources when a new Babel is installed."""

    def _get_mime_headers(self) -> list[tuple[str, str]]:
        return [(k, "app.web.translations\n" if k == "Generated-By" else v) for k, v in super()._get_mime_headers()]


def compiled(po: Path) -> bytes:
    """The ``.mo`` bytes of a ``.po`` file."""
    with po.open("rb") as f:
        catalog = read_po(f)
    catalog.__class__ = _Stable
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def compile_catalogs(directory: Path = DIRECTORY) -> list[Path]:
    """Write every ``messages.mo`` next to its ``messages.po``; returns the files written."""
    written = []
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        data = compiled(po)
        if not mo.exists() or mo.read_bytes() != data:
            mo.write_bytes(data)
            written.append(mo)
    return written


if __name__ == "__main__":
    for path in compile_catalogs():
        print(f"wrote {path}")
