"""Labels in the workbook's two languages, chosen per request from the user's locale (or given explicitly, :func:`speaking`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import flask_babel
from flask import Flask, g, has_request_context
from flask.json.provider import DefaultJSONProvider
from flask_babel import LazyString
from jinja2 import pass_context
from markupsafe import Markup, escape

from app.messages import Text, current_language, spoken


@contextmanager
def speaking(language: str) -> Iterator[None]:
    """Labels (:func:`pick`) in ``language`` (``en``; anything else is Chinese) for the work under
    it, given explicitly instead of read from a request: a viewer's panels computed in worker
    threads, a command run in the workbook's language. Flask-Babel's translations follow inside an
    application context (``force_locale``)."""
    language = "en" if language == "en" else "zh"
    token = spoken.set(language)
    try:
        with flask_babel.force_locale(language):
            yield
    finally:
        spoken.reset(token)


def pick(zh: str, en: str = "") -> str:
    """The English text when the user chose English and one is given; else the Chinese."""
    return en if en and current_language() == "en" else zh


class Label(LazyString):
    """Text from the workbook, chosen per request; in HTML it is always escaped.

    (Flask-Babel's LazyString declares itself safe markup through ``__html__``; workbook labels
    are data, so they are escaped like any other data.)
    """

    def __html__(self) -> Markup:
        return escape(str(self))


def choice_text(spec: Any, field: Any, value: Any) -> Any:
    """A stored value of ``field`` as users read it: a choice's label in their language (the code
    when the list has no such value); any other value unchanged."""
    if value is None or field is None or not getattr(field, "choices", ""):
        return value
    for c in spec.choices.get(field.choices, ()):
        if c.value == value:
            return pick(c.label, c.label_en) or value
    return value


def yes_no(value: Any) -> str:
    """A yes/no value as users read it: 是/否 (Yes/No); blank for no value."""
    if value is None:
        return ""
    return pick("是", "Yes") if value else pick("否", "No")


def L(zh: str, en: str = "") -> Label:  # noqa: N802 - short name used throughout generated code
    """A lazily translated label: evaluated when rendered, so it follows the user's language."""
    return Label(pick, zh, en)


def _translated(string: str) -> str:
    """``flask_babel.gettext(string)``, remembered for the request and its locale (a page asks
    for the same few words hundreds of times: every button of every row)."""
    if not has_request_context():
        return flask_babel.gettext(string)
    babel = g.get("_flask_babel")
    locale = getattr(babel, "babel_locale", None) if babel is not None else None
    if locale is None:  # not chosen yet in this request: let Flask-Babel choose it
        return flask_babel.gettext(string)
    memo: dict[tuple[Any, str], str] = babel.__dict__.setdefault("crm_gettext", {})
    key = (locale, string)
    if key not in memo:
        memo[key] = flask_babel.gettext(string)
    return memo[key]


def install_safe_gettext(app: Flask) -> None:
    """Make the templates' ``_()`` treat its text as text.

    FAB's templates pass data — menu, field and page labels from the workbook — through ``_()``,
    and Jinja's new-style gettext marks the result safe and always ``%``-formats it: a label with
    ``<script>`` would run and one with ``%`` would crash. Here the translation is escaped and only
    formatted when variables are given.
    """

    @pass_context
    def gettext(context: Any, string: str, **variables: Any) -> Any:
        rv = _translated(string)
        if context.eval_ctx.autoescape:
            rv = escape(rv)
        return rv % variables if variables else rv

    @pass_context
    def ngettext(context: Any, singular: str, plural: str, num: int, **variables: Any) -> Any:
        variables.setdefault("num", num)
        rv = flask_babel.ngettext(singular, plural, num)
        if context.eval_ctx.autoescape:
            rv = escape(rv)
        return rv % variables

    app.jinja_env.globals.update(gettext=gettext, ngettext=ngettext, _=gettext)


def said_in_request(value: Any) -> Any:
    """``value`` with every message in it (:class:`app.messages.Text`, which as a ``str`` is its
    bilingual form) said in the request's language; outside a request, as it is."""
    if isinstance(value, Text):
        return value.localized()
    if isinstance(value, dict):
        return {k: said_in_request(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [said_in_request(v) for v in value]
    return value


class SpokenJSON(DefaultJSONProvider):
    """JSON answers (the REST API, the screens' JSON) in one language: a message put in an answer
    as it was raised is said in the asker's language (the session's, or the API's ``_l_``), never
    as "中文 (English)". A ``str`` subclass would otherwise reach the encoder as its bilingual text."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return super().dumps(said_in_request(obj) if has_request_context() else obj, **kwargs)
