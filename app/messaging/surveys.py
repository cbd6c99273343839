"""Satisfaction surveys (surveys sheet, seed 002): an invitation for every record matching the
trigger, a public response page behind a signed, expiring, single-use link, a follow-up for the
lowest answers and a monthly rollup per owner.

How an invitation is sent: a schedule on the trigger's entity whose template name contains
``survey`` carries it (its recipients, channel, template and ``when``; its ``{{ link }}`` becomes
the survey link). Without such a schedule, the survey invites the record's owner in-app on the
next working day after the record's ``<value>_at``/``<value>_on`` field (``closed_at`` for a
trigger ``… == 'closed'``), or after ``changed_on`` when there is none. One invitation per record.

Links are ``itsdangerous.URLSafeTimedSerializer`` tokens (the app's SECRET_KEY, salt
``crm-survey``) valid ``CRM_SURVEY_MAX_AGE_DAYS`` (30) days; answers are unique per question, so a
link answers once even when two submissions race.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, jsonify, render_template, render_template_string, request
from flask_appbuilder import Model
from itsdangerous import BadSignature, SignatureExpired

from app.messages import Text, current_language, msg
from app.messaging.channels import RecordView
from app.messaging.jobs import Survey, survey_sources, surveys_of
from app.messaging.links import Links, Recipients, read_token
from app.record.tables import Notification, OutboxMessage, SurveyAnswer
from app.spec.expr import ExprError, parse
from app.spec.model import Spec, SurveyQuestion, split_names
from app.web.i18n import pick, speaking

ANSWERS = SurveyAnswer.__table__


# -- tokens ---------------------------------------------------------------------------------------


def answered(session: Any, survey: str, entity: str, record_id: int) -> bool:
    q = sa.select(sa.func.count()).select_from(ANSWERS).where(ANSWERS.c.survey == survey, ANSWERS.c.entity == entity,
                                                             ANSWERS.c.record_id == record_id)
    return bool(session.execute(q).scalar_one())


# -- the public page --------------------------------------------------------------------------------

bp = Blueprint("crm_survey", __name__)

SURVEY_TEMPLATE = "crm/survey.html"  # the public page, styled like the app, in the workbook's language


def _page(title: Any, message: Any = "", status: int = 200, **extra: Any) -> Any:
    """The survey page in the workbook's language (settings ``language``): the customer answering
    has no account and no language chosen; the office writes its questions in that language."""
    spec = current_app.extensions["crm"].spec
    with speaking(spec.settings.language):
        html = render_template(SURVEY_TEMPLATE, title=_said(title), message=_said(message), app_name=spec.settings.app_name,
                               language=current_language(), questions=extra.pop("questions", None), **extra)
    return html, status


def _said(text: Any) -> str:
    return text.localized() if isinstance(text, Text) else str(text)


def _answered() -> Any:
    return _page(msg("已经回答"), msg("此调查已提交过,感谢您的反馈。"), 409)


def _labels(q: SurveyQuestion) -> list[str]:
    labels = list(q.labels)[: q.scale]
    return labels + [str(i) for i in range(len(labels) + 1, q.scale + 1)]


@bp.route("/survey/<token>", methods=["GET", "POST"])
def respond(token: str) -> Any:
    crm = current_app.extensions["crm"]
    try:
        survey_name, entity, record_id = read_token(current_app, token)
    except SignatureExpired:
        return _page(msg("链接已过期"), msg("此调查链接已过期,感谢您的关注。"), 410)
    except (BadSignature, ValueError, TypeError):
        return _page(msg("链接无效"), msg("此调查链接无效或已损坏。"), 400)
    if crm.spec.entity(entity) is None:  # a link sent before the entity was renamed
        entity = next((e.name for e in crm.spec.entities if e.previous_name and e.previous_name == entity), entity)
    survey = surveys_of(crm.spec).get(survey_name)
    model = crm.generated.models.MODELS.get(entity)
    obj = crm.db.session.get(model, record_id) if survey is not None and model is not None else None
    if obj is None or survey is None or survey.entity != entity:
        return _page(msg("链接无效"), msg("调查或记录不存在。"), 404)
    if answered(crm.db.session, survey_name, entity, record_id):
        return _answered()
    questions = [dataclasses.replace(q, labels=tuple(_labels(q))) for q in survey.questions]
    # the customer sees the company's name and what the survey is about, never the sheet's identifier
    title = msg("满意度调查")
    e = crm.spec.entity(entity)
    with speaking(crm.spec.settings.language):
        about = f"{pick(e.label, e.label_en)}: {obj}" if current_language() == "en" else f"{e.label}:{obj}"
    if request.method == "GET":
        return _page(title, "", 200, questions=questions, record=about)
    values = _read_answers(questions)
    if values is None:
        return _page(title, msg("请回答全部问题。"), 400, questions=questions, record=about)
    if not _store(crm, survey, entity, record_id, values):
        return _answered()
    return _page(msg("感谢您的反馈"), msg("您的意见将作为我们改进服务的依据。"))


def _read_answers(questions: list[SurveyQuestion]) -> dict[int, int] | None:
    values = {}
    for q in questions:
        raw = request.form.get(f"q{int(q.order)}", "")
        if not raw.isdigit() or not 1 <= int(raw) <= q.scale:
            return None
        values[int(q.order)] = int(raw)
    return values


def _store(crm: Any, survey: Survey, entity: str, record_id: int, values: dict[int, int]) -> bool:
    session = crm.db.session
    now = dt.datetime.now().replace(microsecond=0)
    rows = [{"survey": survey.name, "entity": entity, "record_id": record_id, "question_order": order, "value": v, "submitted_at": now}
            for order, v in values.items()]
    try:
        session.execute(sa.insert(ANSWERS), rows)
        _follow_up(crm, survey, entity, record_id, values, now)
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
        return False
    return True


def followup_roles(spec: Spec, entity: str) -> list[str]:
    """``survey_followup_role`` from the settings sheet, else the roles that may edit the entity."""
    extra = dict(spec.settings.extra)
    if extra.get("survey_followup_role"):
        return list(split_names(extra["survey_followup_role"]))
    admin = {r.name for r in spec.roles if r.admin}
    return [p.role for p in spec.permissions if p.entity == entity and "edit" in p.rights and p.role not in admin]


def _follow_up(crm: Any, survey: Survey, entity: str, record_id: int, values: dict[int, int], now: dt.datetime) -> None:
    """A lowest-level answer: an in-app notification for the follow-up role(s)."""
    low = [q for q in survey.questions if values.get(int(q.order)) == 1]
    if not low:
        return
    spec, session = crm.spec, crm.db.session
    recipients = Recipients(spec, session)
    users = {u.id for role in followup_roles(spec, entity) for u in recipients.role_users(role)}
    obj = session.get(crm.generated.models.MODELS[entity], record_id)
    title = f"满意度最低评价 Lowest satisfaction: {obj}"
    body = "\n".join(f"{q.question} → {_labels(q)[0]}" for q in low)
    link = Links(current_app._get_current_object()).record(entity, record_id)  # type: ignore[attr-defined]
    rows = [{"user_id": uid, "title": title, "body": body, "link": link, "created_on": now} for uid in sorted(users)]
    if rows:
        session.execute(sa.insert(Notification.__table__), rows)


# -- the monthly rollup -----------------------------------------------------------------------------


def monthly_rollup(app: Any, survey_name: str, month: dt.date) -> list[dict[str, Any]]:
    """Per owner of the surveyed records: invitations written in ``month``, responses, response
    rate and the average of each question (1 = lowest)."""
    with app.app_context():
        return _monthly_rollup(app, survey_name, month)


def _monthly_rollup(app: Any, survey_name: str, month: dt.date) -> list[dict[str, Any]]:
    crm = app.extensions["crm"]
    survey = surveys_of(crm.spec).get(survey_name)
    entity = crm.spec.entity(survey.entity) if survey else None
    if survey is None or entity is None:
        raise KeyError(survey_name)
    start = dt.datetime(month.year, month.month, 1)
    end = dt.datetime(month.year + (month.month == 12), month.month % 12 + 1, 1)
    ob, table = OutboxMessage.__table__, Model.metadata.tables[entity.name]
    owner = table.c[f"{entity.owner_field}_id"] if entity.owner_field else sa.null()
    invited = (sa.select(ob.c.record_id).where(ob.c.source == survey_sources(crm.spec).get(survey_name, ""), ob.c.step == 0,
                                               ob.c.created_on >= start, ob.c.created_on < end).distinct().subquery())
    q = (sa.select(owner.label("owner_id"), invited.c.record_id, ANSWERS.c.question_order, ANSWERS.c.value)
         .select_from(invited.join(table, table.c.id == invited.c.record_id)
                      .outerjoin(ANSWERS, sa.and_(ANSWERS.c.record_id == invited.c.record_id, ANSWERS.c.survey == survey_name,
                                                  ANSWERS.c.entity == entity.name))))
    return _rollup_rows(crm, crm.db.session.execute(q).all(), survey)


def _rollup_rows(crm: Any, rows: list[Any], survey: Survey) -> list[dict[str, Any]]:
    records: dict[Any, set[int]] = defaultdict(set)
    responded: dict[Any, set[int]] = defaultdict(set)
    values: dict[Any, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for owner_id, record_id, order, value in rows:
        records[owner_id].add(record_id)
        if order is not None:
            responded[owner_id].add(record_id)
            values[owner_id][int(order)].append(int(value))
    from flask_appbuilder.security.sqla.models import User

    from app.messaging.channels import user_name

    out = []
    for owner_id in sorted(records, key=lambda o: (o is None, o or 0)):
        user = crm.db.session.get(User, owner_id) if owner_id is not None else None
        n, r = len(records[owner_id]), len(responded[owner_id])
        averages = {str(int(q.order)): (round(sum(v) / len(v), 2) if (v := values[owner_id].get(int(q.order))) else None)
                    for q in survey.questions}
        out.append({"owner_id": owner_id, "owner": user_name(user) if user else "", "invited": n, "responses": r,
                    "response_rate": round(r / n, 3) if n else 0.0, "averages": averages})
    return out


@bp.route("/survey-rollup/<survey>")
def rollup_json(survey: str) -> Any:
    """JSON rollup for ``?month=YYYY-MM`` (default: this month); signed-in users who may list the entity."""
    from flask_login import current_user

    crm = current_app.extensions["crm"]
    found = surveys_of(crm.spec).get(survey)
    if not getattr(current_user, "is_authenticated", False):
        abort(401)
    if found is None:
        abort(404)
    roles = {r.name for r in current_user.roles}
    allowed = {p.role for p in crm.spec.permissions if p.entity == found.entity and "list" in p.rights} | {crm.admin_role}
    if not roles & allowed:
        abort(403)
    try:
        month = dt.date.fromisoformat((request.args.get("month") or dt.date.today().strftime("%Y-%m")) + "-01")
    except ValueError:
        abort(400)
    rows = monthly_rollup(current_app, survey, month)
    if request.args.get("format") in ("xlsx", "html"):
        rows = [_flat(r) for r in rows]
    if request.args.get("format") == "xlsx":
        return _rollup_xlsx(survey, month, rows)
    if request.args.get("format") == "html":
        return render_template_string(ROLLUP_PAGE, survey=survey, month=month.strftime("%Y-%m"), rows=rows,
                                      columns=[k for k in (rows[0] if rows else {})], nothing=msg("本月没有调查").localized())
    return jsonify({"survey": survey, "month": month.strftime("%Y-%m"), "rows": rows})


ROLLUP_PAGE = """<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>{{ survey }} {{ month }}</title>
<link rel="stylesheet" href="/static/appbuilder/css/bootstrap.min.css"></head><body class="container">
<h3>{{ survey }} · {{ month }}</h3>
<p><a class="btn btn-sm btn-default" href="?month={{ month }}&format=xlsx">导出 Excel</a></p>
<table class="table table-condensed crm-rollup"><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for c in columns %}<td>{{ r[c] if r[c] is not none else '' }}</td>{% endfor %}</tr>{% endfor %}
</table>{% if not rows %}<p class="text-muted">{{ nothing }}</p>{% endif %}</body></html>"""


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """One level of columns: averages per question become ``averages_<question order>``."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update({f"{key}_{k}": v for k, v in sorted(value.items())})
        else:
            out[key] = value
    return out


def _rollup_xlsx(survey: str, month: dt.date, rows: list[dict[str, Any]]) -> Any:
    import io

    from flask import send_file
    from openpyxl import Workbook

    from app.io.excel import neutralise

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(f"{month:%Y-%m}")
    columns = list(rows[0]) if rows else ["technician"]
    ws.append(columns)
    for r in rows:
        ws.append([neutralise(v) if isinstance(v, str) else v for v in (r.get(c) for c in columns)])
    buffer = io.BytesIO()
    wb.save(buffer)
    buffer.seek(0)
    return send_file(buffer, as_attachment=True, download_name=f"{survey}-{month:%Y-%m}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def register_surveys(app: Any) -> None:
    """Add the public survey page and the rollup endpoint to the app (call from create_app)."""
    app.register_blueprint(bp)


def record_view(spec: Spec, entity: str, obj: Any) -> RecordView:
    e = spec.entity(entity)
    assert e is not None
    return RecordView(spec, e, obj)


def check_triggers(spec: Spec) -> list[str]:
    """Problems with the survey triggers (for diagnostics): unknown entity or unparsable condition."""
    problems = []
    names = {q.survey for q in spec.surveys}
    found = surveys_of(spec)
    for name in sorted(names - set(found)):
        problems.append(f"survey {name}: trigger must start with an entity name, e.g. entity.status == 'closed'")
    for s in found.values():
        try:
            parse(s.condition)
        except ExprError as exc:
            problems.append(f"survey {s.name}: {exc}")
    return problems
