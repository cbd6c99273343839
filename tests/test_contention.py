"""Contention: requests at once on one record, each kept apart from the others."""

from __future__ import annotations

import threading
from typing import Any


def test_each_request_loads_into_its_own_record_on_a_shared_schema(app: Any) -> None:
    """FAB shares one schema per API between requests, and marshmallow-sqlalchemy keeps the record
    being loaded on it: another request's PUT saw it (and wrote its values onto it)."""
    from app.web.api import CrmModelRestApi

    api = next(v for v in app.extensions["crm"].appbuilder.baseviews if isinstance(v, CrmModelRestApi) and v.entity == "customer")
    schema = api.edit_model_schema
    schema.instance = mine = object()
    seen: list[Any] = []
    other = threading.Thread(target=lambda: seen.append(schema.instance))
    other.start()
    other.join()
    try:
        assert seen == [None] and schema.instance is mine
    finally:
        schema.instance = None
