"""Realistic Chinese sample data for any generated app, driven only by the Spec.

Values follow each field's type, choice list, limits and — for text — hints in its name or
Chinese label (公司/客户 → company names, 姓名/联系人 → people, 地址 → addresses, 电话 → mobiles).
Rows are bulk-inserted with SQLAlchemy Core, parents before children.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from decimal import Decimal
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import insert, select

from generator.expr import record_lookup
from generator.spec import Entity, Field, Spec

from . import numbering
from .grading import regrade
from .rules import EntityRules, rules_for, validate_values

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
    def __init__(self, spec: Spec, rng: random.Random, now: dt.datetime, users: list[int]):
        self.spec = spec
        self.rng = rng
        self.now = now
        self.users = users
        self.ids: dict[str, list[int]] = {}

    def valid_row(self, e: Entity, rules: EntityRules, i: int) -> dict[str, Any]:
        """A row that passes the entity's validation rules (a few tries, as a person would)."""
        for _ in range(50):
            row = {f.column: self.value(e, f, i) for f in e.fields}
            values = {f.name: row[f.column] for f in e.fields}
            if not validate_values(self.spec, rules, record_lookup(values), self.now):
                return row
        raise RuntimeError(f"could not make a valid {e.name} row in 50 tries; check its validation rules")

    def value(self, e: Entity, f: Field, i: int) -> Any:
        rng = self.rng
        if not f.required and f.type not in ("choice", "link", "user", "boolean") and rng.random() < 0.08:
            return None
        if f.type == "choice":
            options = self.spec.choices.get(f.choices, ())
            blank = 0.9 if _hinted(f, *OVERRIDE_HINTS) else 0.0 if f.required else 0.15
            return rng.choice(options).value if options and rng.random() >= blank else None
        if f.type == "link":
            ids = self.ids.get(f.link) or []
            return rng.choice(ids) if ids else None
        if f.type == "user":
            return rng.choice(self.users) if self.users else None
        if f.type == "boolean":
            return rng.random() < 0.5
        if f.type in ("integer", "decimal", "money"):
            lo = f.min if f.min is not None else 0
            hi = f.max if f.max is not None else (5_000_000 if f.type == "money" else 100 if f.type == "integer" else 1000)
            if f.type == "integer":
                return rng.randint(int(lo), int(hi))
            value = min(hi, lo + rng.lognormvariate(0, 1.2) * (hi - lo) / 8)
            return Decimal(f"{value:.2f}")
        if f.type == "date":
            if _hinted(f, "生日", "birthday"):
                return dt.date(rng.randint(1960, 2000), rng.randint(1, 12), rng.randint(1, 28))
            return (self.now - dt.timedelta(days=rng.randint(-60, 720))).date()
        if f.type == "datetime":
            return (self.now - dt.timedelta(minutes=rng.randint(-60 * 24 * 30, 60 * 24 * 720))).replace(microsecond=0)
        if f.type == "email":
            return f"user{i}.{rng.randint(100, 999)}@example.cn"
        if f.type == "phone":
            return _mobile(rng)
        if f.type == "file":
            return None
        if f.type == "string":
            if f.name == "code" and e.numbering:
                return None  # filled from the numbering rule below
            if _hinted(f, *COMPANY_HINTS) or (f.name == e.title_field and e is self.spec.entities[0]):
                text = _company(rng)
            elif _hinted(f, *PERSON_HINTS):
                text = _person(rng)
            elif _hinted(f, *ADDRESS_HINTS):
                text = _address(rng)
            elif f.name == e.title_field:
                text = f"{e.label}{i + 1:05d}"
            else:
                text = rng.choice(PHRASES)[: rng.randint(6, 18)]
            return _fit(f, text, i)
        if f.type == "text":
            if _hinted(f, *ADDRESS_HINTS):
                return _address(rng)
            return "".join(rng.sample(PHRASES, rng.randint(1, 3)))
        return None


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


def ensure_demo_users(app: Any, per_role: int = 2) -> list[int]:
    """Two demo accounts per non-admin role of the sheet (login demo<role#><n>)."""
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
                ids.append(user.id)
    return ids


def make_demo_data(app: Any, main_rows: int, seed: int = 1, now: dt.datetime | None = None) -> dict[str, int]:
    """Insert ``main_rows`` rows of the first entity and proportionate rows of the others."""
    rng = random.Random(seed)
    now = now or dt.datetime.now().replace(microsecond=0)
    counts: dict[str, int] = {}
    with app.app_context():
        crm = app.extensions["crm"]
        users = ensure_demo_users(app)
        maker = _Maker(crm.spec, rng, now, users)
        session = crm.db.session
        main = crm.spec.entities[0].name
        for e in entity_order(crm.spec):
            table = Model.metadata.tables[e.name]
            n = main_rows if e.name == main else max(1, main_rows // 2)
            existing = session.execute(select(table.c.id)).scalars().all()
            start = len(existing)
            codes = iter(numbering.allocate(session.connection(), e.name, e.numbering, now, n)) if e.numbering else None
            batch: list[dict[str, Any]] = []
            rules = rules_for(crm.spec, e)
            for i in range(start, start + n):
                row = maker.valid_row(e, rules, i)
                if codes is not None:
                    row["code"] = next(codes)
                row["created_on"] = row["changed_on"] = now - dt.timedelta(minutes=rng.randint(0, 60 * 24 * 720))
                row["created_by_fk"] = row["changed_by_fk"] = rng.choice(users) if users else None
                for f in e.fields:
                    if f.required and row.get(f.column) is None:
                        row[f.column] = _required_fallback(e, f, i)
                batch.append(row)
                if len(batch) >= 5000:
                    session.execute(insert(table), batch)
                    batch = []
            if batch:
                session.execute(insert(table), batch)
            session.commit()
            maker.ids[e.name] = session.execute(select(table.c.id)).scalars().all()
            counts[e.name] = n
        tables = dict(Model.metadata.tables)
        for e in crm.spec.entities:  # grades as the rules say, set-based like `crm regrade`
            regrade(session.connection(), crm.spec, e, tables, now)
        session.commit()
    return counts


def _required_fallback(e: Entity, f: Field, i: int) -> Any:
    if f.type in ("string", "text"):
        return f"{f.label}{i + 1}"
    if f.type in ("integer", "decimal", "money"):
        return f.min or 0
    if f.type == "date":
        return dt.date.today()
    if f.type == "datetime":
        return dt.datetime.now().replace(microsecond=0)
    if f.type == "email":
        return f"user{i}@example.cn"
    if f.type == "phone":
        return "13800000000"
    return None
