"""Sample data that reads like an office's, for any generated app, driven only by the Spec.

Values follow each field's type, choice list, limits and the words of its name and labels
(:mod:`app.ops.demotext`: people, firms, addresses, document numbers, subjects made of the row's
own choice labels, amounts in an office's ranges); dates agree with one another, with today and
with the workbook's validations (:mod:`app.ops.demodates`). Demo logins are named after their
role (:func:`demo_logins`). Rows are bulk-loaded (PostgreSQL ``COPY``; ``executemany``
elsewhere), parents before children: ``crm demo-data --customers 1000000`` is a matter of minutes.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import func, select

from app.io import bulk
from app.ops.demodates import RowDates
from app.ops.demotext import ADDRESS_HINTS, PHRASES, TOPICS, Subjects, address, company, hinted, is_subject, mobile, number_maker, person, string_maker
from app.record import numbering
from app.record.grading import OTHERWISE, Graded, graded_fields, regrade
from app.record.rules import EntityRules, Narrowing, rules_for
from app.spec.expr import record_lookup
from app.spec.model import Entity, Field, Spec

OVERRIDE_HINTS = ("override", "手工", "人工", "手动")  # manual overrides are the exception, not the rule
DEMO_PASSWORD = "demo-Pass-2026"  # noqa: S105 - printed by `crm demo-data` for every demo login; change in production


class _Maker:
    """Makes valid rows of any entity. Each field's value maker is built once per entity (the hints
    of its name and label are read then, not per row), so a million rows take seconds, not minutes."""

    def __init__(self, spec: Spec, rng: random.Random, now: dt.datetime, users: list[int],
                 owners: dict[str, list[int]] | None = None):
        self.spec = spec
        self.rng = rng
        self.now = now
        self.users = users
        self.owners = owners or {}  # entity → the people who may own its records (default: anyone)
        self.ids: dict[str, list[int]] = {}
        self._compiled: dict[str, list[tuple[str, str, Callable[[int], Any]]]] = {}
        self._dates: dict[str, RowDates] = {}
        self._seen: dict[tuple[str, str], set[str]] = {}  # texts a unique field holds (_fit)
        self._subjects: dict[str, tuple[Subjects, list[Field]]] = {}  # the subjects made from the row's own choices
        self.narrowed = {e.name: rules_for(spec, e).narrowed for e in spec.entities}  # link → its tie
        # (entity, link column) → {record id: the id it links to} and back, for the links narrowed
        # by another (a contact's customer): a follow-up's contact is drawn among its customer's
        self.parents: dict[tuple[str, str], dict[int, Any]] = {}
        self.children: dict[tuple[str, str], dict[Any, list[int]]] = {}

    def learn(self, conn: Any, e: Entity, table: Any) -> None:
        """Remember what ``e``'s records link to where a narrowed link of another entity asks."""
        for other in self.spec.entities:
            for n in self.narrowed[other.name].values():
                link = other.field(n.link)
                if link is not None and link.link == e.name and (e.name, n.column) not in self.parents:
                    parents = dict(conn.execute(select(table.c.id, table.c[n.column])).all())
                    children: dict[Any, list[int]] = {}
                    for child, parent in parents.items():
                        children.setdefault(parent, []).append(child)
                    self.parents[(e.name, n.column)], self.children[(e.name, n.column)] = parents, children

    def fit(self, e: Entity, row: dict[str, Any], key: Callable[[Field], str]) -> None:
        """Make each narrowed link of ``row`` agree with its other field: the other field becomes
        what the drawn link's record links to (a follow-up's customer is its contact's); a link
        left blank stays blank unless required, then it is drawn among the other field's records."""
        for n in self.narrowed[e.name].values():
            link, other = e.field(n.link), e.field(n.other)
            assert link is not None and other is not None
            parents = self.parents.get((link.link, n.column), {})
            chosen = row.get(key(link))
            parent = parents.get(chosen) if chosen is not None else None
            if chosen is not None and (parent is not None or not other.required):
                row[key(other)] = parent
            elif chosen is not None or link.required:
                mine = self.children.get((link.link, n.column), {}).get(row.get(key(other)))
                row[key(link)] = self.rng.choice(mine) if mine else None

    def lookup(self, e: Entity, values: dict[str, Any]) -> Callable[[str], Any]:
        """``record_lookup`` over field values, reading a narrowed link's ``link.through`` as the
        record it links to does (the row holds ids, not records)."""
        plain = record_lookup(values)
        through = self.narrowed[e.name]
        if not through:
            return plain

        def lookup(path: str) -> Any:
            head, _, rest = path.partition(".")
            n: Narrowing | None = through.get(head)
            if n is not None and rest == n.through:
                link = e.field(head)
                parent = values.get(head)
                return self.parents.get((link.link, n.column), {}).get(parent) if link is not None and parent is not None else None
            return plain(path)

        return lookup

    def makers(self, e: Entity) -> list[tuple[str, str, Callable[[int], Any]]]:
        """(field name, column, value maker) of every field of ``e``."""
        if e.name not in self._compiled:
            self._subjects[e.name] = (Subjects(self.spec, e, set(rules_for(self.spec, e).state_fields), self.rng, self.now.year),
                                      [f for f in e.fields if f.type == "string" and self._composed(e, f)])
            self._compiled[e.name] = [(f.name, f.column, self._field_maker(e, f)) for f in e.fields]
        return self._compiled[e.name]

    def valid_row(self, e: Entity, rules: EntityRules, i: int) -> dict[str, Any]:
        """A row that passes the entity's validation rules (a few tries, as a person would), its
        dates told from one start (its ``created_on``) and its subject from its own choices."""
        makers = self.makers(e)
        dates = self.dates(e, rules)
        values = {name: make(i) for name, _column, make in makers}
        start = dates.start(recent=_in_first_state(e, rules, values))
        for _ in range(50):
            dates.fill(values, start, lambda name: bool(e.field(name).required))  # type: ignore[union-attr]
            self.fit(e, values, lambda f: f.name)
            self.compose(e, values, lambda f: f.name)
            lookup = self.lookup(e, values)
            # only the fields of the rules that fail are drawn again, as a person corrects a form
            broken = {n.split(".")[0] for expr, _m, _t in rules.validations if not expr.test(lookup, self.now, self.spec.calendar)
                      for n in expr.names}
            if not broken:
                row = {column: values[name] for name, column, _make in makers}
                row["created_on"] = start
                return row
            for name, _column, make in makers:
                if name in broken:
                    values[name] = make(i)
        raise RuntimeError(f"could not make a valid {e.name} row in 50 tries; check its validation rules")

    def dates(self, e: Entity, rules: EntityRules) -> RowDates:
        if e.name not in self._dates:
            self._dates[e.name] = RowDates(self.spec, e, rules, self.rng, self.now)
        return self._dates[e.name]

    def compose(self, e: Entity, row: dict[str, Any], key: Callable[[Field], str]) -> None:
        """Write the row's subjects from its own choice labels (电话跟进:交期确认)."""
        if e.name not in self._subjects:
            self.makers(e)
        subjects, fields = self._subjects[e.name]
        for f in fields:
            row[key(f)] = _fit(f, subjects.make(f, lambda name: row.get(key(e.field(name)))), int(row.get("id") or 0))  # type: ignore[arg-type]

    def value(self, e: Entity, f: Field, i: int) -> Any:
        for name, _column, make in self.makers(e):
            if name == f.name:
                return make(i)
        raise KeyError(f.name)

    def _field_maker(self, e: Entity, f: Field) -> Callable[[int], Any]:
        inner = self._raw_maker(e, f)
        rng = self.rng
        if f.required or f.type in ("choice", "link", "user", "boolean"):
            return inner

        def sometimes_blank(i: int) -> Any:
            return None if rng.random() < 0.08 else inner(i)

        return sometimes_blank

    def _raw_maker(self, e: Entity, f: Field) -> Callable[[int], Any]:  # noqa: C901 - one branch per field type
        rng, ids, users = self.rng, self.ids, self.users
        if f.type == "choice":
            options = [c.value for c in self.spec.choices.get(f.choices, ())]
            blank = 0.9 if hinted(f, *OVERRIDE_HINTS) else 0.0 if f.required else 0.15
            return lambda i: rng.choice(options) if options and rng.random() >= blank else None
        if f.type == "link":
            link = f.link
            return lambda i: rng.choice(ids[link]) if ids.get(link) else None
        if f.type == "user":
            people = self.owners.get(e.name) if f.name == e.owner_field else None
            pool = people or users
            return lambda i: rng.choice(pool) if pool else None
        if f.type == "boolean":
            return lambda i: rng.random() < 0.5
        if f.type in ("integer", "decimal", "money"):
            return number_maker(f, rng)
        if f.type in ("date", "datetime"):
            return lambda i: None  # drawn with the row's other dates (RowDates)
        if f.type == "email":
            return lambda i: f"user{i}.{rng.randint(100, 999)}@example.cn"
        if f.type == "phone":
            return lambda i: mobile(rng)
        if f.type == "string":
            return self._string_maker(e, f)
        if f.type == "text":
            if hinted(f, *ADDRESS_HINTS):
                return lambda i: address(rng)
            return lambda i: "".join(rng.sample(PHRASES, rng.randint(1, 3)))
        return lambda i: None  # file: nothing uploaded

    def _composed(self, e: Entity, f: Field) -> bool:
        """Whether ``f`` is a subject written from the row (:meth:`compose`), not drawn alone."""
        main_title = f.name == e.title_field and e is self.spec.entities[0]
        return (is_subject(e, f) and not main_title and not (f.name == "code" and e.numbering)
                and string_maker(e, f, self.rng) is None)

    def _string_maker(self, e: Entity, f: Field) -> Callable[[int], Any]:
        rng = self.rng
        if (f.name == "code" and e.numbering) or self._composed(e, f):
            return lambda i: None  # filled from the numbering rule, or written from the row by compose
        text: Callable[[int], str] | None = string_maker(e, f, rng)
        if text is None and f.name == e.title_field and e is self.spec.entities[0]:
            text = lambda i: company(rng)  # noqa: E731 - the main entity's records are the office's counterparts
        if text is None:
            text = lambda i: rng.choice(TOPICS)  # noqa: E731
        made, seen = text, self._seen.setdefault((e.name, f.name), set()) if f.unique else None
        return lambda i: _fit(f, made(i), i, seen)

    def remember(self, conn: Any, e: Entity, table: Any, stored: int) -> None:
        """The values ``e``'s unique text fields hold already, so a new row takes another (numbered
        when its text is taken); beyond what is remembered, every new one is numbered."""
        self.makers(e)
        for f in e.fields:
            seen = self._seen.get((e.name, f.name))
            if seen is None or not stored:
                continue
            if stored >= UNIQUE_REMEMBERED:
                seen.update(f"#{n}" for n in range(UNIQUE_REMEMBERED))  # full: numbered from now on
            else:
                seen.update(v for v in conn.execute(select(table.c[f.column])).scalars() if v is not None)


def _fit(f: Field, text: str, i: int, seen: set[str] | None = None) -> str:
    """``text`` within the field's length and pattern; a unique field's text is numbered only
    when it is taken (``-<row>``), as an office tells two firms of one name apart."""
    limit = int(f.max) if f.max is not None else 255
    if f.unique:
        if seen is not None and text not in seen and len(seen) < UNIQUE_REMEMBERED:
            seen.add(text)
        else:
            text = f"{text}-{i + 1}"
    if f.pattern and not re.fullmatch(f.pattern, text):
        return None  # type: ignore[return-value]
    return text[-limit:] if f.unique else text[:limit]


UNIQUE_REMEMBERED = 200_000  # texts a unique field remembers; beyond, every new one is numbered


def entity_order(spec: Spec) -> list[Entity]:
    """Entities with every link target before the entities that link to it (cycles broken)."""
    done: list[Entity] = []
    seen: set[str] = set()

    def visit(e: Entity, path: set[str]) -> None:
        if e.name in seen or e.name in path:
            return
        for f in e.fields:
            target = spec.entity(f.link) if f.type == "link" else None
            if target is not None and target.name != e.name:
                visit(target, path | {e.name})
        seen.add(e.name)
        done.append(e)

    for e in spec.entities:
        visit(e, set())
    return done


DEMO_DEPARTMENTS = ("演示一部", "演示二部", "演示三部")


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str  # the role's name in the roles sheet (业务员)
    label: str  # its label (Salesperson)
    department: str
    id: int


def demo_logins(app: Any, per_role: int = 2) -> list[DemoLogin]:
    """``per_role`` demo logins for each non-admin role of the sheet, named after the role
    (``salesperson1``, ``salesperson2``; :func:`app.access.accounts.login_stems`), the n-th of each
    role in demo department n, so ``team`` scope has teams to show; all with :data:`DEMO_PASSWORD`.
    Made when missing; a login taken by someone without the role falls back to ``role<#>-<n>``."""
    from app.access.accounts import join_department, login_stems

    crm = app.extensions["crm"]
    sm = crm.appbuilder.sm
    stems = login_stems(crm.spec.roles)
    made = []
    rng = random.Random(7)
    for position, role in enumerate(crm.spec.roles, start=1):
        if role.admin:
            continue
        db_role = sm.find_role(role.name)
        for k in range(1, per_role + 1):
            department = DEMO_DEPARTMENTS[(k - 1) % len(DEMO_DEPARTMENTS)]
            username = f"{stems[role.name]}{k}"
            user = sm.find_user(username=username)
            if user is not None and db_role not in user.roles:
                username = f"role{position}-{k}"
                user = sm.find_user(username=username)
            if user is None:
                name = person(rng)
                user = sm.add_user(username, name[1:] or name, name[0], f"{username}@example.cn", [db_role], DEMO_PASSWORD)
                if user:
                    join_department(app, user, department)
            if user:
                made.append(DemoLogin(username, role.name, role.label, department, user.id))
    return made


def ensure_demo_users(app: Any, per_role: int = 2) -> list[int]:
    """The ids of the demo logins (:func:`demo_logins`)."""
    return [login.id for login in demo_logins(app, per_role)]


def demo_owners(app: Any, users: list[int]) -> dict[str, list[int]]:
    """Entity → the demo users who may own its records: those holding a role that works its own
    records there (a customer belongs to a salesperson, a service call to a technician)."""
    from flask_appbuilder.security.sqla.models import Role, User

    from app.access.ownership import own_roles

    crm = app.extensions["crm"]
    rows = crm.db.session.execute(select(User.id, Role.name).join(User.roles).where(User.id.in_(users))).all()
    out: dict[str, list[int]] = {}
    for e in crm.spec.entities:
        roles = own_roles(crm.spec, e)
        people = sorted({uid for uid, role in rows if role in roles})
        if e.owner_field and people:
            out[e.name] = people
    return out


def demo_plan(spec: Spec, main_rows: int, related: int | None = None) -> list[tuple[Entity, int]]:
    """(entity, rows to make) in insertion order: ``main_rows`` of the first entity; the others
    share ``related`` rows evenly (default: half of ``main_rows`` each), at least one each."""
    main = spec.entities[0].name
    others = max(1, len(spec.entities) - 1)
    each = max(1, main_rows // 2) if related is None else max(1, related // others)
    return [(e, main_rows if e.name == main else each) for e in entity_order(spec)]


Progress = Callable[[Entity, int], None]


def make_demo_data(app: Any, main_rows: int, seed: int = 1, now: dt.datetime | None = None, related: int | None = None,
                   progress: Progress | None = None, chunk: int = 20_000) -> dict[str, int]:
    """Insert ``main_rows`` rows of the first entity and ``related`` rows spread over the others
    (see :func:`demo_plan`), every row valid by the workbook's rules and graded by its grading rules.

    Rows go in by the fastest path the database has (PostgreSQL ``COPY``, one ``executemany``
    elsewhere), ``chunk`` rows at a time; one transaction per entity; ``progress(entity, rows)``
    after each chunk.
    """
    rng = random.Random(seed)
    now = now or dt.datetime.now().replace(microsecond=0)
    counts: dict[str, int] = {}
    with app.app_context():
        crm = app.extensions["crm"]
        spec = crm.spec
        users = ensure_demo_users(app)
        maker = _Maker(spec, rng, now, users, demo_owners(app, users))
        session = crm.db.session
        targets = {f.link for e in spec.entities for f in e.fields if f.type == "link"}
        for e, n in demo_plan(spec, main_rows, related):
            table = Model.metadata.tables[e.name]
            conn = session.connection()
            start = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            codes = numbering.allocate(conn, e.name, e.numbering, now, n) if e.numbering else None
            maker.remember(conn, e, table, start)
            rows = _Rows(maker, e, rules_for(spec, e), start, codes)
            with bulk.loading(conn, table, n), ThreadPoolExecutor(max_workers=1) as loader:
                pending = None  # the previous chunk is loaded while the next one is made (PostgreSQL works meanwhile)
                for first in range(start, start + n, chunk):
                    batch = [rows.make(i) for i in range(first, min(start + n, first + chunk))]
                    if pending is not None:
                        pending.result()
                    pending = loader.submit(bulk.load_rows, conn, table, batch)
                    if progress is not None:
                        progress(e, len(batch))
                if pending is not None:
                    pending.result()
            session.commit()
            if e.name in targets:
                maker.ids[e.name] = session.execute(select(table.c.id)).scalars().all()
                maker.learn(session.connection(), e, table)
            counts[e.name] = n
        tables = dict(Model.metadata.tables)
        for e in spec.entities:  # the rules' own SQL has the last word (links, days_since …); rows already right stay untouched
            regrade(session.connection(), spec, e, tables, now)
        session.commit()
        bulk.analyze(crm.db.engine, [e.name for e in spec.entities])
    return counts


class _Rows:
    """The rows of one entity: the first ``POOL`` made from scratch (validated, graded); later
    rows copy one of those and draw afresh what makes a row itself — unique fields, the title,
    links, people, number, creation time — so a million rows cost little more than their COPY.
    A copy whose fresh values break a validation rule is made from scratch instead."""

    POOL = 5_000

    def __init__(self, maker: _Maker, e: Entity, rules: EntityRules, start: int, codes: list[str] | None):
        self.maker, self.e, self.rules, self.start, self.codes = maker, e, rules, start, codes
        self.spec = maker.spec
        self.grades = [(g, rules_reason(g)) for g in graded_fields(self.spec, e)]
        self.pool: list[dict[str, Any]] = []
        # a link read through by a rule is copied with the row, unless narrowed (drawn afresh, its other field following it)
        through = {n.split(".")[0] for expr, _m, _t in rules.validations for n in expr.names if "." in n} \
            - set(maker.narrowed[e.name])
        ruled = {n.split(".")[0] for expr, _m, _t in rules.validations for n in expr.names}
        fresh = [f for f in e.fields if f.name not in through and (f.unique or f.name == e.title_field or f.type in ("link", "user"))]
        makers = {name: make for name, _c, make in maker.makers(e)}
        self.fresh = [(f.column, makers[f.name], f.type in ("link", "user")) for f in fresh]
        self.required = [f for f in e.fields if f.required]
        self.check = any(f.name in ruled and f.type not in ("link", "user") for f in fresh)  # else a copy stays valid

    def make(self, i: int) -> dict[str, Any]:
        maker, e = self.maker, self.e
        if len(self.pool) < self.POOL:
            row = self._from_scratch(i)
            self.pool.append(row)
        else:
            row = dict(maker.rng.choice(self.pool))
            for column, make, keep_blank in self.fresh:
                if not (keep_blank and row[column] is None):  # a link left blank stays blank: rules may depend on it
                    row[column] = make(i)
            maker.fit(e, row, lambda f: f.column)
            maker.compose(e, row, lambda f: f.column)
            if self.check and _breaks(maker, e, self.rules, row):
                row = self._from_scratch(i)
        if self.codes is not None:
            row["code"] = self.codes[i - self.start]
        created = row["created_on"]  # the row's start: its dates follow it; last changed between then and now
        row["changed_on"] = created + (maker.now - created) * maker.rng.random() ** 3
        row["created_by_fk"] = row["changed_by_fk"] = maker.rng.choice(maker.users) if maker.users else None
        for f in self.required:
            if row.get(f.column) is None:
                row[f.column] = _required_fallback(f, i, maker.now)
        return row

    def _from_scratch(self, i: int) -> dict[str, Any]:
        row = self.maker.valid_row(self.e, self.rules, i)
        _grade(self.spec, self.e, self.grades, row, self.maker.now)
        return row


def _in_first_state(e: Entity, rules: EntityRules, values: dict[str, Any]) -> bool:
    """Whether the row still stands in its first state (its workflow's, or its status's default: a
    draft, a planned task): such rows are recent, as in an office where work moves on."""
    firsts = dict(rules.state_fields)
    firsts.update({f.name: f.default for f in e.fields if f.type == "choice" and f.default and f.name not in firsts
                   and hinted(f, "status", "状态")})
    return any(values.get(name) == first for name, first in firsts.items())


def _breaks(maker: _Maker, e: Entity, rules: EntityRules, row: dict[str, Any]) -> bool:
    lookup = maker.lookup(e, {f.name: row.get(f.column) for f in e.fields})
    return any(not expr.test(lookup, maker.now, maker.spec.calendar) for expr, _m, _t in rules.validations)


def rules_reason(graded: Graded) -> list[tuple[Any, Any, str]]:
    """(rule, condition, reason text) of a graded field, the reason worded as ``regrade`` words it."""
    return [(rule, expr, f"{rule.grade}: {rule.note + ' — ' if rule.note else ''}{rule.condition or OTHERWISE} [{rule.ref}]")
            for rule, expr in graded.rules]


def _grade(spec: Spec, e: Entity, grades: list[tuple[Graded, list[tuple[Any, Any, str]]]], row: dict[str, Any], now: dt.datetime) -> None:
    """Grade a new row in Python, so the closing set-based regrade has (almost) nothing to rewrite."""
    if not grades:
        return
    lookup = record_lookup({f.name: row.get(f.column) for f in e.fields})
    for graded, rules in grades:
        hit = next(((rule, why) for rule, expr, why in rules if expr is None or expr.test(lookup, now, spec.calendar)), None)
        row[graded.field] = hit[0].grade if hit else None
        if graded.reason_field:
            row[e.field(graded.reason_field).column] = hit[1] if hit else None  # type: ignore[union-attr]


def _required_fallback(f: Field, i: int, now: dt.datetime) -> Any:
    if f.type in ("string", "text"):
        return f"{f.label}{i + 1}"
    if f.type in ("integer", "decimal", "money"):
        return f.min or 0
    if f.type == "date":
        return now.date()
    if f.type == "datetime":
        return now
    if f.type == "email":
        return f"user{i}@example.cn"
    if f.type == "phone":
        return "13800000000"
    return None
