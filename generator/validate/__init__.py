"""Turn the rows of a workbook into a frozen :class:`~app.spec.model.Spec`, collecting every problem.

Nothing here raises on bad input and nothing touches the disk: ``validate_workbook`` returns the
Spec (``None`` when there are errors) and the list of problems, each with its cell and a hint.

One module per concern: ``headers`` (which sheet and column is which), ``settings``, ``choices``
(+ grading), ``entities`` and ``fields``, ``access`` (roles, permissions), ``screens`` (forms,
reports), ``workflows``, ``conditions`` (+ validations), ``messaging`` (templates, schedules,
surveys); ``reader`` (cell values) and ``context`` (rows and lookups) are what they share.
"""

from __future__ import annotations

import dataclasses

from app.spec.model import Spec

from ..problems import Problem, Problems
from ..read import Workbook
from .access import build_permissions, build_roles
from .choices import build_choices, build_grading
from .conditions import build_validations
from .context import Context, resolve_path
from .entities import build_entities, check_readonly_required
from .formulas import check_formulas
from .headers import map_sheets, workbook_language
from .messaging import build_schedules, build_surveys, build_templates
from .screens import build_forms, build_reports
from .settings import build_settings
from .workflows import build_workflows


def validate_workbook(book: Workbook) -> tuple[Spec | None, list[Problem]]:
    """Build the Spec of ``book``; return ``(spec, problems)`` where spec is None on any error."""
    p = Problems(list(book.problems))
    if p.errors and not book.sheets:
        return None, p.items
    v = Context(book.filename, map_sheets(book, p), p)
    spec = _build(v)
    return (None if p.errors else spec), p.items


def _build(v: Context) -> Spec:
    """Every sheet, each after the ones it refers to; the problems come in this order."""
    settings = build_settings(v)
    choices = build_choices(v)
    v.choice_lists = choices
    entities = build_entities(v, choices)
    emap = {e.name: e for e in entities}
    roles = build_roles(v)
    role_names = {r.name for r in roles}
    spec = Spec(
        workbook=v.filename,
        entities=tuple(entities),
        choices=choices,
        grading=build_grading(v, emap, choices),
        forms=build_forms(v, emap),
        roles=tuple(roles),
        permissions=(permissions := build_permissions(v, emap, role_names)),
        workflows=build_workflows(v, emap, choices, role_names, permissions, {r.name for r in roles if r.admin}),
        schedules=(),
        surveys=build_surveys(v, emap),
        templates=(),
        validations=build_validations(v, emap),
        reports=build_reports(v, emap, role_names, choices),
        settings=settings,
    )
    check_readonly_required(v, entities, spec.grading)
    check_formulas(v, spec)
    templates, template_cells = build_templates(v)
    schedules = build_schedules(v, emap, role_names, {t.name: t for t in templates}, template_cells)
    return dataclasses.replace(spec, templates=tuple(templates), schedules=tuple(schedules))


__all__ = ["validate_workbook", "workbook_language", "resolve_path"]
