"""The typed model of a configuration workbook. Pure data, no I/O.

A :class:`Spec` is what ``validate`` produces and what ``render`` and the runtime engines read.
It round-trips through JSON (``to_json``/``from_json``) so the generated package can carry it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import types
import typing
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jinja2.sandbox import SandboxedEnvironment

from .workcal import WorkCalendar

_T = TypeVar("_T")

FIELD_TYPES = (
    "string",
    "text",
    "integer",
    "decimal",
    "money",
    "boolean",
    "date",
    "datetime",
    "choice",
    "link",
    "email",
    "phone",
    "file",
    "user",
)
NUMERIC_TYPES = ("integer", "decimal", "money")
TEXT_TYPES = ("string", "text", "email", "phone")
# what an e-mail or phone field accepts: the forms, the API and imports check values with these, and
# the workbook check checks a default with them
PHONE_PATTERN = r"^\+?[0-9][0-9 ()\-]{4,24}(?:[,;/ ]*(?:转|ext\.?|x)\s*[0-9]{1,6})?$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
NAME_SEPARATORS = r"[,\uff0c\u3001;\uff1b]+"  # between names in a cell: , ， 、 ; ；
SCOPES = ("own", "team", "all")
RIGHTS = ("list", "show", "add", "edit", "delete", "export", "import")
VIEWS = ("add", "edit", "show")
CHANNELS = ("email", "inapp", "sms")
CHARTS = ("bar", "line", "pie", "radar", "table")
PERIODS = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str
    label_en: str = ""
    required: bool = False
    unique: bool = False
    default: Any = None  # already converted to the field's type ("today"/"now" kept as words)
    choices: str = ""  # choice list name
    link: str = ""  # target entity name
    min: float | None = None
    max: float | None = None
    pattern: str = ""
    help: str = ""
    list: bool = False
    search: bool = False
    filter: bool = False
    readonly: bool = False
    encrypted: bool = False
    previous_name: str = ""
    ref: str = ""  # where it was declared, for later messages
    formula: str = ""  # a computed field's formula (fields.formula): stored, read-only, kept by the system
    default_formula: str = ""  # a default that is an expression of the other fields (``received_on + 30 days``)

    @property
    def column(self) -> str:
        """The database column: link and user fields store the target's id in ``<name>_id``."""
        return f"{self.name}_id" if self.type in ("link", "user") else self.name

    @property
    def is_relation(self) -> bool:
        return self.type in ("link", "user")


@dataclass(frozen=True)
class Entity:
    name: str
    label: str
    fields: tuple[Field, ...]
    label_en: str = ""
    menu: str = ""
    menu_en: str = ""
    title_field: str = ""
    numbering: str = ""
    owner_field: str = ""
    audit: bool = True
    description: str = ""
    previous_name: str = ""
    ref: str = ""

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    label_en: str = ""
    order: float = 0
    color: str = ""
    previous_value: str = ""  # rows holding this old value get this one on upgrade


@dataclass(frozen=True)
class GradingRule:
    entity: str
    field: str
    grade: str
    order: float
    condition: str = ""
    note: str = ""
    ref: str = ""


@dataclass(frozen=True)
class FormItem:
    entity: str
    view: str
    section: str
    field: str
    order: float = 0
    collapsed: bool = False


@dataclass(frozen=True)
class Role:
    name: str
    label: str = ""
    description: str = ""
    admin: bool = False
    see_rules: bool = False  # may read the rules behind a grade or a refusal: expression and Sheet!Cell


@dataclass(frozen=True)
class Permission:
    role: str
    entity: str
    rights: tuple[str, ...]  # subset of RIGHTS
    scope: str = "all"
    hidden_fields: tuple[str, ...] = ()
    readonly_fields: tuple[str, ...] = ()  # seen but not written by this role (forms, API, imports)


@dataclass(frozen=True)
class Transition:
    entity: str
    state_field: str
    source: str
    target: str
    action: str
    roles: tuple[str, ...] = ()
    condition: str = ""
    require_comment: bool = False
    notify: str = ""  # who is told: roles and/or ``owner``, as written (``销售经理; owner``)
    ref: str = ""
    stamp: tuple[str, ...] = ()  # fields the action fills: a person field who took it, a date/time field when
    action_en: str = ""
    asks: tuple[str, ...] = ()  # the fields the step's dialog asks for (blank: those its condition names)
    effects: tuple[str, ...] = ()  # what the step does to other records, one effect each (app.spec.effects)

    @property
    def recipients(self) -> tuple[str, ...]:
        return split_names(self.notify)


@dataclass(frozen=True)
class Schedule:
    name: str
    entity: str
    when: str
    condition: str = ""
    recipients: tuple[str, ...] = ()
    template: str = ""
    channel: str = "inapp"
    escalate_after: str = ""
    escalate_to: str = ""
    ref: str = ""
    # in-app reminders of one day for one person become one inbox entry (column ``digest``; blank:
    # yes for in-app, the only channel a digest exists on)
    digest: bool = True


@dataclass(frozen=True)
class SurveyQuestion:
    survey: str
    question: str
    scale: int = 4
    labels: tuple[str, ...] = ()
    order: float = 0
    trigger: str = ""


@dataclass(frozen=True)
class Template:
    name: str
    channel: str
    subject: str = ""
    body: str = ""


def template_environment() -> SandboxedEnvironment:
    """The sandbox a template's subject and body render in (``app.messaging.channels``); ``validate``
    checks them against the same one, so a filter it lacks is found before a message is sent."""
    return SandboxedEnvironment(autoescape=False)


@dataclass(frozen=True)
class Validation:
    entity: str
    condition: str
    message: str
    ref: str = ""


@dataclass(frozen=True)
class Report:
    name: str
    entity: str
    group_by: str = ""
    measure: str = "count"
    period: str = ""
    condition: str = ""
    chart: str = "bar"
    roles: tuple[str, ...] = ()
    order: float = 0
    label: str = ""
    label_en: str = ""

    @property
    def measures(self) -> tuple[tuple[str, str], ...]:
        """``(function, field path)`` per measure; ``count`` has an empty path.

        A panel may show several measures of the same rows, written ``avg(a), avg(b)`` — the
        dimensions of one radar, or the lines of one trend.
        """
        return tuple(parse_measure(m) or ("count", "") for m in split_measures(self.measure))


MEASURE = re.compile(r"(count|sum|avg|min|max)(?:\(\s*([a-z0-9_.]*)\s*\))?")


def split_names(text: str | None) -> tuple[str, ...]:
    """The names in one cell (roles, recipients, measures), separated by , ， 、 ; or ；."""
    return tuple(n.strip() for n in re.split(NAME_SEPARATORS, text or "") if n.strip())


def split_measures(text: str) -> list[str]:
    """The measures of a ``measure`` cell: separated by commas (also ，、;)."""
    return list(split_names(text)) or ["count"]


def parse_measure(text: str) -> tuple[str, str] | None:
    """``avg(amount)`` → ("avg", "amount"); ``count`` → ("count", ""); None when not valid."""
    m = MEASURE.fullmatch(text.strip().lower())
    if not m or (m.group(1) != "count" and not m.group(2)):
        return None
    return m.group(1), m.group(2) or ""


@dataclass(frozen=True)
class Settings:
    app_name: str = "客户维护体系"
    language: str = "zh"
    timezone: str = "Asia/Shanghai"
    working_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    working_hours: tuple[tuple[str, str], ...] = (("09:00", "12:00"), ("13:00", "18:00"))
    holidays: tuple[str, ...] = ()
    extra_working_days: tuple[str, ...] = ()
    currency: str = "CNY"
    catch_up_days: int = 7  # a reminder due longer ago than this is not sent late (downtime, first start, imported history)
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Spec:
    workbook: str  # file name, for the generated header
    entities: tuple[Entity, ...]
    choices: dict[str, tuple[Choice, ...]] = field(default_factory=dict)
    grading: tuple[GradingRule, ...] = ()
    forms: tuple[FormItem, ...] = ()
    roles: tuple[Role, ...] = ()
    permissions: tuple[Permission, ...] = ()
    workflows: tuple[Transition, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    surveys: tuple[SurveyQuestion, ...] = ()
    templates: tuple[Template, ...] = ()
    validations: tuple[Validation, ...] = ()
    reports: tuple[Report, ...] = ()
    settings: Settings = field(default_factory=Settings)

    @property
    def calendar(self) -> WorkCalendar:
        s = self.settings
        return WorkCalendar(s.working_days, s.working_hours, s.holidays, s.extra_working_days)

    def entity(self, name: str) -> Entity | None:
        for e in self.entities:
            if e.name == name:
                return e
        return None

    @property
    def admin_role(self) -> str:
        for r in self.roles:
            if r.admin:
                return r.name
        return "Admin"

    def derived(self, key: str, make: typing.Callable[[Spec], _T]) -> _T:
        """``make(self)``, computed once for this spec: a spec is frozen, so what is derived from
        it (its JSON, the tables it declares) never changes. One command asks for the same ones
        several times (plan, generate, upgrade, the rights' sync), 0.1–0.2 s each on the shipped
        workbook."""
        kept = self.__dict__.setdefault("_derived", {})
        if key not in kept:
            kept[key] = make(self)
        return typing.cast(_T, kept[key])

    def to_json(self) -> str:
        return self.derived("json", lambda s: json.dumps(dataclasses.asdict(s, dict_factory=_lean), ensure_ascii=False, indent=1,
                                                         sort_keys=True))

    @classmethod
    def from_json(cls, text: str) -> Spec:
        """The spec a JSON text holds; the same text read again gives the same (frozen) spec."""
        key = hashlib.sha256(text.encode()).digest()
        spec = _READ.get(key)
        if spec is None:
            spec = _build(cls, json.loads(text))
            _READ[key] = spec
            while len(_READ) > READ_KEPT:
                _READ.popitem(last=False)
        else:
            _READ.move_to_end(key)
        return spec


# attributes added later that the JSON leaves out while blank: a workbook that does not use them keeps
# the JSON (and the generated spec) it had; reading fills them in with their defaults
_LEAN_KEYS = ("formula", "default_formula")


def _lean(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v for k, v in pairs if not (k in _LEAN_KEYS and v == "")}


_READ: OrderedDict[bytes, Spec] = OrderedDict()
READ_KEPT = 8  # specs a process keeps read, by the sha256 of their JSON (the applied one, the generated one, the workbook's)


@functools.cache
def _hints(tp: type) -> dict[str, Any]:
    """A dataclass's field types, resolved once (the annotations are strings: resolving them
    compiles each one, which took a quarter of a second per spec read when done per record)."""
    return typing.get_type_hints(tp)


def _build(tp: Any, data: Any) -> Any:
    """Rebuild nested frozen dataclasses from ``dataclasses.asdict`` output."""
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{k: _build(hints[k], v) for k, v in data.items() if k in hints})
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in data)
        return tuple(_build(a, v) for a, v in zip(args, data, strict=False))
    if origin is dict:
        _, vt = typing.get_args(tp)
        return {k: _build(vt, v) for k, v in data.items()}
    if origin in (typing.Union, types.UnionType):
        return data
    return data


def field_at(entity: Entity, path: str, emap: dict[str, Entity]) -> Field | None:
    """The field a dotted path ends at (None for base columns or unknown paths)."""
    current: Entity | None = entity
    f: Field | None = None
    for part in path.split("."):
        if current is None:
            return f if f is not None and f.type == "user" else None
        f = current.field(part)
        if f is None:
            return None
        current = emap.get(f.link) if f.type == "link" else None
    return f
