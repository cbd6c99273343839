"""Cell values read as names, yes/no, numbers and one of a list: each refusal is a located problem,
never an exception. The conversions every sheet's check shares."""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Iterable
from typing import Any

from ..problems import Problems, did_you_mean, hint, msg
from ..read import Cell

IDENT = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
MAX_IDENT = 40
RESERVED_PREFIXES = ("ab_", "crm_")
TRUE = {"yes", "y", "true", "1", "是", "√", "✓", "x", "on"}
FALSE = {"no", "n", "false", "0", "否", "off"}
# Separators of a list in one cell, full-width ones (， ； 、) as escapes so no editor turns them into ASCII:
# names that may hold spaces (roles: 质量 主管) split on punctuation only; words and dates on spaces too.
LIST_SEPARATORS = r"[,\uff0c\u3001;\uff1b\s]+"


class Reader:
    """Value conversion helpers that record a problem instead of raising."""

    def __init__(self, problems: Problems):
        self.p = problems

    def ident(self, cell: Cell, what: tuple[str, str], reserved: Iterable[str] = (), ctx: str = "") -> str | None:
        value = cell.text
        if not value:
            self.p.add(cell.ref, msg("required", what=what[0], what_en=what[1]), context=ctx)
            return None
        if keyword.iskeyword(value) or keyword.issoftkeyword(value):
            self.p.add(cell.ref, msg("keyword", value=value), hint("rename"), ctx)
            return None
        if not IDENT.match(value):
            suggestion = re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")
            h = hint("did_you_mean", value=suggestion) if IDENT.match(suggestion) else hint("identifier")
            self.p.add(cell.ref, msg("identifier", value=value), h, ctx)
            return None
        if len(value) > MAX_IDENT:
            self.p.add(cell.ref, msg("identifier_long", value=value, limit=MAX_IDENT), context=ctx)
            return None
        if value in reserved or value.startswith(RESERVED_PREFIXES):
            self.p.add(cell.ref, msg("reserved", value=value), hint("rename"), ctx)
            return None
        return value

    def boolean(self, cell: Cell, default: bool = False) -> bool:
        t = cell.text.lower()
        if not t:
            return default
        if isinstance(cell.value, bool):
            return cell.value
        if t in TRUE:
            return True
        if t in FALSE:
            return False
        self.p.add(cell.ref, msg("bool", value=cell.text), hint("bool"))
        return default

    def number(self, cell: Cell) -> float | None:
        """The cell as a finite float; ``nan``, ``inf`` and ``1e999`` are problems, not numbers."""
        if cell.blank:
            return None
        try:
            if isinstance(cell.value, int | float) and not isinstance(cell.value, bool):
                n = float(cell.value)
            else:
                n = float(cell.text.replace(",", ""))
        except (ValueError, OverflowError):
            self.p.add(cell.ref, msg("number", value=cell.text))
            return None
        if not math.isfinite(n):
            self.p.add(cell.ref, msg("number", value=cell.text), hint("finite"))
            return None
        return n

    def one_of(self, cell: Cell, options: Iterable[str], code: str, default: str = "", **params: Any) -> str | None:
        """``cell`` lowercased when it is one of ``options``; else a problem ``code`` (with ``params``
        for messages that name more than the value, such as ``setting_value``'s key)."""
        value = cell.text.lower()
        if not value:
            return default
        opts = list(options)
        if value in opts:
            return value
        self.p.add(
            cell.ref, msg(code, value=cell.text, **params), did_you_mean(value, opts) or hint("one_of", values=", ".join(opts))
        )
        return None
