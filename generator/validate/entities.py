"""The entities sheet and the rows of the fields sheet under each entity: its head (name, menu,
title, owner, numbering) and its fields, with every name that would clash in the generated code
(a reserved name, two fields on one column, a renamed table or column still present)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from app.spec.model import TEXT_TYPES, Choice, Entity, Field, GradingRule

from ..problems import did_you_mean, hint, msg
from .context import Context, entity_ctx
from .fields import RESERVED_FIELDS, build_field, unfillable

RESERVED_ENTITIES = {
    "user",
    "role",
    "permission",
    "view_menu",
    "permission_view",
    "register_user",
    "api_key",
    "group",
    "alembic_version",
    "model",
    "base",
    "app",
    "db",
}
# class names the generated modules already use (an entity's class is its CamelCase name)
RESERVED_CLASSES = {
    "Boolean",
    "Column",
    "Date",
    "DateTime",
    "ForeignKey",
    "Integer",
    "Numeric",
    "String",
    "Text",
    "User",
    "CrmRecord",
    "Model",
    "None",
    "True",
    "False",
    "L",
    "SQLAInterface",
    "Decimal",
}
# the screens and APIs the application has besides the entities' own: an entity whose
# <Class>View or <Class>Api is one of these would take its name (the app would not start)
RESERVED_VIEWS = frozenset({
    # Flask-AppBuilder's
    "ApiKeyApi", "AuthDBView", "AuthLDAPView", "AuthOAuthView", "AuthRemoteUserView", "AuthSAMLView", "AuthView",
    "ChartView", "DirectByChartView", "DirectChartView", "GroupApi", "GroupByChartView", "IndexView", "LocaleView",
    "MasterDetailView", "MenuApi", "ModelView", "MultipleView", "OpenApi", "PermissionApi", "PermissionModelView",
    "PermissionView", "PermissionViewMenuApi", "PermissionViewModelView", "PublicFormView", "RegisterUserDBView",
    "RegisterUserModelView", "RegisterUserOAuthView", "ResetMyPasswordView", "ResetPasswordView", "RoleApi",
    "RoleModelView", "SecurityApi", "SimpleFormView", "SwaggerView", "TimeChartView", "UserApi", "UserDBModelView",
    "UserGroupModelView", "UserInfoEditView", "UserLDAPModelView", "UserModelView", "UserOAuthModelView",
    "UserRemoteUserModelView", "UserSAMLModelView", "UserStatsChartView", "UtilView", "ViewMenuApi", "ViewMenuModelView",
    "BaseView", "BaseApi",
    # the CRM's own
    "AuditLogView", "CrmIndexView", "DashboardView", "InboxView", "OutboxView", "RecordView",
})
NUMBERING_TOKEN = re.compile(r"\{([^{}]*)\}")


def build_entities(v: Context, choices: dict[str, tuple[Choice, ...]]) -> list[Entity]:
    heads: dict[str, dict[str, Any]] = {}
    classes: dict[str, dict[str, Any]] = {}  # program (class) name → the entity row that has it
    for _row, c in v.rows("entities"):
        name = v.r.ident(c("name"), ("实体名", "entity name"), RESERVED_ENTITIES)
        if name is None:
            continue
        class_name = "".join(part.capitalize() for part in name.split("_"))
        if class_name in RESERVED_CLASSES or {f"{class_name}View", f"{class_name}Api"} & RESERVED_VIEWS:
            v.p.add(c("name").ref, msg("reserved", value=name), hint("rename"))
            continue
        if name in heads:
            v.p.add(
                c("name").ref, msg("duplicate", what="实体", what_en="entity", value=name, first=heads[name]["ref"]), hint("rename")
            )
            continue
        twin = classes.get(class_name)
        if twin is not None:  # x_1 and x1 would be one model class and one screen
            v.p.add(c("name").ref, msg("class_clash", value=name, other=twin["name"], first=twin["ref"]), hint("rename"))
            continue
        heads[name] = {
            "name": name,
            "label": c("label").text or name,
            "label_en": c("label_en").text,
            "menu": c("menu").text,
            "menu_en": c("menu_en").text,
            "title_field": c("title_field").text,
            "numbering": c("numbering").text,
            "owner_field": c("owner_field").text,
            "audit": v.r.boolean(c("audit"), True),
            "description": c("description").text,
            "previous_name": (v.r.ident(c("previous_name"), ("原名称", "previous name")) or "") if c("previous_name").text else "",
            "previous_ref": c("previous_name").ref,
            "ref": c("name").ref,
            "cells": c,
        }
        classes[class_name] = heads[name]
    named: dict[str, tuple[str, str]] = {}  # menu group → its English name, and where it was given first
    for h in heads.values():
        if h["menu_en"]:
            first = named.setdefault(h["menu"], (h["menu_en"], h["cells"]("menu_en").ref))
            if first[0] != h["menu_en"]:  # one group in the menu, one name
                v.p.add(h["cells"]("menu_en").ref, msg("menu_en", menu=h["menu"] or "—", value=h["menu_en"], other=first[0],
                                                       first=first[1]), hint("menu_en", value=first[0]))
    for h in heads.values():  # a row that leaves it blank is in the same group all the same
        h["menu_en"] = h["menu_en"] or named.get(h["menu"], ("", ""))[0]
    if "entities" in v.sheets and not heads and not v.p.errors:
        v.p.add("entities!A2", msg("no_entities"))
    check_previous_names(
        v,
        [(h["previous_name"], h["previous_ref"], entity_ctx(n)) for n, h in heads.items() if h["previous_name"]],
        set(heads),
        ("实体", "entity"),
    )
    fields: dict[str, list[Field]] = defaultdict(list)
    field_refs: dict[tuple[str, str], str] = {}
    previous_refs: dict[tuple[str, str], str] = {}
    for _row, c in v.rows("fields"):
        ent_cell = c("entity")
        ent = ent_cell.text
        if not ent:
            v.p.add(ent_cell.ref, msg("required", what="实体", what_en="entity"))
            continue
        if ent not in heads:
            v.p.add(ent_cell.ref, msg("unknown_entity", value=ent), did_you_mean(ent, heads))
            continue
        f = build_field(v, ent, c, heads, choices)
        if f is None:
            continue
        if (ent, f.name) in field_refs:
            v.p.add(
                c("name").ref,
                msg("duplicate", what="字段", what_en="field", value=f.name, first=field_refs[(ent, f.name)]),
                hint("rename"),
                entity_ctx(ent, f.name),
            )
            continue
        field_refs[(ent, f.name)] = f.ref
        previous_refs[(ent, f.name)] = c("previous_name").ref
        fields[ent].append(f)
    result = []
    for name, h in heads.items():
        fs = fields.get(name, [])
        check_columns(v, name, fs)
        check_previous_names(
            v,
            [(f.previous_name, previous_refs[(name, f.name)], entity_ctx(name, f.name)) for f in fs if f.previous_name],
            {f.name for f in fs},
            ("字段", "field"),
        )
        result.append(entity_head(v, h, fs))
    return result


def check_previous_names(v: Context, renames: list[tuple[str, str, str]], present: set[str], what: tuple[str, str]) -> None:
    """Each ``(previous_name, cell, context)`` names something gone from the sheet, and only one
    thing was renamed from it: the upgrade would otherwise rename a live table or column, or
    rename one twice."""
    first: dict[str, str] = {}
    for old, ref, ctx in renames:
        if old in present:
            v.p.add(ref, msg("previous_present", value=old, what=what[0], what_en=what[1]), hint("previous_name"), ctx)
        elif old in first:
            v.p.add(
                ref,
                msg("duplicate", what="原名称", what_en="previous name", value=old, first=first[old]),
                hint("previous_name"),
                ctx,
            )
        else:
            first[old] = ref


def check_columns(v: Context, entity: str, fields: list[Field]) -> None:
    columns: dict[str, Field] = {}
    for f in fields:
        if f.column in columns or (f.is_relation and f.column in {x.name for x in fields}):
            other = columns.get(f.column) or next(x for x in fields if x.name == f.column)
            v.p.add(
                f.ref, msg("name_clash", value=f.name, other=other.name, column=f.column), hint("rename"), entity_ctx(entity, f.name)
            )
        columns[f.column] = f
        if f.column in RESERVED_FIELDS:
            v.p.add(f.ref, msg("reserved", value=f.column), hint("rename"), entity_ctx(entity, f.name))


def entity_head(v: Context, h: dict[str, Any], fields: list[Field]) -> Entity:
    c = h["cells"]
    name = h["name"]
    by_name = {f.name: f for f in fields}
    if not fields:
        v.p.add(h["ref"], msg("no_fields", entity=name), context=entity_ctx(name))
    title = h["title_field"]
    if title and (title not in by_name or by_name[title].type not in TEXT_TYPES + ("integer",)):
        v.p.add(c("title_field").ref, msg("title_field", value=title), did_you_mean(title, by_name), entity_ctx(name))
        title = ""
    elif title and by_name[title].encrypted:  # a title is searched in every link's dropdown
        v.p.add(c("title_field").ref, msg("encrypted_use", what="标题字段", what_en="the title field"), context=entity_ctx(name))
        title = ""
    if not title:
        title = next((f.name for f in fields if f.type in ("string",) and not f.encrypted), "")
    owner = h["owner_field"]
    if owner and (owner not in by_name or by_name[owner].type != "user"):
        v.p.add(
            c("owner_field").ref,
            msg("owner_field", value=owner),
            did_you_mean(owner, [f.name for f in fields if f.type == "user"]),
            entity_ctx(name),
        )
        owner = ""
    numbering = h["numbering"]
    if numbering:
        tokens = _numbering_tokens(numbering)
        counters = [t for t in tokens if re.fullmatch(r"#+", t)]
        unknown = [t for t in tokens if t not in ("YYYY", "YY", "MM", "DD") and not re.fullmatch(r"#+", t)]
        if unknown:
            v.p.add(
                c("numbering").ref,
                msg("numbering_token", value=numbering, token="{" + unknown[0] + "}"),
                hint("counter"),
                entity_ctx(name),
            )
        elif len(counters) != 1:
            v.p.add(c("numbering").ref, msg("numbering_counter", value=numbering), hint("counter"), entity_ctx(name))
        code = by_name.get("code")
        if code is None or code.type != "string":
            v.p.add(c("numbering").ref, msg("numbering_field"), hint("add_code"), entity_ctx(name))
    return Entity(
        name=name,
        label=h["label"],
        fields=tuple(fields),
        label_en=h["label_en"],
        menu=h["menu"],
        menu_en=h["menu_en"],
        title_field=title,
        numbering=numbering,
        owner_field=owner,
        audit=h["audit"],
        description=h["description"],
        previous_name=h["previous_name"],
        ref=h["ref"],
    )


def check_readonly_required(v: Context, entities: Iterable[Entity], grading: Iterable[GradingRule]) -> None:
    """A required, read-only field without a default: no form could fill it (a grade is filled by its rules)."""
    graded = {(g.entity, g.field) for g in grading}
    for e in entities:
        for f in e.fields:
            if f.readonly and unfillable(f, e) and (e.name, f.name) not in graded:
                v.p.add(f.ref, msg("readonly_required", entity=e.name, value=f.name), hint("readonly_required"),
                        entity_ctx(e.name, f.name))


def _numbering_tokens(pattern: str) -> list[str]:
    return NUMBERING_TOKEN.findall(pattern)
