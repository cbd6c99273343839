"""Workbook problems: where (``Sheet!Cell``), what is wrong and how to fix it, in Chinese and English.

Every message has a code in :data:`MESSAGES`; a :class:`Problem` renders in the workbook's language
with the other language in brackets, e.g.
``crm.xlsx › fields!E14: 类型 'choise' 未知 (unknown type 'choise') — 是否想写 'choice'? (did you mean 'choice'?)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MESSAGES: dict[str, tuple[str, str]] = {
    # files
    "file_missing": ("找不到文件 {path}", "file {path} does not exist"),
    "file_is_folder": ("{path} 是文件夹,不是 Excel 文件", "{path} is a folder, not an Excel file"),
    "file_empty": ("文件是空的", "the file is empty"),
    "file_protected": (
        "文件受密码保护或是旧版 .xls 格式",
        "the file is password-protected or an old .xls file",
    ),
    "file_not_xlsx": ("这不是 Excel .xlsx 文件", "this is not an Excel .xlsx file"),
    "file_unreadable": ("无法读取此 Excel 文件 ({error})", "the Excel file cannot be read ({error})"),
    "formula_no_value": ("公式没有计算结果", "a formula without a computed value"),
    "merged_cells": ("数据区域有合并单元格 {range}", "merged cells {range} in the data area"),
    # sheets and columns
    "sheet_missing": ("缺少工作表 '{sheet}'", "sheet '{sheet}' is missing"),
    "sheet_unknown": ("未知工作表 '{sheet}'", "unknown sheet '{sheet}'"),
    "column_missing": ("工作表缺少必需的列 '{column}'", "required column '{column}' is missing"),
    "column_unknown": ("未知列 '{column}'", "unknown column '{column}'"),
    "sheet_not_checked": ("工作表 {sheet} 暂未检查:它引用的工作表 {cause} 无法读取,请先改正上面的问题",
                          "sheet {sheet} was not checked: sheet {cause}, which it refers to, cannot be read; fix the problem above first"),
    "column_duplicate": ("列 '{column}' 出现了两次", "column '{column}' appears twice"),
    # values
    "required": ("{what}不能为空", "{what_en} must not be empty"),
    "identifier": (
        "名称 '{value}' 无效:只能用小写英文字母、数字和下划线,并以字母开头",
        "name '{value}' is not valid: use lowercase letters, digits and _ and start with a letter",
    ),
    "identifier_long": ("名称 '{value}' 太长(最多 {limit} 个字符)", "name '{value}' is too long (max {limit})"),
    "keyword": ("'{value}' 是 Python 关键字,不能作为名称", "'{value}' is a Python keyword"),
    "reserved": ("'{value}' 是系统保留名称", "'{value}' is a reserved name"),
    "menu_en": ("菜单 '{menu}' 的英文名写成了 '{value}',而 {first} 写的是 '{other}'",
                "menu group '{menu}' is called '{value}' here but '{other}' at {first}"),
    "duplicate": ("{what} '{value}' 重复(已在 {first} 定义)", "duplicate {what_en} '{value}' (first at {first})"),
    "bool": ("'{value}' 不是是/否值", "'{value}' is not a yes/no value"),
    "number": ("'{value}' 不是数字", "'{value}' is not a number"),
    "unknown_type": ("类型 '{value}' 未知", "unknown type '{value}'"),
    "unknown_entity": ("未知实体 '{value}'", "unknown entity '{value}'"),
    "unknown_field": ("实体 {entity} 没有字段 '{value}'", "entity {entity} has no field '{value}'"),
    "unknown_role": ("未知角色 '{value}'", "unknown role '{value}'"),
    "unknown_list": ("选项列表 '{value}' 不存在", "choice list '{value}' does not exist"),
    "unknown_value": ("'{value}' 不是允许的值", "'{value}' is not an allowed value"),
    "unknown_template": ("模板 '{value}' 不存在", "template '{value}' does not exist"),
    "unknown_choice": ("'{value}' 不在选项列表 {list} 中", "'{value}' is not in choice list {list}"),
    "choices_needed": ("选项类型字段必须填写选项列表", "a choice field needs a choice list"),
    "link_needed": ("关联类型字段必须填写关联实体", "a link field needs a target entity"),
    "default_type": ("默认值 '{value}' 不是 {type} 类型", "default '{value}' is not a valid {type}"),
    "default_min": ("默认值 {value} 小于最小值 {min}", "default {value} is below the minimum {min}"),
    "default_max": ("默认值 {value} 大于最大值 {max}", "default {value} is above the maximum {max}"),
    "default_cents": ("默认值 {value} 的小数超过 2 位", "default {value} has more than 2 decimals"),
    "default_short": ("默认值 '{value}' 少于 {min} 个字", "default '{value}' is shorter than {min} characters"),
    "default_long": ("默认值 '{value}' 超过 {max} 个字", "default '{value}' is longer than {max} characters"),
    "default_pattern": ("默认值 '{value}' 不符合格式 {pattern}", "default '{value}' does not match the pattern {pattern}"),
    "default_email": ("默认值 '{value}' 不是有效的邮箱", "default '{value}' is not an e-mail address"),
    "default_phone": ("默认值 '{value}' 不是有效的电话号码", "default '{value}' is not a phone number"),
    "min_max": ("最小值 {min} 大于最大值 {max}", "min {min} is greater than max {max}"),
    "min_max_type": ("{type} 类型字段不能设置最小/最大值", "min/max does not apply to type {type}"),
    "bad_regex": ("正则表达式无效:{error}", "invalid regular expression: {error}"),
    "pattern_type": ("{type} 类型字段不能设置格式", "a pattern does not apply to type {type}"),
    "encrypted_type": ("只有文本字段可以加密", "only text fields can be encrypted"),
    "encrypted_use": ("加密字段不能设为 {what}:数据库里存的是密文,无法比较、查重或搜索",
                      "an encrypted field cannot be {what_en}: the database holds ciphertext, which cannot be compared, "
                      "checked for duplicates or searched"),
    "length_max": ("文本长度上限 {max} 须为大于 0 的整数", "a text length max of {max} must be a whole number above 0"),
    "title_field": ("标题字段 '{value}' 必须是本实体的文本字段", "title field '{value}' must be a string field"),
    "owner_field": ("负责人字段 '{value}' 必须是本实体的用户字段", "owner field '{value}' must be a user field"),
    "numbering_counter": ("编号规则 '{value}' 缺少计数器,如 {{####}}", "numbering '{value}' has no counter like {{####}}"),
    "numbering_token": ("编号规则 '{value}' 含未知占位符 {token}", "numbering '{value}' has unknown token {token}"),
    "numbering_field": (
        "有编号规则的实体需要只读文本字段 code",
        "an entity with numbering needs a readonly string field 'code'",
    ),
    "name_clash": ("字段 '{value}' 与字段 {other} 生成的列 {column} 冲突", "field '{value}' clashes with column {column} of {other}"),
    "previous_present": (
        "{what} '{value}' 仍在工作簿中,不能作为原名称",
        "{what_en} '{value}' is still in the workbook, so it cannot be a previous name",
    ),
    "view_value": ("视图 '{value}' 无效", "view '{value}' is not valid"),
    "scope_value": ("范围 '{value}' 无效", "scope '{value}' is not valid"),
    "owner_scope": (
        "实体 {entity} 没有负责人字段,范围不能为 {value}",
        "entity {entity} has no owner field, so scope cannot be {value}",
    ),
    "no_entities": ("工作表 entities 没有任何实体", "the entities sheet defines no entity"),
    "no_fields": ("实体 {entity} 没有字段", "entity {entity} has no fields"),
    "grade_field": ("分级字段 '{value}' 必须是选项字段", "graded field '{value}' must be a choice field"),
    "expr": ("条件 '{value}' 有误:{error}", "condition '{value}' is wrong: {error}"),
    "class_clash": ("实体名 '{value}' 与 '{other}'(在 {first})生成同一个程序名,两者会互相覆盖",
                    "entity name '{value}' gives the same program name as '{other}' (at {first}): one would replace the other"),
    "public_role": ("角色名 '{value}' 是系统给未登录访客的角色,它的权限会对所有人开放",
                    "role name '{value}' is the system's role of visitors who are not signed in: its rights would be open to everyone"),
    "role_separator": ("角色名 '{value}' 含有分隔符(逗号、分号、顿号),在列出多个角色的单元格里无法引用它",
                       "role name '{value}' contains a separator (comma, semicolon, 、): cells listing roles could never name it"),
    "hidden_required": ("角色 {role} 可以新增 {entity},但必填字段 '{value}' 对它隐藏且没有默认值,它将无法保存新记录",
                        "role {role} may add {entity} records, but required field '{value}' is hidden from it and has no default: "
                        "it could never save a new record"),
    "readonly_required": ("实体 {entity} 的字段 '{value}' 既必填又只读,且没有默认值:没有人能在新建记录时填写它",
                          "field '{value}' of entity {entity} is required and read-only with no default: nobody could fill it "
                          "when a record is made"),
    "save_only": ("条件 '{value}' 用了 {function}(…):它说的是正在保存的修改,只能用在 validations 表",
                  "condition '{value}' uses {function}(…): it is about the change being saved, so it belongs on the validations sheet only"),
    "expr_choice": ("条件 '{value}' 有误:'{choice}' 不是字段 {field} 的选项(选项列表 {list})",
                    "condition '{value}' is wrong: '{choice}' is not a choice of field {field} (list {list})"),
    "expr_type": ("条件 '{value}' 有误:{left} 是{left_kind},{right} 是{right_kind},两者不能比较",
                  "condition '{value}' is wrong: {left} is {left_kind_en} but {right} is {right_kind_en}; they cannot be compared"),
    "state_field": ("状态字段 '{value}' 必须是选项字段", "state field '{value}' must be a choice field"),
    "locked_required": ("角色 {role} 可以新增 {entity},但必填字段 '{value}' 对它只读且没有默认值,它将无法保存新记录",
                        "role {role} may add {entity} records but required field '{value}' is read-only for it and has no default: "
                        "it could never save one"),
    "stamp_type": ("流程操作只能填写人员、日期或日期时间字段,字段 '{value}' 是 {type}",
                   "an action fills only a person, date or datetime field; field '{value}' is {type}"),
    "stamp_readonly": ("字段 '{value}' 由流程操作填写,必须设为只读,否则表单可以改写操作记下的内容",
                       "field '{value}' is filled by a workflow action and must be read-only, or a form could overwrite it"),
    "asks_unwritable": ("流程对话框不能询问字段 '{value}':{why}",
                        "a step's dialog cannot ask for field '{value}': {why_en}"),
    "effect": ("效果 '{value}' 有误:{error}", "effect '{value}' is wrong: {error}"),
    "effect_not_link": ("效果 '{value}' 有误:'{link}' 不是关联字段,只能通过关联字段写另一条记录",
                        "effect '{value}' is wrong: '{link}' is not a link; another record is reached through a link field"),
    "unknown_field_effect": ("效果 '{value}' 有误:实体 {entity} 没有字段 '{field}'", "effect '{value}' is wrong: entity {entity} has no field '{field}'"),
    "effect_unwritable": ("效果 '{value}' 不能写字段 {field}:{why}", "effect '{value}' cannot write field {field}: {why_en}"),
    "effect_required": ("效果 '{value}' 新建的 {entity} 缺少必填字段 {fields}(它们没有默认值,也不由编号规则填写)",
                        "effect '{value}' creates a {entity} without its required field(s) {fields} (no default, no numbering fills them)"),
    "effect_created": ("效果 '{value}' 用了 created,但此步骤在它之前没有新建记录", "effect '{value}' uses created, but the step creates nothing before it"),
    "effect_link_value": ("效果 '{value}' 有误:关联字段 {field} 只能填 {entity} 的记录", "effect '{value}' is wrong: link {field} takes a {entity} record"),
    "effect_user_value": ("效果 '{value}' 有误:人员字段 {field} 只能填人员字段的值", "effect '{value}' is wrong: person field {field} takes a person"),
    "effect_type": ("效果 '{value}' 有误:{left} 是{left_kind},{right} 是{right_kind},类型不符",
                    "effect '{value}' is wrong: {left} is {left_kind_en} but {right} is {right_kind_en}"),
    "effect_choice": ("效果 '{value}' 有误:'{choice}' 不是字段 {field} 的选项(选项列表 {list})",
                      "effect '{value}' is wrong: '{choice}' is not a choice of field {field} (list {list})"),
    "same_state": ("流转的起止状态相同 '{value}'", "transition from '{value}' to itself"),
    "unreachable": ("状态 '{value}' 无法到达", "state '{value}' can never be reached"),
    "when": ("时间规则 '{value}' 无法理解", "time rule '{value}' is not understood"),
    "when_field": ("时间规则中的字段 '{value}' 必须是日期或日期时间字段", "field '{value}' in a time rule must be a date or datetime"),
    "channel": ("渠道 '{value}' 无效", "channel '{value}' is not valid"),
    "digest_channel": ("只有站内消息(inapp)可以汇总,渠道 '{channel}' 的提醒逐条发送 — 请把汇总改为否或留空",
                       "only in-app reminders can be digested; '{channel}' messages go one by one — set digest to no or leave it blank"),
    "recipient": ("收件人 '{value}' 无效", "recipient '{value}' is not valid"),
    "notify_unseen": ("角色 '{value}' 在 permissions 中对 {entity} 没有任何权限,看不到记录,所以不会收到通知 — 请给它权限,或从 notify 删除",
                      "role '{value}' has no right on {entity} in permissions, cannot see its records and so is never told "
                      "— give it a right, or remove it from notify"),
    "duration": ("时长 '{value}' 无法理解", "duration '{value}' is not understood"),
    "duration_long": ("时长 '{value}' 超过 {years} 年", "duration '{value}' is longer than {years} years"),
    "ladder": ("升级时限有 {after} 级,升级给有 {to} 级,两者须一一对应",
               "escalate_after has {after} step(s) but escalate_to has {to}: they go in pairs"),
    "placeholder": ("模板占位符有误:{error}", "template placeholder error: {error}"),
    "placeholder_field": ("模板占位符 record.{path} 有误:实体 {entity} 没有字段 '{value}'",
                          "template placeholder record.{path}: entity {entity} has no field '{value}'"),
    "scale": ("量表 '{value}' 必须是 2 到 10 的整数", "scale '{value}' must be a whole number from 2 to 10"),
    "labels_count": ("标签数 {count} 与量表 {scale} 不符", "{count} labels do not match scale {scale}"),
    "measure": ("统计方式 '{value}' 无效", "measure '{value}' is not valid"),
    "period_needs_date": ("分组字段 '{value}' 不是日期,不能按周期统计", "group_by '{value}' is not a date, so it cannot be grouped by period"),
    "pie_one_measure": ("饼图只能有一个统计值", "a pie chart shows one measure"),
    "period": ("周期 '{value}' 无效", "period '{value}' is not valid"),
    "chart": ("图表类型 '{value}' 无效", "chart '{value}' is not valid"),
    "setting_unknown": ("未知设置项 '{value}'", "unknown setting '{value}'"),
    "setting_value": ("设置 {key} 的值 '{value}' 无效", "setting {key}: '{value}' is not valid"),
    "not_numeric": ("字段 '{value}' 不是数值字段", "field '{value}' is not numeric"),
    "not_string_field": ("字段 '{value}' 必须是文本类字段", "field '{value}' must be a text-like field"),
    # computed fields (fields.formula) and computed defaults
    "formula_default": ("字段 '{value}' 有公式,不能再有默认值:它的值总是由公式算出",
                        "field '{value}' has a formula and cannot also have a default: the formula always gives its value"),
    "formula_required": ("字段 '{value}' 有公式,不能设为必填:没有人填写它",
                         "field '{value}' has a formula and cannot be required input: nobody types it"),
    "formula_encrypted": ("字段 '{value}' 有公式,不能加密:公式的值要由数据库计算、排序和筛选",
                          "field '{value}' has a formula and cannot be encrypted: the database computes, sorts and filters it"),
    "formula_type": ("{type} 类型的字段不能有公式", "a field of type {type} cannot have a formula"),
    "formula_expr": ("公式 '{value}' 有误:{error}", "formula '{value}' is wrong: {error}"),
    "formula_path": ("公式 '{value}' 有误:未知字段 '{path}'", "formula '{value}' is wrong: unknown field '{path}'"),
    "formula_rollup": ("公式 '{value}' 有误:{part} 不是关联到实体 {entity} 的记录,不能汇总",
                       "formula '{value}' is wrong: {part} is not records that link to entity {entity}, so it cannot be aggregated"),
    "formula_ambiguous": ("公式 '{value}' 有误:{part} 有多个字段关联到本实体({links})",
                          "formula '{value}' is wrong: {part} links here through several fields ({links})"),
    "formula_kind": ("公式 '{value}' 有误:{detail}", "formula '{value}' is wrong: {detail_en}"),
    "formula_result": ("公式 '{value}' 的结果是{kind},不能存入 {type} 类型的字段",
                       "formula '{value}' gives {kind_en}, which a field of type {type} cannot hold"),
    "formula_python": ("公式 '{value}' 用了 {function}:它只能在保存时计算,不能作为数据库中保存的值",
                       "formula '{value}' uses {function}, which is worked out on a save only, not by the database for a stored value"),
    "formula_cycle": ("公式循环引用:{cycle}", "formulas refer to each other in a circle: {cycle}"),
}

HINTS: dict[str, tuple[str, str]] = {
    "formula_alone": ("有公式的字段由系统计算:清空默认值、必填和加密", "a computed field is kept by the system: clear default, required and encrypted"),
    "formula_types": ("公式字段的类型可以是数字、金额、文本、日期、是/否", "a computed field can be a number, money, text, date or yes/no"),
    "formula_rollup": ("汇总的写法:count(子实体)、count(子实体 where 条件)、sum(子实体.字段),子实体要有关联到本实体的字段",
                       "write count(child), count(child where condition), sum(child.field): the child must have a link field to this entity"),
    "formula_break_cycle": ("让其中一个字段改为手工填写(去掉它的公式)", "make one of these fields typed in (clear its formula)"),
    "formula_python": ("改用可由数据库计算的函数,或把它写成默认值(新建时计算一次)",
                       "use a function the database can compute, or make it a default (worked out once, on create)"),
    "did_you_mean": ("是否想写 '{value}'?", "did you mean '{value}'?"),
    "one_of": ("可选:{values}", "choose one of: {values}"),
    "for_example": ("写法例如:{values}", "write it like: {values}"),
    "keep_one": ("每个设置只写一行:删掉多余的一行", "write each setting once: delete the extra row"),
    "hidden_required": ("给该字段设默认值,或从隐藏字段中去掉它,或去掉该角色的新增权限",
                        "give the field a default, take it out of hidden_fields, or take the add right from the role"),
    "readonly_required": ("给它一个默认值,或把 required 设为 N(流程的 stamp 在之后才填写),或去掉 readonly",
                          "give it a default, set required to N (a workflow stamp fills it only later), or clear readonly"),
    "save_only_instead": ("要在某个状态下锁住字段,在 validations 表写一条规则,例如 status == 'draft' or not changed(visit_at)",
                          "to lock a field in a state, write a rule on the validations sheet, such as status == 'draft' or not changed(visit_at)"),
    "locked_required": ("给该字段设默认值,或从只读字段中去掉它,或去掉该角色的新增权限",
                        "give the field a default, take it out of readonly_fields, or take the add right from the role"),
    "set_readonly": ("在 fields 表中把字段 {field} 的 readonly 设为 Y", "set readonly to Y for field {field} in the fields sheet"),
    "period_needs_date": ("统计周期只能用于日期字段:把分组字段改为日期/时间字段,或清空周期",
                          "a period groups dates: group by a date/datetime field, or leave period blank"),
    "numeric_choices": ("选项列表 {value} 的值须为数字(如 1、2、3、4)才能求平均/合计",
                        "the values of list {value} must be numbers (such as 1, 2, 3, 4) to be averaged or summed"),
    "identifier": ("例如 customer_contact", "for example customer_contact"),
    "rename": ("换一个名称", "choose another name"),
    "menu_en": ("同一菜单的各行写同一个英文名 '{value}',或只在一行填写",
                "give every row of the group the same English name '{value}', or fill it in on one row only"),
    "effect_forms": ("效果写作 关联.字段 = 值、create 实体(字段 = 值, …) 或 字段 = created,可在末尾加 if 条件",
                     "write link.field = value, create entity(field = value, …) or field = created, optionally ending with if condition"),
    "effect_created": ("先写 create 实体(…),再用 created", "write create entity(…) first, then use created"),
    "effect_same_type": ("写入的值须与字段同一类型", "the value written must have the field's type"),
    "effect_map": ("在括号里加上 {example}", "add {example} inside the brackets"),
    "effect_link_value": ("写 created(此步骤新建的 {entity}),或本记录指向 {entity} 的关联字段",
                          "write created (the {entity} this step created) or a link of this record to {entity}"),
    "effect_user_value": ("写本记录的人员字段,例如 owner", "write a person field of this record, such as owner"),
    "one_transition": ("同一流转只写一行:多个角色可写在同一格(用逗号分隔)", "write one row per move: several roles go in one cell, comma-separated"),
    "add_sheet": ("在工作簿中添加工作表 {sheet}", "add a sheet named {sheet}"),
    "read_as": ("是否想写 '{value}'?本次检查已把该列当作 {column} 读取", "did you mean '{value}'? this check read the column as {column}"),
    "add_column": ("在第一行添加列标题 {column}", "add the header {column} in row 1"),
    "save_xlsx": ("请在 Excel 中另存为 .xlsx(不加密码)", "save it from Excel as .xlsx without a password"),
    "recalc": ("在 Excel 中打开并保存一次以计算公式,或改为填写数值", "open and save it in Excel, or type the value"),
    "unmerge": ("取消合并单元格,每个单元格单独填写", "unmerge the cells and fill each one"),
    "whole_number_between": ("填写 {low} 到 {high} 之间的整数(天数)", "write a whole number of days from {low} to {high}"),
    "finite": ("填写一个普通的数字,如 10 或 2.5", "write an ordinary number such as 10 or 2.5"),
    "previous_name": (
        "previous_name 只能写已从表中删除的旧名称",
        "previous_name may only hold an old name that is no longer in the sheet",
    ),
    "bool": ("填写 是/否、yes/no、Y/N 或 1/0", "write yes/no, 是/否, Y/N or 1/0"),
    "counter": ("在编号规则中加入 {{####}}", "add a counter such as {{####}}"),
    "add_code": ("在 fields 中为该实体添加 code 字段(string, readonly)", "add a field 'code' (string, readonly)"),
    "define_list": ("在 choices 工作表中添加列表 {value}", "add list {value} to the choices sheet"),
    "regex": ("检查括号和转义字符", "check brackets and escapes"),
    "choice_label": ("条件比较的是选项的值:写 '{value}',不写显示名 '{label}'",
                     "conditions compare the choice's value: write '{value}', not its label '{label}'"),
    "unquote": ("数字不加引号,写成 {example}", "write numbers without quotes: {example}"),
    "quote": ("文本和选项值要加引号,写成 {example}", "put text and choice values in quotes: {example}"),
    "compare_dates": ("日期与日期比较(日期时间与日期时间比较):用 today()、now(),或 days_since(字段) > 天数",
                      "compare a date with a date (a date and time with one): use today(), now() or days_since(field) > days"),
    "compare_bool": ("是/否字段直接写字段名(或 not 字段名),或与 True/False 比较",
                     "write a yes/no field on its own (or not field), or compare it with True/False"),
    "same_type": ("比较的两边须是同一类型", "both sides of a comparison must have the same type"),
    "example": ("例如 {value}", "for example {value}"),
    "fix_default": ("改正默认值,或调整该字段的最小值/最大值/格式", "correct the default, or change the field's min/max/pattern"),
    "swap": ("交换最小值和最大值", "swap min and max"),
    "ladder": ("每一级写一个时限和一个角色,用分号分隔,例如 升级时限 '1 working day; 2 working days',升级给 '质量主管; 总经理'",
               "one delay and one role per step, separated by ';', e.g. escalate_after '1 working day; 2 working days', "
               "escalate_to '质量主管; 总经理'"),
    "when": (
        "例如 'end_date - 30 days'、'created_on + 6 working hours'、'every 7 days'",
        "for example 'end_date - 30 days', 'created_on + 6 working hours', 'every 7 days'",
    ),
}


@dataclass(frozen=True)
class Msg:
    code: str
    params: tuple[tuple[str, Any], ...] = ()

    def render(self, lang: str, table: dict[str, tuple[str, str]] | None = None) -> str:
        zh, en = (table or MESSAGES)[self.code]
        params = dict(self.params)
        params.setdefault("what_en", params.get("what", ""))
        return (zh if lang == "zh" else en).format(**params)


def msg(code: str, **params: Any) -> Msg:
    assert code in MESSAGES, code
    return Msg(code, tuple(sorted(params.items())))


def hint(code: str, **params: Any) -> Msg:
    assert code in HINTS, code
    return Msg(code, tuple(sorted(params.items())))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workbook. ``ref`` is ``Sheet!Cell`` (or the file name)."""

    ref: str
    message: Msg
    hint: Msg | None = None
    context: str = ""  # e.g. "entity customer, field grade"
    warning: bool = False

    def text(self, lang: str = "en") -> str:
        return self.message.render(lang)

    def format(self, filename: str = "", lang: str = "zh") -> str:
        other = "en" if lang == "zh" else "zh"
        where = f"{filename} › {self.ref}" if filename else self.ref
        if self.context:
            where += f" ({self.context})"
        line = f"{where}: {self.message.render(lang)} ({self.message.render(other)})"
        if self.hint is not None:
            line += f" — {self.hint.render(lang, HINTS)} ({self.hint.render(other, HINTS)})"
        if self.warning:
            line = ("提示 " if lang == "zh" else "warning ") + line
        return line


class WorkbookError(Exception):
    """Raised by the pipeline when a workbook has errors; carries all of them (``problems``) and the
    warnings found with them, which often explain an error (an unknown sheet 'Field' → 'fields' is
    missing)."""

    def __init__(self, problems: list[Problem], filename: str = "", lang: str = "zh", warnings: list[Problem] | None = None):
        self.problems = problems
        self.warnings = warnings or []
        self.filename = filename
        self.lang = lang
        super().__init__("\n".join(p.format(filename, lang) for p in self.reported))

    @property
    def reported(self) -> list[Problem]:
        """What to show: the errors, then the warnings."""
        return self.problems + self.warnings


def did_you_mean(value: str, options: Iterable[str]) -> Msg | None:
    """A 'did you mean' hint for the closest option, or None when nothing is close."""
    close = difflib.get_close_matches(value, [o for o in options if o != value], n=1, cutoff=0.6)
    return hint("did_you_mean", value=close[0]) if close else None  # never the very value that was refused


@dataclass
class Problems:
    """A collector used while validating: ``add`` never raises, so every problem is found."""

    items: list[Problem] = field(default_factory=list)

    def add(self, ref: str, message: Msg, hint_: Msg | None = None, context: str = "", warning: bool = False) -> None:
        self.items.append(Problem(ref, message, hint_, context, warning))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if not p.warning]
