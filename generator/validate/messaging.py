"""What is sent later: the templates sheet (subject and body, their placeholders and filters), the
schedules sheet (when, to whom, which template, the escalation ladder) and the surveys sheet
(questions, scales and the condition that triggers one)."""

from __future__ import annotations

import re

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from app.spec.model import CHANNELS, Entity, Schedule, SurveyQuestion, Template, field_at, split_names, template_environment
from app.spec.when import MAX_YEARS, ladder_parts, parse_duration, parse_when

from ..problems import did_you_mean, hint, msg
from ..read import Cell
from .conditions import condition
from .context import Context, entity_ctx, resolve_path

TEMPLATE_NAMES = {"record", "due", "link", "recipient", "app_name", "now", "survey", "escalation", "step"}


def build_templates(v: Context) -> tuple[list[Template], dict[str, dict[str, str]]]:
    """The templates, and the cell of each one's subject and body (where a wrong path is fixed)."""
    env = template_environment()
    result = []
    seen: dict[str, str] = {}
    cells: dict[str, dict[str, str]] = {}  # template → subject/body → its cell
    for _row, c in v.rows("templates"):
        name = v.r.ident(c("name"), ("模板名", "template name"))
        if name is None:
            continue
        if name in seen:
            v.p.add(c("name").ref, msg("duplicate", what="模板", what_en="template", value=name, first=seen[name]))
            continue
        seen[name] = c("name").ref
        cells[name] = {key: c(key).ref for key in ("subject", "body")}
        channel = v.r.one_of(c("channel"), CHANNELS, "channel", "email") or "email"
        for key in ("subject", "body"):
            try:
                ast_ = env.parse(c(key).text)
            except TemplateSyntaxError as exc:
                v.p.add(c(key).ref, msg("placeholder", error=exc.message or "syntax"))
                continue
            for n in ast_.find_all(nodes.Name):
                if n.ctx == "load" and n.name not in TEMPLATE_NAMES:
                    v.p.add(
                        c(key).ref,
                        msg("placeholder", error=f"unknown placeholder '{n.name}'"),
                        did_you_mean(n.name, TEMPLATE_NAMES) or hint("one_of", values=", ".join(sorted(TEMPLATE_NAMES))),
                    )
            # unknown filters and tests fail only when the runtime compiles the text: find them now
            for kind, node_type, known in (("filter", nodes.Filter, env.filters), ("test", nodes.Test, env.tests)):
                for found in ast_.find_all(node_type):
                    if found.name not in known:
                        v.p.add(
                            c(key).ref, msg("placeholder", error=f"unknown {kind} '{found.name}'"), did_you_mean(found.name, known)
                        )
        result.append(Template(name, channel, c("subject").text, c("body").text))
    return result, cells


def build_schedules(v: Context, emap: dict[str, Entity], role_names: set[str], templates: dict[str, Template],
                    template_cells: dict[str, dict[str, str]]) -> list[Schedule]:
    env = template_environment()
    result = []
    seen: dict[str, str] = {}
    checked: set[tuple[str, str]] = set()
    for _row, c in v.rows("schedules"):
        name = v.r.ident(c("name"), ("名称", "name"))
        e = v.entity_of(c("entity"), emap)
        if name is None or e is None:
            continue
        if name in seen:
            v.p.add(c("name").ref, msg("duplicate", what="提醒", what_en="schedule", value=name, first=seen[name]))
            continue
        seen[name] = c("name").ref
        when = parse_when(c("when").text)
        if when is None:
            v.p.add(c("when").ref, msg("when", value=c("when").text), hint("when"), entity_ctx(e.name))
        elif any(d is not None and d.too_long for d in (when.every, when.offset)):
            v.p.add(c("when").ref, msg("duration_long", value=c("when").text, years=MAX_YEARS), context=entity_ctx(e.name))
        elif when.field:
            problem = resolve_path(e, when.field, emap)
            target = field_at(e, when.field, emap)
            if problem or target is None and when.field not in ("created_on", "changed_on"):
                bad, options = problem or (when.field, [])
                v.p.add(
                    c("when").ref, msg("unknown_field", entity=e.name, value=bad), did_you_mean(bad, options), entity_ctx(e.name)
                )
            elif target is not None and target.type not in ("date", "datetime"):
                v.p.add(c("when").ref, msg("when_field", value=when.field), context=entity_ctx(e.name))
        cond = condition(v, c("condition"), e, emap)
        recipients = split_names(c("recipients").text)
        for r in recipients:
            if r == "owner":
                if not e.owner_field:
                    v.p.add(c("recipients").ref, msg("owner_scope", entity=e.name, value=r))
            elif r in role_names:
                continue
            elif "." in r or (e.field(r) is not None):
                target = field_at(e, r, emap)
                if target is None or target.type not in ("email", "user", "phone"):
                    v.p.add(c("recipients").ref, msg("recipient", value=r), did_you_mean(r, list(role_names) + ["owner"]))
            else:
                v.p.add(c("recipients").ref, msg("recipient", value=r), did_you_mean(r, list(role_names) + ["owner"]))
        tname = c("template").text
        if tname and tname not in templates:
            v.p.add(c("template").ref, msg("unknown_template", value=tname), did_you_mean(tname, templates))
        elif tname and (tname, e.name) not in checked:  # a template is checked once per entity
            checked.add((tname, e.name))
            check_template_paths(v, env, templates[tname], e, emap, name, template_cells.get(tname, {}))
        channel = v.r.one_of(c("channel"), CHANNELS, "channel", "inapp") or "inapp"
        esc_after, esc_to = c("escalate_after").text, c("escalate_to").text
        delays, targets = ladder_parts(esc_after), ladder_parts(esc_to)
        for d in delays:
            span = parse_duration(d)
            if span is None:
                v.p.add(c("escalate_after").ref, msg("duration", value=d), hint("for_example", values="2 working hours, 1 day"))
            elif span.too_long:
                v.p.add(c("escalate_after").ref, msg("duration_long", value=d, years=MAX_YEARS))
        for t in targets:
            if t not in role_names and t != "owner":
                v.p.add(c("escalate_to").ref, msg("unknown_role", value=t), did_you_mean(t, role_names))
        if len(delays) != len(targets):
            v.p.add(c("escalate_to").ref if delays else c("escalate_after").ref,
                    msg("ladder", after=len(delays), to=len(targets)), hint("ladder"))
        digest = v.r.boolean(c("digest"), channel == "inapp")
        if digest and channel != "inapp":
            v.p.add(c("digest").ref, msg("digest_channel", channel=channel))
        result.append(Schedule(name, e.name, c("when").text, cond, recipients, tname, channel, esc_after, esc_to, c("name").ref,
                               digest))
    return result


def check_template_paths(v: Context, env: SandboxedEnvironment, t: Template, e: Entity, emap: dict[str, Entity], schedule: str,
                         cells: dict[str, str]) -> None:
    """``record.x.y`` in a template used for entity ``e`` must be a field path of ``e``. The
    problem is the template's (the subject or body cell that holds the path); the schedule that
    sends it for ``e`` goes in the context; ``cells``: where the template's subject and body are."""
    for key, text in (("subject", t.subject), ("body", t.body)):
        try:
            tree = env.parse(text)
        except TemplateSyntaxError:
            continue
        inner = {id(g.node) for g in tree.find_all(nodes.Getattr)}  # record.a of record.a.b: checked with it
        for node in tree.find_all(nodes.Getattr):
            if id(node) in inner:
                continue
            path = []
            n: nodes.Node = node
            while isinstance(n, nodes.Getattr):
                path.append(n.attr)
                n = n.node
            if isinstance(n, nodes.Name) and n.name == "record" and path:
                dotted = ".".join(reversed(path))
                problem = resolve_path(e, dotted, emap, allow_base=True)
                if problem:
                    bad, options = problem
                    parts = dotted.split(".")
                    owner = field_at(e, ".".join(parts[: parts.index(bad)]), emap) if parts.index(bad) else None
                    v.p.add(
                        cells.get(key, t.name),
                        msg("placeholder_field", path=dotted, entity=owner.link if owner and owner.link else e.name, value=bad),
                        did_you_mean(bad, options),
                        f"schedule {schedule}, entity {e.name}",
                    )


def build_surveys(v: Context, emap: dict[str, Entity]) -> tuple[SurveyQuestion, ...]:
    result = []
    for i, (_row, c) in enumerate(v.rows("surveys")):
        survey = v.r.ident(c("survey"), ("问卷名", "survey name"))
        question = c("question").text
        if not question:
            v.p.add(c("question").ref, msg("required", what="问题", what_en="question"))
        scale_n = v.r.number(c("scale"))
        scale = int(scale_n) if scale_n is not None else 4
        if scale_n is not None and (scale_n != int(scale_n) or not 2 <= scale_n <= 10):
            v.p.add(c("scale").ref, msg("scale", value=c("scale").text))
        labels = tuple(x.strip() for x in re.split(r"[,\uff0c\u3001]+", c("labels").text) if x.strip())
        if labels and len(labels) != scale:
            v.p.add(c("labels").ref, msg("labels_count", count=len(labels), scale=scale))
        trigger = c("trigger").text
        if trigger:
            ent_name, _, cond = trigger.partition(".")
            e = emap.get(ent_name)
            if e is None:
                v.p.add(c("trigger").ref, msg("unknown_entity", value=ent_name), did_you_mean(ent_name, emap))
            else:
                condition(v, Cell(cond, c("trigger").ref), e, emap, required=True)
        order = v.r.number(c("order"))
        if survey and question:
            result.append(SurveyQuestion(survey, question, scale, labels, order if order is not None else i, trigger))
    return tuple(sorted(result, key=lambda q: (q.survey, q.order)))
