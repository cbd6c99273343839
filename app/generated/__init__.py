# generated from crm.xlsx — do not edit; run `crm generate` instead.
"""The application generated from crm.xlsx: models, screens, REST APIs and role grants."""

WORKBOOK = 'crm.xlsx'
ENTITIES = ['customer', 'contact', 'follow_up', 'visit_request', 'meeting_minutes', 'customer_development', 'service_call', 'technician_report', 'survey_response', 'maintenance_contract', 'complaint', 'master_data_request', 'care_event', 'confidential_formula']
