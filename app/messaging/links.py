"""Who a message goes to and what it links to: recipients by role, owner or e-mail path (active
users, in the record's scope), links to a record page, and the signed, expiring survey link."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session, selectinload

from app.access.scope import teammates_of, told_of
from app.messaging.channels import user_name
from app.spec.expr import record_lookup
from app.spec.model import Entity, Spec

SALT = "crm-survey"


DEFAULT_MAX_AGE_DAYS = 30


def _serializer(app: Any) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=SALT)


def make_token(app: Any, survey: str, entity: str, record_id: int) -> str:
    return _serializer(app).dumps([survey, entity, int(record_id)])


def read_token(app: Any, token: str) -> tuple[str, str, int]:
    """(survey, entity, record id); raises SignatureExpired / BadSignature."""
    days = float(app.config.get("CRM_SURVEY_MAX_AGE_DAYS") or DEFAULT_MAX_AGE_DAYS)
    survey, entity, record_id = _serializer(app).loads(token, max_age=int(days * 86400))
    return str(survey), str(entity), int(record_id)


@dataclass(frozen=True)
class Recipient:
    token: str  # in the key: u<id> or a<hash>
    name: str
    user_id: int | None = None
    address: str | None = None
    problem: str = ""  # set when this channel cannot reach them (row kept as 'skipped')


class Recipients:
    """``owner``, a user field, a role (its active users whose row scope reaches the record, or all
    of them while it has no owner: :func:`told_of`; all of them too when none of them reaches it,
    rather than nobody) or a field path holding an address."""

    def __init__(self, spec: Spec, session: Session):
        self.spec, self.session = spec, session
        self._roles: dict[str, list[Any]] = {}
        self._team: dict[int, set[int]] = {}

    def resolve(self, entity: Entity, obj: Any, names: tuple[str, ...], channel: str) -> list[Recipient]:
        seen: dict[str, Recipient] = {}
        for name in names:
            for r in self._one(entity, obj, name.strip(), channel):
                seen.setdefault(r.token, r)
        return list(seen.values())

    def _one(self, entity: Entity, obj: Any, name: str, channel: str) -> list[Recipient]:
        user_field = entity.owner_field if name == "owner" else name
        f = entity.field(user_field) if user_field else None
        if f is not None and f.type == "user":
            user = getattr(obj, f.name, None)
            return [self._user(user, channel)] if user is not None and getattr(user, "active", True) else []
        if "." not in name and (f is None) and self._is_role(name):
            owner = getattr(obj, f"{entity.owner_field}_id", None) if entity.owner_field else None
            members = self.role_users(name)
            reached = [u for u in members if told_of(self.spec, entity, owner, u, self.spec.admin_role, self._teammates)]
            # nobody of the role in the owner's department: every member, rather than nobody
            return [self._user(u, channel) for u in reached or members]
        value = record_lookup(obj)(name)
        if not value:
            return []
        address = str(value).strip()
        token = "a" + hashlib.sha1(address.lower().encode(), usedforsecurity=False).hexdigest()[:12]  # noqa: S324 - dedupe token
        problem = "" if channel in ("email", "sms") else f"in-app messages need a user, {name} is an address"
        return [Recipient(token, address, None, address, problem)]

    def _user(self, user: Any, channel: str) -> Recipient:
        address = getattr(user, "email", None) if channel == "email" else None
        problem = "user has no e-mail address" if channel == "email" and not address else ""
        return Recipient(f"u{user.id}", user_name(user), user.id, address, problem)

    def _is_role(self, name: str) -> bool:
        return any(r.name == name for r in self.spec.roles) or bool(self.role_users(name))

    def role_users(self, role: str) -> list[Any]:
        if role not in self._roles:
            from flask_appbuilder.security.sqla.models import Role, User

            q = (sa.select(User).join(User.roles).where(Role.name == role, User.active.is_(True))
                 .options(selectinload(User.roles)).order_by(User.id))
            self._roles[role] = list(self.session.execute(q).scalars().unique())
        return self._roles[role]

    def _teammates(self, user_id: int) -> set[int]:
        if user_id not in self._team:
            self._team[user_id] = teammates_of(self.session, user_id)
        return self._team[user_id]


class Links:
    """Absolute links for messages: a record's page, or a survey's signed response page."""

    def __init__(self, app: Any):
        self.app = app
        self.base = str(app.config.get("CRM_BASE_URL") or "http://127.0.0.1:5000").rstrip("/")
        self._routes: dict[str, str] = {}
        crm = app.extensions["crm"]
        for name, view_cls, *_rest in crm.generated.views.REGISTRY:
            for b in crm.appbuilder.baseviews:
                if isinstance(b, view_cls) and b.route_base:
                    self._routes[name] = b.route_base
                    break

    def record(self, entity: str, record_id: int) -> str:
        path = self.path(entity, record_id)
        return f"{self.base}{path}" if path else ""

    def path(self, entity: str, record_id: int) -> str:
        """The record page inside the app (for in-app messages: the inbox links within the site)."""
        route = self._routes.get(entity)
        return f"{route}/show/{record_id}" if route else ""

    def survey(self, survey: str, entity: str, record_id: int) -> str:
        return f"{self.base}/survey/{make_token(self.app, survey, entity, record_id)}"
