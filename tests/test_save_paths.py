"""One save lifecycle, whatever the path: the ORM's flush (screens, API, tasks) and the bulk
importer take a field's default, a record's number, and write audit and grade-history rows with
the same functions of ``app/record``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.record.models import column_default
from app.record.numbering import number_new
from app.record.rules import default_value, defaulted_fields


def test_a_default_is_what_the_generated_column_declares(app: Any) -> None:
    """``default_value`` (both paths) gives what the generated model declares for every defaulted
    field of the shipped workbook; today and now are the moment of the save."""
    crm = app.extensions["crm"]
    now = dt.datetime.now()
    seen = 0
    for entity in crm.spec.entities:
        table = crm.generated.models.MODELS[entity.name].__table__
        for f in defaulted_fields(entity):
            declared, ours = column_default(table.c[f.column]), default_value(f, now)
            if f.default in ("today", "now"):
                assert type(ours) is type(declared) and ours == (now.date() if f.type == "date" else now), f.name
            else:
                assert ours == declared and type(ours) is type(declared), (entity.name, f.name, ours, declared)
            seen += 1
    assert seen > 20 and any(f.default == "today" for e in crm.spec.entities for f in defaulted_fields(e))


def test_a_number_given_is_kept_and_the_blank_ones_take_the_next_in_order(app: Any) -> None:
    crm = app.extensions["crm"]
    entity = next(e for e in crm.spec.entities if e.numbering and "{YYYY}" in e.numbering and "{MM}" in e.numbering)
    when = dt.datetime(2031, 5, 6)  # a period no other test numbers in
    with app.app_context(), crm.db.engine.connect() as conn:  # rolled back: numbers given back
        numbers = number_new(conn, entity, ["GIVEN-1", None, "", None], when)
        again = number_new(conn, entity, [None], when)
        assert number_new(conn, entity, ["GIVEN-2"], when) == ["GIVEN-2"]
        conn.rollback()
    assert numbers[0] == "GIVEN-1" and all("203105" in n for n in numbers[1:] + again)
    assert sorted(numbers[1:]) == numbers[1:] and len(set(numbers[1:] + again)) == 4 and again[0] > numbers[3]
