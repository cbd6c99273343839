"""Every workflow step of a workbook, taken through its dialog (the record page's POST) and
through the REST API: the same refusals on both paths (a stale version, a field the step does not
ask, a bad value for each field it asks, a missing required comment, a value a validation of the
workbook refuses), nothing saved by any of them; then the step taken with values that satisfy its
condition, in one save (the version moves by one, one audit row holds the values and the state).

Generic over the workbook: runs in the tests' shared app for the shipped workbook and in a fresh
interpreter (tests/probes.py) for the second-domain one.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import re
from typing import Any

import sqlalchemy as sa

from app.record.audit import AuditRow as AuditLog
from app.record.tables import Transition as TransitionRow
from app.spec.expr import parse

BAD = {"integer": "abc", "decimal": "abc", "money": "1.234", "date": "2026-13-45", "datetime": "not-a-time",
       "choice": "__nope__", "link": "99999999", "user": "99999999", "boolean": "maybe", "email": "not-an-email",
       "phone": "call me"}


def _csrf(page: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert m, "no CSRF token on the record page"
    return m.group(1)


def dialog_inputs(page: str, key: str) -> dict[str, list[str]]:
    """The inputs of step ``key``'s dialog on a record page: field name → the options it offers
    (a select's values; [] for a typed input)."""
    for form in re.findall(r'<dialog class="crm-step-dialog".*?</dialog>', page, re.S):
        if f'name="action" value="{key}"' not in form:
            continue
        out: dict[str, list[str]] = {}
        for name in re.findall(r'name="value-(\w+)"', form):
            select = re.search(rf'<select[^>]*name="value-{name}".*?</select>', form, re.S)
            out[name] = [html.unescape(v) for v in re.findall(r'<option value="([^"]*)"', select.group(0)) if v] if select else []
        return out
    return {}


class Paths:
    """One step taken through the record page (as the dialog posts it) and through the API."""

    def __init__(self, app: Any, page_client: Any, headers: dict[str, str], route: str, entity: str, pk: int):
        self.app, self.page_client, self.headers, self.route, self.entity, self.pk = app, page_client, headers, route, entity, pk

    def page(self) -> str:
        return self.page_client.get(f"{self.route}/show/{self.pk}").text

    def by_page(self, key: str, values: dict[str, str], version: Any, comment: str = "") -> tuple[int, list[str]]:
        data = {"csrf_token": _csrf(self.page()), "action": key, "comment": comment, "version": str(version),
                **{f"value-{k}": v for k, v in values.items()}}
        r = self.page_client.post(f"{self.route}/transition/{self.pk}", data=data, headers={"Accept": "application/json"})
        answer = r.get_json(silent=True) or {}
        return r.status_code, sorted(answer.get("errors") or ({} if r.status_code == 200 else {"_": 1}))

    def by_api(self, key: str, values: dict[str, str], version: Any, comment: str = "") -> tuple[int, list[str]]:
        r = self.page_client.application.test_client().post(
            f"/api/v1/{self.entity}/{self.pk}/transition", headers=self.headers,
            json={"action": key, "comment": comment, "version": version, "values": values})
        message = (r.get_json(silent=True) or {}).get("message")
        return r.status_code, sorted(message) if isinstance(message, dict) else ([] if r.status_code == 200 else ["_"])


def snapshot(app: Any, entity: str, pk: int) -> tuple[Any, ...]:
    """The record's row, its workflow history and its audit trail, as stored (and the trail's last row)."""
    crm = app.extensions["crm"]
    table = crm.generated.models.MODELS[entity].__table__
    with app.app_context():
        s = crm.db.session
        row = s.execute(sa.select(table).where(table.c.id == pk)).mappings().one()
        moves = s.execute(sa.select(sa.func.count()).select_from(TransitionRow.__table__).where(
            TransitionRow.__table__.c.entity == entity, TransitionRow.__table__.c.record_id == pk)).scalar()
        audits = s.execute(sa.select(sa.func.count()).select_from(AuditLog.__table__).where(
            AuditLog.__table__.c.entity == entity, AuditLog.__table__.c.record_id == pk)).scalar()
        last_audit = s.execute(sa.select(sa.func.max(AuditLog.__table__.c.id))).scalar() or 0
        s.rollback()
    return dict(row), moves, audits, last_audit


def put_in_state(app: Any, entity: str, pk: int, field: str, state: str) -> int:
    """Move a record to ``state`` behind the rules' back (the test's setup, not a step); its version."""
    crm = app.extensions["crm"]
    table = crm.generated.models.MODELS[entity].__table__
    with app.app_context():
        s = crm.db.session
        s.execute(sa.update(table).where(table.c.id == pk).values({field: state}))
        s.commit()
        return int(s.execute(sa.select(table.c.version).where(table.c.id == pk)).scalar_one())


def _good_candidates(ftype: str, offered: list[str], now: dt.datetime) -> list[str]:
    if offered:
        return offered[:6]
    return {"boolean": ["1", ""], "date": [now.date().isoformat(), "2099-12-31"],
            "datetime": [now.strftime("%Y-%m-%dT%H:%M"), "2099-12-31T10:00"],
            "integer": ["1", "100"], "decimal": ["1", "100"], "money": ["1", "100"], "email": ["step@example.com"],
            "phone": ["13800138000"]}.get(ftype, ["步骤测试"])


def _refusals(spec: Any, e: Any, asked: dict[str, list[str]], t: Any, current: dict[str, Any]) -> list[tuple[str, dict[str, str], str]]:
    """(what, values, comment) that the step must refuse, nothing saved."""
    cases: list[tuple[str, dict[str, str], str]] = []
    unasked = next((f for f in e.fields if f.name not in asked and f.type != "file"), None)
    if unasked is not None:
        cases.append((f"unasked {unasked.name}", {unasked.name: ""}, "意见"))
    for name in asked:
        f = e.field(name)
        bad = BAD.get(f.type) or ("x" * (int(f.max) + 1) if f.max and f.type == "string" else "x" * 300 if f.type == "string" else "")
        if bad:
            cases.append((f"bad {name}", {name: bad}, "意见"))
    # a value that a validation of the workbook refuses (one that held before), tried per asked field
    tries = {"date": [("1990-01-01", dt.date(1990, 1, 1)), ("", None)], "datetime": [("1990-01-01T00:00", dt.datetime(1990, 1, 1)), ("", None)],
             "boolean": [("1", True), ("", False)]}
    rules = [parse(v.condition) for v in spec.validations if v.entity == e.name and "." not in v.condition]
    for name in asked:
        for raw, value in tries.get(e.field(name).type, [("", None)]):
            overlay = {**current, name: value}
            if any(expr.test(current.get) and not expr.test(overlay.get, changed=lambda n, nm=name: n == nm) for expr in rules):
                cases.append((f"validation {name}", {name: raw}, "意见"))
                break
    if t.require_comment:
        cases.append(("no comment", {}, ""))
    return cases


def check_every_step(app: Any, page_client: Any, headers: dict[str, str], routes: dict[str, str]) -> dict[str, Any]:
    """Run the checks of the module docstring on every transition of the app's workbook, as the
    signed-in administrator of ``page_client`` / ``headers``; a report per transition."""
    crm = app.extensions["crm"]
    spec = crm.spec
    report: dict[str, Any] = {}
    for n, t in enumerate(spec.workflows):
        e = spec.entity(t.entity)
        key = f"{t.state_field}:{t.source}:{t.target}"
        table = crm.generated.models.MODELS[t.entity].__table__
        with app.app_context():
            # the newest: the caller's own demo rows, not what other modules on the shared app left behind
            pk = crm.db.session.execute(sa.select(sa.func.max(table.c.id))).scalar_one()
            crm.db.session.rollback()
        version = put_in_state(app, t.entity, pk, t.state_field, t.source)
        paths = Paths(app, page_client, headers, routes[t.entity], t.entity, pk)
        listed = app.test_client().get(f"/api/v1/{t.entity}/{pk}/transitions", headers=headers).get_json()["result"]["actions"]
        action = next(a for a in listed if a["key"] == key)
        page = paths.page()
        asked = dialog_inputs(page, key)
        entry: dict[str, Any] = {"asks": [a["name"] for a in action["asks"]], "dialog_asks": sorted(asked), "refusals": {}}
        before = snapshot(app, t.entity, pk)
        current = {k: v for k, v in before[0].items()}
        for f in e.fields:
            if f.is_relation:
                current[f.name] = before[0].get(f.column)
        same_values = {name: "" for name in asked}
        cases = [("stale version", same_values, "意见", version + 7), *((w, v, c, version) for w, v, c in _refusals(spec, e, asked, t, current))]
        for what, values, comment, seen in cases:
            got = (paths.by_page(key, values, seen, comment), paths.by_api(key, values, seen, comment))
            entry["refusals"][what] = [list(got[0]), list(got[1]), snapshot(app, t.entity, pk) == before]
        entry["taken"] = _take(app, paths, t, key, asked, version, n, before)
        report[f"{t.entity}:{key}"] = entry
    return report


def _take(app: Any, paths: Paths, t: Any, key: str, asked: dict[str, list[str]], version: int, n: int, before: Any) -> Any:
    """Take the step with values that satisfy it (tried in turn; each refusal saves nothing):
    through the page for every other step, the API for the rest. What the save left."""
    spec = app.extensions["crm"].spec
    e = spec.entity(t.entity)
    now = dt.datetime.now().replace(second=0, microsecond=0)
    names = list(asked)
    options = [_good_candidates(e.field(name).type, asked[name], now) for name in names]
    through = paths.by_page if n % 2 == 0 else paths.by_api
    for combo in itertools.islice(itertools.product(*options), 24):
        values = dict(zip(names, combo, strict=True))
        status, _errors = through(key, values, version, "步骤意见")
        if status == 200:
            after = snapshot(app, t.entity, pk=paths.pk)
            crm = app.extensions["crm"]
            with app.app_context():
                s = crm.db.session
                last = s.execute(sa.select(TransitionRow.__table__).where(TransitionRow.__table__.c.entity == t.entity,
                                 TransitionRow.__table__.c.record_id == paths.pk).order_by(TransitionRow.__table__.c.id.desc())).mappings().first()
                audit = s.execute(sa.select(AuditLog.__table__.c.changes).where(AuditLog.__table__.c.entity == t.entity,
                                  AuditLog.__table__.c.record_id == paths.pk, AuditLog.__table__.c.step.is_(None))
                                  .order_by(AuditLog.__table__.c.id.desc())).scalars().first()
                # the step's effects (workflows.effects) filling the record's own fields: one more save, naming the step
                effect_saves = s.execute(sa.select(sa.func.count()).where(AuditLog.__table__.c.entity == t.entity,
                                         AuditLog.__table__.c.record_id == paths.pk, AuditLog.__table__.c.step.is_not(None),
                                         AuditLog.__table__.c.id > before[3])).scalar_one()
                s.rollback()
            return {"path": "page" if n % 2 == 0 else "api", "state": after[0][t.state_field], "version": after[0]["version"] - version - effect_saves,
                    "comment": last["comment"] if last else None, "moves": after[1] - before[1],
                    "audits": after[2] - before[2] - effect_saves, "effect_saves": effect_saves,
                    "audit_has_state": t.state_field in (audit or ""),
                    "changed_in_audit": sorted(name for name in names if f'"{name}' in (audit or "") or f'"{e.field(name).column}' in (audit or ""))}
        if snapshot(app, t.entity, paths.pk) != before:
            return {"half_saved": values}
    return None
