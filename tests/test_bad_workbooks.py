"""A corpus of broken workbooks: each case asserts the exact cell and message (and writes nothing)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook
from openpyxl.utils import get_column_letter

from app.cli import main
from generator import WorkbookError, load_spec
from generator.problems import HINTS
from tests.workbooks import library_sheets, write_workbook

Sheets = dict[str, list[dict[str, Any]]]


def cell(sheets: Sheets, sheet: str, index: int, column: str) -> str:
    """The Excel reference of ``sheets[sheet][index][column]`` as ``write_workbook`` lays it out."""
    headers: list[str] = []
    for row in sheets[sheet]:
        for key in row:
            if key not in headers:
                headers.append(key)
    return f"{sheet}!{get_column_letter(headers.index(column) + 1)}{index + 2}"


def field_index(sheets: Sheets, entity: str, name: str) -> int:
    return next(i for i, r in enumerate(sheets["fields"]) if r["entity"] == entity and r["name"] == name)


def set_field(entity: str, name: str, **values: Any) -> Callable[[Sheets], tuple[str, str]]:
    def mutate(s: Sheets) -> tuple[str, str]:
        i = field_index(s, entity, name)
        s["fields"][i].update(values)
        return "fields", str(i)

    return mutate


# (id, mutation, sheet, row index or None, column, expected English message)
CASES: list[tuple[str, Callable[[Sheets], Any], str, Any, str, str]] = [
    ("missing sheet", lambda s: s.pop("fields"), "", None, "", "sheet 'fields' is missing"),
    ("missing column", lambda s: [r.pop("type") for r in s["fields"]], "fields", "header", "A", "required column 'type' is missing"),
    ("empty entity name", lambda s: s["entities"][1].update(name=None), "entities", 1, "name", "entity name must not be empty"),
    (
        "duplicate entity",
        lambda s: s["entities"][2].update(name="book"),
        "entities",
        2,
        "name",
        "duplicate entity 'book' (first at entities!A2)",
    ),
    ("duplicate field", lambda s: s["fields"][1].update(name="title"), "fields", 1, "name", "duplicate field 'title' (first at fields!B2)"),
    (
        "invalid identifier",
        lambda s: s["fields"][1].update(name="Book Title"),
        "fields",
        1,
        "name",
        "name 'Book Title' is not valid: use lowercase letters, digits and _ and start with a letter",
    ),
    ("python keyword", lambda s: s["fields"][1].update(name="class"), "fields", 1, "name", "'class' is a Python keyword"),
    ("reserved field", lambda s: s["fields"][1].update(name="id"), "fields", 1, "name", "'id' is a reserved name"),
    (
        "reserved entity class",
        lambda s: s["entities"].append({"name": "text", "label": "x"}),
        "entities",
        3,
        "name",
        "'text' is a reserved name",
    ),
    *[(f"entity named like a screen the application has ({name})",
       (lambda n: lambda s: s["entities"].append({"name": n, "label": "x"}))(name), "entities", 3, "name", f"'{name}' is a reserved name")
      for name in ("menu", "inbox", "security", "audit_log", "role_model")],
    ("text length max of 0", set_field("book", "title", max=0), "fields", ("book", "title"), "max",
     "a text length max of 0 must be a whole number above 0"),
    ("negative text length max", set_field("book", "isbn", max=-5), "fields", ("book", "isbn"), "max",
     "a text length max of -5 must be a whole number above 0"),
    ("encrypted and unique", set_field("book", "isbn", encrypted="yes"), "fields", ("book", "isbn"), "unique",
     "an encrypted field cannot be unique: the database holds ciphertext, which cannot be compared, checked for duplicates or searched"),
    ("encrypted and searchable", set_field("book", "title", encrypted="yes"), "fields", ("book", "title"), "search",
     "an encrypted field cannot be searchable: the database holds ciphertext, which cannot be compared, checked for duplicates or "
     "searched"),
    ("encrypted title field", lambda s: (s["entities"][0].update(title_field="blurb"),
                                         s["fields"].append({"entity": "book", "name": "blurb", "label": "简介", "type": "text",
                                                             "encrypted": "yes"})),
     "entities", 0, "title_field", "an encrypted field cannot be the title field: the database holds ciphertext, which cannot be "
     "compared, checked for duplicates or searched"),
    ("working hours past midnight", lambda s: s["settings"].append({"key": "working_hours", "value": "08:00-12:00,13:00-24:00"}),
     "settings", 1, "value", "setting working_hours: '08:00-12:00,13:00-24:00' is not valid"),
    ("working hours overlapping", lambda s: s["settings"].append({"key": "working_hours", "value": "09:00-12:00,11:00-13:00"}),
     "settings", 1, "value", "setting working_hours: '09:00-12:00,11:00-13:00' is not valid"),
    ("a schedule every million years",
     lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "every 999999999 days"}]),
     "schedules", 0, "when", "duration 'every 999999999 days' is longer than 100 years"),
    ("a due moment centuries after its date",
     lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "due_on + 99999999 working hours"}]),
     "schedules", 0, "when", "duration 'due_on + 99999999 working hours' is longer than 100 years"),
    ("an escalation after centuries",
     lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "recipients": "馆员",
                                    "escalate_after": "999999 weeks", "escalate_to": "馆员"}]),
     "schedules", 0, "escalate_after", "duration '999999 weeks' is longer than 100 years"),
    ("unknown type", lambda s: s["fields"][3].update(type="choise"), "fields", 3, "type", "unknown type 'choise'"),
    ("link to unknown entity", set_field("loan", "book", link="books"), "fields", ("loan", "book"), "link", "unknown entity 'books'"),
    (
        "choice list missing",
        set_field("book", "genre", choices=None),
        "fields",
        ("book", "genre"),
        "choices",
        "a choice field needs a choice list",
    ),
    (
        "choice list undefined",
        set_field("book", "genre", choices="genres"),
        "fields",
        ("book", "genre"),
        "choices",
        "choice list 'genres' does not exist",
    ),
    (
        "default not in choices",
        set_field("book", "genre", default="poetry"),
        "fields",
        ("book", "genre"),
        "default",
        "'poetry' is not in choice list genre",
    ),
    (
        "default of wrong type",
        set_field("book", "pages", default="many"),
        "fields",
        ("book", "pages"),
        "default",
        "default 'many' is not a valid integer",
    ),
    (
        "bad date default",
        set_field("loan", "due_on", default="31/02/2026"),
        "fields",
        ("loan", "due_on"),
        "default",
        "default '31/02/2026' is not a valid date",
    ),
    ("default below min", set_field("book", "pages", default=0), "fields", ("book", "pages"), "default", "default 0 is below the minimum 1"),
    (
        "default above max",
        set_field("book", "pages", default=9000),
        "fields",
        ("book", "pages"),
        "default",
        "default 9000 is above the maximum 5000",
    ),
    (
        "default longer than max",
        set_field("book", "isbn", default="978-7-111-12345-6-000"),
        "fields",
        ("book", "isbn"),
        "default",
        "default '978-7-111-12345-6-00…' is longer than 20 characters",
    ),
    (
        "default shorter than min",
        set_field("member", "full_name", min=2, default="张"),
        "fields",
        ("member", "full_name"),
        "default",
        "default '张' is shorter than 2 characters",
    ),
    (
        "default longer than its column",
        set_field("member", "full_name", default="张" * 256),
        "fields",
        ("member", "full_name"),
        "default",
        f"default '{'张' * 20}…' is longer than 255 characters",
    ),
    (
        "default against pattern",
        set_field("book", "isbn", pattern="^[0-9-]+$", default="unknown"),
        "fields",
        ("book", "isbn"),
        "default",
        "default 'unknown' does not match the pattern ^[0-9-]+$",
    ),
    (
        "default not an e-mail",
        set_field("member", "email", default="front desk"),
        "fields",
        ("member", "email"),
        "default",
        "default 'front desk' is not an e-mail address",
    ),
    (
        "default not a phone number",
        lambda s: s["fields"].append({"entity": "member", "name": "phone", "type": "phone", "default": "ask at desk"}),
        "fields",
        len(library_sheets()["fields"]),
        "default",
        "default 'ask at desk' is not a phone number",
    ),
    (
        "money default with more than two decimals",
        lambda s: s["fields"].append({"entity": "book", "name": "price", "type": "money", "default": "9.995"}),
        "fields",
        len(library_sheets()["fields"]),
        "default",
        "default 9.995 has more than 2 decimals",
    ),
    ("min greater than max", set_field("book", "pages", min=10, max=5), "fields", ("book", "pages"), "min", "min 10 is greater than max 5"),
    (
        "bad regex",
        set_field("book", "isbn", pattern="[0-9"),
        "fields",
        ("book", "isbn"),
        "pattern",
        "invalid regular expression: unterminated character set at position 0",
    ),
    ("bad boolean", set_field("book", "title", required="maybe"), "fields", ("book", "title"), "required", "'maybe' is not a yes/no value"),
    (
        "form unknown field",
        lambda s: s.update(forms=[{"entity": "book", "view": "add", "section": "基本", "field": "titel"}]),
        "forms",
        0,
        "field",
        "entity book has no field 'titel'",
    ),
    (
        "form bad view",
        lambda s: s.update(forms=[{"entity": "book", "view": "lst", "section": "基本", "field": "title"}]),
        "forms",
        0,
        "view",
        "view 'lst' is not valid",
    ),
    ("permission unknown role", lambda s: s["permissions"][0].update(role="馆员们"), "permissions", 0, "role", "unknown role '馆员们'"),
    (
        "permission unknown entity",
        lambda s: s["permissions"][0].update(entity="boook"),
        "permissions",
        0,
        "entity",
        "unknown entity 'boook'",
    ),
    ("bad scope", lambda s: s["permissions"][1].update(scope="mine"), "permissions", 1, "scope", "scope 'mine' is not valid"),
    (
        "scope without owner",
        lambda s: s["permissions"][0].update(scope="own"),
        "permissions",
        0,
        "scope",
        "entity book has no owner field, so scope cannot be own",
    ),
    (
        "hidden unknown field",
        lambda s: s["permissions"][0].update(hidden_fields="isbn, price"),
        "permissions",
        0,
        "hidden_fields",
        "entity book has no field 'price'",
    ),
    (
        "numbering without counter",
        lambda s: s["entities"][2].update(numbering="JY-{YYYY}"),
        "entities",
        2,
        "numbering",
        "numbering 'JY-{YYYY}' has no counter like {####}",
    ),
    (
        "owner not a user field",
        lambda s: s["entities"][1].update(owner_field="email"),
        "entities",
        1,
        "owner_field",
        "owner field 'email' must be a user field",
    ),
    (
        "title field unknown",
        lambda s: s["entities"][0].update(title_field="name"),
        "entities",
        0,
        "title_field",
        "title field 'name' must be a string field",
    ),
    (
        "column clash",
        lambda s: s["fields"].append({"entity": "loan", "name": "book_id", "type": "integer"}),
        "fields",
        ("loan", "book"),
        "name",
        "field 'book' clashes with column book_id of book_id",
    ),
    (
        "grading unknown field in condition",
        lambda s: s.update(grading=[{"entity": "book", "field": "genre", "grade": "novel", "condition": "pagez > 100"}]),
        "grading",
        0,
        "condition",
        "condition 'pagez > 100' is wrong: unknown field 'pagez'",
    ),
    (
        "grading unsafe expression",
        lambda s: s.update(grading=[{"entity": "book", "field": "genre", "grade": "novel", "condition": "__import__('os')"}]),
        "grading",
        0,
        "condition",
        "condition '__import__('os')' is wrong: unknown function __import__; allowed: today, now, days_since, days_until, "
        "hours_since, len, abs, min, max, lower, is_blank, working_hours, changed, if, round, concat, days, year, month, "
        "working_days, count, sum, avg",
    ),
    (
        "a setting twice",
        lambda s: s["settings"].append({"key": "app_name", "value": "第二个名字"}),
        "settings",
        1,
        "key",
        "duplicate setting 'app_name' (first at settings!A2)",
    ),
    (
        "two entity names, one program name",
        lambda s: (s["entities"].extend([{"name": "x1", "label": "甲"}, {"name": "x_1", "label": "乙"}]),
                   s["fields"].extend([{"entity": "x1", "name": "a", "label": "甲", "type": "string"},
                                       {"entity": "x_1", "name": "a", "label": "乙", "type": "string"}])),
        "entities",
        4,
        "name",
        "entity name 'x_1' gives the same program name as 'x1' (at entities!A5): one would replace the other",
    ),
    (
        "the anonymous role",
        lambda s: s["roles"].append({"role": "Public", "label": "访客"}),
        "roles",
        3,
        "role",
        "role name 'Public' is the system's role of visitors who are not signed in: its rights would be open to everyone",
    ),
    (
        "a role name with a separator",
        lambda s: s["roles"].append({"role": "护士,护工"}),
        "roles",
        3,
        "role",
        "role name '护士,护工' contains a separator (comma, semicolon, 、): cells listing roles could never name it",
    ),
    (
        "a required field hidden from a role that adds",
        lambda s: s["permissions"][0].update(hidden_fields="title"),
        "permissions",
        0,
        "hidden_fields",
        "role 馆员 may add book records, but required field 'title' is hidden from it and has no default: it could never save a new record",
    ),
    (
        "required and read-only with nothing to fill it",
        lambda s: s["fields"].append({"entity": "book", "name": "shelf", "label": "书架", "type": "string", "required": "yes", "readonly": "yes"}),
        "fields",
        12,
        "name",
        "field 'shelf' of entity book is required and read-only with no default: nobody could fill it when a record is made",
    ),
    (
        "one action twice from one state",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改"},
                                      {"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改"}]),
        "workflows",
        1,
        "action",
        "duplicate action 'novel: 改' (first at workflows!E2)",
    ),
    (
        "one menu group, two English names",
        lambda s: (s["entities"][0].update(menu_en="Holdings"), s["entities"][2].update(menu="馆藏", menu_en="Loans")),
        "entities",
        2,
        "menu_en",
        "menu group '馆藏' is called 'Loans' here but 'Holdings' at entities!F2",
    ),
    (
        "two actions for one move",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改"},
                                      {"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "换"}]),
        "workflows",
        1,
        "to",
        "duplicate transition 'novel → science' (first at workflows!E2)",
    ),
    (
        "one English action name for two buttons",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改",
                                       "action_en": "Change"},
                                      {"entity": "book", "state_field": "genre", "from": "novel", "to": "poem", "action": "换",
                                       "action_en": "Change"}]),
        "workflows",
        1,
        "action_en",
        "duplicate action 'novel: Change' (first at workflows!E2)",
    ),
    (
        "an action named as another's English name",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改",
                                       "action_en": "换"},
                                      {"entity": "book", "state_field": "genre", "from": "novel", "to": "poem", "action": "换"}]),
        "workflows",
        1,
        "action",
        "duplicate action 'novel: 换' (first at workflows!E2)",
    ),
    (
        "changed() of a system column",
        lambda s: s.update(validations=[{"entity": "loan", "condition": "not changed(created_on)", "message": "m"}]),
        "validations",
        0,
        "condition",
        "condition 'not changed(created_on)' is wrong: changed(created_on) is never true: only fields of the fields sheet change",
    ),
    (
        "workflow unknown state",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "poem", "action": "改"}]),
        "workflows",
        0,
        "to",
        "'poem' is not in choice list genre",
    ),
    (
        "workflow unknown role",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改", "roles": "馆长们"}]),
        "workflows",
        0,
        "roles",
        "unknown role '馆长们'",
    ),
    (
        "workflow unreachable state",
        lambda s: (
            s["choices"].append({"list": "genre", "value": "poem", "label": "诗歌"}),
            s.update(workflows=[
                {"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改"},
                {"entity": "book", "state_field": "genre", "from": "poem", "to": "novel", "action": "回"},
            ]),
        ),
        "workflows",
        1,
        "action",
        "state 'poem' can never be reached",
    ),
    (
        "workflow notify names an unknown role among several",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改",
                                       "notify": "owner、馆员;馆长门"}]),
        "workflows",
        0,
        "notify",
        "recipient '馆长门' is not valid",
    ),
    (
        "workflow stamps an unknown field",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改",
                                       "stamp": "approver"}]),
        "workflows",
        0,
        "stamp",
        "entity book has no field 'approver'",
    ),
    (
        "workflow stamps a text field",
        lambda s: s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改",
                                       "stamp": "title"}]),
        "workflows",
        0,
        "stamp",
        "an action fills only a person, date or datetime field; field 'title' is string",
    ),
    (
        "workflow stamps a field people can edit",
        lambda s: (s["fields"].append({"entity": "book", "name": "checked_on", "label": "审核日期", "type": "date"}),
                   s.update(workflows=[{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改",
                                        "stamp": "checked_on"}])),
        "workflows",
        0,
        "stamp",
        "field 'checked_on' is filled by a workflow action and must be read-only, or a form could overwrite it",
    ),
    (
        "a role that adds records cannot have a required field read-only",
        lambda s: s["permissions"][0].update(readonly_fields="isbn、title"),
        "permissions",
        0,
        "readonly_fields",
        "role 馆员 may add book records but required field 'title' is read-only for it and has no default: it could never save one",
    ),
    (
        "read-only field that does not exist",
        lambda s: s["permissions"][0].update(readonly_fields="pages, isbm"),
        "permissions",
        0,
        "readonly_fields",
        "entity book has no field 'isbm'",
    ),
    (
        "template unknown placeholder",
        lambda s: s.update(templates=[{"name": "due", "channel": "email", "subject": "到期", "body": "{{ recrod.title }}"}]),
        "templates",
        0,
        "body",
        "template placeholder error: unknown placeholder 'recrod'",
    ),
    (
        "template unknown filter",
        lambda s: s.update(templates=[{"name": "due", "channel": "email", "subject": "到期", "body": "{{ record.due_on|date }}"}]),
        "templates",
        0,
        "body",
        "template placeholder error: unknown filter 'date'",
    ),
    (
        "template unknown test",
        lambda s: s.update(templates=[{"name": "due", "channel": "email", "subject": "{% if due is past %}逾期{% endif %}"}]),
        "templates",
        0,
        "subject",
        "template placeholder error: unknown test 'past'",
    ),
    (
        "schedule unknown template",
        lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "template": "nope"}]),
        "schedules",
        0,
        "template",
        "template 'nope' does not exist",
    ),
    (
        "schedule on a non-date field",
        lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "code + 1 day"}]),
        "schedules",
        0,
        "when",
        "field 'code' in a time rule must be a date or datetime",
    ),
    (
        "escalation ladder with more delays than roles",
        lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "recipients": "馆员",
                                       "escalate_after": "1 working day; 2 working days", "escalate_to": "馆员"}]),
        "schedules",
        0,
        "escalate_to",
        "escalate_after has 2 step(s) but escalate_to has 1: they go in pairs",
    ),
    (
        "escalation ladder with an unknown role on the second step",
        lambda s: s.update(schedules=[{"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "recipients": "馆员",
                                       "escalate_after": "1 day; 2 days", "escalate_to": "馆员; 总馆长"}]),
        "schedules",
        0,
        "escalate_to",
        "unknown role '总馆长'",
    ),
    (
        "report measure misspelt",
        lambda s: s.update(reports=[{"name": "pages", "entity": "book", "group_by": "genre", "measure": "avg(pages), average(pages)"}]),
        "reports",
        0,
        "measure",
        "measure 'average(pages)' is not valid",
    ),
    (
        "report period on a non-date",
        lambda s: s.update(reports=[{"name": "by_genre", "entity": "book", "group_by": "genre", "period": "month"}]),
        "reports",
        0,
        "period",
        "group_by 'genre' is not a date, so it cannot be grouped by period",
    ),
    (
        "report pie with two measures",
        lambda s: s.update(reports=[{"name": "p", "entity": "book", "group_by": "genre", "measure": "count, sum(pages)", "chart": "pie"}]),
        "reports",
        0,
        "chart",
        "a pie chart shows one measure",
    ),
    (
        "report average of a non-numeric choice",
        lambda s: s.update(reports=[{"name": "g", "entity": "loan", "group_by": "member", "measure": "avg(book.genre)"}]),
        "reports",
        0,
        "measure",
        "field 'book.genre' is not numeric",
    ),
    (
        "language setting not zh or en",
        lambda s: s["settings"].append({"key": "language", "value": "中文"}),
        "settings",
        1,
        "value",
        "setting language: '中文' is not valid",
    ),
    (
        "misspelt setting key",
        lambda s: s["settings"].append({"key": "holiday", "value": "2026-10-01"}),
        "settings",
        1,
        "key",
        "unknown setting 'holiday'",
    ),
    ("max not finite", set_field("book", "isbn", max="inf"), "fields", ("book", "isbn"), "max", "'inf' is not a number"),
    ("min too large for a number", set_field("book", "pages", min="1e999"), "fields", ("book", "pages"), "min", "'1e999' is not a number"),
    ("default not finite", set_field("book", "pages", default="inf"), "fields", ("book", "pages"), "default",
     "default 'inf' is not a valid integer"),
    (
        "survey scale not a number",
        lambda s: s.update(surveys=[{"survey": "visit", "question": "满意吗?", "scale": "nan"}]),
        "surveys",
        0,
        "scale",
        "'nan' is not a number",
    ),
    (
        "unknown working day",
        lambda s: s["settings"].append({"key": "working_days", "value": "mon, tue, mongo"}),
        "settings",
        1,
        "value",
        "setting working_days: 'mongo' is not valid",
    ),
    (
        "entity previous_name still an entity",
        lambda s: s["entities"][0].update(previous_name="member"),
        "entities",
        0,
        "previous_name",
        "entity 'member' is still in the workbook, so it cannot be a previous name",
    ),
    (
        "two entities renamed from one previous_name",
        lambda s: (s["entities"][0].update(previous_name="volume"), s["entities"][1].update(previous_name="volume")),
        "entities",
        1,
        "previous_name",
        "duplicate previous name 'volume' (first at entities!F2)",
    ),
    (
        "field previous_name still a field",
        set_field("book", "isbn", previous_name="title"),
        "fields",
        ("book", "isbn"),
        "previous_name",
        "field 'title' is still in the workbook, so it cannot be a previous name",
    ),
    (
        "two fields renamed from one previous_name",
        lambda s: (set_field("book", "isbn", previous_name="code_no")(s), set_field("book", "pages", previous_name="code_no")(s)),
        "fields",
        ("book", "pages"),
        "previous_name",
        "duplicate previous name 'code_no' (first at fields!J3)",
    ),
]


def _expected_ref(sheets: Sheets, sheet: str, index: Any, column: str) -> str:
    if index is None:
        return "bad.xlsx"
    if index == "header":
        return f"{sheet}!A1"
    if isinstance(index, tuple):
        index = field_index(sheets, *index)
    return cell(sheets, sheet, index, column)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_workbook_reports_cell_and_message(tmp_path: Path, case: Any) -> None:
    _name, mutate, sheet, index, column, message = case
    sheets = copy.deepcopy(library_sheets())
    mutate(sheets)
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    found = [(p.ref, p.text("en")) for p in err.value.problems]
    assert (_expected_ref(sheets, sheet, index, column), message) in found


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["fields"][1]["type"] = "strin"
    sheets["fields"][3]["type"] = "choise"
    sheets["permissions"][0]["role"] = "nobody"
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    assert len(err.value.problems) == 3


def test_a_wrong_field_in_a_template_points_at_the_template_cell_once(tmp_path: Path) -> None:
    # the path is the template's mistake: its cell is where to fix it, whichever schedules send it
    sheets = library_sheets()
    sheets["templates"] = [{"name": "due", "channel": "email", "subject": "{{ record.book.titel }} 到期", "body": "{{ record.code }}"}]
    sheets["schedules"] = [
        {"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "recipients": "馆员", "template": "due"},
        {"name": "overdue", "entity": "loan", "when": "due_on + 1 day", "recipients": "馆员", "template": "due"},
    ]
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert [p.format("bad.xlsx", "zh") for p in err.value.problems] == [
        f"bad.xlsx › {cell(sheets, 'templates', 0, 'subject')} (schedule due_soon, entity loan): "
        "模板占位符 record.book.titel 有误:实体 book 没有字段 'titel' "
        "(template placeholder record.book.titel: entity book has no field 'titel') — 是否想写 'title'? (did you mean 'title'?)"
    ]


# A condition runs in Python on save and as SQL in the nightly regrade, reminders and dashboards;
# the two agree only when both sides of a comparison have one type, and a choice field holds the
# choice's value (not its label). (sheet, row, expected line in English)
CONDITION_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "grading",
        {"entity": "book", "field": "genre", "grade": "science", "condition": "genre == 'novell'"},
        "condition 'genre == 'novell'' is wrong: 'novell' is not a choice of field genre (list genre)"
        " — did you mean 'novel'?",
    ),
    (
        "workflows",
        {"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改", "condition": "genre != '小说'"},
        "condition 'genre != '小说'' is wrong: '小说' is not a choice of field genre (list genre)"
        " — conditions compare the choice's value: write 'novel', not its label '小说'",
    ),
    (
        "schedules",
        {"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "condition": "book.genre in ('novel', '科普类')"},
        "condition 'book.genre in ('novel', '科普类')' is wrong: '科普类' is not a choice of field book.genre (list genre)"
        " — did you mean 'science'?",
    ),
    (
        "validations",
        {"entity": "book", "condition": "pages > '100'", "message": "太短"},
        "condition 'pages > '100'' is wrong: pages is a number field (integer) but '100' is text; they cannot be compared"
        " — write numbers without quotes: pages > 100",
    ),
    (
        "reports",
        {"name": "r", "entity": "book", "condition": "title == 5"},
        "condition 'title == 5' is wrong: title is a text field (string) but 5 is a number; they cannot be compared"
        " — put text and choice values in quotes: title == '5'",
    ),
    (
        "schedules",
        {"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "condition": "book.pages in (100, '200')"},
        "condition 'book.pages in (100, '200')' is wrong: book.pages is a number field (integer) but '200' is text;"
        " they cannot be compared — write numbers without quotes: book.pages in (100, 200)",
    ),
    (
        "validations",
        {"entity": "loan", "condition": "due_on >= created_on", "message": "太早"},
        "condition 'due_on >= created_on' is wrong: due_on is a date field (date) but created_on is a date and time;"
        " they cannot be compared — compare a date with a date (a date and time with one): use today(), now() or"
        " days_since(field) > days",
    ),
    (
        "validations",
        {"entity": "loan", "condition": "returned == 'yes'", "message": "m"},
        "condition 'returned == 'yes'' is wrong: returned is a yes/no field (boolean) but 'yes' is text; they cannot be"
        " compared — write a yes/no field on its own (or not field), or compare it with True/False",
    ),
    (
        "grading",
        {"entity": "book", "field": "genre", "grade": "novel", "condition": "changed(pages)"},
        "condition 'changed(pages)' uses changed(…): it is about the change being saved, so it belongs on the validations"
        " sheet only — to lock a field in a state, write a rule on the validations sheet, such as status == 'draft' or not"
        " changed(visit_at)",
    ),
    (
        "schedules",
        {"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "condition": "not changed(due_on)"},
        "condition 'not changed(due_on)' uses changed(…): it is about the change being saved, so it belongs on the"
        " validations sheet only — to lock a field in a state, write a rule on the validations sheet, such as status =="
        " 'draft' or not changed(visit_at)",
    ),
    (
        "validations",
        {"entity": "loan", "condition": "returned or not changed(book.pages)", "message": "m"},
        "condition 'returned or not changed(book.pages)' is wrong: changed() takes a field of the record itself, such as"
        " changed(visit_at)",
    ),
    (
        "validations",
        {"entity": "loan", "condition": "returned or not changed(due_onn)", "message": "m"},
        "condition 'returned or not changed(due_onn)' is wrong: unknown field 'due_onn' — did you mean 'due_on'?",
    ),
]


@pytest.mark.parametrize("sheet,row,expected", CONDITION_CASES, ids=[c[2][:40] for c in CONDITION_CASES])
def test_conditions_compare_values_of_the_fields_type_and_choices(tmp_path: Path, sheet: str, row: dict[str, Any], expected: str) -> None:
    sheets = library_sheets()
    sheets[sheet] = [row]
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    key = "trigger" if sheet == "surveys" else "condition"
    lines = [(p.ref, p.message.render("en") + (f" — {p.hint.render('en', HINTS)}" if p.hint else "")) for p in err.value.problems]
    assert lines == [(cell(sheets, sheet, 0, key), expected)]


def test_conditions_that_compare_like_types_and_known_choices_pass(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["validations"] = [
        {"entity": "loan", "condition": "book.genre in ('novel', 'science') or book.genre == None", "message": "m"},
        {"entity": "loan", "condition": "not returned or due_on <= today() or returned == True", "message": "m"},
        {"entity": "loan", "condition": "book.pages >= 1 and len(book.title) > 0 and lower(book.title) != 'x'", "message": "m"},
        {"entity": "loan", "condition": "days_since(due_on) < 30 and created_on <= now() and id > 0", "message": "m"},
        {"entity": "loan", "condition": "not returned or not (changed(due_on) or changed(book))", "message": "m"},
    ]
    sheets["surveys"] = [{"survey": "s", "question": "q", "trigger": "loan.book.genre == 'novel'"}]
    load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))


def test_a_choice_in_a_survey_trigger_is_checked(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["surveys"] = [{"survey": "s", "question": "q", "trigger": "loan.book.genre == 'Novel'"}]
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert [(p.ref, p.text("zh"), p.hint.render("zh", HINTS) if p.hint else "") for p in err.value.problems] == [
        (cell(sheets, "surveys", 0, "trigger"), "条件 'book.genre == 'Novel'' 有误:'Novel' 不是字段 book.genre 的选项(选项列表 genre)",
         "是否想写 'novel'?")
    ]


def test_a_misspelt_header_is_reported_once_and_its_column_still_read(tmp_path: Path) -> None:
    sheets = library_sheets()
    for row in sheets["fields"]:
        row["typ"] = row.pop("type")
    sheets["fields"][3]["typ"] = "choise"  # a real mistake in that column is still found
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    header = cell(sheets, "fields", 0, "typ").replace("2", "1")
    assert [(p.ref, p.format("", "zh").split(": ", 1)[1]) for p in err.value.reported] == [
        (header, "未知列 'typ' (unknown column 'typ') — 是否想写 'type'?本次检查已把该列当作 type 读取"
                  " (did you mean 'type'? this check read the column as type)"),
        (cell(sheets, "fields", 3, "typ"), "类型 'choise' 未知 (unknown type 'choise') — 是否想写 'choice'? (did you mean 'choice'?)"),
    ]


def test_a_misspelt_optional_header_does_not_make_every_row_wrong(tmp_path: Path) -> None:
    sheets = library_sheets()
    for row in sheets["fields"]:
        row["choice"] = row.pop("choices", None)
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert [p.text("en") for p in err.value.reported] == ["unknown column 'choice'"]


def test_a_missing_required_column_is_reported_once_not_on_every_row(tmp_path: Path) -> None:
    sheets = library_sheets()
    for row in sheets["fields"]:
        row.pop("type")
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert [(p.ref, p.text("en")) for p in err.value.problems] == [("fields!A1", "required column 'type' is missing")]
    # the sheets that refer to fields wait for the fix, and say so once each
    assert [(p.ref, p.text("en")) for p in err.value.warnings] == [
        (f"{sheet}!A1", f"sheet {sheet} was not checked: sheet fields, which it refers to, cannot be read; fix the problem above first")
        for sheet in ("entities", "permissions")
    ]


def test_a_missing_column_of_an_optional_sheet_holds_back_only_the_sheets_that_refer_to_it(tmp_path: Path) -> None:
    sheets = library_sheets()
    for row in sheets["roles"]:
        row["名字"] = row.pop("role")
    sheets["fields"][3]["type"] = "choise"  # elsewhere, mistakes are still all found
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert [(p.ref, p.text("en")) for p in err.value.reported] == [
        ("roles!A1", "required column 'role' is missing"),
        ("fields!D5", "unknown type 'choise'"),
        ("roles!C1", "unknown column '名字'"),
        ("permissions!A1", "sheet permissions was not checked: sheet roles, which it refers to, cannot be read; fix the problem above first"),
    ]


def test_misspelt_setting_key_suggests_the_known_one(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["settings"] += [{"key": "holiday", "value": "2026-10-01"}, {"key": "survey_followup_role", "value": "馆员"}]
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert [p.format("bad.xlsx", "en") for p in err.value.problems] == [
        "bad.xlsx › settings!A3: unknown setting 'holiday' (未知设置项 'holiday') — did you mean 'holidays'? (是否想写 'holidays'?)"
    ]


@pytest.mark.parametrize("value", ["0", "abc", "7.5", "5000"])
def test_catch_up_days_must_be_a_whole_number_of_days(tmp_path: Path, value: str) -> None:
    sheets = library_sheets()
    sheets["settings"].append({"key": "catch_up_days", "value": value})
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    [problem] = err.value.problems
    assert problem.format("bad.xlsx", "zh").startswith(f"bad.xlsx › settings!B{len(sheets['settings']) + 1}: 设置 catch_up_days 的值 '{value}' 无效")
    assert "1 到 3650 之间的整数" in problem.format("bad.xlsx", "zh")


def test_full_width_separators_split_lists(tmp_path: Path) -> None:
    # ， 、 ； ～ as escapes, so no editor can turn them into ASCII
    sheets = library_sheets()
    sheets["settings"] += [
        {"key": "working_days", "value": "mon\uff0ctue\u3001wed\uff1bThursday"},
        {"key": "working_hours", "value": "09:00\uff5e12:00\uff0c13:00-18:00"},
        {"key": "holidays", "value": "2026-10-01\uff0c2026-10-02"},
    ]
    sheets["permissions"][0]["hidden_fields"] = "isbn\uff0cpages"
    sheets["schedules"] = [{"name": "due_soon", "entity": "loan", "when": "due_on - 1 day", "recipients": "馆员\uff0c志愿者"}]
    sheets["surveys"] = [{"survey": "visit", "question": "满意吗?", "scale": 3, "labels": "差\uff0c中\u3001好"}]
    sheets["reports"] = [{"name": "g", "entity": "book", "group_by": "genre", "roles": "馆员\uff1b志愿者"}]
    spec, _ = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    assert spec.settings.working_days == ("mon", "tue", "wed", "thu")
    assert spec.settings.working_hours == (("09:00", "12:00"), ("13:00", "18:00"))
    assert spec.settings.holidays == ("2026-10-01", "2026-10-02")
    assert spec.permissions[0].hidden_fields == ("isbn", "pages")
    assert spec.schedules[0].recipients == ("馆员", "志愿者")
    assert spec.surveys[0].labels == ("差", "中", "好")
    assert spec.reports[0].roles == ("馆员", "志愿者")


def test_unknown_working_day_suggests_the_nearest(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["settings"].append({"key": "working_days", "value": "mon\uff0ctue\uff0cmongo"})
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    assert [p.format("bad.xlsx", "en") for p in err.value.problems] == [
        "bad.xlsx › settings!B3: setting working_days: 'mongo' is not valid (设置 working_days 的值 'mongo' 无效)"
        " — did you mean 'mon'? (是否想写 'mon'?)"
    ]


def test_did_you_mean_hint(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["fields"][3]["type"] = "choise"
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    line = err.value.problems[0].format("bad.xlsx", "en")
    assert line == (
        "bad.xlsx › fields!D5 (entity book, field genre): unknown type 'choise' (类型 'choise' 未知)"
        " — did you mean 'choice'? (是否想写 'choice'?)"
    )


def _file_case(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "bad.xlsx"
    if kind == "not xlsx":
        path.write_text("name,label\ncustomer,客户\n", encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "protected":
        path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    elif kind == "damaged zip":
        import zipfile

        with zipfile.ZipFile(path, "w") as z:
            z.writestr("hello.txt", "not a workbook")
    return path


@pytest.mark.parametrize(
    "kind,message",
    [
        ("not xlsx", "this is not an Excel .xlsx file"),
        ("empty", "the file is empty"),
        ("protected", "the file is password-protected or an old .xls file"),
        ("damaged zip", "the Excel file cannot be read (KeyError)"),
    ],
)
def test_unreadable_files(tmp_path: Path, kind: str, message: str) -> None:
    path = _file_case(tmp_path, kind)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    assert [(p.ref, p.text("en")) for p in err.value.problems] == [("bad.xlsx", message)]


def test_a_folder_given_as_workbook_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "sheets"
    folder.mkdir()
    result = CliRunner().invoke(main, ["check", "--workbook", str(folder)])
    assert result.exit_code == 1
    assert f"sheets › sheets: {folder} 是文件夹,不是 Excel 文件 ({folder} is a folder, not an Excel file)" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, IsADirectoryError)


def test_formula_without_value_and_merged_cells(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "bad.xlsx", library_sheets())
    from openpyxl import load_workbook

    wb = load_workbook(path)
    ws = wb["fields"]
    ws["C2"] = '="书"&"名"'
    ws.merge_cells("F3:G4")
    wb.save(path)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    found = [(p.ref, p.text("en")) for p in err.value.problems]
    assert ("fields!C2", "a formula without a computed value") in found
    assert ("fields!F3", "merged cells F3:G4 in the data area") in found


def test_chinese_headers_and_sheet_names_are_accepted(tmp_path: Path) -> None:
    sheets = library_sheets()
    zh = {"entities": "实体", "fields": "字段", "choices": "选项", "roles": "角色", "permissions": "权限", "settings": "设置"}
    headers = {"name": "名称", "label": "标签", "type": "类型", "entity": "实体", "required": "必填", "list": "列表显示"}
    translated = {
        zh.get(k, k): [{(headers.get(c, c) if k in ("entities", "fields") else c): v for c, v in row.items()} for row in rows]
        for k, rows in sheets.items()
    }
    spec, _ = load_spec(write_workbook(tmp_path / "zh.xlsx", translated))
    assert [e.name for e in spec.entities] == ["book", "member", "loan"]
    assert spec.entity("book").field("title").required  # type: ignore[union-attr]


def test_cli_check_prints_lines_and_exits_1_and_generate_writes_nothing(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["fields"][3]["type"] = "choise"
    sheets["settings"].append({"key": "language", "value": "en"})
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    runner = CliRunner()
    result = runner.invoke(main, ["check", "--workbook", str(path)])
    assert result.exit_code == 1
    assert "bad.xlsx › fields!D5 (entity book, field genre): unknown type 'choise' (类型 'choise' 未知)" in result.output
    assert "Traceback" not in result.output
    out = tmp_path / "out"
    result = runner.invoke(main, ["generate", "--workbook", str(path), "--out", str(out)])
    assert result.exit_code == 1
    assert not out.exists()


def test_a_sheet_nobody_knows_is_a_warning_not_an_error(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["notes"] = [{"what": "free text for the office"}]
    spec, warnings = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    assert [w.text("en") for w in warnings] == ["unknown sheet 'notes'"]


def test_warnings_are_reported_with_the_errors_they_explain(tmp_path: Path) -> None:
    sheets = library_sheets()
    sheets["Field"] = sheets.pop("fields")
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    assert "sheet 'fields' is missing" in [p.text("en") for p in err.value.problems]
    assert not any(p.warning for p in err.value.problems)  # errors are what fails; the warning comes along
    n = len(err.value.problems)
    result = CliRunner().invoke(main, ["check", "--workbook", str(path)])
    assert result.exit_code == 1
    assert "bad.xlsx: 缺少工作表 'fields' (sheet 'fields' is missing)" in result.output
    assert (
        "提示 bad.xlsx › Field!A1: 未知工作表 'Field' (unknown sheet 'Field') — 是否想写 'fields'? (did you mean 'fields'?)"
        in result.output
    )
    # the entities sheet, which refers to fields, is not checked rather than reported without fields
    assert n == 1 and "1 个问题 (1 problem)" in result.output
    assert "提示 bad.xlsx › entities!A1: 工作表 entities 暂未检查" in result.output


def test_empty_workbook_without_sheets(tmp_path: Path) -> None:
    wb = Workbook()
    path = tmp_path / "bad.xlsx"
    wb.save(path)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    messages = {p.text("en") for p in err.value.problems}
    assert {"sheet 'entities' is missing", "sheet 'fields' is missing"} <= messages


def test_a_required_field_with_a_false_or_zero_default_may_be_read_only_for_a_role_that_adds(tmp_path: Path) -> None:
    """A default of N or 0 is a default: the role's new records get it (the check read it as none)."""
    sheets = library_sheets()
    sheets["fields"] += [{"entity": "book", "name": "damaged", "label": "已损坏", "type": "boolean", "required": "yes", "default": "no"},
                         {"entity": "book", "name": "copies", "label": "册数", "type": "integer", "required": "yes", "default": 0}]
    sheets["permissions"][0].update(readonly_fields="damaged, copies")
    spec, _ = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    assert next(p for p in spec.permissions if p.role == "馆员" and p.entity == "book").readonly_fields == ("damaged", "copies")


def test_the_same_header_twice_is_a_problem_not_a_silent_pick(tmp_path: Path) -> None:
    sheets = copy.deepcopy(library_sheets())
    path = write_workbook(tmp_path / "bad.xlsx", sheets)
    wb = load_workbook(path)
    ws = wb["fields"]
    headers = [c.value for c in ws[1]]
    ws.cell(row=1, column=headers.index("label_en") + 1 if "label_en" in headers else len(headers) + 1, value="label")
    wb.save(path)
    with pytest.raises(WorkbookError) as err:
        load_spec(path)
    assert any(p.text("en") == "column 'label' appears twice" and p.ref.startswith("fields!") for p in err.value.problems)


def test_a_working_day_that_may_take_a_week_still_fits_a_long_but_real_schedule(tmp_path: Path) -> None:
    sheets = copy.deepcopy(library_sheets())
    sheets["schedules"] = [{"name": "due_soon", "entity": "loan", "when": "due_on + 3000 working days", "recipients": "馆员",
                            "escalate_after": "12 months", "escalate_to": "馆员"}]
    spec, _ = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    assert [s.name for s in spec.schedules] == ["due_soon"]


def test_every_screen_of_the_application_besides_the_entities_is_a_reserved_name(app: Any) -> None:
    """The check's list of screens an entity may not be named after is the application's own."""
    from generator.validate.entities import RESERVED_VIEWS

    spec = app.extensions["crm"].spec
    entities = {f"{e.class_name}{suffix}" for e in spec.entities for suffix in ("View", "Api")}
    screens = {name for name in app.blueprints if name.endswith(("View", "Api"))}
    assert screens - entities <= RESERVED_VIEWS, screens - entities - RESERVED_VIEWS


def test_a_notified_role_without_a_right_on_the_entity_is_a_warning(tmp_path: Path) -> None:
    """A workflow notice goes to members whose row scope reaches the record: a role with no right on
    the entity would never be told."""
    sheets = library_sheets()
    sheets["workflows"] = [{"entity": "book", "state_field": "genre", "from": "novel", "to": "science", "action": "改",
                            "notify": "志愿者; 馆员; 馆长; owner"}]
    sheets["workflows"][0]["entity"] = "loan"  # 志愿者 has no right on loan; 馆长 is the administrator
    sheets["fields"].append({"entity": "loan", "name": "stage", "label": "阶段", "type": "choice", "choices": "genre"})
    sheets["workflows"][0]["state_field"] = "stage"
    spec, warnings = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    assert [(w.ref, w.text("en")) for w in warnings] == [
        (cell(sheets, "workflows", 0, "notify"),
         "role '志愿者' has no right on loan in permissions, cannot see its records and so is never told — give it a right, "
         "or remove it from notify")]


def test_an_entity_label_excel_refuses_as_a_sheet_name_still_exports(tmp_path: Path) -> None:
    """患者/家属 passed the check, then every export, import template and history download of the
    entity was a 500 (openpyxl refuses / * ? : [ ] in a sheet name)."""
    from app.io.excel import export_rows, write_template
    from app.record.audit import export_xlsx

    sheets = library_sheets()
    sheets["entities"][0]["label"] = "图书/期刊:[馆藏]?*"
    spec, _warnings = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    book = next(e for e in spec.entities if e.name == "book")
    export_rows(spec, book, list(book.fields), [], tmp_path / "export.xlsx")
    write_template(spec, book, list(book.fields), tmp_path / "template.xlsx")
    export_xlsx([], tmp_path / "history.xlsx", None, title=f"{book.label}-1")
    assert load_workbook(tmp_path / "export.xlsx").sheetnames == ["图书-期刊--馆藏---"]
    assert load_workbook(tmp_path / "template.xlsx").sheetnames[0] == "图书-期刊--馆藏---"
    assert load_workbook(tmp_path / "history.xlsx").sheetnames == ["图书-期刊--馆藏----1"]


def test_an_example_is_offered_as_an_example_and_a_refused_value_is_never_suggested(tmp_path: Path) -> None:
    from generator.problems import did_you_mean

    sheets = library_sheets()
    sheets["settings"] = [{"key": "timezone", "value": "Beijing"}, {"key": "holidays", "value": "2026-02-30"}]
    with pytest.raises(WorkbookError) as err:
        load_spec(write_workbook(tmp_path / "bad.xlsx", sheets))
    hints = [p.hint.render("en", HINTS) for p in err.value.problems if p.hint]
    assert hints == ["write it like: Asia/Shanghai", "write it like: 2026-10-01"]  # not "choose one of"
    assert did_you_mean("scheduled_at", ["scheduled_at", "title"]) is None


def test_field_types_may_be_written_in_chinese(tmp_path: Path) -> None:
    sheets = library_sheets()
    for row, chinese in ((sheets["fields"][2], "整数"), (sheets["fields"][10], "日期"), (sheets["fields"][11], "是否")):
        row["type"] = chinese
    spec, _warnings = load_spec(write_workbook(tmp_path / "ok.xlsx", sheets))
    types = {(e.name, f.name): f.type for e in spec.entities for f in e.fields}
    assert (types[("book", "pages")], types[("loan", "due_on")], types[("loan", "returned")]) == ("integer", "date", "boolean")
