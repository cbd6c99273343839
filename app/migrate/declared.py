"""The tables a spec declares, as SQLAlchemy sees them (columns, types, named constraints), and
the system tables every workbook shares (FAB's ``ab_*``, the runtime's ``crm_*``)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from app.access.crypto import EncryptedText
from app.record.convert import convert
from app.record.models import NAMING_CONVENTION
from app.spec.columns import Col, columns_of, indexes_of
from app.spec.model import Spec

log = logging.getLogger(__name__)


INTERNAL_PREFIXES = ("ab_", "crm_", "alembic_", "kombu_", "celery_")


def sa_type(col: Col, plain: bool = False) -> sa.types.TypeEngine[Any]:
    """The column type; ``plain`` gives the stored type of an encrypted column (its ciphertext)."""
    if col.encrypted and not plain:
        return EncryptedText()
    name, args = col.column_type  # the kernel's one table, as the generated models declare it
    made: sa.types.TypeEngine[Any] = getattr(sa, name)(*args)
    return made


def sa_column(col: Col, nullable: bool | None = None) -> sa.Column[Any]:
    args: list[Any] = [sa_type(col)]
    if col.fk:
        args.append(sa.ForeignKey(col.fk))
    return sa.Column(col.name, *args, nullable=col.nullable if nullable is None else nullable, unique=col.unique, index=col.index,
                     info={"crm": col})


def table_of(metadata: sa.MetaData, name: str, cols: Iterable[Col]) -> sa.Table:
    """The table as the generated model declares it: id, the fields, the audit columns."""
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        *[sa_column(c) for c in cols],
        sa.Column("created_on", sa.DateTime, nullable=False),
        sa.Column("changed_on", sa.DateTime, nullable=False),
        sa.Column("created_by_fk", sa.Integer, sa.ForeignKey("ab_user.id"), nullable=True),
        sa.Column("changed_by_fk", sa.Integer, sa.ForeignKey("ab_user.id"), nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sqlite_autoincrement=True,  # ids are never reused: the audit trail and links stay unambiguous
    )


def _name(kind: str, table: str, column: str, ref: str = "") -> str:
    return NAMING_CONVENTION[kind] % {"table_name": table, "column_0_N_name": column, "column_0_name": column,
                                      "referred_table_name": ref}


def declared_metadata(spec: Spec) -> sa.MetaData:
    """The entity tables a Spec declares (without importing any generated model); built once per
    spec, so read it, never add to it."""
    return spec.derived("declared_metadata", _declare)


def _declare(spec: Spec) -> sa.MetaData:
    md = sa.MetaData(naming_convention=NAMING_CONVENTION)
    sa.Table("ab_user", md, sa.Column("id", sa.Integer, primary_key=True))
    indexes = []
    for e in spec.entities:
        table = table_of(md, e.name, columns_of(e))
        for idx in indexes_of(e):
            indexes.append(idx)
            extra: dict[str, Any] = {"postgresql_using": "gin", "postgresql_ops": {idx.columns[0]: "gin_trgm_ops"}} if idx.kind == "trigram" else {}
            sa.Index(idx.name, *[table.c[c] for c in idx.columns], **extra)
    md.info["crm_indexes"] = indexes
    return md


def _default_value(col: Col) -> Any:
    if col.default in ("today", "now"):
        moment = dt.datetime.now().replace(microsecond=0)
        return moment.date() if col.type == "date" else moment
    return convert(col.default, col.type, col.length)
