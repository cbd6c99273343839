"""The Content-Security-Policy of every answer: scripts only from the app's own files or from an
inline ``<script>`` carrying this response's nonce, never an injected one.

Flask-AppBuilder's templates already write ``nonce="{{ baselib.get_nonce() }}"`` on their inline
blocks and ask for ``csp_nonce()`` when it is defined (the Flask-Talisman convention): here it is a
Jinja global, so its macros imported without context see it too. A nonce is made the first time a
template asks for one and named in the header of that response only; an answer that drew no
inline script (JSON, files, the survey page) gets a policy with no nonce at all. Inline event
handlers (``onclick=``) and ``javascript:`` links have no nonce and stay blocked: the app's pages
bind their handlers from static files. Styles keep ``'unsafe-inline'`` (``style=`` attributes of
FAB, Select2 and Plotly), which cannot run code.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, g

HEADER = "Content-Security-Policy"


def csp_nonce() -> str:
    """This response's nonce, made on first use (``g`` lives as long as the request)."""
    nonce = g.get("crm_csp_nonce")
    if nonce is None:
        nonce = g.crm_csp_nonce = secrets.token_urlsafe(18)
    return str(nonce)


def policy(nonce: str | None = None) -> str:
    """The policy, with ``'nonce-…'`` among the script sources when the page drew inline scripts."""
    scripts = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    return "; ".join((
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self' 'unsafe-inline'",
        f"script-src {scripts}",
        "object-src 'none'",
        "frame-ancestors 'self'",
        "form-action 'self'",
        "base-uri 'self'",
    ))


def _add_policy(response: Any) -> Any:
    """The policy of this response, unless its view set a stricter one (uploaded files: sandbox)."""
    if HEADER not in response.headers:
        response.headers[HEADER] = policy(g.get("crm_csp_nonce"))
    return response


def install_csp(app: Flask) -> None:
    """``csp_nonce()`` for the templates and the policy on every response."""
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(_add_policy)
