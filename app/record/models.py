"""What every generated model shares: the FAB declarative base with named constraints, the
audit columns (created/changed by & on), a readable ``str()`` and the entity's name."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from flask import g, has_app_context
from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Integer, text
from sqlalchemy.orm import declared_attr, relationship

# Named constraints are required for SQLite batch migrations; set before any model is defined.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Model.metadata.naming_convention = NAMING_CONVENTION


def acting_user() -> Any:
    """The signed-in user, or None for system work (scheduled tasks, imports from the CLI)."""
    if not has_app_context():
        return None
    user = getattr(g, "user", None)
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def current_user_id() -> int | None:
    return getattr(acting_user(), "id", None)


def column_default(column: Column | None) -> Any:
    """What a new row gets in ``column`` when nobody gives a value (the workbook's default, a
    callable one such as today's date worked out now); None when it has none."""
    default = column.default if column is not None else None
    if getattr(default, "is_callable", False):
        return default.arg(None)  # type: ignore[union-attr]
    return default.arg if getattr(default, "is_scalar", False) else None  # type: ignore[union-attr]


def now() -> dt.datetime:
    return dt.datetime.now()


class CrmRecord:
    """Mixin of every generated entity class (which also inherits FAB's ``Model``).

    The audit columns match FAB's AuditMixin by name (its screens show them) but the user columns
    are nullable: scheduled tasks and command-line imports change records with no one signed in.
    """

    __entity__: ClassVar[str] = ""
    __title_field__: ClassVar[str] = ""
    __label__: ClassVar[str] = ""

    created_on = Column(DateTime, default=now, nullable=False)
    # optimistic locking: every save checks and bumps it, so a stale save fails instead of overwriting
    version = Column(Integer, nullable=False, default=1, server_default=text("1"))

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805
        return {"version_id_col": cls.version}

    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (audit trail, links)

    changed_on = Column(DateTime, default=now, onupdate=now, nullable=False)

    @declared_attr
    def created_by_fk(cls):  # type: ignore[no-untyped-def]  # noqa: N805 - annotations would be read as mappings
        return Column(Integer, ForeignKey("ab_user.id"), default=current_user_id, nullable=True)

    @declared_attr
    def changed_by_fk(cls):  # type: ignore[no-untyped-def]  # noqa: N805
        return Column(Integer, ForeignKey("ab_user.id"), default=current_user_id, onupdate=current_user_id, nullable=True)

    @declared_attr
    def created_by(cls):  # type: ignore[no-untyped-def]  # noqa: N805
        from flask_appbuilder.security.sqla.models import User

        return relationship(User, foreign_keys=[cls.created_by_fk], lazy="selectin")

    @declared_attr
    def changed_by(cls):  # type: ignore[no-untyped-def]  # noqa: N805
        from flask_appbuilder.security.sqla.models import User

        return relationship(User, foreign_keys=[cls.changed_by_fk], lazy="selectin")

    def __str__(self) -> str:
        value: Any = getattr(self, self.__title_field__, None) if self.__title_field__ else None
        if value is None or value == "":
            return f"#{getattr(self, 'id', '')}"
        return str(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'id', None)}>"


__all__ = ["Model", "CrmRecord", "NAMING_CONVENTION"]
