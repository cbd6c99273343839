"""Realistic Chinese sample data for any generated app, driven only by the Spec.

Values follow each field's type, choice list, limits and — for text — hints in its name or
Chinese label (公司/客户 → company names, 姓名/联系人 → people, 地址 → addresses, 电话 → mobiles).
Rows are bulk-loaded (PostgreSQL ``COPY``; ``executemany`` elsewhere), parents before children:
``crm demo-data --customers 1000000`` is a matter of minutes.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import func, select

from app.io import bulk
from app.record import numbering
from app.record.grading import OTHERWISE, Graded, graded_fields, regrade
from app.record.rules import EntityRules, Narrowing, rules_for
from app.spec.expr import record_lookup
from app.spec.model import Entity, Field, Spec

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志强文斌玉兰海燕宇浩然子涵欣怡梓萱俊杰晨阳思远佳怡雨桐一鸣嘉豪"
CITIES = [
    "北京",
    "上海",
    "广州",
    "深圳",
    "杭州",
    "苏州",
    "南京",
    "武汉",
    "成都",
    "重庆",
    "西安",
    "天津",
    "宁波",
    "无锡",
    "青岛",
    "厦门",
    "长沙",
    "郑州",
    "合肥",
    "佛山",
    "东莞",
    "济南",
    "福州",
    "昆明",
]
DISTRICTS = ["高新区", "经开区", "滨江区", "工业园区", "浦东新区", "南山区", "天河区", "江宁区", "武侯区", "雁塔区"]
ROADS = ["人民路", "解放路", "中山路", "建设路", "长江路", "黄河路", "科技路", "创业大道", "新华路", "和平街"]
WORDS = ["华", "瑞", "鑫", "达", "恒", "信", "隆", "盛", "泰", "丰", "宏", "兴", "远", "佳", "美", "通", "昌", "源", "嘉", "诚"]
TRADES = ["纺织", "服饰", "机械", "电子", "科技", "贸易", "制衣", "物流", "精密", "新材料", "印染", "家纺", "医疗器械", "食品"]
SUFFIXES = ["有限公司", "股份有限公司", "实业有限公司", "集团有限公司"]
PHRASES = [
    "客户反馈设备运行稳定,希望下季度增加巡检频次。",
    "已电话沟通需求,约定下周上门拜访并演示新产品。",
    "客户对交期有较高要求,需协调生产部门确认排产。",
    "会谈中客户提出价格调整意见,已报销售经理审核。",
    "现场检查发现传动部件磨损,已更换并试机正常。",
    "客户负责人变更,新联系人已建立档案并完成交接。",
    "按合同约定完成年度保养,客户签字确认服务单。",
    "客户表示满意,同意推荐同行业合作伙伴。",
    "投诉已登记,质量部门正在调查原因并制定改善措施。",
    "客户计划扩大产能,预计明年采购量增长约三成。",
]
PERSON_HINTS = ("姓名", "联系人", "负责人", "经办人", "person", "contact_name", "full_name")
COMPANY_HINTS = ("公司", "客户名称", "企业", "单位", "company", "candidate")
ADDRESS_HINTS = ("地址", "address")
OVERRIDE_HINTS = ("override", "手工", "人工", "手动")  # manual overrides are the exception, not the rule
DEMO_PASSWORD = "demo-Pass-2026"  # noqa: S105 - printed for the demo accounts; change in production


def _person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _company(rng: random.Random) -> str:
    return rng.choice(CITIES) + rng.choice(WORDS) + rng.choice(WORDS) + rng.choice(TRADES) + rng.choice(SUFFIXES)


def _address(rng: random.Random) -> str:
    return f"{rng.choice(CITIES)}市{rng.choice(DISTRICTS)}{rng.choice(ROADS)}{rng.randint(1, 999)}号"


def _mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randint(0, 999999999):09d}"


def _hinted(f: Field, *hints: str) -> bool:
    text = f"{f.name} {f.label}"
    return any(h in text for h in hints)


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
        self.anchor = now  # the moment the row being made is about
        self._compiled: dict[str, list[tuple[str, str, Callable[[int], Any]]]] = {}
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
            self._compiled[e.name] = [(f.name, f.column, self._field_maker(e, f)) for f in e.fields]
        return self._compiled[e.name]

    def valid_row(self, e: Entity, rules: EntityRules, i: int) -> dict[str, Any]:
        """A row that passes the entity's validation rules (a few tries, as a person would)."""
        makers = self.makers(e)
        self.anchor = (self.now - dt.timedelta(minutes=self.rng.randint(-60 * 24 * 30, 60 * 24 * 720))).replace(second=0)
        values = {name: make(i) for name, _column, make in makers}
        for _ in range(50):
            self.fit(e, values, lambda f: f.name)
            lookup = self.lookup(e, values)
            # only the fields of the rules that fail are drawn again, as a person corrects a form
            broken = {n.split(".")[0] for expr, _m, _t in rules.validations if not expr.test(lookup, self.now, self.spec.calendar)
                      for n in expr.names}
            if not broken:
                return {column: values[name] for name, column, _make in makers}
            for name, _column, make in makers:
                if name in broken:
                    values[name] = make(i)
        raise RuntimeError(f"could not make a valid {e.name} row in 50 tries; check its validation rules")

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
        rng, now, ids, users = self.rng, self.now, self.ids, self.users
        if f.type == "choice":
            options = [c.value for c in self.spec.choices.get(f.choices, ())]
            blank = 0.9 if _hinted(f, *OVERRIDE_HINTS) else 0.0 if f.required else 0.15
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
            lo = f.min if f.min is not None else 0
            hi = f.max if f.max is not None else (5_000_000 if f.type == "money" else 100 if f.type == "integer" else 1000)
            if f.type == "integer":
                return lambda i: rng.randint(int(lo), int(hi))
            return lambda i: Decimal(f"{min(hi, lo + rng.lognormvariate(0, 1.2) * (hi - lo) / 8):.2f}")
        if f.type == "date":
            if _hinted(f, "生日", "birthday"):
                return lambda i: dt.date(rng.randint(1960, 2000), rng.randint(1, 12), rng.randint(1, 28))
            today = now.date()
            return lambda i: today - dt.timedelta(days=rng.randint(-60, 720))
        if f.type == "datetime":
            # a record's moments follow one another (reported → dispatched → arrived → closed), hours apart
            k = [g.name for g in e.fields if g.type == "datetime"].index(f.name)
            return lambda i: self.anchor + dt.timedelta(minutes=k * 600 + rng.randint(0, 600))
        if f.type == "email":
            return lambda i: f"user{i}.{rng.randint(100, 999)}@example.cn"
        if f.type == "phone":
            return lambda i: _mobile(rng)
        if f.type == "string":
            return self._string_maker(e, f)
        if f.type == "text":
            if _hinted(f, *ADDRESS_HINTS):
                return lambda i: _address(rng)
            return lambda i: "".join(rng.sample(PHRASES, rng.randint(1, 3)))
        return lambda i: None  # file: nothing uploaded

    def _string_maker(self, e: Entity, f: Field) -> Callable[[int], Any]:
        rng = self.rng
        if f.name == "code" and e.numbering:
            return lambda i: None  # filled from the numbering rule
        text: Callable[[int], str]
        if _hinted(f, *COMPANY_HINTS) or (f.name == e.title_field and e is self.spec.entities[0]):
            text = lambda i: _company(rng)  # noqa: E731
        elif _hinted(f, *PERSON_HINTS):
            text = lambda i: _person(rng)  # noqa: E731
        elif _hinted(f, *ADDRESS_HINTS):
            text = lambda i: _address(rng)  # noqa: E731
        elif f.name == e.title_field:
            text = lambda i: f"{e.label}{i + 1:05d}"  # noqa: E731
        else:
            text = lambda i: rng.choice(PHRASES)[: rng.randint(6, 18)]  # noqa: E731
        return lambda i: _fit(f, text(i), i)


def _fit(f: Field, text: str, i: int) -> str:
    limit = int(f.max) if f.max is not None else 255
    if f.unique:
        text = f"{text}-{i + 1}"
    if f.pattern and not re.fullmatch(f.pattern, text):
        return None  # type: ignore[return-value]
    return text[-limit:] if f.unique else text[:limit]


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


def ensure_demo_users(app: Any, per_role: int = 2) -> list[int]:
    """Two demo accounts per non-admin role of the sheet (login demo<role#><n>), the n-th of each
    role in demo department n, so ``team`` scope has teams to show."""
    from app.access.accounts import join_department

    crm = app.extensions["crm"]
    sm = crm.appbuilder.sm
    ids = []
    rng = random.Random(7)
    for r_i, role in enumerate(crm.spec.roles, start=1):
        if role.admin:
            continue
        db_role = sm.find_role(role.name)
        for k in range(1, per_role + 1):
            username = f"demo{r_i}{k}"
            user = sm.find_user(username=username)
            if user is None:
                name = _person(rng)
                user = sm.add_user(username, name[1:] or name, name[0], f"{username}@example.cn", [db_role], DEMO_PASSWORD)
                if user:
                    join_department(app, user, DEMO_DEPARTMENTS[(k - 1) % len(DEMO_DEPARTMENTS)])
            if user:
                ids.append(user.id)
    return ids


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
            if self.check and _breaks(maker, e, self.rules, row):
                row = self._from_scratch(i)
        if self.codes is not None:
            row["code"] = self.codes[i - self.start]
        row["created_on"] = row["changed_on"] = maker.now - dt.timedelta(minutes=maker.rng.randint(0, 60 * 24 * 720))
        row["created_by_fk"] = row["changed_by_fk"] = maker.rng.choice(maker.users) if maker.users else None
        for f in self.required:
            if row.get(f.column) is None:
                row[f.column] = _required_fallback(f, i, maker.now)
        return row

    def _from_scratch(self, i: int) -> dict[str, Any]:
        row = self.maker.valid_row(self.e, self.rules, i)
        _grade(self.spec, self.e, self.grades, row, self.maker.now)
        return row


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
