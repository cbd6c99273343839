"""Pages and API answers gzip-compressed for a client that accepts it (app.web.compress): the same
body once unpacked, a fraction of the bytes; plain for a client that does not, for a request
another site made (BREACH), and for files sent as they are."""

from __future__ import annotations

import gzip
import re
from typing import Any

from app.ops.demo import make_demo_data
from tests.conftest import ADMIN_PASSWORD, api_token

GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def test_list_and_record_pages_are_compressed_when_the_client_accepts_it(app: Any, admin_client: Any) -> None:
    make_demo_data(app, 30, seed=41)
    with app.app_context():
        import sqlalchemy as sa

        pk = app.extensions["crm"].db.session.execute(sa.text("SELECT max(id) FROM customer")).scalar_one()
    for url in ("/customerview/list/", f"/customerview/show/{pk}"):
        plain = admin_client.get(url)
        packed = admin_client.get(url, headers=GZIP)
        assert plain.status_code == packed.status_code == 200
        assert "Content-Encoding" not in plain.headers and "Accept-Encoding" in plain.headers["Vary"]
        assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
        body = gzip.decompress(packed.get_data())
        # the same page (its CSRF token and CSP nonce are new on every answer)
        assert body.count(b"<tr") == plain.get_data().count(b"<tr") and b"</html>" in body
        assert len(packed.get_data()) * 4 < len(plain.get_data()), (url, len(packed.get_data()), len(plain.get_data()))
        assert int(packed.headers["Content-Length"]) == len(packed.get_data())

    refused = admin_client.get("/customerview/list/", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers
    cross = admin_client.get("/customerview/list/", headers={**GZIP, "Sec-Fetch-Site": "cross-site"})
    assert "Content-Encoding" not in cross.headers and b"</html>" in cross.get_data()
    src = re.search(r'<script src="([^"]+/crm/tabs\.js)"', admin_client.get(f"/customerview/show/{pk}").text)
    assert src, "the record page loads crm/tabs.js"
    script = admin_client.get(src.group(1), headers=GZIP)
    assert script.status_code == 200 and "Content-Encoding" not in script.headers  # files go as they are


def test_a_rest_list_is_compressed_too(app: Any, client: Any) -> None:
    make_demo_data(app, 30, seed=42)
    headers = api_token(client, "admin", ADMIN_PASSWORD)
    packed = client.get("/api/v1/customer/?q=(page_size:50)", headers={**headers, **GZIP})
    assert packed.status_code == 200 and packed.headers["Content-Encoding"] == "gzip"
    assert b'"result"' in gzip.decompress(packed.get_data())
