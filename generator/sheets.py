"""The workbook format (DESIGN §3): sheets, their columns, and accepted Chinese aliases.

This table is the contract other code and the docs test rely on. Only ``entities`` and
``fields`` are required; every other sheet and every column not marked required is optional.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    aliases: tuple[str, ...]
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class SheetFormat:
    name: str
    aliases: tuple[str, ...]
    columns: tuple[Column, ...]
    required: bool = False
    doc: str = ""
    needs: tuple[str, ...] = ()  # sheets whose rows this sheet's rows refer to (entities, roles …)

    def column(self, header: str) -> Column | None:
        h = header.strip().lower()
        for c in self.columns:
            if h == c.name or header.strip() in c.aliases:
                return c
        return None


def _c(name: str, *aliases: str, required: bool = False, doc: str = "") -> Column:
    return Column(name, aliases, required, doc)


SHEETS: tuple[SheetFormat, ...] = (
    SheetFormat(
        "entities",
        ("实体",),
        (
            _c("name", "名称", "实体名", required=True, doc="identifier: table and URL name"),
            _c("label", "标签", "中文名", "显示名", doc="Chinese name shown on screens"),
            _c("label_en", "英文名", "英文标签", doc="English name"),
            _c("menu", "菜单", doc="menu group"),
            _c("menu_en", "英文菜单", "菜单英文", doc="menu group in English"),
            _c("title_field", "标题字段", doc="field that names a record"),
            _c("numbering", "编号规则", doc="e.g. KS-{YYYY}{MM}-{####}"),
            _c("owner_field", "负责人字段", doc="user field that owns the record"),
            _c("audit", "审计", doc="keep a change history (yes/no)"),
            _c("description", "说明", "描述", doc="what the entity is for"),
            _c("previous_name", "原名称", "曾用名", doc="the entity's former name: its table is renamed, rows kept"),
        ),
        required=True,
        needs=("fields",),
    ),
    SheetFormat(
        "fields",
        ("字段",),
        (
            _c("entity", "实体", required=True),
            _c("name", "名称", "字段名", required=True),
            _c("label", "标签", "中文名", "显示名"),
            _c("label_en", "英文名", "英文标签"),
            _c("type", "类型", required=True),
            _c("required", "必填"),
            _c("unique", "唯一"),
            _c("default", "默认值"),
            _c("choices", "选项", "选项列表"),
            _c("link", "关联", "关联实体"),
            _c("min", "最小值", "最小"),
            _c("max", "最大值", "最大"),
            _c("pattern", "格式", "正则"),
            _c("help", "帮助", "说明", "提示"),
            _c("list", "列表显示", "列表"),
            _c("search", "搜索", "可搜索"),
            _c("filter", "筛选", "可筛选"),
            _c("readonly", "只读"),
            _c("encrypted", "加密"),
            _c("previous_name", "原名称", "曾用名"),
            _c("formula", "公式", "计算公式", doc="a computed field: a formula of the record, its links and the records that link here"),
        ),
        required=True,
        needs=("entities", "choices"),
    ),
    SheetFormat(
        "choices",
        ("选项",),
        (
            _c("list", "列表", "选项列表", required=True),
            _c("value", "值", "取值", required=True),
            _c("label", "标签", "显示名"),
            _c("label_en", "英文名", "英文标签"),
            _c("order", "顺序", "排序"),
            _c("color", "颜色"),
            _c("previous_value", "原取值", doc="rows holding this former value get this one on upgrade"),
        ),
    ),
    SheetFormat(
        "grading",
        ("分级", "分级规则"),
        (
            _c("entity", "实体", required=True),
            _c("field", "字段", "分级字段", required=True),
            _c("grade", "等级", "级别", required=True),
            _c("order", "顺序", "排序"),
            _c("condition", "条件"),
            _c("note", "备注", "说明"),
        ),
        needs=("entities", "fields", "choices"),
    ),
    SheetFormat(
        "forms",
        ("表单", "表单布局"),
        (
            _c("entity", "实体", required=True),
            _c("view", "视图", "页面", required=True),
            _c("section", "分组", "区块"),
            _c("field", "字段", required=True),
            _c("order", "顺序", "排序"),
            _c("collapsed", "折叠"),
        ),
        needs=("entities", "fields"),
    ),
    SheetFormat(
        "roles",
        ("角色",),
        (
            _c("role", "角色", "名称", required=True),
            _c("label", "标签", "英文名"),
            _c("description", "说明", "描述"),
            _c("admin", "管理员"),
            _c("see_rules", "查看规则"),
        ),
    ),
    SheetFormat(
        "permissions",
        ("权限",),
        (
            _c("role", "角色", required=True),
            _c("entity", "实体", required=True),
            _c("list", "列表", "查看列表"),
            _c("show", "查看", "详情"),
            _c("add", "新增"),
            _c("edit", "编辑", "修改"),
            _c("delete", "删除"),
            _c("export", "导出"),
            _c("import", "导入"),
            _c("scope", "范围", "数据范围"),
            _c("hidden_fields", "隐藏字段"),
            _c("readonly_fields", "只读字段"),
        ),
        needs=("roles", "entities", "fields"),
    ),
    SheetFormat(
        "workflows",
        ("流程", "工作流"),
        (
            _c("entity", "实体", required=True),
            _c("state_field", "状态字段", required=True),
            _c("from", "从", "原状态", required=True),
            _c("to", "到", "新状态", required=True),
            _c("action", "操作", "按钮", required=True),
            _c("action_en", "英文操作", "操作英文", doc="the action's name in English"),
            _c("roles", "角色"),
            _c("condition", "条件"),
            _c("require_comment", "需要意见", "必填意见"),
            _c("notify", "通知"),
            _c("stamp", "记录字段", "填写字段"),
            _c("asks", "询问字段", "对话框字段", doc="the fields the step's dialog asks for, comma-separated (blank: those its condition names)"),
            _c("effects", "效果", "步骤效果", doc="what the step does to other records, one per line or separated by ';': "
               "link.field = value, create entity(field = value, …), field = created; each may end with 'if condition'"),
        ),
        needs=("entities", "fields", "choices", "roles"),
    ),
    SheetFormat(
        "schedules",
        ("提醒", "计划任务"),
        (
            _c("name", "名称", required=True),
            _c("entity", "实体", required=True),
            _c("when", "时间", "触发时间", required=True),
            _c("condition", "条件"),
            _c("recipients", "接收人", "收件人"),
            _c("template", "模板"),
            _c("channel", "渠道"),
            _c("escalate_after", "升级时限", doc="escalation delay; a ladder is several, separated by ';', each after the step before"),
            _c("escalate_to", "升级给", "升级对象", doc="role told at each escalation step, in the same order as the delays"),
            _c("digest", "汇总", "合并提醒", doc="yes/no: an in-app reminder's messages of one day for one person become one inbox "
               "entry (blank: yes for in-app)"),
        ),
        needs=("entities", "fields", "roles", "templates"),
    ),
    SheetFormat(
        "surveys",
        ("问卷", "满意度调查"),
        (
            _c("survey", "问卷", required=True),
            _c("question", "问题", required=True),
            _c("scale", "量表", "等级数"),
            _c("labels", "标签", "等级标签"),
            _c("order", "顺序", "排序"),
            _c("trigger", "触发", "触发条件"),
        ),
        needs=("entities", "fields"),
    ),
    SheetFormat(
        "templates",
        ("模板", "消息模板"),
        (
            _c("name", "名称", required=True),
            _c("channel", "渠道"),
            _c("subject", "主题", "标题"),
            _c("body", "正文", "内容"),
        ),
    ),
    SheetFormat(
        "settings",
        ("设置",),
        (
            _c("key", "键", "设置项", required=True),
            _c("value", "值"),
        ),
    ),
    SheetFormat(
        "validations",
        ("校验", "校验规则"),
        (
            _c("entity", "实体", required=True),
            _c("condition", "条件", required=True),
            _c("message", "提示", "消息", required=True),
        ),
        needs=("entities", "fields"),
    ),
    SheetFormat(
        "reports",
        ("报表", "仪表盘"),
        (
            _c("name", "名称", required=True),
            _c("label", "标题", "标签", "显示名", doc="the panel's title shown on the dashboard (Chinese)"),
            _c("label_en", "英文标题", "英文名", doc="the panel's title in English"),
            _c("entity", "实体", required=True),
            _c("group_by", "分组", "分组字段"),
            _c("measure", "度量", "统计", doc="count, sum(field), avg(field), min(field), max(field); several separated by commas"),
            _c("period", "周期"),
            _c("condition", "条件"),
            _c("chart", "图表"),
            _c("roles", "角色"),
            _c("order", "顺序", "排序"),
        ),
        needs=("entities", "fields", "choices", "roles"),
    ),
)

BY_NAME = {s.name: s for s in SHEETS}


def sheet_format(title: str) -> SheetFormat | None:
    """The format for a sheet title as written (English or Chinese alias)."""
    t = title.strip()
    for s in SHEETS:
        if t.lower() == s.name or t in s.aliases:
            return s
    return None
