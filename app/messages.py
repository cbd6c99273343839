"""Runtime messages, written once: the Chinese text is the catalogue id (with named placeholders,
``%(n)s``), its English is in ``app/translations/en/LC_MESSAGES/messages.po``.

    raise ImportFileError([msg("文件是空的")])
    errors.append(msg("与第 %(row)s 行重复", row=first))
    msg("%(count)s 个问题", count=n)  # a plural entry of the en catalogue: "1 problem", "2 problems"

A message is a ``str`` whose value is the bilingual form "中文 (English)": what the CLI, logs,
import jobs, error workbooks and the API have always printed. A screen shows ``localized(text)``:
in a request the user's language alone, elsewhere the bilingual form. ``place`` is a location or
a piece of punctuation, written once, in Chinese, in the bilingual form (``第 1 行 A 列``), and
``Joined`` puts messages and plain text (values, separators) together; ``later`` is a message said
when it is shown (made at start-up, shown in a request).

A test reads every ``msg``/``place``/``later`` call of the app's code and checks its id and placeholders
against the en catalogue.
"""

from __future__ import annotations

import gettext
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

from flask import has_request_context
from flask_babel import LazyString, get_locale
from markupsafe import Markup, escape

CATALOGUES = Path(__file__).resolve().parent / "translations"
LANGUAGES = ("zh", "en")


# the language app.web.i18n.speaking chose for the work under it (None: the request's, or Chinese)
spoken: ContextVar[str | None] = ContextVar("crm_spoken_language", default=None)


def current_language() -> str:
    """``en`` or ``zh``: the one :func:`app.web.i18n.speaking` set; else the request's (the user's
    choice, or an API call's ``_l_``); else, outside a request, Chinese."""
    chosen = spoken.get()
    if chosen is not None:
        return chosen
    if not has_request_context():
        return "zh"
    locale = get_locale()
    return "en" if locale is not None and locale.language == "en" else "zh"


@cache
def english() -> gettext.GNUTranslations:
    """The compiled en catalogue (a test keeps it equal to its source)."""
    with (CATALOGUES / "en" / "LC_MESSAGES" / "messages.mo").open("rb") as f:
        return gettext.GNUTranslations(f)


class Text(str):
    """Text that can be said in either language; as a ``str``, its bilingual form."""

    def render(self, language: str) -> str:
        """The text in ``language``: "zh", "en", or "both" (the bilingual form)."""
        raise NotImplementedError

    def localized(self) -> str:
        """In a request (or under :func:`app.web.i18n.speaking`), that language; elsewhere the bilingual form."""
        return self.render(current_language()) if has_request_context() or spoken.get() is not None else str(self)

    def __html__(self) -> Markup:
        """On a page (a template's ``{{ message }}``, a form field's error): the reader's language only."""
        return escape(self.localized())


class Message(Text):
    """A catalogue message with its values."""

    msgid: str
    params: dict[str, Any]
    number: int | None  # the count that picks the English plural
    context: str | None
    is_place: bool

    def __new__(cls, msgid: str, params: dict[str, Any], count: int | None = None, context: str | None = None,
                is_place: bool = False) -> Message:
        zh, en = _say(msgid, params, count, context, "zh"), _say(msgid, params, count, context, "en")
        self = super().__new__(cls, zh if is_place else f"{zh} ({en})")
        self.msgid, self.params, self.number, self.context, self.is_place = msgid, params, count, context, is_place
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles rebuild the message, not its text
        return Message, (self.msgid, self.params, self.number, self.context, self.is_place)

    def render(self, language: str) -> str:
        if language == "both":
            return str(self)
        return _say(self.msgid, self.params, self.number, self.context, language)


class Joined(Text):
    """Messages and plain text (values, separators) one after the other, each said in the same
    language."""

    parts: tuple[str, ...]

    def __new__(cls, *parts: str) -> Joined:
        self = super().__new__(cls, "".join(str(p) for p in parts))
        self.parts = parts
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return Joined, self.parts

    def render(self, language: str) -> str:
        return "".join(p.render(language) if isinstance(p, Text) else p for p in self.parts)


def _say(msgid: str, params: dict[str, Any], count: int | None, context: str | None, language: str) -> str:
    if language == "zh":
        text = msgid
    elif count is not None:
        text = english().ngettext(msgid, msgid, count)
    elif context is not None:
        text = english().pgettext(context, msgid)
    else:
        text = english().gettext(msgid)
    values = {k: v.render(language) if isinstance(v, Text) else v for k, v in params.items()}
    return text % values if values else text


def msg(msgid: str, /, *, count: int | None = None, context: str | None = None, **params: Any) -> Message:
    """The catalogue message ``msgid`` with its values (``count`` also picks the English plural;
    ``context`` tells apart two uses of one Chinese text that read differently in English)."""
    if count is not None:
        params["count"] = count
    return Message(msgid, params, count, context)


def place(msgid: str, /, **params: Any) -> Message:
    """A location or separator from the catalogue: in the bilingual form, its Chinese only."""
    return Message(msgid, params, is_place=True)


class Later(LazyString):
    """A message said when it is shown, not when it is made (a form's validator or a list action
    built at start-up, shown in a request). In HTML it is escaped like any other text."""

    def __html__(self) -> Markup:
        return escape(str(self))


def later(msgid: str, /, **params: Any) -> Later:
    """``msg(msgid, **params)``, localized each time it is shown."""
    return Later(lambda: msg(msgid, **params).localized())


def localized(text: str) -> str:
    """``text`` as a screen shows it: a message in the user's language (bilingual outside a
    request), any other text as it is."""
    return text.localized() if isinstance(text, Text) else text


# what every refused command and upgrade ends with
NOTHING_CHANGED = msg("没有任何改动")
