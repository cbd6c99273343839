"""What every generated model shares: the FAB declarative base with named constraints, the
audit columns (created/changed by & on), a readable ``str()`` and the entity's name."""

from __future__ import annotations

from typing import Any, ClassVar

from flask_appbuilder import Model
from flask_appbuilder.models.mixins import AuditMixin

# Named constraints are required for SQLite batch migrations; set before any model is defined.
Model.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class CrmRecord(AuditMixin):
    """Mixin of every generated entity class (which also inherits FAB's ``Model``)."""

    __entity__: ClassVar[str] = ""
    __title_field__: ClassVar[str] = ""
    __label__: ClassVar[str] = ""

    def __str__(self) -> str:
        value: Any = getattr(self, self.__title_field__, None) if self.__title_field__ else None
        if value is None or value == "":
            return f"#{getattr(self, 'id', '')}"
        return str(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'id', None)}>"


__all__ = ["Model", "CrmRecord"]
