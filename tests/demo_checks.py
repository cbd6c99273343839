"""What demo data must look like, checked over every stored row of any workbook (used in-process
for the shipped workbook and from a probe for the second domain)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any


def _day(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def demo_problems(app: Any, now: dt.datetime) -> list[str]:
    """Every way the stored rows break what an office would see: a date meaning the past after
    today, a due or planned date before the record's start (its creation, and the first moment it
    records), a workbook validation that does not hold, a number outside its field's min/max, a
    subject that is a label and a counter ("跟进记录00990")."""
    from app.ops.demodates import kind
    from app.record.rules import record_errors

    crm = app.extensions["crm"]
    spec, session, models = crm.spec, crm.db.session, crm.generated.models.MODELS
    today = now.date()
    problems: list[str] = []
    for e in spec.entities:
        moments = [f for f in e.fields if f.type in ("date", "datetime")]
        kinds = {f.name: kind(f) for f in moments}
        numbers = [f for f in e.fields if f.type in ("integer", "decimal", "money") and (f.min is not None or f.max is not None)]
        titled = e.field(e.title_field) if e.title_field and not e.numbering else None
        for obj in session.query(models[e.name]).all():
            where = f"{e.name}#{obj.id}"
            if obj.created_on > now:
                problems.append(f"{where}: created {obj.created_on} after now")
            past = [_day(getattr(obj, f.name)) for f in moments if kinds[f.name] == "past" and getattr(obj, f.name) is not None]
            start = min([obj.created_on.date(), *past])
            for f in moments:
                value = getattr(obj, f.name)
                if value is None:
                    continue
                if kinds[f.name] in ("past", "birth") and _day(value) > today:
                    problems.append(f"{where}: {f.name} {value} (the past) after today {today}")
                if kinds[f.name] in ("due", "plan") and _day(value) < start:
                    problems.append(f"{where}: {f.name} {value} (due/planned) before the record's start {start}")
            for f in numbers:
                value = getattr(obj, f.name)
                if value is not None and ((f.min is not None and value < f.min) or (f.max is not None and value > f.max)):
                    problems.append(f"{where}: {f.name} {value} outside [{f.min}, {f.max}]")
            title = getattr(obj, titled.name) if titled is not None and titled.type == "string" else None
            if title and re.search(r"\d{4,}$", title) and not e.field(titled.name).unique:  # type: ignore[union-attr]
                problems.append(f"{where}: {titled.name} {title!r} reads like a counter")  # type: ignore[union-attr]
            for field, messages in record_errors(spec, e, obj).items():
                problems.append(f"{where}: {field}: {'; '.join(messages)}")
    return problems
