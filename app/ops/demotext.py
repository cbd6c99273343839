"""Words and numbers of demo rows that read like an office's, from the Spec's labels alone.

A string field is read by its name and labels (a person's name where the label ends in 人, a
document number where it says 号/no, a model code, a bank, a job title …); a subject is made of
the row's own choice labels, the entity's label and a small bank of work topics ("电话跟进:交期确认");
numbers fall in the range an office would see for what the label names (a service fee in hundreds,
a yearly demand in hundred-thousands, labour in hours), always inside the field's min/max.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from app.spec.model import Entity, Field, Spec

TOPICS = (
    "季度订货计划", "新品推介", "价格调整沟通", "交期确认", "年度合作框架", "付款进度核对", "样品确认",
    "质量问题整改", "设备保养安排", "合同续签", "售后回访", "技术方案交流", "库存与补货", "年度采购预算",
    "展会邀约", "资料更新", "操作培训安排", "满意度回访", "包装标识改进", "物流配送调整", "对账与开票",
    "新项目需求了解",
)
SUBJECT_FORMS = ("{choice}:{topic}", "{core}:{topic}", "关于{topic}的{core}", "{topic}({choice})")
KIND_HINTS = ("类别", "类型", "方式", "目的", "type", "category", "method", "purpose", "kind")
LABEL_TAILS = ("登记簿", "登记", "记录", "申请", "单", "表")  # 跟进记录 → 跟进, 走访单 → 走访
JOB_TITLES = ("总经理", "副总经理", "采购经理", "采购专员", "生产主管", "质量经理", "财务主管", "设备科长", "行政主管", "技术总监")
DEPARTMENTS = ("采购部", "生产部", "质量部", "财务部", "技术部", "行政部", "销售部", "仓储部")
BANKS = ("中国工商银行", "中国建设银行", "中国农业银行", "中国银行", "交通银行", "招商银行", "浦发银行", "兴业银行")
GIFTS = ("生日贺卡", "节日礼盒", "定制茶具", "答谢会邀请函", "九折优惠券", "积分回馈", "鲜花与贺卡", "年度纪念品")
TERMS = ("月结30天", "月结60天", "款到发货", "预付30%,发货前付清", "银行承兑汇票90天")
PRODUCTS = ("柔软整理剂", "防水涂层胶", "活性染料助剂", "抗皱整理剂", "环保粘合剂", "阻燃处理液")
MATERIALS = ("《公司形象手册》", "《产品手册》", "报价单", "样品", "技术方案书", "合同草案")

PERSON_HINTS = ("姓名", "联系人", "负责人", "经办人", "full_name", "contact_name", "person")
PEOPLE_HINTS = ("人员", "attendees", "participants")
COMPANY_HINTS = ("公司", "客户名称", "企业", "单位", "company", "candidate")
ADDRESS_HINTS = ("地址", "送达", "address", "ship_to")
# (hints, (low, high), rounded to): plausible amounts of money by what the label names (元)
MONEY_RANGES = (
    (("费", "fee", "cost", "礼", "gift"), (200, 8_000), 50),
    (("索赔", "claim", "罚"), (1_000, 80_000), 100),
    (("额度", "credit", "limit"), (50_000, 2_000_000), 10_000),
    (("需求", "交易额", "demand", "annual", "年"), (100_000, 8_000_000), 10_000),
    (("金额", "amount", "合同", "price", "价"), (10_000, 600_000), 100),
)
COUNT_RANGES = (
    (("人数", "员工", "employee", "staff", "规模"), (20, 3_000)),
    (("版本", "version"), (1, 6)),
    (("次数", "次", "times", "count", "visits"), (1, 24)),
    (("数量", "qty", "quantity"), (1, 200)),
    (("页", "pages"), (60, 900)),
)
HOUR_HINTS = ("小时", "工时", "hours", "时长")


SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志强文斌玉兰海燕宇浩然子涵欣怡梓萱俊杰晨阳思远佳怡雨桐一鸣嘉豪"
CITIES = ("北京", "上海", "广州", "深圳", "杭州", "苏州", "南京", "武汉", "成都", "重庆", "西安", "天津", "宁波", "无锡", "青岛",
          "厦门", "长沙", "郑州", "合肥", "佛山", "东莞", "济南", "福州", "昆明")
DISTRICTS = ("高新区", "经开区", "滨江区", "工业园区", "浦东新区", "南山区", "天河区", "江宁区", "武侯区", "雁塔区")
ROADS = ("人民路", "解放路", "中山路", "建设路", "长江路", "黄河路", "科技路", "创业大道", "新华路", "和平街")
WORDS = ("华", "瑞", "鑫", "达", "恒", "信", "隆", "盛", "泰", "丰", "宏", "兴", "远", "佳", "美", "通", "昌", "源", "嘉", "诚")
TRADES = ("纺织", "服饰", "机械", "电子", "科技", "贸易", "制衣", "物流", "精密", "新材料", "印染", "家纺", "医疗器械", "食品")
SUFFIXES = ("有限公司", "股份有限公司", "实业有限公司", "集团有限公司")
PHRASES = (
    "客户反馈设备运行稳定,希望下季度增加巡检频次。",
    "已电话沟通需求,约定下周上门拜访并演示新产品。",
    "客户对交期有较高要求,需协调生产部门确认排产。",
    "会谈中客户提出价格调整意见,已报销售经理审核。",
    "现场检查发现传动部件磨损,已更换并试机正常。",
    "客户负责人变更,新联系人已建立档案并完成交接。",
    "按合同约定完成年度保养,客户签字确认服务单。",
    "客户表示满意,同意推荐同行业合作伙伴。",
    "质量部门正在调查原因并制定改善措施,三日内回复。",
    "客户计划扩大产能,预计明年采购量增长约三成。",
)


def person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def company(rng: random.Random) -> str:
    return rng.choice(CITIES) + rng.choice(WORDS) + rng.choice(WORDS) + rng.choice(TRADES) + rng.choice(SUFFIXES)


def address(rng: random.Random) -> str:
    return f"{rng.choice(CITIES)}市{rng.choice(DISTRICTS)}{rng.choice(ROADS)}{rng.randint(1, 999)}号"


def mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randint(0, 999999999):09d}"


def hinted(f: Field, *hints: str) -> bool:
    text = f"{f.name} {f.label} {f.label_en}".casefold()
    return any(h in text for h in hints)


def label_core(e: Entity) -> str:
    """An entity's label as a subject says it: 跟进记录 → 跟进, 客户走访单 → 客户走访."""
    for tail in LABEL_TAILS:
        if e.label.endswith(tail) and len(e.label) > len(tail) + 1:
            return e.label[: -len(tail)]
    return e.label


def is_subject(e: Entity, f: Field) -> bool:
    """A string field that names what a record is about (its title, a subject, a summary)."""
    return f.type == "string" and (f.name == e.title_field or hinted(f, "subject", "summary", "主题", "摘要", "事由"))


class Subjects:
    """Subjects of one entity's rows from the row's choice labels (a follow-up by phone: 电话跟进)."""

    def __init__(self, spec: Spec, e: Entity, state_fields: set[str], rng: random.Random, year: int):
        self.rng, self.core, self.year = rng, label_core(e), year
        self.moments = [f.name for f in e.fields if f.type in ("date", "datetime") and "birth" not in f.name and "生日" not in f.label]
        graded = {r.field for r in spec.grading if r.entity == e.name}
        kinds = [f for f in e.fields if f.type == "choice" and f.name not in state_fields and f.name not in graded
                 and not f.readonly and not hinted(f, "status", "状态", "override", "人工", "area", "区")]
        kinds.sort(key=lambda f: not hinted(f, *KIND_HINTS))  # what kind of work it is first: 方式, 类别, 目的
        self.labels = {f.name: {c.value: c.label for c in spec.choices.get(f.choices, ())} for f in kinds}

    def make(self, f: Field, values: Callable[[str], Any]) -> str:
        if hinted(f, "名称", "name"):  # a name, not a subject: 2026年度维保合同, the year it began
            years = [value.year for value in map(values, self.moments) if value is not None]
            return f"{min(years, default=self.year)}年度{self.core}"
        choices = [self.labels[n].get(values(n)) for n in self.labels]
        choice = next((c for c in choices if c), "")
        forms = [form for form in SUBJECT_FORMS if ("{choice}" in form) == bool(choice)]  # what kind of work, when the row says
        text = self.rng.choice(forms).format(choice=choice, core=self.core, topic=self.rng.choice(TOPICS))
        return text[: int(f.max)] if f.max else text


def string_maker(e: Entity, f: Field, rng: random.Random) -> Callable[[int], str] | None:
    """A maker of plausible text for a string field by its words; None: the caller decides."""
    initials = "".join(w[0] for w in f.name.split("_") if w not in ("no", "num", "number")).upper() or "N"
    if hinted(f, *PEOPLE_HINTS):
        return lambda i: "、".join(person(rng) for _ in range(rng.randint(2, 3)))
    if hinted(f, *PERSON_HINTS) or f.label.endswith("人"):
        return lambda i: person(rng)
    if hinted(f, *COMPANY_HINTS) or f.label.endswith("单位/人"):
        return lambda i: company(rng)
    if hinted(f, *ADDRESS_HINTS):
        return lambda i: address(rng)
    if hinted(f, "税号", "信用代码", "tax", "vat"):
        return lambda i: "91" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(16))
    if hinted(f, "账号", "account"):
        return lambda i: "62" + "".join(rng.choice("0123456789") for _ in range(17))
    if hinted(f, "开户行", "bank"):
        return lambda i: f"{rng.choice(BANKS)}{rng.choice(('北京', '上海', '苏州', '杭州', '广州'))}分行"
    if hinted(f, "isbn", "条码", "barcode", "ean"):
        return lambda i: "978" + "".join(rng.choice("0123456789") for _ in range(10))
    if hinted(f, "产品名称", "品名", "product_name"):
        return lambda i: rng.choice(WORDS) + rng.choice(WORDS) + rng.choice(PRODUCTS)
    if hinted(f, "型号", "model"):
        return lambda i: f"{rng.choice('ABCDEFHKMNRSTXZ')}{rng.choice('ABCDEFHKMNRSTXZ')}-{rng.randint(100, 990)}"
    if hinted(f, "号", "_no", "code", "编码", "代码"):
        return lambda i: f"{initials}{rng.randint(2024, 2026) % 100}{rng.randint(0, 999999):06d}"
    if hinted(f, "职务", "职位", "position", "job"):
        return lambda i: rng.choice(JOB_TITLES)
    if hinted(f, "部门", "department"):
        return lambda i: rng.choice(DEPARTMENTS)
    if hinted(f, "微信", "wechat"):
        return lambda i: f"wx{rng.randint(10_000_000, 99_999_999)}"
    if hinted(f, "品牌", "brand"):
        return lambda i: rng.choice(WORDS) + rng.choice(WORDS)
    if hinted(f, "礼", "gift", "优惠"):
        return lambda i: rng.choice(GIFTS)
    if hinted(f, "付款", "支付", "payment"):
        return lambda i: rng.choice(TERMS)
    if hinted(f, "资料", "materials"):
        return lambda i: "、".join(rng.sample(MATERIALS, 2))
    if hinted(f, "简称", "short"):
        return lambda i: rng.choice(WORDS) + rng.choice(WORDS) + rng.choice(TRADES)
    if hinted(f, "下一步", "next"):
        return lambda i: f"{rng.choice(('下周', '月底前', '两周内', '下次拜访时'))}跟进{rng.choice(TOPICS)}"
    return None


def number_maker(f: Field, rng: random.Random) -> Callable[[int], Any]:
    """Integers, decimals and money in an office's ranges for what the label names, within min/max."""
    lo = f.min if f.min is not None else 0
    hi = f.max
    if f.type == "money":
        span, step = next(((r, s) for hints, r, s in MONEY_RANGES if hinted(f, *hints)), ((1_000, 200_000), 100))
        return lambda i: Decimal(_within(round(_skewed(rng, *span) / step) * step, lo, hi)).quantize(Decimal("0.01"))
    if f.type == "integer":
        span_i = next((r for hints, r in COUNT_RANGES if hinted(f, *hints)), (max(int(lo), 1), int(hi) if hi else 100))
        return lambda i: int(_within(round(_skewed(rng, *span_i)), lo, hi))
    if hinted(f, *HOUR_HINTS):  # labour and durations: half hours, a working day or a few
        longest = 72 if hinted(f, "处理", "resolution", "周期") else 8
        return lambda i: Decimal(str(_within(rng.randint(1, 2 * longest) / 2, lo, hi)))
    top = hi if hi is not None else 1_000
    return lambda i: Decimal(f"{_within(_skewed(rng, max(lo, 1), top), lo, hi):.2f}")


def _skewed(rng: random.Random, low: float, high: float) -> float:
    """Most values in the lower part of the range, a few large ones (as amounts are)."""
    return low + (high - low) * rng.betavariate(1.3, 4)


def _within(value: float, lo: float | None, hi: float | None) -> float:
    if lo is not None:
        value = max(value, lo)
    if hi is not None:
        value = min(value, hi)
    return value
