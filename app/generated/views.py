# generated from crm.xlsx — do not edit; run `crm generate` instead.
"""Screens (ModelView) and REST APIs (ModelRestApi) of every entity, with their menus."""

from app.web.api import CrmModelRestApi
from app.web.i18n import L
from app.web.listing import CrmInterface
from app.web.views import CrmModelView

from . import models


_customer_labels = {
    'code': L('客户编码', 'Customer code'),
    'name': L('客户名称', 'Customer name'),
    'short_name': L('客户简称', 'Short name'),
    'customer_type': L('客户类型', 'Customer type'),
    'industry': L('所属行业', 'Industry'),
    'region': L('所属区域', 'Region'),
    'area_type': L('市区/郊区', 'Urban/suburban'),
    'source_channel': L('来源渠道', 'Source channel'),
    'owner': L('负责业务员', 'Owner'),
    'status': L('客户状态', 'Status'),
    'phone': L('电话', 'Phone'),
    'email': L('邮箱', 'Email'),
    'address': L('地址', 'Address'),
    'birthday': L('生日', 'Birthday'),
    'employee_count': L('企业规模(人数)', 'Employees'),
    'annual_demand': L('年需求规模(元)', 'Annual demand'),
    'urgency': L('需求迫切程度', 'Urgency'),
    'grade_override': L('等级人工认定', 'Grade (manual)'),
    'grade': L('客户等级', 'Grade'),
    'grade_reason': L('分级依据', 'Grade reason'),
    'annual_amount': L('年交易额(元)', 'Annual amount'),
    'repurchase_count': L('年复购次数', 'Repurchases per year'),
    'value_tier': L('价值层级', 'Value tier'),
    'first_contacted_on': L('首次沟通日期', 'First contacted on'),
    'last_contact_on': L('最近联系日期', 'Last contact on'),
    'tax_no': L('统一社会信用代码/税号', 'Tax number'),
    'bank_name': L('开户行', 'Bank'),
    'bank_account': L('银行账号', 'Bank account'),
    'credit_limit': L('信用额度(元)', 'Credit limit'),
    'notes': L('备注', 'Notes'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_customer_help = {
    'code': '系统按编号规则自动生成,不可修改。',
    'name': '客户全称,与营业执照及开票信息一致。',
    'customer_type': '渠道商、零售商、一次性客户、内部关联客户(主数据口径)。',
    'region': '市场部按客户经营属地把客户资料分配给相关业务员。',
    'area_type': '决定售后派工时限:市区6个工作小时、郊区7个工作小时。',
    'source_channel': '客户资料的收集渠道:展览会、行业报刊、互联网、行业协会、商场品牌、合作伙伴介绍、营销活动等。',
    'owner': '原则上由首先录入客户的业务员负责;发生冲突以记录先后为准,销售经理有最终决定权。营销活动收集的客户由经理按负责客户数量均衡、兼顾业务能力分配。',
    'birthday': '个人客户或客户负责人的生日,用于生日关怀(提前3天提醒业务员准备贺卡或礼品)。',
    'employee_count': '客户规模,参与A/B/C分级。',
    'annual_demand': '根据市场调查资料估计的年需求金额,参与A/B/C分级。',
    'urgency': '迫切需求 / 一般需求(有需求想法) / 潜在需求。',
    'grade_override': '等级由销售经理根据市场调查资料综合认定;填写后优先于自动分级,留空则按规则自动分级。',
    'grade': '保存时按分级规则自动计算:A 需求规模较大且迫切,B 一般需求,C 潜在需求。',
    'grade_reason': '自动填写命中的分级规则说明。',
    'annual_amount': '近12个月交易金额,参与价值层级计算。',
    'repurchase_count': '近12个月重复下单次数,反映客户忠诚度与回购率。',
    'value_tier': '保存时按规则自动计算:高价值、中价值、低价值客户。',
    'first_contacted_on': '业务员负责的新客户应在一周内完成首次沟通,否则经理有权转由他人负责。',
    'last_contact_on': '按等级确定跟进频率:A级7天、B级15天、C级30天。',
    'tax_no': '开票(VAT)信息,15-20位数字或大写字母。',
    'notes': '客户背景、物流需求状况、交易偏好等。',
}


class CustomerView(CrmModelView):
    entity = 'customer'
    datamodel = CrmInterface(models.Customer)
    class_permission_name = 'customer'
    list_title = L('客户档案', 'Customer')
    show_title = L('客户档案', 'Customer')
    add_title = L('新增客户档案', 'Add Customer')
    edit_title = L('编辑客户档案', 'Edit Customer')
    list_columns = ['code', 'name', 'region', 'owner', 'status', 'grade', 'value_tier', 'last_contact_on']
    search_columns = ['code', 'name', 'short_name', 'industry', 'region', 'source_channel', 'status', 'phone', 'grade', 'value_tier', 'owner']
    base_order = ('code', 'desc')
    label_columns = _customer_labels
    description_columns = _customer_help
    add_fieldsets = [
        (L('基本信息', ''), {"fields": ['name', 'short_name', 'customer_type', 'industry', 'region', 'area_type', 'source_channel', 'status'], "expanded": True}),
        (L('联系方式', ''), {"fields": ['phone', 'email', 'address', 'birthday'], "expanded": True}),
        (L('分级信息', ''), {"fields": ['employee_count', 'annual_demand', 'urgency', 'grade_override', 'annual_amount', 'repurchase_count'], "expanded": True}),
        (L('联系记录', ''), {"fields": ['first_contacted_on', 'last_contact_on'], "expanded": True}),
        (L('开票与信用', ''), {"fields": ['tax_no', 'bank_name', 'bank_account', 'credit_limit'], "expanded": False}),
        (L('备注', ''), {"fields": ['notes'], "expanded": False}),
    ]
    edit_fieldsets = [
        (L('基本信息', ''), {"fields": ['name', 'short_name', 'customer_type', 'industry', 'region', 'area_type', 'source_channel', 'status'], "expanded": True}),
        (L('联系方式', ''), {"fields": ['phone', 'email', 'address', 'birthday'], "expanded": True}),
        (L('分级信息', ''), {"fields": ['employee_count', 'annual_demand', 'urgency', 'grade_override', 'annual_amount', 'repurchase_count'], "expanded": True}),
        (L('联系记录', ''), {"fields": ['first_contacted_on', 'last_contact_on'], "expanded": True}),
        (L('开票与信用', ''), {"fields": ['tax_no', 'bank_name', 'bank_account', 'credit_limit'], "expanded": False}),
        (L('备注', ''), {"fields": ['notes'], "expanded": False}),
    ]
    show_fieldsets = [
        (L('基本信息', ''), {"fields": ['code', 'name', 'short_name', 'customer_type', 'industry', 'region', 'area_type', 'source_channel', 'owner', 'status'], "expanded": True}),
        (L('联系方式', ''), {"fields": ['phone', 'email', 'address', 'birthday'], "expanded": True}),
        (L('分级信息', ''), {"fields": ['employee_count', 'annual_demand', 'urgency', 'grade_override', 'grade', 'grade_reason', 'annual_amount', 'repurchase_count', 'value_tier'], "expanded": True}),
        (L('联系记录', ''), {"fields": ['first_contacted_on', 'last_contact_on'], "expanded": True}),
        (L('开票与信用', ''), {"fields": ['tax_no', 'bank_name', 'bank_account', 'credit_limit'], "expanded": False}),
        (L('备注', ''), {"fields": ['notes'], "expanded": False}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class CustomerApi(CrmModelRestApi):
    entity = 'customer'
    resource_name = 'customer'
    datamodel = CrmInterface(models.Customer)
    class_permission_name = 'customer'
    list_columns = ['id', 'version', 'code', 'name', 'region', 'owner', 'status', 'grade', 'value_tier', 'last_contact_on']
    show_columns = ['id', 'version', 'code', 'name', 'short_name', 'customer_type', 'industry', 'region', 'area_type', 'source_channel', 'owner', 'status', 'phone', 'email', 'address', 'birthday', 'employee_count', 'annual_demand', 'urgency', 'grade_override', 'grade', 'grade_reason', 'annual_amount', 'repurchase_count', 'value_tier', 'first_contacted_on', 'last_contact_on', 'tax_no', 'bank_name', 'bank_account', 'credit_limit', 'notes', 'created_on', 'changed_on']
    add_columns = ['name', 'short_name', 'customer_type', 'industry', 'region', 'area_type', 'source_channel', 'status', 'phone', 'email', 'address', 'birthday', 'employee_count', 'annual_demand', 'urgency', 'grade_override', 'annual_amount', 'repurchase_count', 'first_contacted_on', 'last_contact_on', 'tax_no', 'bank_name', 'bank_account', 'credit_limit', 'notes']
    edit_columns = ['name', 'short_name', 'customer_type', 'industry', 'region', 'area_type', 'source_channel', 'status', 'phone', 'email', 'address', 'birthday', 'employee_count', 'annual_demand', 'urgency', 'grade_override', 'annual_amount', 'repurchase_count', 'first_contacted_on', 'last_contact_on', 'tax_no', 'bank_name', 'bank_account', 'credit_limit', 'notes']
    search_columns = ['code', 'name', 'short_name', 'industry', 'region', 'source_channel', 'status', 'phone', 'grade', 'value_tier', 'owner']
    order_columns = ['id', 'code', 'name', 'region', 'owner', 'status', 'grade', 'value_tier', 'last_contact_on']
    base_order = ('code', 'desc')
    label_columns = _customer_labels
    description_columns = _customer_help
    list_title = L('客户档案', 'Customer')


_contact_labels = {
    'customer': L('所属客户', 'Customer'),
    'name': L('姓名', 'Name'),
    'position': L('职务', 'Position'),
    'department': L('部门', 'Department'),
    'is_key_person': L('关键人', 'Key person'),
    'is_decision_maker': L('有决策权', 'Decision maker'),
    'phone': L('电话', 'Phone'),
    'email': L('邮箱', 'Email'),
    'wechat': L('微信', 'WeChat'),
    'birthday': L('生日', 'Birthday'),
    'active': L('在职', 'Active'),
    'left_on': L('离任日期', 'Left on'),
    'change_note': L('人员变动说明', 'Change note'),
    'owner': L('负责业务员', 'Owner'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_contact_help = {
    'is_key_person': '对今后合作有影响的客户方关键人员。',
    'is_decision_maker': '出访时须了解接待者对今后的项目合作是否有决策权。',
    'birthday': '用于生日关怀。',
    'change_note': '关键人员变动(离职、调岗、接任人)须及时记录。',
}


class ContactView(CrmModelView):
    entity = 'contact'
    datamodel = CrmInterface(models.Contact)
    class_permission_name = 'contact'
    list_title = L('联系人', 'Contact')
    show_title = L('联系人', 'Contact')
    add_title = L('新增联系人', 'Add Contact')
    edit_title = L('编辑联系人', 'Edit Contact')
    list_columns = ['customer', 'name', 'position', 'is_key_person', 'phone', 'active']
    search_columns = ['name', 'is_key_person', 'is_decision_maker', 'phone', 'active', 'owner']
    base_order = ('id', 'desc')
    label_columns = _contact_labels
    description_columns = _contact_help
    add_fieldsets = [
        (L('基本信息', ''), {"fields": ['customer', 'name', 'position', 'department', 'is_key_person', 'is_decision_maker'], "expanded": True}),
        (L('联系方式', ''), {"fields": ['phone', 'email', 'wechat', 'birthday'], "expanded": True}),
        (L('人员变动', ''), {"fields": ['active', 'left_on', 'change_note'], "expanded": False}),
    ]
    edit_fieldsets = [
        (L('基本信息', ''), {"fields": ['customer', 'name', 'position', 'department', 'is_key_person', 'is_decision_maker'], "expanded": True}),
        (L('联系方式', ''), {"fields": ['phone', 'email', 'wechat', 'birthday'], "expanded": True}),
        (L('人员变动', ''), {"fields": ['active', 'left_on', 'change_note'], "expanded": False}),
    ]
    show_fieldsets = [
        (L('基本信息', ''), {"fields": ['customer', 'name', 'position', 'department', 'is_key_person', 'is_decision_maker', 'owner'], "expanded": True}),
        (L('联系方式', ''), {"fields": ['phone', 'email', 'wechat', 'birthday'], "expanded": True}),
        (L('人员变动', ''), {"fields": ['active', 'left_on', 'change_note'], "expanded": False}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class ContactApi(CrmModelRestApi):
    entity = 'contact'
    resource_name = 'contact'
    datamodel = CrmInterface(models.Contact)
    class_permission_name = 'contact'
    list_columns = ['id', 'version', 'customer', 'name', 'position', 'is_key_person', 'phone', 'active']
    show_columns = ['id', 'version', 'customer', 'name', 'position', 'department', 'is_key_person', 'is_decision_maker', 'phone', 'email', 'wechat', 'birthday', 'active', 'left_on', 'change_note', 'owner', 'created_on', 'changed_on']
    add_columns = ['customer', 'name', 'position', 'department', 'is_key_person', 'is_decision_maker', 'phone', 'email', 'wechat', 'birthday', 'active', 'left_on', 'change_note']
    edit_columns = ['customer', 'name', 'position', 'department', 'is_key_person', 'is_decision_maker', 'phone', 'email', 'wechat', 'birthday', 'active', 'left_on', 'change_note']
    search_columns = ['name', 'is_key_person', 'is_decision_maker', 'phone', 'active', 'owner']
    order_columns = ['id', 'customer', 'name', 'position', 'is_key_person', 'phone', 'active']
    base_order = ('id', 'desc')
    label_columns = _contact_labels
    description_columns = _contact_help
    list_title = L('联系人', 'Contact')


_follow_up_labels = {
    'subject': L('跟进主题', 'Subject'),
    'customer': L('客户', 'Customer'),
    'contact': L('联系人', 'Contact'),
    'owner': L('跟进人', 'Owner'),
    'method': L('跟进方式', 'Method'),
    'planned_on': L('计划日期', 'Planned on'),
    'status': L('状态', 'Status'),
    'done_on': L('完成日期', 'Done on'),
    'content': L('沟通内容', 'Content'),
    'customer_feedback': L('客户需求与反馈', 'Customer feedback'),
    'next_step': L('下一步计划', 'Next step'),
    'next_follow_on': L('下次跟进日期', 'Next follow-up'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_follow_up_help = {
    'method': '初次联络宜先以传真、邮件、邮寄等方式传递公司资料,尽量少用电话直接推销。',
    'content': '与客户电话或当面沟通的详细情况须记录在系统中。',
}


class FollowUpView(CrmModelView):
    entity = 'follow_up'
    datamodel = CrmInterface(models.FollowUp)
    class_permission_name = 'follow_up'
    list_title = L('跟进记录', 'Follow-up')
    show_title = L('跟进记录', 'Follow-up')
    add_title = L('新增跟进记录', 'Add Follow-up')
    edit_title = L('编辑跟进记录', 'Edit Follow-up')
    list_columns = ['subject', 'customer', 'owner', 'method', 'planned_on', 'status']
    search_columns = ['subject', 'method', 'status', 'content', 'owner']
    base_order = ('id', 'desc')
    label_columns = _follow_up_labels
    description_columns = _follow_up_help
    add_fieldsets = [
        (L('跟进计划', ''), {"fields": ['subject', 'customer', 'contact', 'method', 'planned_on', 'status'], "expanded": True}),
        (L('跟进结果', ''), {"fields": ['done_on', 'content', 'customer_feedback', 'next_step', 'next_follow_on'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('跟进计划', ''), {"fields": ['subject', 'customer', 'contact', 'method', 'planned_on', 'status'], "expanded": True}),
        (L('跟进结果', ''), {"fields": ['done_on', 'content', 'customer_feedback', 'next_step', 'next_follow_on'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('跟进计划', ''), {"fields": ['subject', 'customer', 'contact', 'owner', 'method', 'planned_on', 'status'], "expanded": True}),
        (L('跟进结果', ''), {"fields": ['done_on', 'content', 'customer_feedback', 'next_step', 'next_follow_on'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class FollowUpApi(CrmModelRestApi):
    entity = 'follow_up'
    resource_name = 'follow_up'
    datamodel = CrmInterface(models.FollowUp)
    class_permission_name = 'follow_up'
    list_columns = ['id', 'version', 'subject', 'customer', 'owner', 'method', 'planned_on', 'status']
    show_columns = ['id', 'version', 'subject', 'customer', 'contact', 'owner', 'method', 'planned_on', 'status', 'done_on', 'content', 'customer_feedback', 'next_step', 'next_follow_on', 'created_on', 'changed_on']
    add_columns = ['subject', 'customer', 'contact', 'method', 'planned_on', 'status', 'done_on', 'content', 'customer_feedback', 'next_step', 'next_follow_on']
    edit_columns = ['subject', 'customer', 'contact', 'method', 'planned_on', 'status', 'done_on', 'content', 'customer_feedback', 'next_step', 'next_follow_on']
    search_columns = ['subject', 'method', 'status', 'content', 'owner']
    order_columns = ['id', 'subject', 'customer', 'owner', 'method', 'planned_on', 'status']
    base_order = ('id', 'desc')
    label_columns = _follow_up_labels
    description_columns = _follow_up_help
    list_title = L('跟进记录', 'Follow-up')


_visit_request_labels = {
    'code': L('走访单号', 'Number'),
    'subject': L('走访主题', 'Subject'),
    'customer': L('客户', 'Customer'),
    'contact': L('接待人', 'Host'),
    'owner': L('出访业务员', 'Owner'),
    'visit_at': L('计划出访时间', 'Visit at'),
    'purpose': L('走访目的', 'Purpose'),
    'goal': L('出访计划与目标', 'Plan and goal'),
    'participants': L('同行人员', 'Participants'),
    'referral': L('引荐单位/人', 'Referred by'),
    'materials': L('携带资料', 'Materials'),
    'status': L('状态', 'Status'),
    'approved_by': L('批准人', 'Approved by'),
    'attendance_filed': L('已交考勤管理员', 'Filed with attendance'),
    'result': L('走访结果', 'Result'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_visit_request_help = {
    'code': '系统按编号规则自动生成,不可修改。',
    'contact': '了解接待者职务、姓名,以及对今后合作是否有决策权。',
    'goal': '出访前须制定出访计划和目标,了解客户需求和存在的问题。',
    'referral': '规模较大或开发难度较大的客户,可通过服装协会、纺工局或服装公司等引荐。',
    'materials': '如《公司形象手册》《公司产品手册》。',
    'attendance_filed': '走访单经批准并交考勤管理员后,方可离开办公室出访。',
    'result': '客户当前的营销情况、面临的问题、我方提出的方案及下一步。',
}


class VisitRequestView(CrmModelView):
    entity = 'visit_request'
    datamodel = CrmInterface(models.VisitRequest)
    class_permission_name = 'visit_request'
    list_title = L('客户走访单', 'Visit request')
    show_title = L('客户走访单', 'Visit request')
    add_title = L('新增客户走访单', 'Add Visit request')
    edit_title = L('编辑客户走访单', 'Edit Visit request')
    list_columns = ['code', 'subject', 'customer', 'owner', 'visit_at', 'status']
    search_columns = ['code', 'subject', 'purpose', 'status', 'owner']
    base_order = ('code', 'desc')
    label_columns = _visit_request_labels
    description_columns = _visit_request_help
    add_fieldsets = [
        (L('走访计划', ''), {"fields": ['subject', 'customer', 'contact', 'visit_at', 'purpose', 'goal', 'participants', 'referral', 'materials'], "expanded": True}),
        (L('审批', ''), {"fields": ['attendance_filed'], "expanded": True}),
        (L('走访结果', ''), {"fields": ['result'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('走访计划', ''), {"fields": ['subject', 'customer', 'contact', 'visit_at', 'purpose', 'goal', 'participants', 'referral', 'materials'], "expanded": True}),
        (L('审批', ''), {"fields": ['attendance_filed'], "expanded": True}),
        (L('走访结果', ''), {"fields": ['result'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('走访计划', ''), {"fields": ['code', 'subject', 'customer', 'contact', 'owner', 'visit_at', 'purpose', 'goal', 'participants', 'referral', 'materials'], "expanded": True}),
        (L('审批', ''), {"fields": ['status', 'approved_by', 'attendance_filed'], "expanded": True}),
        (L('走访结果', ''), {"fields": ['result'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class VisitRequestApi(CrmModelRestApi):
    entity = 'visit_request'
    resource_name = 'visit_request'
    datamodel = CrmInterface(models.VisitRequest)
    class_permission_name = 'visit_request'
    list_columns = ['id', 'version', 'code', 'subject', 'customer', 'owner', 'visit_at', 'status']
    show_columns = ['id', 'version', 'code', 'subject', 'customer', 'contact', 'owner', 'visit_at', 'purpose', 'goal', 'participants', 'referral', 'materials', 'status', 'approved_by', 'attendance_filed', 'result', 'created_on', 'changed_on']
    add_columns = ['subject', 'customer', 'contact', 'visit_at', 'purpose', 'goal', 'participants', 'referral', 'materials', 'attendance_filed', 'result']
    edit_columns = ['subject', 'customer', 'contact', 'visit_at', 'purpose', 'goal', 'participants', 'referral', 'materials', 'attendance_filed', 'result']
    search_columns = ['code', 'subject', 'purpose', 'status', 'owner']
    order_columns = ['id', 'code', 'subject', 'customer', 'owner', 'visit_at', 'status']
    base_order = ('code', 'desc')
    label_columns = _visit_request_labels
    description_columns = _visit_request_help
    list_title = L('客户走访单', 'Visit request')


_meeting_minutes_labels = {
    'code': L('纪要编号', 'Number'),
    'subject': L('纪要主题', 'Subject'),
    'visit_request': L('关联走访单', 'Visit request'),
    'customer': L('客户', 'Customer'),
    'owner': L('编写人', 'Owner'),
    'meeting_date': L('会谈日期', 'Meeting date'),
    'due_date': L('提交期限', 'Due date'),
    'attendees': L('参会人员', 'Attendees'),
    'recorder': L('记录人', 'Recorder'),
    'content': L('会谈内容', 'Content'),
    'customer_issues': L('客户面临的问题', 'Customer issues'),
    'proposals': L('我方方案与承诺', 'Our proposals'),
    'reviewed': L('经理已审阅', 'Reviewed'),
    'reviewed_by': L('审阅人', 'Reviewed by'),
    'sent_to_customer': L('已提交客户', 'Sent to customer'),
    'sent_on': L('提交日期', 'Sent on'),
    'customer_confirmed': L('客户确认收到', 'Customer confirmed'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_meeting_minutes_help = {
    'code': '系统按编号规则自动生成,不可修改。',
    'due_date': '与客户当面沟通后的2个工作日内。',
    'recorder': '面谈时指定专人认真作会谈记录。',
}


class MeetingMinutesView(CrmModelView):
    entity = 'meeting_minutes'
    datamodel = CrmInterface(models.MeetingMinutes)
    class_permission_name = 'meeting_minutes'
    list_title = L('会谈纪要', 'Meeting minutes')
    show_title = L('会谈纪要', 'Meeting minutes')
    add_title = L('新增会谈纪要', 'Add Meeting minutes')
    edit_title = L('编辑会谈纪要', 'Edit Meeting minutes')
    list_columns = ['code', 'subject', 'customer', 'owner', 'meeting_date', 'reviewed', 'sent_to_customer']
    search_columns = ['code', 'subject', 'reviewed', 'sent_to_customer', 'customer_confirmed', 'owner']
    base_order = ('code', 'desc')
    label_columns = _meeting_minutes_labels
    description_columns = _meeting_minutes_help
    add_fieldsets = [
        (L('会谈信息', ''), {"fields": ['subject', 'visit_request', 'customer', 'meeting_date', 'due_date', 'attendees', 'recorder'], "expanded": True}),
        (L('纪要内容', ''), {"fields": ['content', 'customer_issues', 'proposals'], "expanded": True}),
        (L('审阅与确认', ''), {"fields": ['reviewed', 'reviewed_by', 'sent_to_customer', 'sent_on', 'customer_confirmed'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('会谈信息', ''), {"fields": ['subject', 'visit_request', 'customer', 'meeting_date', 'due_date', 'attendees', 'recorder'], "expanded": True}),
        (L('纪要内容', ''), {"fields": ['content', 'customer_issues', 'proposals'], "expanded": True}),
        (L('审阅与确认', ''), {"fields": ['reviewed', 'reviewed_by', 'sent_to_customer', 'sent_on', 'customer_confirmed'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('会谈信息', ''), {"fields": ['code', 'subject', 'visit_request', 'customer', 'owner', 'meeting_date', 'due_date', 'attendees', 'recorder'], "expanded": True}),
        (L('纪要内容', ''), {"fields": ['content', 'customer_issues', 'proposals'], "expanded": True}),
        (L('审阅与确认', ''), {"fields": ['reviewed', 'reviewed_by', 'sent_to_customer', 'sent_on', 'customer_confirmed'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class MeetingMinutesApi(CrmModelRestApi):
    entity = 'meeting_minutes'
    resource_name = 'meeting_minutes'
    datamodel = CrmInterface(models.MeetingMinutes)
    class_permission_name = 'meeting_minutes'
    list_columns = ['id', 'version', 'code', 'subject', 'customer', 'owner', 'meeting_date', 'reviewed', 'sent_to_customer']
    show_columns = ['id', 'version', 'code', 'subject', 'visit_request', 'customer', 'owner', 'meeting_date', 'due_date', 'attendees', 'recorder', 'content', 'customer_issues', 'proposals', 'reviewed', 'reviewed_by', 'sent_to_customer', 'sent_on', 'customer_confirmed', 'created_on', 'changed_on']
    add_columns = ['subject', 'visit_request', 'customer', 'meeting_date', 'due_date', 'attendees', 'recorder', 'content', 'customer_issues', 'proposals', 'reviewed', 'reviewed_by', 'sent_to_customer', 'sent_on', 'customer_confirmed']
    edit_columns = ['subject', 'visit_request', 'customer', 'meeting_date', 'due_date', 'attendees', 'recorder', 'content', 'customer_issues', 'proposals', 'reviewed', 'reviewed_by', 'sent_to_customer', 'sent_on', 'customer_confirmed']
    search_columns = ['code', 'subject', 'reviewed', 'sent_to_customer', 'customer_confirmed', 'owner']
    order_columns = ['id', 'code', 'subject', 'customer', 'owner', 'meeting_date', 'reviewed', 'sent_to_customer']
    base_order = ('code', 'desc')
    label_columns = _meeting_minutes_labels
    description_columns = _meeting_minutes_help
    list_title = L('会谈纪要', 'Meeting minutes')


_customer_development_labels = {
    'code': L('开发编号', 'Number'),
    'candidate_name': L('候选客户名称', 'Candidate'),
    'industry': L('所属行业', 'Industry'),
    'contact_person': L('对方负责人', 'Contact person'),
    'phone': L('电话', 'Phone'),
    'owner': L('负责人', 'Owner'),
    'expected_amount': L('预计交易金额(元)', 'Expected amount'),
    'status': L('开发阶段', 'Stage'),
    'docs_received': L('已提交企业资料', 'Documents received'),
    'general_findings': L('一般调查结论', 'General investigation'),
    'field_findings': L('实地调查结论', 'Field investigation'),
    'meets_quality': L('设备技术满足质量要求', 'Meets quality'),
    'delivery_capability': L('具备按时供货能力', 'On-time delivery'),
    'financial_ok': L('经营财务与信用良好', 'Finance and credit'),
    'cooperative': L('合作态度积极', 'Cooperative'),
    'confidentiality': L('遵守保密原则', 'Confidentiality'),
    'cost_ok': L('成本水平符合要求', 'Cost level'),
    'trade_reason': L('交易理由及基本方针', 'Reason and policy'),
    'product_list': L('交易商品目录与金额', 'Products and amounts'),
    'supply_contract_signed': L('已签供货合同', 'Supply contract'),
    'quality_contract_signed': L('已签质量保证合同', 'Quality contract'),
    'payment_terms': L('货款支付方式', 'Payment terms'),
    'customer_code': L('客户代码', 'Customer code'),
    'customer': L('建档客户', 'Customer'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_customer_development_help = {
    'code': '系统按编号规则自动生成,不可修改。',
    'docs_received': '企业沿革、企业概况、最新年度决算表、产品指南、产品目录等。',
    'general_findings': '与对方负责人及技术负责人交谈了解的生产经营情况、经营方针和对本公司的看法。',
    'field_findings': '资材部会同技术、设计、质量管理等部门进行实地调查后的结论。',
    'trade_reason': '认定申请报告:新客户交易的理由及今后交易的基本方针。',
    'supply_contract_signed': '原则上由本公司资材部长与新客户法人代表签订。',
    'quality_contract_signed': '与供货合同同时签订。',
    'customer_code': '数据中心为新客户设定的代码。',
}


class CustomerDevelopmentView(CrmModelView):
    entity = 'customer_development'
    datamodel = CrmInterface(models.CustomerDevelopment)
    class_permission_name = 'customer_development'
    list_title = L('新客户开发', 'Customer development')
    show_title = L('新客户开发', 'Customer development')
    add_title = L('新增新客户开发', 'Add Customer development')
    edit_title = L('编辑新客户开发', 'Edit Customer development')
    list_columns = ['code', 'candidate_name', 'owner', 'expected_amount', 'status', 'supply_contract_signed', 'quality_contract_signed']
    search_columns = ['code', 'candidate_name', 'industry', 'status', 'customer_code', 'owner']
    base_order = ('code', 'desc')
    label_columns = _customer_development_labels
    description_columns = _customer_development_help
    add_fieldsets = [
        (L('候选客户', ''), {"fields": ['candidate_name', 'industry', 'contact_person', 'phone', 'expected_amount'], "expanded": True}),
        (L('一般调查', ''), {"fields": ['docs_received', 'general_findings'], "expanded": True}),
        (L('实地调查', ''), {"fields": ['field_findings', 'meets_quality', 'delivery_capability', 'financial_ok', 'cooperative', 'confidentiality', 'cost_ok'], "expanded": True}),
        (L('认定申请', ''), {"fields": ['trade_reason', 'product_list'], "expanded": True}),
        (L('合同与客户代码', ''), {"fields": ['supply_contract_signed', 'quality_contract_signed', 'payment_terms', 'customer_code', 'customer'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('候选客户', ''), {"fields": ['candidate_name', 'industry', 'contact_person', 'phone', 'expected_amount'], "expanded": True}),
        (L('一般调查', ''), {"fields": ['docs_received', 'general_findings'], "expanded": True}),
        (L('实地调查', ''), {"fields": ['field_findings', 'meets_quality', 'delivery_capability', 'financial_ok', 'cooperative', 'confidentiality', 'cost_ok'], "expanded": True}),
        (L('认定申请', ''), {"fields": ['trade_reason', 'product_list'], "expanded": True}),
        (L('合同与客户代码', ''), {"fields": ['supply_contract_signed', 'quality_contract_signed', 'payment_terms', 'customer_code', 'customer'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('候选客户', ''), {"fields": ['code', 'candidate_name', 'industry', 'contact_person', 'phone', 'owner', 'expected_amount', 'status'], "expanded": True}),
        (L('一般调查', ''), {"fields": ['docs_received', 'general_findings'], "expanded": True}),
        (L('实地调查', ''), {"fields": ['field_findings', 'meets_quality', 'delivery_capability', 'financial_ok', 'cooperative', 'confidentiality', 'cost_ok'], "expanded": True}),
        (L('认定申请', ''), {"fields": ['trade_reason', 'product_list'], "expanded": True}),
        (L('合同与客户代码', ''), {"fields": ['supply_contract_signed', 'quality_contract_signed', 'payment_terms', 'customer_code', 'customer'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class CustomerDevelopmentApi(CrmModelRestApi):
    entity = 'customer_development'
    resource_name = 'customer_development'
    datamodel = CrmInterface(models.CustomerDevelopment)
    class_permission_name = 'customer_development'
    list_columns = ['id', 'version', 'code', 'candidate_name', 'owner', 'expected_amount', 'status', 'supply_contract_signed', 'quality_contract_signed']
    show_columns = ['id', 'version', 'code', 'candidate_name', 'industry', 'contact_person', 'phone', 'owner', 'expected_amount', 'status', 'docs_received', 'general_findings', 'field_findings', 'meets_quality', 'delivery_capability', 'financial_ok', 'cooperative', 'confidentiality', 'cost_ok', 'trade_reason', 'product_list', 'supply_contract_signed', 'quality_contract_signed', 'payment_terms', 'customer_code', 'customer', 'created_on', 'changed_on']
    add_columns = ['candidate_name', 'industry', 'contact_person', 'phone', 'expected_amount', 'docs_received', 'general_findings', 'field_findings', 'meets_quality', 'delivery_capability', 'financial_ok', 'cooperative', 'confidentiality', 'cost_ok', 'trade_reason', 'product_list', 'supply_contract_signed', 'quality_contract_signed', 'payment_terms', 'customer_code', 'customer']
    edit_columns = ['candidate_name', 'industry', 'contact_person', 'phone', 'expected_amount', 'docs_received', 'general_findings', 'field_findings', 'meets_quality', 'delivery_capability', 'financial_ok', 'cooperative', 'confidentiality', 'cost_ok', 'trade_reason', 'product_list', 'supply_contract_signed', 'quality_contract_signed', 'payment_terms', 'customer_code', 'customer']
    search_columns = ['code', 'candidate_name', 'industry', 'status', 'customer_code', 'owner']
    order_columns = ['id', 'code', 'candidate_name', 'owner', 'expected_amount', 'status', 'supply_contract_signed', 'quality_contract_signed']
    base_order = ('code', 'desc')
    label_columns = _customer_development_labels
    description_columns = _customer_development_help
    list_title = L('新客户开发', 'Customer development')


_service_call_labels = {
    'code': L('叫修单号', 'Number'),
    'customer': L('客户', 'Customer'),
    'contact_name': L('报修联系人', 'Contact'),
    'contact_phone': L('联系电话', 'Phone'),
    'address': L('服务地址', 'Address'),
    'area_type': L('市区/郊区', 'Urban/suburban'),
    'call_type': L('服务类别', 'Service type'),
    'contract': L('维保合同', 'Contract'),
    'channel': L('叫修方式', 'Channel'),
    'product_model': L('商品型号', 'Product model'),
    'reported_at': L('叫修时间', 'Reported at'),
    'fault_description': L('故障描述', 'Fault'),
    'received_by': L('受理人', 'Received by'),
    'technician': L('技术员', 'Technician'),
    'dispatched_at': L('派工时间', 'Dispatched at'),
    'arrived_at': L('到达时间', 'Arrived at'),
    'closed_at': L('完工时间', 'Closed at'),
    'sla_status': L('派工时效', 'Dispatch SLA'),
    'voucher_no': L('服务凭证号', 'Service voucher'),
    'customer_signed': L('客户已签认', 'Customer signed'),
    'taken_back': L('携回修护', 'Taken back'),
    'receipt_no': L('商品领取收据号', 'Receipt number'),
    'repair_card_no': L('修护卡号', 'Repair card'),
    'returned_on': L('还商品日期', 'Returned on'),
    'parts_used': L('配换零件', 'Parts used'),
    'labor_hours': L('修护工时(小时)', 'Labour hours'),
    'fee': L('服务费用(元)', 'Fee'),
    'invoice_no': L('发票号', 'Invoice number'),
    'status': L('状态', 'Status'),
    'remarks': L('备注', 'Remarks'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_service_call_help = {
    'code': '系统按编号规则自动生成,不可修改。',
    'area_type': '市区6个工作小时、郊区7个工作小时内须抵达服务。',
    'call_type': '有费服务(A)、合同服务(B)、免费服务(C)。',
    'contract': '合同服务须关联保养合同。',
    'received_by': '登记叫修登记簿的业务员/客服。',
    'closed_at': '结案前填写;次日据此寄送满意度调查。',
    'sla_status': '自动计算:叫修至到达是否在市区6小时/郊区7小时(工作时间)内。',
    'voucher_no': '技术员持服务凭证前往现场,当场处理完妥者请客户于凭证上签字。',
    'taken_back': '现场不能处理妥善者携回修护,开立商品领取收据并填具修护卡。',
    'invoice_no': '有费服务当天凭服务凭证至会计员处开具发票。',
}


class ServiceCallView(CrmModelView):
    entity = 'service_call'
    datamodel = CrmInterface(models.ServiceCall)
    class_permission_name = 'service_call'
    list_title = L('叫修登记', 'Service call')
    show_title = L('叫修登记', 'Service call')
    add_title = L('新增叫修登记', 'Add Service call')
    edit_title = L('编辑叫修登记', 'Edit Service call')
    list_columns = ['code', 'customer', 'call_type', 'reported_at', 'technician', 'sla_status', 'status']
    search_columns = ['code', 'contact_phone', 'area_type', 'call_type', 'product_model', 'sla_status', 'status', 'technician']
    base_order = ('code', 'desc')
    label_columns = _service_call_labels
    description_columns = _service_call_help
    add_fieldsets = [
        (L('叫修登记', ''), {"fields": ['customer', 'contact_name', 'contact_phone', 'address', 'area_type', 'call_type', 'contract', 'channel', 'product_model', 'reported_at', 'fault_description', 'received_by'], "expanded": True}),
        (L('派工与处理', ''), {"fields": ['dispatched_at', 'arrived_at', 'closed_at', 'voucher_no', 'customer_signed'], "expanded": True}),
        (L('携回修护', ''), {"fields": ['taken_back', 'receipt_no', 'repair_card_no', 'returned_on'], "expanded": False}),
        (L('费用与零件', ''), {"fields": ['parts_used', 'labor_hours', 'fee', 'invoice_no'], "expanded": True}),
        (L('备注', ''), {"fields": ['remarks'], "expanded": False}),
    ]
    edit_fieldsets = [
        (L('叫修登记', ''), {"fields": ['customer', 'contact_name', 'contact_phone', 'address', 'area_type', 'call_type', 'contract', 'channel', 'product_model', 'reported_at', 'fault_description', 'received_by'], "expanded": True}),
        (L('派工与处理', ''), {"fields": ['dispatched_at', 'arrived_at', 'closed_at', 'voucher_no', 'customer_signed'], "expanded": True}),
        (L('携回修护', ''), {"fields": ['taken_back', 'receipt_no', 'repair_card_no', 'returned_on'], "expanded": False}),
        (L('费用与零件', ''), {"fields": ['parts_used', 'labor_hours', 'fee', 'invoice_no'], "expanded": True}),
        (L('备注', ''), {"fields": ['remarks'], "expanded": False}),
    ]
    show_fieldsets = [
        (L('叫修登记', ''), {"fields": ['code', 'customer', 'contact_name', 'contact_phone', 'address', 'area_type', 'call_type', 'contract', 'channel', 'product_model', 'reported_at', 'fault_description', 'received_by'], "expanded": True}),
        (L('派工与处理', ''), {"fields": ['status', 'technician', 'dispatched_at', 'arrived_at', 'closed_at', 'sla_status', 'voucher_no', 'customer_signed'], "expanded": True}),
        (L('携回修护', ''), {"fields": ['taken_back', 'receipt_no', 'repair_card_no', 'returned_on'], "expanded": False}),
        (L('费用与零件', ''), {"fields": ['parts_used', 'labor_hours', 'fee', 'invoice_no'], "expanded": True}),
        (L('备注', ''), {"fields": ['remarks'], "expanded": False}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class ServiceCallApi(CrmModelRestApi):
    entity = 'service_call'
    resource_name = 'service_call'
    datamodel = CrmInterface(models.ServiceCall)
    class_permission_name = 'service_call'
    list_columns = ['id', 'version', 'code', 'customer', 'call_type', 'reported_at', 'technician', 'sla_status', 'status']
    show_columns = ['id', 'version', 'code', 'customer', 'contact_name', 'contact_phone', 'address', 'area_type', 'call_type', 'contract', 'channel', 'product_model', 'reported_at', 'fault_description', 'received_by', 'technician', 'dispatched_at', 'arrived_at', 'closed_at', 'sla_status', 'voucher_no', 'customer_signed', 'taken_back', 'receipt_no', 'repair_card_no', 'returned_on', 'parts_used', 'labor_hours', 'fee', 'invoice_no', 'status', 'remarks', 'created_on', 'changed_on']
    add_columns = ['customer', 'contact_name', 'contact_phone', 'address', 'area_type', 'call_type', 'contract', 'channel', 'product_model', 'reported_at', 'fault_description', 'received_by', 'dispatched_at', 'arrived_at', 'closed_at', 'voucher_no', 'customer_signed', 'taken_back', 'receipt_no', 'repair_card_no', 'returned_on', 'parts_used', 'labor_hours', 'fee', 'invoice_no', 'remarks']
    edit_columns = ['customer', 'contact_name', 'contact_phone', 'address', 'area_type', 'call_type', 'contract', 'channel', 'product_model', 'reported_at', 'fault_description', 'received_by', 'dispatched_at', 'arrived_at', 'closed_at', 'voucher_no', 'customer_signed', 'taken_back', 'receipt_no', 'repair_card_no', 'returned_on', 'parts_used', 'labor_hours', 'fee', 'invoice_no', 'remarks']
    search_columns = ['code', 'contact_phone', 'area_type', 'call_type', 'product_model', 'sla_status', 'status', 'technician']
    order_columns = ['id', 'code', 'customer', 'call_type', 'reported_at', 'technician', 'sla_status', 'status']
    base_order = ('code', 'desc')
    label_columns = _service_call_labels
    description_columns = _service_call_help
    list_title = L('叫修登记', 'Service call')


_technician_report_labels = {
    'summary': L('工作摘要', 'Summary'),
    'report_date': L('日期', 'Date'),
    'technician': L('技术员', 'Technician'),
    'service_call': L('叫修单', 'Service call'),
    'work_type': L('工作类别', 'Work type'),
    'hours': L('耗用时间(小时)', 'Hours'),
    'parts_used': L('配换零件', 'Parts used'),
    'supervisor_reviewed': L('服务主任已核阅', 'Reviewed'),
    'reviewed_by': L('核阅人', 'Reviewed by'),
    'supervisor_comment': L('核阅意见', 'Comment'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}


class TechnicianReportView(CrmModelView):
    entity = 'technician_report'
    datamodel = CrmInterface(models.TechnicianReport)
    class_permission_name = 'technician_report'
    list_title = L('技术员工作日报', 'Technician daily report')
    show_title = L('技术员工作日报', 'Technician daily report')
    add_title = L('新增技术员工作日报', 'Add Technician daily report')
    edit_title = L('编辑技术员工作日报', 'Edit Technician daily report')
    list_columns = ['summary', 'report_date', 'technician', 'service_call', 'work_type', 'hours', 'supervisor_reviewed']
    search_columns = ['summary', 'report_date', 'work_type', 'supervisor_reviewed', 'technician']
    base_order = ('id', 'desc')
    label_columns = _technician_report_labels
    add_fieldsets = [
        (L('日报内容', ''), {"fields": ['report_date', 'service_call', 'work_type', 'hours', 'summary', 'parts_used'], "expanded": True}),
        (L('服务主任核阅', ''), {"fields": ['supervisor_reviewed', 'reviewed_by', 'supervisor_comment'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('日报内容', ''), {"fields": ['report_date', 'service_call', 'work_type', 'hours', 'summary', 'parts_used'], "expanded": True}),
        (L('服务主任核阅', ''), {"fields": ['supervisor_reviewed', 'reviewed_by', 'supervisor_comment'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('日报内容', ''), {"fields": ['report_date', 'technician', 'service_call', 'work_type', 'hours', 'summary', 'parts_used'], "expanded": True}),
        (L('服务主任核阅', ''), {"fields": ['supervisor_reviewed', 'reviewed_by', 'supervisor_comment'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class TechnicianReportApi(CrmModelRestApi):
    entity = 'technician_report'
    resource_name = 'technician_report'
    datamodel = CrmInterface(models.TechnicianReport)
    class_permission_name = 'technician_report'
    list_columns = ['id', 'version', 'summary', 'report_date', 'technician', 'service_call', 'work_type', 'hours', 'supervisor_reviewed']
    show_columns = ['id', 'version', 'summary', 'report_date', 'technician', 'service_call', 'work_type', 'hours', 'parts_used', 'supervisor_reviewed', 'reviewed_by', 'supervisor_comment', 'created_on', 'changed_on']
    add_columns = ['summary', 'report_date', 'service_call', 'work_type', 'hours', 'parts_used', 'supervisor_reviewed', 'reviewed_by', 'supervisor_comment']
    edit_columns = ['summary', 'report_date', 'service_call', 'work_type', 'hours', 'parts_used', 'supervisor_reviewed', 'reviewed_by', 'supervisor_comment']
    search_columns = ['summary', 'report_date', 'work_type', 'supervisor_reviewed', 'technician']
    order_columns = ['id', 'summary', 'report_date', 'technician', 'service_call', 'work_type', 'hours', 'supervisor_reviewed']
    base_order = ('id', 'desc')
    label_columns = _technician_report_labels
    list_title = L('技术员工作日报', 'Technician daily report')


_survey_response_labels = {
    'respondent': L('填写人', 'Respondent'),
    'service_call': L('叫修单', 'Service call'),
    'customer': L('客户', 'Customer'),
    'technician': L('技术员', 'Technician'),
    'attitude': L('服务态度', 'Attitude'),
    'skill': L('技术水平', 'Skill'),
    'arrival': L('到达及时性', 'Arrival time'),
    'promise': L('承诺兑现', 'Promises kept'),
    'suggestion': L('建议或抱怨', 'Suggestion or complaint'),
    'channel': L('回收方式', 'Channel'),
    'submitted_at': L('提交时间', 'Submitted at'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_survey_response_help = {
    'suggestion': '情节重大的抱怨须转入客户投诉处理,并将处理情况函告客户。',
}


class SurveyResponseView(CrmModelView):
    entity = 'survey_response'
    datamodel = CrmInterface(models.SurveyResponse)
    class_permission_name = 'survey_response'
    list_title = L('满意度调查', 'Satisfaction survey')
    show_title = L('满意度调查', 'Satisfaction survey')
    add_title = L('新增满意度调查', 'Add Satisfaction survey')
    edit_title = L('编辑满意度调查', 'Edit Satisfaction survey')
    list_columns = ['respondent', 'service_call', 'customer', 'technician', 'attitude', 'skill', 'submitted_at']
    search_columns = ['respondent', 'channel', 'technician']
    base_order = ('id', 'desc')
    label_columns = _survey_response_labels
    description_columns = _survey_response_help
    add_fieldsets = [
        (L('调查对象', ''), {"fields": ['respondent', 'service_call', 'customer', 'channel', 'submitted_at'], "expanded": True}),
        (L('技术员品评', ''), {"fields": ['attitude', 'skill', 'arrival', 'promise'], "expanded": True}),
        (L('建议或抱怨', ''), {"fields": ['suggestion'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('调查对象', ''), {"fields": ['respondent', 'service_call', 'customer', 'channel', 'submitted_at'], "expanded": True}),
        (L('技术员品评', ''), {"fields": ['attitude', 'skill', 'arrival', 'promise'], "expanded": True}),
        (L('建议或抱怨', ''), {"fields": ['suggestion'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('调查对象', ''), {"fields": ['respondent', 'service_call', 'customer', 'technician', 'channel', 'submitted_at'], "expanded": True}),
        (L('技术员品评', ''), {"fields": ['attitude', 'skill', 'arrival', 'promise'], "expanded": True}),
        (L('建议或抱怨', ''), {"fields": ['suggestion'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class SurveyResponseApi(CrmModelRestApi):
    entity = 'survey_response'
    resource_name = 'survey_response'
    datamodel = CrmInterface(models.SurveyResponse)
    class_permission_name = 'survey_response'
    list_columns = ['id', 'version', 'respondent', 'service_call', 'customer', 'technician', 'attitude', 'skill', 'submitted_at']
    show_columns = ['id', 'version', 'respondent', 'service_call', 'customer', 'technician', 'attitude', 'skill', 'arrival', 'promise', 'suggestion', 'channel', 'submitted_at', 'created_on', 'changed_on']
    add_columns = ['respondent', 'service_call', 'customer', 'attitude', 'skill', 'arrival', 'promise', 'suggestion', 'channel', 'submitted_at']
    edit_columns = ['respondent', 'service_call', 'customer', 'attitude', 'skill', 'arrival', 'promise', 'suggestion', 'channel', 'submitted_at']
    search_columns = ['respondent', 'channel', 'technician']
    order_columns = ['id', 'respondent', 'service_call', 'customer', 'technician', 'attitude', 'skill', 'submitted_at']
    base_order = ('id', 'desc')
    label_columns = _survey_response_labels
    description_columns = _survey_response_help
    list_title = L('满意度调查', 'Satisfaction survey')


_maintenance_contract_labels = {
    'code': L('合同编号', 'Number'),
    'name': L('合同名称', 'Contract name'),
    'customer': L('客户', 'Customer'),
    'owner': L('负责人', 'Owner'),
    'signed_on': L('签订日期', 'Signed on'),
    'start_date': L('开始日期', 'Start date'),
    'end_date': L('到期日期', 'End date'),
    'amount': L('合同金额(元)', 'Amount'),
    'visits_per_year': L('年保养次数', 'Visits per year'),
    'covered_products': L('保养商品范围', 'Covered products'),
    'renewal_status': L('续约状态', 'Renewal'),
    'notice_sent_on': L('到期通知寄出日期', 'Notice sent on'),
    'notes': L('备注', 'Notes'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_maintenance_contract_help = {
    'code': '系统按编号规则自动生成,不可修改。',
    'end_date': '期满前一个月寄送保养到期通知书并派员争取续约。',
}


class MaintenanceContractView(CrmModelView):
    entity = 'maintenance_contract'
    datamodel = CrmInterface(models.MaintenanceContract)
    class_permission_name = 'maintenance_contract'
    list_title = L('维保合同', 'Maintenance contract')
    show_title = L('维保合同', 'Maintenance contract')
    add_title = L('新增维保合同', 'Add Maintenance contract')
    edit_title = L('编辑维保合同', 'Edit Maintenance contract')
    list_columns = ['code', 'name', 'customer', 'owner', 'end_date', 'amount', 'renewal_status']
    search_columns = ['code', 'name', 'end_date', 'renewal_status', 'owner']
    base_order = ('code', 'desc')
    label_columns = _maintenance_contract_labels
    description_columns = _maintenance_contract_help
    add_fieldsets = [
        (L('合同信息', ''), {"fields": ['name', 'customer', 'signed_on', 'start_date', 'end_date', 'amount', 'visits_per_year', 'covered_products'], "expanded": True}),
        (L('续约跟进', ''), {"fields": ['renewal_status', 'notice_sent_on', 'notes'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('合同信息', ''), {"fields": ['name', 'customer', 'signed_on', 'start_date', 'end_date', 'amount', 'visits_per_year', 'covered_products'], "expanded": True}),
        (L('续约跟进', ''), {"fields": ['renewal_status', 'notice_sent_on', 'notes'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('合同信息', ''), {"fields": ['code', 'name', 'customer', 'owner', 'signed_on', 'start_date', 'end_date', 'amount', 'visits_per_year', 'covered_products'], "expanded": True}),
        (L('续约跟进', ''), {"fields": ['renewal_status', 'notice_sent_on', 'notes'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class MaintenanceContractApi(CrmModelRestApi):
    entity = 'maintenance_contract'
    resource_name = 'maintenance_contract'
    datamodel = CrmInterface(models.MaintenanceContract)
    class_permission_name = 'maintenance_contract'
    list_columns = ['id', 'version', 'code', 'name', 'customer', 'owner', 'end_date', 'amount', 'renewal_status']
    show_columns = ['id', 'version', 'code', 'name', 'customer', 'owner', 'signed_on', 'start_date', 'end_date', 'amount', 'visits_per_year', 'covered_products', 'renewal_status', 'notice_sent_on', 'notes', 'created_on', 'changed_on']
    add_columns = ['name', 'customer', 'signed_on', 'start_date', 'end_date', 'amount', 'visits_per_year', 'covered_products', 'renewal_status', 'notice_sent_on', 'notes']
    edit_columns = ['name', 'customer', 'signed_on', 'start_date', 'end_date', 'amount', 'visits_per_year', 'covered_products', 'renewal_status', 'notice_sent_on', 'notes']
    search_columns = ['code', 'name', 'end_date', 'renewal_status', 'owner']
    order_columns = ['id', 'code', 'name', 'customer', 'owner', 'end_date', 'amount', 'renewal_status']
    base_order = ('code', 'desc')
    label_columns = _maintenance_contract_labels
    description_columns = _maintenance_contract_help
    list_title = L('维保合同', 'Maintenance contract')


_complaint_labels = {
    'code': L('投诉编号', 'Number'),
    'subject': L('投诉主题', 'Subject'),
    'customer': L('客户', 'Customer'),
    'contact_name': L('投诉人', 'Complainant'),
    'received_at': L('受理时间', 'Received at'),
    'channel': L('投诉渠道', 'Channel'),
    'product_model': L('产品/型号', 'Product'),
    'batch_no': L('批号/订单号', 'Batch or order'),
    'severity': L('严重程度', 'Severity'),
    'category': L('投诉类别', 'Category'),
    'description': L('投诉内容', 'Description'),
    'deadline': L('处理期限', 'Deadline'),
    'owner': L('处理负责人', 'Owner'),
    'responsible_dept': L('责任部门', 'Responsible department'),
    'root_cause': L('原因分析', 'Root cause'),
    'handling': L('处理方案', 'Handling'),
    'corrective_action': L('改善对策', 'Corrective action'),
    'improvement_verified': L('改善已确认', 'Improvement verified'),
    'return_required': L('成品退货', 'Return'),
    'return_qty': L('退货数量', 'Return quantity'),
    'claim_amount': L('索赔金额(元)', 'Claim amount'),
    'customer_informed': L('已告知客户', 'Customer informed'),
    'informed_on': L('告知日期', 'Informed on'),
    'status': L('状态', 'Status'),
    'closed_at': L('结案时间', 'Closed at'),
    'resolution_hours': L('处理用时(小时)', 'Resolution hours'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_complaint_help = {
    'code': '按客户投诉表单编号原则自动生成:TS-年月-流水号。',
    'severity': '情节重大者须即呈总经理核阅,提前处理并将处理情况函告客户;一般性质者由部门自行处理。',
    'owner': '无论情节大小,均由主管亲自或专门派员前往处理,以示慎重。',
    'responsible_dept': '调查后判定责任归属。',
    'corrective_action': '提出改善项目、拟定改善措施并追踪确认。',
    'claim_amount': '对于索赔,无论大小均应慎重处理,销售经理对所有资料均应过目。',
    'customer_informed': '处理结果以书面或电话通知客户。',
    'resolution_hours': '从受理到结案的小时数,结案时填写,用于统计平均处理时间。',
}


class ComplaintView(CrmModelView):
    entity = 'complaint'
    datamodel = CrmInterface(models.Complaint)
    class_permission_name = 'complaint'
    list_title = L('客户投诉', 'Complaint')
    show_title = L('客户投诉', 'Complaint')
    add_title = L('新增客户投诉', 'Add Complaint')
    edit_title = L('编辑客户投诉', 'Edit Complaint')
    list_columns = ['code', 'subject', 'customer', 'severity', 'deadline', 'owner', 'status']
    search_columns = ['code', 'subject', 'batch_no', 'severity', 'category', 'responsible_dept', 'return_required', 'status', 'owner']
    base_order = ('code', 'desc')
    label_columns = _complaint_labels
    description_columns = _complaint_help
    add_fieldsets = [
        (L('投诉受理', ''), {"fields": ['subject', 'customer', 'contact_name', 'received_at', 'channel', 'product_model', 'batch_no', 'severity', 'category', 'description', 'deadline'], "expanded": True}),
        (L('调查处理', ''), {"fields": ['responsible_dept', 'root_cause', 'handling'], "expanded": True}),
        (L('改善追踪', ''), {"fields": ['corrective_action', 'improvement_verified'], "expanded": True}),
        (L('退货与索赔', ''), {"fields": ['return_required', 'return_qty', 'claim_amount'], "expanded": False}),
        (L('告知客户与结案', ''), {"fields": ['customer_informed', 'informed_on', 'closed_at', 'resolution_hours'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('投诉受理', ''), {"fields": ['subject', 'customer', 'contact_name', 'received_at', 'channel', 'product_model', 'batch_no', 'severity', 'category', 'description', 'deadline'], "expanded": True}),
        (L('调查处理', ''), {"fields": ['responsible_dept', 'root_cause', 'handling'], "expanded": True}),
        (L('改善追踪', ''), {"fields": ['corrective_action', 'improvement_verified'], "expanded": True}),
        (L('退货与索赔', ''), {"fields": ['return_required', 'return_qty', 'claim_amount'], "expanded": False}),
        (L('告知客户与结案', ''), {"fields": ['customer_informed', 'informed_on', 'closed_at', 'resolution_hours'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('投诉受理', ''), {"fields": ['code', 'subject', 'customer', 'contact_name', 'received_at', 'channel', 'product_model', 'batch_no', 'severity', 'category', 'description', 'deadline', 'owner'], "expanded": True}),
        (L('调查处理', ''), {"fields": ['status', 'responsible_dept', 'root_cause', 'handling'], "expanded": True}),
        (L('改善追踪', ''), {"fields": ['corrective_action', 'improvement_verified'], "expanded": True}),
        (L('退货与索赔', ''), {"fields": ['return_required', 'return_qty', 'claim_amount'], "expanded": False}),
        (L('告知客户与结案', ''), {"fields": ['customer_informed', 'informed_on', 'closed_at', 'resolution_hours'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class ComplaintApi(CrmModelRestApi):
    entity = 'complaint'
    resource_name = 'complaint'
    datamodel = CrmInterface(models.Complaint)
    class_permission_name = 'complaint'
    list_columns = ['id', 'version', 'code', 'subject', 'customer', 'severity', 'deadline', 'owner', 'status']
    show_columns = ['id', 'version', 'code', 'subject', 'customer', 'contact_name', 'received_at', 'channel', 'product_model', 'batch_no', 'severity', 'category', 'description', 'deadline', 'owner', 'responsible_dept', 'root_cause', 'handling', 'corrective_action', 'improvement_verified', 'return_required', 'return_qty', 'claim_amount', 'customer_informed', 'informed_on', 'status', 'closed_at', 'resolution_hours', 'created_on', 'changed_on']
    add_columns = ['subject', 'customer', 'contact_name', 'received_at', 'channel', 'product_model', 'batch_no', 'severity', 'category', 'description', 'deadline', 'responsible_dept', 'root_cause', 'handling', 'corrective_action', 'improvement_verified', 'return_required', 'return_qty', 'claim_amount', 'customer_informed', 'informed_on', 'closed_at', 'resolution_hours']
    edit_columns = ['subject', 'customer', 'contact_name', 'received_at', 'channel', 'product_model', 'batch_no', 'severity', 'category', 'description', 'deadline', 'responsible_dept', 'root_cause', 'handling', 'corrective_action', 'improvement_verified', 'return_required', 'return_qty', 'claim_amount', 'customer_informed', 'informed_on', 'closed_at', 'resolution_hours']
    search_columns = ['code', 'subject', 'batch_no', 'severity', 'category', 'responsible_dept', 'return_required', 'status', 'owner']
    order_columns = ['id', 'code', 'subject', 'customer', 'severity', 'deadline', 'owner', 'status']
    base_order = ('code', 'desc')
    label_columns = _complaint_labels
    description_columns = _complaint_help
    list_title = L('客户投诉', 'Complaint')


_master_data_request_labels = {
    'code': L('申请编号', 'Number'),
    'request_type': L('申请类型', 'Request type'),
    'customer': L('客户', 'Customer'),
    'customer_name': L('客户名称', 'Customer name'),
    'brand': L('所属品牌', 'Brand'),
    'reason': L('申请原因', 'Reason'),
    'change_content': L('变更内容', 'Changes'),
    'tax_no': L('VAT号/税号', 'Tax number'),
    'address': L('地址', 'Address'),
    'phone': L('电话', 'Phone'),
    'bank_name': L('开户行', 'Bank'),
    'bank_account': L('银行账号', 'Bank account'),
    'ship_to': L('送达方', 'Ship-to party'),
    'credit_overdue': L('信用逾期', 'Credit overdue'),
    'has_inventory': L('库存不合理', 'Unreasonable stock'),
    'has_violation': L('严重市场违规', 'Market violation'),
    'evidence': L('账务分析/违规报告', 'Evidence'),
    'exceeds_authority': L('超出审批权限', 'Exceeds authority'),
    'status': L('审批状态', 'Status'),
    'owner': L('申请人', 'Applicant'),
    'sap_customer_no': L('SAP客户编号', 'SAP customer no.'),
    'processed_on': L('系统处理日期', 'Processed on'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_master_data_request_help = {
    'code': '系统按编号规则自动生成,不可修改。',
    'customer': '修改、冻结、删除时必选;新增开户时留空。',
    'customer_name': '新增开户时填写拟开户客户名称。',
    'change_content': '写明需新增或变更的字段及新值:名称、地址、电话、VAT号、开户行、银行账号、送达方、联系人等。',
    'tax_no': '15-20位数字或大写字母,与客户档案的税号规则一致(批准后写入客户档案)。',
    'credit_overdue': '冻结条件之一:按客户账务分析,信用不合理。',
    'has_inventory': '冻结条件之一:客户库存不合理。',
    'has_violation': '冻结条件之一:有严重的市场违规行为(附违规报告)。',
    'exceeds_authority': '资料变更或冻结超出总部审核权限时,须提报总裁审批。',
    'sap_customer_no': '数据中心在SAP中处理完成后回填。',
}


class MasterDataRequestView(CrmModelView):
    entity = 'master_data_request'
    datamodel = CrmInterface(models.MasterDataRequest)
    class_permission_name = 'master_data_request'
    list_title = L('主数据变更申请', 'Master data request')
    show_title = L('主数据变更申请', 'Master data request')
    add_title = L('新增主数据变更申请', 'Add Master data request')
    edit_title = L('编辑主数据变更申请', 'Edit Master data request')
    list_columns = ['code', 'request_type', 'customer_name', 'status', 'owner', 'processed_on']
    search_columns = ['code', 'request_type', 'customer_name', 'status', 'sap_customer_no', 'owner']
    base_order = ('code', 'desc')
    label_columns = _master_data_request_labels
    description_columns = _master_data_request_help
    add_fieldsets = [
        (L('申请信息', ''), {"fields": ['request_type', 'customer', 'customer_name', 'brand', 'reason'], "expanded": True}),
        (L('主数据内容', ''), {"fields": ['change_content', 'tax_no', 'address', 'phone', 'bank_name', 'bank_account', 'ship_to'], "expanded": True}),
        (L('冻结条件与审批权限', ''), {"fields": ['credit_overdue', 'has_inventory', 'has_violation', 'evidence', 'exceeds_authority'], "expanded": True}),
        (L('数据中心处理', ''), {"fields": ['sap_customer_no', 'processed_on'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('申请信息', ''), {"fields": ['request_type', 'customer', 'customer_name', 'brand', 'reason'], "expanded": True}),
        (L('主数据内容', ''), {"fields": ['change_content', 'tax_no', 'address', 'phone', 'bank_name', 'bank_account', 'ship_to'], "expanded": True}),
        (L('冻结条件与审批权限', ''), {"fields": ['credit_overdue', 'has_inventory', 'has_violation', 'evidence', 'exceeds_authority'], "expanded": True}),
        (L('数据中心处理', ''), {"fields": ['sap_customer_no', 'processed_on'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('申请信息', ''), {"fields": ['code', 'request_type', 'customer', 'customer_name', 'brand', 'reason', 'owner', 'status'], "expanded": True}),
        (L('主数据内容', ''), {"fields": ['change_content', 'tax_no', 'address', 'phone', 'bank_name', 'bank_account', 'ship_to'], "expanded": True}),
        (L('冻结条件与审批权限', ''), {"fields": ['credit_overdue', 'has_inventory', 'has_violation', 'evidence', 'exceeds_authority'], "expanded": True}),
        (L('数据中心处理', ''), {"fields": ['sap_customer_no', 'processed_on'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class MasterDataRequestApi(CrmModelRestApi):
    entity = 'master_data_request'
    resource_name = 'master_data_request'
    datamodel = CrmInterface(models.MasterDataRequest)
    class_permission_name = 'master_data_request'
    list_columns = ['id', 'version', 'code', 'request_type', 'customer_name', 'status', 'owner', 'processed_on']
    show_columns = ['id', 'version', 'code', 'request_type', 'customer', 'customer_name', 'brand', 'reason', 'change_content', 'tax_no', 'address', 'phone', 'bank_name', 'bank_account', 'ship_to', 'credit_overdue', 'has_inventory', 'has_violation', 'evidence', 'exceeds_authority', 'status', 'owner', 'sap_customer_no', 'processed_on', 'created_on', 'changed_on']
    add_columns = ['request_type', 'customer', 'customer_name', 'brand', 'reason', 'change_content', 'tax_no', 'address', 'phone', 'bank_name', 'bank_account', 'ship_to', 'credit_overdue', 'has_inventory', 'has_violation', 'evidence', 'exceeds_authority', 'sap_customer_no', 'processed_on']
    edit_columns = ['request_type', 'customer', 'customer_name', 'brand', 'reason', 'change_content', 'tax_no', 'address', 'phone', 'bank_name', 'bank_account', 'ship_to', 'credit_overdue', 'has_inventory', 'has_violation', 'evidence', 'exceeds_authority', 'sap_customer_no', 'processed_on']
    search_columns = ['code', 'request_type', 'customer_name', 'status', 'sap_customer_no', 'owner']
    order_columns = ['id', 'code', 'request_type', 'customer_name', 'status', 'owner', 'processed_on']
    base_order = ('code', 'desc')
    label_columns = _master_data_request_labels
    description_columns = _master_data_request_help
    list_title = L('主数据变更申请', 'Master data request')


_care_event_labels = {
    'subject': L('关怀主题', 'Subject'),
    'customer': L('客户', 'Customer'),
    'contact': L('联系人', 'Contact'),
    'care_type': L('关怀类型', 'Care type'),
    'planned_on': L('计划日期', 'Planned on'),
    'done_on': L('完成日期', 'Done on'),
    'gift': L('礼品/优惠', 'Gift or offer'),
    'content': L('祝福/活动内容', 'Content'),
    'cost': L('费用(元)', 'Cost'),
    'status': L('状态', 'Status'),
    'owner': L('负责人', 'Owner'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_care_event_help = {
    'gift': '贺卡、礼品、优惠券、积分等回馈形式。',
}


class CareEventView(CrmModelView):
    entity = 'care_event'
    datamodel = CrmInterface(models.CareEvent)
    class_permission_name = 'care_event'
    list_title = L('客户关怀', 'Customer care')
    show_title = L('客户关怀', 'Customer care')
    add_title = L('新增客户关怀', 'Add Customer care')
    edit_title = L('编辑客户关怀', 'Edit Customer care')
    list_columns = ['subject', 'customer', 'care_type', 'planned_on', 'status', 'owner']
    search_columns = ['subject', 'care_type', 'status', 'owner']
    base_order = ('id', 'desc')
    label_columns = _care_event_labels
    description_columns = _care_event_help
    add_fieldsets = [
        (L('关怀计划', ''), {"fields": ['subject', 'customer', 'contact', 'care_type', 'planned_on', 'status'], "expanded": True}),
        (L('关怀内容', ''), {"fields": ['gift', 'content', 'cost', 'done_on'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('关怀计划', ''), {"fields": ['subject', 'customer', 'contact', 'care_type', 'planned_on', 'status'], "expanded": True}),
        (L('关怀内容', ''), {"fields": ['gift', 'content', 'cost', 'done_on'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('关怀计划', ''), {"fields": ['subject', 'customer', 'contact', 'care_type', 'planned_on', 'owner', 'status'], "expanded": True}),
        (L('关怀内容', ''), {"fields": ['gift', 'content', 'cost', 'done_on'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class CareEventApi(CrmModelRestApi):
    entity = 'care_event'
    resource_name = 'care_event'
    datamodel = CrmInterface(models.CareEvent)
    class_permission_name = 'care_event'
    list_columns = ['id', 'version', 'subject', 'customer', 'care_type', 'planned_on', 'status', 'owner']
    show_columns = ['id', 'version', 'subject', 'customer', 'contact', 'care_type', 'planned_on', 'done_on', 'gift', 'content', 'cost', 'status', 'owner', 'created_on', 'changed_on']
    add_columns = ['subject', 'customer', 'contact', 'care_type', 'planned_on', 'done_on', 'gift', 'content', 'cost', 'status']
    edit_columns = ['subject', 'customer', 'contact', 'care_type', 'planned_on', 'done_on', 'gift', 'content', 'cost', 'status']
    search_columns = ['subject', 'care_type', 'status', 'owner']
    order_columns = ['id', 'subject', 'customer', 'care_type', 'planned_on', 'status', 'owner']
    base_order = ('id', 'desc')
    label_columns = _care_event_labels
    description_columns = _care_event_help
    list_title = L('客户关怀', 'Customer care')


_confidential_formula_labels = {
    'code': L('配方编号', 'Number'),
    'product_name': L('产品名称', 'Product'),
    'customer': L('客户', 'Customer'),
    'formula_version': L('版本号', 'Version'),
    'status': L('状态', 'Status'),
    'formula_content': L('配方内容', 'Formula'),
    'process_parameters': L('工艺参数', 'Process parameters'),
    'special_requirements': L('客户特殊要求', 'Special requirements'),
    'change_note': L('变更说明', 'Change note'),
    'review_cycle': L('审核周期', 'Review cycle'),
    'last_reviewed_on': L('上次审核日期', 'Last reviewed on'),
    'review_due': L('下次审核日期', 'Review due'),
    'approved_by': L('审批人', 'Approved by'),
    'owner': L('配方负责人', 'Owner'),
    'id': L('编号', 'ID'),
    'created_on': L('创建时间', 'Created on'),
    'changed_on': L('修改时间', 'Changed on'),
    'created_by': L('创建人', 'Created by'),
    'changed_by': L('修改人', 'Changed by'),
}
_confidential_formula_help = {
    'code': '系统按编号规则自动生成,不可修改。',
    'formula_version': '配方每次更新须升级版本号并写明变更说明,保证可追溯。',
    'formula_content': '商业机密:加密存储,仅授权人员可见、可改。',
    'process_parameters': '商业机密:加密存储。',
    'review_due': '每月或每季度对配方信息进行审核和更新。',
}


class ConfidentialFormulaView(CrmModelView):
    entity = 'confidential_formula'
    datamodel = CrmInterface(models.ConfidentialFormula)
    class_permission_name = 'confidential_formula'
    list_title = L('客户配方', 'Customer formula')
    show_title = L('客户配方', 'Customer formula')
    add_title = L('新增客户配方', 'Add Customer formula')
    edit_title = L('编辑客户配方', 'Edit Customer formula')
    list_columns = ['code', 'product_name', 'customer', 'formula_version', 'status', 'review_due', 'owner']
    search_columns = ['code', 'product_name', 'status', 'owner']
    base_order = ('code', 'desc')
    label_columns = _confidential_formula_labels
    description_columns = _confidential_formula_help
    add_fieldsets = [
        (L('基本信息', ''), {"fields": ['product_name', 'customer', 'formula_version', 'status', 'approved_by'], "expanded": True}),
        (L('配方内容(机密)', ''), {"fields": ['formula_content', 'process_parameters', 'special_requirements', 'change_note'], "expanded": True}),
        (L('定期审核', ''), {"fields": ['review_cycle', 'last_reviewed_on', 'review_due'], "expanded": True}),
    ]
    edit_fieldsets = [
        (L('基本信息', ''), {"fields": ['product_name', 'customer', 'formula_version', 'status', 'approved_by'], "expanded": True}),
        (L('配方内容(机密)', ''), {"fields": ['formula_content', 'process_parameters', 'special_requirements', 'change_note'], "expanded": True}),
        (L('定期审核', ''), {"fields": ['review_cycle', 'last_reviewed_on', 'review_due'], "expanded": True}),
    ]
    show_fieldsets = [
        (L('基本信息', ''), {"fields": ['code', 'product_name', 'customer', 'formula_version', 'status', 'owner', 'approved_by'], "expanded": True}),
        (L('配方内容(机密)', ''), {"fields": ['formula_content', 'process_parameters', 'special_requirements', 'change_note'], "expanded": True}),
        (L('定期审核', ''), {"fields": ['review_cycle', 'last_reviewed_on', 'review_due'], "expanded": True}),
        (L('记录信息', 'Record'), {"fields": ['created_by', 'created_on', 'changed_by', 'changed_on'], "expanded": False}),
    ]


class ConfidentialFormulaApi(CrmModelRestApi):
    entity = 'confidential_formula'
    resource_name = 'confidential_formula'
    datamodel = CrmInterface(models.ConfidentialFormula)
    class_permission_name = 'confidential_formula'
    list_columns = ['id', 'version', 'code', 'product_name', 'customer', 'formula_version', 'status', 'review_due', 'owner']
    show_columns = ['id', 'version', 'code', 'product_name', 'customer', 'formula_version', 'status', 'formula_content', 'process_parameters', 'special_requirements', 'change_note', 'review_cycle', 'last_reviewed_on', 'review_due', 'approved_by', 'owner', 'created_on', 'changed_on']
    add_columns = ['product_name', 'customer', 'formula_version', 'status', 'formula_content', 'process_parameters', 'special_requirements', 'change_note', 'review_cycle', 'last_reviewed_on', 'review_due', 'approved_by']
    edit_columns = ['product_name', 'customer', 'formula_version', 'status', 'formula_content', 'process_parameters', 'special_requirements', 'change_note', 'review_cycle', 'last_reviewed_on', 'review_due', 'approved_by']
    search_columns = ['code', 'product_name', 'status', 'owner']
    order_columns = ['id', 'code', 'product_name', 'customer', 'formula_version', 'status', 'review_due', 'owner']
    base_order = ('code', 'desc')
    label_columns = _confidential_formula_labels
    description_columns = _confidential_formula_help
    list_title = L('客户配方', 'Customer formula')

CustomerView.related_views = [ContactView, FollowUpView, VisitRequestView, MeetingMinutesView, CustomerDevelopmentView, ServiceCallView, SurveyResponseView, MaintenanceContractView, ComplaintView, MasterDataRequestView, CareEventView, ConfidentialFormulaView]
ContactView.related_views = [FollowUpView, VisitRequestView, CareEventView]
VisitRequestView.related_views = [MeetingMinutesView]
ServiceCallView.related_views = [TechnicianReportView, SurveyResponseView]
MaintenanceContractView.related_views = [ServiceCallView]

# (entity, screen, api, menu group, menu label zh, menu label en, menu group en)
REGISTRY = [
    ('customer', CustomerView, CustomerApi, '客户管理', '客户档案', 'Customer', 'Customers'),
    ('contact', ContactView, ContactApi, '客户管理', '联系人', 'Contact', 'Customers'),
    ('follow_up', FollowUpView, FollowUpApi, '客户管理', '跟进记录', 'Follow-up', 'Customers'),
    ('visit_request', VisitRequestView, VisitRequestApi, '客户管理', '客户走访单', 'Visit request', 'Customers'),
    ('meeting_minutes', MeetingMinutesView, MeetingMinutesApi, '客户管理', '会谈纪要', 'Meeting minutes', 'Customers'),
    ('customer_development', CustomerDevelopmentView, CustomerDevelopmentApi, '客户管理', '新客户开发', 'Customer development', 'Customers'),
    ('service_call', ServiceCallView, ServiceCallApi, '售后服务', '叫修登记', 'Service call', 'After-sales service'),
    ('technician_report', TechnicianReportView, TechnicianReportApi, '售后服务', '技术员工作日报', 'Technician daily report', 'After-sales service'),
    ('survey_response', SurveyResponseView, SurveyResponseApi, '售后服务', '满意度调查', 'Satisfaction survey', 'After-sales service'),
    ('maintenance_contract', MaintenanceContractView, MaintenanceContractApi, '合同管理', '维保合同', 'Maintenance contract', 'Contracts'),
    ('complaint', ComplaintView, ComplaintApi, '投诉管理', '客户投诉', 'Complaint', 'Complaints'),
    ('master_data_request', MasterDataRequestView, MasterDataRequestApi, '审批管理', '主数据变更申请', 'Master data request', 'Approvals'),
    ('care_event', CareEventView, CareEventApi, '客户关怀', '客户关怀', 'Customer care', 'Customer care'),
    ('confidential_formula', ConfidentialFormulaView, ConfidentialFormulaApi, '客户管理', '客户配方', 'Customer formula', 'Customers'),
]
