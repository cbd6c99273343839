"""A list's rows as cards on a phone (below 768 px, crm/layout.css): which cell of a row plays which
part, decided from the Spec once per list. The table stays one table (the same rows, the same
links, no second markup); each cell carries its part as a class and its column's label, and the
style sheet lays a row out as a card: the title as the link, the record's number, the state and
grade as badges, and the first two or three other columns of the list (the workbook's order of the
fields marked ``list``) as "label  value" lines. The other columns stay on the wide table only."""

from __future__ import annotations

from collections.abc import Sequence

from app.record.grading import graded_fields
from app.spec.model import Entity, Spec

TITLE, NUMBER, BADGE, KEY, MORE = "title", "no", "badge", "key", "more"
KEY_FIELDS = 3  # lines of a card below its title
BADGES = 2  # a state and a grade; more would wrap on a phone


def card_parts(spec: Spec, entity: Entity, columns: Sequence[str], title: str) -> dict[str, str]:
    """Column name → its part on the card (``title``, ``no``, ``badge``, ``key`` or ``more``)."""
    parts = dict.fromkeys(columns, MORE)
    if title in parts:
        parts[title] = TITLE
    number = "code" if entity.numbering else ""  # the numbered records' number column (generator's name)
    if number in parts and parts[number] == MORE:
        parts[number] = NUMBER
    for name in _badge_fields(spec, entity, columns)[:BADGES]:
        parts[name] = BADGE
    keys = [c for c in columns if parts[c] == MORE][:KEY_FIELDS]
    for name in keys:
        parts[name] = KEY
    return parts


def _badge_fields(spec: Spec, entity: Entity, columns: Sequence[str]) -> list[str]:
    """The listed choice fields a card shows as badges: the workflow's state and the grades first,
    then any other choice drawn in colour (its choices carry colours in the choices sheet)."""
    by_name = {f.name: f for f in entity.fields}
    choice = [c for c in columns if c in by_name and by_name[c].type == "choice"]
    states = {t.state_field for t in spec.workflows if t.entity == entity.name}
    grades = {g.field for g in graded_fields(spec, entity)}
    first = [c for c in choice if c in states or c in grades]
    coloured = [c for c in choice if c not in first and any(o.color for o in spec.choices.get(by_name[c].choices, ()))]
    return first + coloured
