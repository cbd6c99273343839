# generated from crm.xlsx — do not edit; run `crm generate` instead.
"""Database models: one class per entity of the workbook."""

import datetime as _dt  # noqa: F401
import decimal as _decimal  # noqa: F401

import sqlalchemy.orm as _orm
from flask_appbuilder.security.sqla.models import User  # noqa: F401
from sqlalchemy import (  # noqa: F401
    Boolean, Column, Date, DateTime, ForeignKey, Integer, Numeric, String, Text,
)

from app.access.crypto import EncryptedText  # noqa: F401
from app.record.models import CrmRecord, Model


class Customer(CrmRecord, Model):
    __label__ = '客户档案'
    __tablename__ = 'customer'
    __entity__ = 'customer'
    __title_field__ = 'name'

    id = Column(Integer, primary_key=True)
    code = Column(String(30), nullable=True, unique=True)
    name = Column(String(100), nullable=False, unique=True)
    short_name = Column(String(30), nullable=True, index=True)
    customer_type = Column(String(64), nullable=True)
    industry = Column(String(64), nullable=True, index=True)
    region = Column(String(64), nullable=True, index=True)
    area_type = Column(String(64), nullable=True, default='urban')
    source_channel = Column(String(64), nullable=True, index=True)
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='Customer.owner_id', lazy="selectin")
    status = Column(String(64), nullable=False, index=True, default='prospect')
    phone = Column(String(40), nullable=True, index=True)
    email = Column(String(254), nullable=True)
    address = Column(String(200), nullable=True)
    birthday = Column(Date, nullable=True)
    employee_count = Column(Integer, nullable=True)
    annual_demand = Column(Numeric(18, 2), nullable=True)
    urgency = Column(String(64), nullable=False, default='potential')
    grade_override = Column(String(64), nullable=True)
    grade = Column(String(64), nullable=True, index=True)
    grade_reason = Column(Text, nullable=True)
    annual_amount = Column(Numeric(18, 2), nullable=True)
    repurchase_count = Column(Integer, nullable=True, default=0)
    value_tier = Column(String(64), nullable=True, index=True)
    first_contacted_on = Column(Date, nullable=True)
    last_contact_on = Column(Date, nullable=True)
    tax_no = Column(String(255), nullable=True)
    bank_name = Column(String(100), nullable=True)
    bank_account = Column(String(40), nullable=True)
    credit_limit = Column(Numeric(18, 2), nullable=True)
    notes = Column(Text, nullable=True)


class Contact(CrmRecord, Model):
    __label__ = '联系人'
    __tablename__ = 'contact'
    __entity__ = 'contact'
    __title_field__ = 'name'

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=False, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='Contact.customer_id', lazy="selectin"
    )
    name = Column(String(50), nullable=False, index=True)
    position = Column(String(50), nullable=True)
    department = Column(String(50), nullable=True)
    is_key_person = Column(Boolean, nullable=True, index=True, default=False)
    is_decision_maker = Column(Boolean, nullable=True, index=True, default=False)
    phone = Column(String(40), nullable=True, index=True)
    email = Column(String(254), nullable=True)
    wechat = Column(String(50), nullable=True)
    birthday = Column(Date, nullable=True)
    active = Column(Boolean, nullable=True, index=True, default=True)
    left_on = Column(Date, nullable=True)
    change_note = Column(Text, nullable=True)
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=True, index=True)
    owner = _orm.relationship(User, foreign_keys='Contact.owner_id', lazy="selectin")


class FollowUp(CrmRecord, Model):
    __label__ = '跟进记录'
    __tablename__ = 'follow_up'
    __entity__ = 'follow_up'
    __title_field__ = 'subject'

    id = Column(Integer, primary_key=True)
    subject = Column(String(100), nullable=False, index=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=False, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='FollowUp.customer_id', lazy="selectin"
    )
    contact_id = Column(Integer, ForeignKey('contact.id'), nullable=True, index=True)
    contact = _orm.relationship(
        'Contact', foreign_keys='FollowUp.contact_id', lazy="selectin"
    )
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='FollowUp.owner_id', lazy="selectin")
    method = Column(String(64), nullable=False, index=True, default='phone')
    planned_on = Column(Date, nullable=False)
    status = Column(String(64), nullable=False, index=True, default='planned')
    done_on = Column(Date, nullable=True)
    content = Column(Text, nullable=True, index=True)
    customer_feedback = Column(Text, nullable=True)
    next_step = Column(String(200), nullable=True)
    next_follow_on = Column(Date, nullable=True)


class VisitRequest(CrmRecord, Model):
    __label__ = '客户走访单'
    __tablename__ = 'visit_request'
    __entity__ = 'visit_request'
    __title_field__ = 'subject'

    id = Column(Integer, primary_key=True)
    code = Column(String(30), nullable=True, unique=True)
    subject = Column(String(100), nullable=False, index=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=False, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='VisitRequest.customer_id', lazy="selectin"
    )
    contact_id = Column(Integer, ForeignKey('contact.id'), nullable=True, index=True)
    contact = _orm.relationship(
        'Contact', foreign_keys='VisitRequest.contact_id', lazy="selectin"
    )
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='VisitRequest.owner_id', lazy="selectin")
    visit_at = Column(DateTime, nullable=False)
    purpose = Column(String(64), nullable=False, index=True)
    goal = Column(Text, nullable=False)
    participants = Column(String(200), nullable=True)
    referral = Column(String(100), nullable=True)
    materials = Column(String(200), nullable=True)
    status = Column(String(64), nullable=False, index=True, default='draft')
    approved_by_id = Column(Integer, ForeignKey('ab_user.id'), nullable=True, index=True)
    approved_by = _orm.relationship(User, foreign_keys='VisitRequest.approved_by_id', lazy="selectin")
    attendance_filed = Column(Boolean, nullable=True, default=False)
    result = Column(Text, nullable=True)


class MeetingMinutes(CrmRecord, Model):
    __label__ = '会谈纪要'
    __tablename__ = 'meeting_minutes'
    __entity__ = 'meeting_minutes'
    __title_field__ = 'subject'

    id = Column(Integer, primary_key=True)
    code = Column(String(30), nullable=True, unique=True)
    subject = Column(String(100), nullable=False, index=True)
    visit_request_id = Column(Integer, ForeignKey('visit_request.id'), nullable=True, index=True)
    visit_request = _orm.relationship(
        'VisitRequest', foreign_keys='MeetingMinutes.visit_request_id', lazy="selectin"
    )
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=False, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='MeetingMinutes.customer_id', lazy="selectin"
    )
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='MeetingMinutes.owner_id', lazy="selectin")
    meeting_date = Column(Date, nullable=False)
    due_date = Column(Date, nullable=True)
    attendees = Column(String(200), nullable=True)
    recorder = Column(String(50), nullable=True)
    content = Column(Text, nullable=False)
    customer_issues = Column(Text, nullable=True)
    proposals = Column(Text, nullable=True)
    reviewed = Column(Boolean, nullable=True, index=True, default=False)
    reviewed_by_id = Column(Integer, ForeignKey('ab_user.id'), nullable=True, index=True)
    reviewed_by = _orm.relationship(User, foreign_keys='MeetingMinutes.reviewed_by_id', lazy="selectin")
    sent_to_customer = Column(Boolean, nullable=True, index=True, default=False)
    sent_on = Column(Date, nullable=True)
    customer_confirmed = Column(Boolean, nullable=True, index=True, default=False)


class CustomerDevelopment(CrmRecord, Model):
    __label__ = '新客户开发'
    __tablename__ = 'customer_development'
    __entity__ = 'customer_development'
    __title_field__ = 'candidate_name'

    id = Column(Integer, primary_key=True)
    code = Column(String(30), nullable=True, unique=True)
    candidate_name = Column(String(100), nullable=False, index=True)
    industry = Column(String(64), nullable=True, index=True)
    contact_person = Column(String(50), nullable=True)
    phone = Column(String(40), nullable=True)
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='CustomerDevelopment.owner_id', lazy="selectin")
    expected_amount = Column(Numeric(18, 2), nullable=True)
    status = Column(String(64), nullable=False, index=True, default='general_survey')
    docs_received = Column(Boolean, nullable=True, default=False)
    general_findings = Column(Text, nullable=True)
    field_findings = Column(Text, nullable=True)
    meets_quality = Column(Boolean, nullable=True, default=False)
    delivery_capability = Column(Boolean, nullable=True, default=False)
    financial_ok = Column(Boolean, nullable=True, default=False)
    cooperative = Column(Boolean, nullable=True, default=False)
    confidentiality = Column(Boolean, nullable=True, default=False)
    cost_ok = Column(Boolean, nullable=True, default=False)
    trade_reason = Column(Text, nullable=True)
    product_list = Column(Text, nullable=True)
    supply_contract_signed = Column(Boolean, nullable=True, default=False)
    quality_contract_signed = Column(Boolean, nullable=True, default=False)
    payment_terms = Column(String(100), nullable=True)
    customer_code = Column(String(30), nullable=True, index=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=True, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='CustomerDevelopment.customer_id', lazy="selectin"
    )


class ServiceCall(CrmRecord, Model):
    __label__ = '叫修登记'
    __tablename__ = 'service_call'
    __entity__ = 'service_call'
    __title_field__ = 'code'

    id = Column(Integer, primary_key=True)
    code = Column(String(30), nullable=True, unique=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=False, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='ServiceCall.customer_id', lazy="selectin"
    )
    contact_name = Column(String(50), nullable=True)
    contact_phone = Column(String(40), nullable=True, index=True)
    address = Column(String(200), nullable=True)
    area_type = Column(String(64), nullable=False, index=True, default='urban')
    call_type = Column(String(64), nullable=False, index=True)
    contract_id = Column(Integer, ForeignKey('maintenance_contract.id'), nullable=True, index=True)
    contract = _orm.relationship(
        'MaintenanceContract', foreign_keys='ServiceCall.contract_id', lazy="selectin"
    )
    channel = Column(String(64), nullable=True, default='phone')
    product_model = Column(String(50), nullable=False, index=True)
    reported_at = Column(DateTime, nullable=False)
    fault_description = Column(Text, nullable=False)
    received_by_id = Column(Integer, ForeignKey('ab_user.id'), nullable=True, index=True)
    received_by = _orm.relationship(User, foreign_keys='ServiceCall.received_by_id', lazy="selectin")
    technician_id = Column(Integer, ForeignKey('ab_user.id'), nullable=True, index=True)
    technician = _orm.relationship(User, foreign_keys='ServiceCall.technician_id', lazy="selectin")
    dispatched_at = Column(DateTime, nullable=True)
    arrived_at = Column(DateTime, nullable=True)
    closed_at = Column(DateTime, nullable=True)
    sla_status = Column(String(64), nullable=True, index=True)
    voucher_no = Column(String(30), nullable=True)
    customer_signed = Column(Boolean, nullable=True, default=False)
    taken_back = Column(Boolean, nullable=True, default=False)
    receipt_no = Column(String(30), nullable=True)
    repair_card_no = Column(String(30), nullable=True)
    returned_on = Column(Date, nullable=True)
    parts_used = Column(Text, nullable=True)
    labor_hours = Column(Numeric(18, 4), nullable=True)
    fee = Column(Numeric(18, 2), nullable=True)
    invoice_no = Column(String(30), nullable=True)
    status = Column(String(64), nullable=False, index=True, default='registered')
    remarks = Column(Text, nullable=True)


class TechnicianReport(CrmRecord, Model):
    __label__ = '技术员工作日报'
    __tablename__ = 'technician_report'
    __entity__ = 'technician_report'
    __title_field__ = 'summary'

    id = Column(Integer, primary_key=True)
    summary = Column(String(200), nullable=False, index=True)
    report_date = Column(Date, nullable=False, index=True, default=_dt.date.today)
    technician_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    technician = _orm.relationship(User, foreign_keys='TechnicianReport.technician_id', lazy="selectin")
    service_call_id = Column(Integer, ForeignKey('service_call.id'), nullable=True, index=True)
    service_call = _orm.relationship(
        'ServiceCall', foreign_keys='TechnicianReport.service_call_id', lazy="selectin"
    )
    work_type = Column(String(64), nullable=True, index=True)
    hours = Column(Numeric(18, 4), nullable=False)
    parts_used = Column(Text, nullable=True)
    supervisor_reviewed = Column(Boolean, nullable=True, index=True, default=False)
    reviewed_by_id = Column(Integer, ForeignKey('ab_user.id'), nullable=True, index=True)
    reviewed_by = _orm.relationship(User, foreign_keys='TechnicianReport.reviewed_by_id', lazy="selectin")
    supervisor_comment = Column(Text, nullable=True)


class SurveyResponse(CrmRecord, Model):
    __label__ = '满意度调查'
    __tablename__ = 'survey_response'
    __entity__ = 'survey_response'
    __title_field__ = 'respondent'

    id = Column(Integer, primary_key=True)
    respondent = Column(String(50), nullable=False, index=True)
    service_call_id = Column(Integer, ForeignKey('service_call.id'), nullable=False, index=True)
    service_call = _orm.relationship(
        'ServiceCall', foreign_keys='SurveyResponse.service_call_id', lazy="selectin"
    )
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=True, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='SurveyResponse.customer_id', lazy="selectin"
    )
    technician_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    technician = _orm.relationship(User, foreign_keys='SurveyResponse.technician_id', lazy="selectin")
    attitude = Column(String(64), nullable=False)
    skill = Column(String(64), nullable=False)
    arrival = Column(String(64), nullable=False)
    promise = Column(String(64), nullable=False)
    suggestion = Column(Text, nullable=True)
    channel = Column(String(64), nullable=True, index=True, default='link')
    submitted_at = Column(DateTime, nullable=True)


class MaintenanceContract(CrmRecord, Model):
    __label__ = '维保合同'
    __tablename__ = 'maintenance_contract'
    __entity__ = 'maintenance_contract'
    __title_field__ = 'name'

    id = Column(Integer, primary_key=True)
    code = Column(String(30), nullable=True, unique=True)
    name = Column(String(100), nullable=False, index=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=False, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='MaintenanceContract.customer_id', lazy="selectin"
    )
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='MaintenanceContract.owner_id', lazy="selectin")
    signed_on = Column(Date, nullable=True)
    start_date = Column(Date, nullable=False)
    end_date = Column(Date, nullable=False, index=True)
    amount = Column(Numeric(18, 2), nullable=True)
    visits_per_year = Column(Integer, nullable=True)
    covered_products = Column(Text, nullable=True)
    renewal_status = Column(String(64), nullable=False, index=True, default='not_due')
    notice_sent_on = Column(Date, nullable=True)
    notes = Column(Text, nullable=True)


class Complaint(CrmRecord, Model):
    __label__ = '客户投诉'
    __tablename__ = 'complaint'
    __entity__ = 'complaint'
    __title_field__ = 'subject'

    id = Column(Integer, primary_key=True)
    code = Column(String(30), nullable=True, unique=True)
    subject = Column(String(100), nullable=False, index=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=False, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='Complaint.customer_id', lazy="selectin"
    )
    contact_name = Column(String(50), nullable=True)
    received_at = Column(DateTime, nullable=False)
    channel = Column(String(64), nullable=True, default='phone')
    product_model = Column(String(50), nullable=True)
    batch_no = Column(String(50), nullable=True, index=True)
    severity = Column(String(64), nullable=False, index=True, default='general')
    category = Column(String(64), nullable=False, index=True)
    description = Column(Text, nullable=False)
    deadline = Column(Date, nullable=False)
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='Complaint.owner_id', lazy="selectin")
    responsible_dept = Column(String(64), nullable=True, index=True)
    root_cause = Column(Text, nullable=True)
    handling = Column(Text, nullable=True)
    corrective_action = Column(Text, nullable=True)
    improvement_verified = Column(Boolean, nullable=True, default=False)
    return_required = Column(Boolean, nullable=True, index=True, default=False)
    return_qty = Column(Integer, nullable=True)
    claim_amount = Column(Numeric(18, 2), nullable=True)
    customer_informed = Column(Boolean, nullable=True, default=False)
    informed_on = Column(Date, nullable=True)
    status = Column(String(64), nullable=False, index=True, default='received')
    closed_at = Column(DateTime, nullable=True)
    resolution_hours = Column(Numeric(18, 4), nullable=True)


class MasterDataRequest(CrmRecord, Model):
    __label__ = '主数据变更申请'
    __tablename__ = 'master_data_request'
    __entity__ = 'master_data_request'
    __title_field__ = 'customer_name'

    id = Column(Integer, primary_key=True)
    code = Column(String(30), nullable=True, unique=True)
    request_type = Column(String(64), nullable=False, index=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=True, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='MasterDataRequest.customer_id', lazy="selectin"
    )
    customer_name = Column(String(100), nullable=False, index=True)
    brand = Column(String(50), nullable=True)
    reason = Column(Text, nullable=False)
    change_content = Column(Text, nullable=True)
    tax_no = Column(String(20), nullable=True)
    address = Column(String(200), nullable=True)
    phone = Column(String(40), nullable=True)
    bank_name = Column(String(100), nullable=True)
    bank_account = Column(String(40), nullable=True)
    ship_to = Column(String(200), nullable=True)
    credit_overdue = Column(Boolean, nullable=True, default=False)
    has_inventory = Column(Boolean, nullable=True, default=False)
    has_violation = Column(Boolean, nullable=True, default=False)
    evidence = Column(String(255), nullable=True)
    exceeds_authority = Column(Boolean, nullable=True, default=False)
    status = Column(String(64), nullable=False, index=True, default='draft')
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='MasterDataRequest.owner_id', lazy="selectin")
    sap_customer_no = Column(String(20), nullable=True, index=True)
    processed_on = Column(Date, nullable=True)


class CareEvent(CrmRecord, Model):
    __label__ = '客户关怀'
    __tablename__ = 'care_event'
    __entity__ = 'care_event'
    __title_field__ = 'subject'

    id = Column(Integer, primary_key=True)
    subject = Column(String(100), nullable=False, index=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=False, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='CareEvent.customer_id', lazy="selectin"
    )
    contact_id = Column(Integer, ForeignKey('contact.id'), nullable=True, index=True)
    contact = _orm.relationship(
        'Contact', foreign_keys='CareEvent.contact_id', lazy="selectin"
    )
    care_type = Column(String(64), nullable=False, index=True)
    planned_on = Column(Date, nullable=False)
    done_on = Column(Date, nullable=True)
    gift = Column(String(100), nullable=True)
    content = Column(Text, nullable=True)
    cost = Column(Numeric(18, 2), nullable=True)
    status = Column(String(64), nullable=False, index=True, default='planned')
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='CareEvent.owner_id', lazy="selectin")


class ConfidentialFormula(CrmRecord, Model):
    __label__ = '客户配方'
    __tablename__ = 'confidential_formula'
    __entity__ = 'confidential_formula'
    __title_field__ = 'product_name'

    id = Column(Integer, primary_key=True)
    code = Column(String(30), nullable=True, unique=True)
    product_name = Column(String(100), nullable=False, index=True)
    customer_id = Column(Integer, ForeignKey('customer.id'), nullable=False, index=True)
    customer = _orm.relationship(
        'Customer', foreign_keys='ConfidentialFormula.customer_id', lazy="selectin"
    )
    formula_version = Column(Integer, nullable=False, default=1)
    status = Column(String(64), nullable=False, index=True, default='draft')
    formula_content = Column(EncryptedText, nullable=False)
    process_parameters = Column(EncryptedText, nullable=True)
    special_requirements = Column(Text, nullable=True)
    change_note = Column(Text, nullable=True)
    review_cycle = Column(String(64), nullable=True, default='quarterly')
    last_reviewed_on = Column(Date, nullable=True)
    review_due = Column(Date, nullable=False)
    approved_by_id = Column(Integer, ForeignKey('ab_user.id'), nullable=True, index=True)
    approved_by = _orm.relationship(User, foreign_keys='ConfidentialFormula.approved_by_id', lazy="selectin")
    owner_id = Column(Integer, ForeignKey('ab_user.id'), nullable=False, index=True)
    owner = _orm.relationship(User, foreign_keys='ConfidentialFormula.owner_id', lazy="selectin")


MODELS = {
    'customer': Customer,
    'contact': Contact,
    'follow_up': FollowUp,
    'visit_request': VisitRequest,
    'meeting_minutes': MeetingMinutes,
    'customer_development': CustomerDevelopment,
    'service_call': ServiceCall,
    'technician_report': TechnicianReport,
    'survey_response': SurveyResponse,
    'maintenance_contract': MaintenanceContract,
    'complaint': Complaint,
    'master_data_request': MasterDataRequest,
    'care_event': CareEvent,
    'confidential_formula': ConfidentialFormula,
}
