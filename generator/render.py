"""Render a Spec into the source text of the generated package. Pure: Spec in, ``{file: text}`` out.

Safety: every identifier that reaches Python was validated as ``[a-z][a-z0-9_]*`` (and not a
keyword) by ``validate``; every other value goes through the ``py`` filter (``repr``), and the
workbook's file name in comments and docstrings through ``comment`` (quotes and line breaks
replaced), so a workbook can never inject code.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.spec.columns import Col, column_of, list_order
from app.spec.model import Entity, Spec
from app.spec.steps import schema_digest

from .migration import Chain, comment_text, render_revision, slug

TEMPLATES = Path(__file__).parent / "templates"
OUTPUTS = ("__init__.py", "models.py", "views.py", "permissions.py")
BASE_LABELS = {
    "id": ("编号", "ID"),
    "created_on": ("创建时间", "Created on"),
    "changed_on": ("修改时间", "Changed on"),
    "created_by": ("创建人", "Created by"),
    "changed_by": ("修改人", "Changed by"),
}
RECORD_INFO = ("记录信息", "Record")
OTHER_SECTION = ("其他", "Other")


def _default(c: Col) -> str:
    """The ``default=`` argument text, or '' (values are rendered with repr)."""
    if c.default is None:
        return ""
    if c.type == "date":
        return "default=_dt.date.today" if c.default == "today" else f"default=_dt.date.fromisoformat({c.default!r})"
    if c.type == "datetime":
        return "default=_dt.datetime.now" if c.default == "now" else f"default=_dt.datetime.fromisoformat({c.default!r})"
    if c.type in ("decimal", "money"):
        return f"default=_decimal.Decimal({str(c.default)!r})"
    return f"default={c.default!r}"


def column_args(c: Col) -> str:
    """The arguments of ``Column(...)`` for a generated model."""
    args = [c.sa_type]
    if c.fk:
        args.append(f"ForeignKey({c.fk!r})")
    args.append(f"nullable={c.nullable}")
    if c.unique:
        args.append("unique=True")
    if c.index:
        args.append("index=True")
    d = _default(c)
    if d:
        args.append(d)
    return ", ".join(args)


@dataclass
class Section:
    title: str
    title_en: str
    fields: list[str]
    collapsed: bool = False


@dataclass
class EntityView:
    entity: Entity
    columns: list[dict[str, Any]]
    list_columns: list[str]
    search_columns: list[str]
    order: tuple[str, str]
    sections: dict[str, list[Section]]
    readonly: list[str]
    related: list[str] = field(default_factory=list)  # class names of child views
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    writable: list[str] = field(default_factory=list)


def writable(spec: Spec, e: Entity) -> list[str]:
    """Fields people type in: not readonly, not the owner (the recorder owns; reassign is an
    action), not a workflow state (it moves only through transitions)."""
    states = {t.state_field for t in spec.workflows if t.entity == e.name}
    return [f.name for f in e.fields if not f.readonly and f.name != e.owner_field and f.name not in states]


def _sections(spec: Spec, e: Entity, view: str) -> list[Section]:
    items = sorted((i for i in spec.forms if i.entity == e.name and i.view == view), key=lambda i: i.order)
    editable = [f.name for f in e.fields if view == "show" or f.name in writable(spec, e)]
    sections: dict[str, Section] = {}
    for i in items:
        if i.field not in editable:
            continue
        key = i.section or ""
        s = sections.setdefault(key, Section(i.section or e.label, "" if i.section else e.label_en, [], i.collapsed))
        if i.field not in s.fields:
            s.fields.append(i.field)
    result = list(sections.values())
    placed = {name for s in result for name in s.fields}
    missing = [n for n in editable if n not in placed]
    if not result:
        result = [Section(e.label, e.label_en, missing)]
    elif missing and (view == "show" or any(e.field(n).required for n in missing)):  # type: ignore[union-attr]
        result.append(Section(*OTHER_SECTION, missing, True))
    if view == "show":
        result.append(Section(*RECORD_INFO, ["created_by", "created_on", "changed_by", "changed_on"], True))
    return [s for s in result if s.fields]


def _entity_view(spec: Spec, e: Entity, children: dict[str, list[str]]) -> EntityView:
    columns = [{"field": f, "column": f.column, "args": column_args(column_of(e, f))} for f in e.fields]
    list_columns = [f.name for f in e.fields if f.list] or [f.name for f in e.fields[:5]]
    search_columns = [f.name for f in e.fields if (f.search or f.filter) and not f.is_relation and f.type != "file"]
    if e.owner_field and e.owner_field not in search_columns:
        search_columns.append(e.owner_field)
    labels = {f.name: (f.label, f.label_en) for f in e.fields}
    labels.update(BASE_LABELS)
    order = list_order(e)
    return EntityView(
        entity=e,
        columns=columns,
        list_columns=list_columns,
        search_columns=search_columns,
        order=order,
        sections={v: _sections(spec, e, v) for v in ("add", "edit", "show")},
        readonly=[f.name for f in e.fields if f.readonly],
        related=children.get(e.name, []),
        labels=labels,
        help={f.name: f.help for f in e.fields if f.help},
        writable=writable(spec, e),
    )


def build_context(spec: Spec) -> dict[str, Any]:
    children: dict[str, list[str]] = defaultdict(list)
    for e in spec.entities:
        for f in e.fields:
            if f.type == "link" and f.link != e.name and f"{e.class_name}View" not in children[f.link]:
                children[f.link].append(f"{e.class_name}View")
    views = [_entity_view(spec, e, children) for e in spec.entities]
    grants: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)
    for p in spec.permissions:
        grants[p.role][p.entity] = p.rights
    return {"spec": spec, "views": views, "grants": dict(grants), "workbook": spec.workbook}


@functools.cache
def _env() -> Environment:
    """One environment a process: its templates are compiled once (0.1 s a render otherwise)."""
    # bandit B701 is silenced: the output is Python source, not HTML; every value passes through |py (repr)
    env = Environment(  # nosec B701
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["py"] = repr
    env.filters["comment"] = comment_text
    return env


def _package(spec: Spec) -> dict[str, str]:
    env, ctx = _env(), build_context(spec)
    return {name: env.get_template(f"{name}.jinja").render(**ctx) for name in OUTPUTS}


def render(spec: Spec, chain: Chain | None = None, base_schema: str = "") -> dict[str, str]:
    """The generated package as ``{file name: text}``: Python modules, ``spec.json`` and, when the
    ``chain`` has new steps, its revision ``versions/NNNN_slug.py`` (from the schema whose digest
    is ``base_schema`` to ``spec``'s)."""
    files = dict(spec.derived("package", _package))  # pure in the spec, which is frozen: rendered once
    files["spec.json"] = spec.to_json() + "\n"
    if chain is not None and chain.steps and chain.number:
        files[f"versions/{chain.number}_{slug(chain.steps)}.py"] = render_revision(
            chain.number, chain.down, chain.steps, spec.workbook, base_schema, schema_digest(spec))
    return files
