"""Pages and answers sent gzip-compressed to a client that accepts it.

A list or record page is 75–95 KB of HTML (FAB's markup repeats itself row after row) and a REST
page is JSON: both shrink to a sixth or less, which an office reaching the server over a VPN or a
phone network feels more than any millisecond on the server. Compressed here, in the app, so
``crm up``/``crm serve`` need no proxy in front to do it.

Left as they are: answers too small to gain, already encoded, streamed, sent as files (static
assets and downloads: ``direct_passthrough``), not text, and answers to a request another site
made the browser send (``Sec-Fetch-Site: cross-site``) — the one way an attacker could have many
pages compressed with words of theirs beside a secret of the page (the BREACH attack) is such
requests, and none of them is a page a person reads here.
"""

from __future__ import annotations

import gzip
from typing import Any

from flask import Flask, Response, request

MIN_BYTES = 1024  # below this the header and the CPU cost more than the bytes saved
LEVEL = 5  # zlib's speed/size middle: ~1 ms for a 90 KB page, within 2 % of level 9's size
COMPRESSIBLE = ("text/", "application/json", "application/javascript", "image/svg+xml")


def _accepts_gzip() -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _compressible(response: Response) -> bool:
    return (response.status_code == 200 and not response.direct_passthrough and not response.is_streamed
            and "Content-Encoding" not in response.headers
            and (response.mimetype or "").startswith(COMPRESSIBLE)
            and request.headers.get("Sec-Fetch-Site", "") != "cross-site")


def compress(response: Response) -> Response:
    """``response`` gzip-compressed when the client accepts it and it is worth it."""
    if not _compressible(response):
        return response
    response.vary.add("Accept-Encoding")  # the same address answers compressed or not
    if not _accepts_gzip():
        return response
    body = response.get_data()
    if len(body) < MIN_BYTES:
        return response
    response.set_data(gzip.compress(body, compresslevel=LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:  # another body: a strong validator of the plain one no longer holds
        response.set_etag(etag, weak=True)
    return response


def install_compression(app: Flask) -> None:
    """Compress every answer as the last step (registered first: Flask runs the others before)."""
    hook: Any = compress
    app.after_request(hook)
