"""Forms with context: a form opened from a record's tab (a related list's 新增/编辑, whose address
carries FAB's relation filter ``_flt_0_<link>=<id>``) belongs to that record. The record is shown
on the form as a fixed line naming it, posted as the link's value and checked on the server (the
user's row scope, and no other value than the address's); every other link of the form whose
records are tied to that record's entity offers only the records tied to it.

The ties come from the workbook, not from code: a validation ``not contact or contact.customer ==
customer`` (:class:`app.record.rules.Narrowing`), or, with no such rule, the structure itself — a
link B of the form whose target entity has exactly one link to the entity of another link A of
the form (a follow-up's contact, whose contact links to a customer, by the follow-up's customer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import request, url_for
from werkzeug.routing import BuildError

from app.access.scope import scoped_select
from app.messages import msg
from app.record.rules import EntityRules, Narrowing
from app.spec.model import Entity, Field, Spec


def form_ties(spec: Spec, entity: Entity, rules: EntityRules) -> dict[str, Narrowing]:
    """Every link of ``entity`` narrowed by another of its links: the validations' ties first,
    then the structural ones (B's target has one link to A's target). Two links to the same
    entity never narrow each other (a transfer's two accounts), nor do two links both ways."""
    ties = dict(rules.narrowed)
    links = [f for f in entity.fields if f.type == "link"]
    for b in links:
        target = spec.entity(b.link)
        if b.name in ties or target is None:
            continue
        for a in links:
            back = ties.get(a.name)
            if a is b or a.link == b.link or (back is not None and back.other == b.name):
                continue
            through = [t for t in target.fields if t.type == "link" and t.link == a.link]
            if len(through) > 1:  # several: the one named as the form's link, if any
                through = [t for t in through if t.name == a.name]
            if len(through) == 1:
                ties[b.name] = Narrowing(b.name, through[0].name, through[0].column, a.name)
                break
    return ties


def structural_only(ties: dict[str, Narrowing], rules: EntityRules) -> list[Narrowing]:
    """The ties no validation of the workbook checks on save: the form checks them itself."""
    return [n for name, n in ties.items() if name not in rules.narrowed]


def tie_error(entity: Entity, tie: Narrowing, chosen: Any, parent: Any) -> str | None:
    """Why ``chosen`` (the record of link ``tie.link``) may not go with ``parent`` (of ``tie.other``),
    or None when it is tied to it (or either is blank)."""
    if chosen is None or parent is None:
        return None
    if getattr(chosen, tie.column, None) == getattr(parent, "id", None):
        return None
    link, other = entity.field(tie.link), entity.field(tie.other)
    assert link is not None and other is not None
    return msg("%(link)s须属于所选的%(other)s“%(title)s”:请从该%(other)s的%(link)s中选择。",
               link=link.label, other=other.label, link_en=link.label_en or link.name,
               other_en=other.label_en or other.name, title=str(parent)).localized()


def fixed_links(view: Any, entity: Entity) -> dict[str, str]:
    """The links the address fixes, by field name → the id as given (a string, checked later):
    FAB's relation filter "equal" (``_flt_<i>_<link>``), as a related list's 新增 passes its record.
    Read from the request itself: the view's parsed ``_filters`` are shared by concurrent requests."""
    links = {f.name for f in entity.fields if f.type == "link"}
    equal = view.datamodel.FilterRelationOneToManyEqual
    out: dict[str, str] = {}
    for arg in request.args:
        m = re.fullmatch(r"_flt_(\d)_(\w+)", arg)
        if m is None or m.group(2) not in links:
            continue
        kinds = view._filters.filter_converter(view.datamodel).convert(m.group(2)) or []
        index, value = int(m.group(1)), request.args.get(arg, "").strip()
        if index < len(kinds) and isinstance(kinds[index], equal) and value:
            out[m.group(2)] = value
    return out


@dataclass(frozen=True)
class ParentLine:
    """A fixed link as the form shows it: its label, the record (None: not the user's to see) and
    where that record's page is."""

    name: str
    label: str
    value: str
    record: Any
    url: str | None
    errors: list[str]


def show_url(f: Field, pk: Any, tab: str = "") -> str | None:
    """The record page of ``pk`` of ``f``'s linked entity (on the tab ``tab``), or None without a screen."""
    from app.web.fields import _entity

    try:
        return url_for(f"{_entity(f.link).class_name}View.show", pk=pk) + (f"#{tab}" if tab else "")
    except BuildError:
        return None


def parent_record(f: Field, model: Any, value: str) -> Any:
    """The record ``value`` names, if the user may see it (row scope of the linked entity)."""
    from app.web.linkfield import _crm

    text = value.strip()
    if not text.isdigit() or len(text) > 18:
        return None
    query = scoped_select(f.link, model).where(model.id == int(text))
    return _crm().db.session.execute(query).scalars().first()
