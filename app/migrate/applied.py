"""Where a database stands: the spec and revision it was last upgraded to.

The database, not the generated folder, is the truth for evolution (DESIGN §4). Every upgrade
records the spec it brought the database to (``crm_applied_spec``) and its revision
(``alembic_version``) in its own transaction; ``crm generate``, ``crm plan`` and ``crm upgrade``
start from that record, so a revision generated but never applied (refused, or overtaken by
another edit) is replaced instead of stacked on, and a change the schema does not see (a grading
threshold) is still a change.

A database made by an earlier release has a revision but no record. Its spec is the generated
``spec.json`` when the database is at the folder's last revision, or has exactly the tables and
columns ``spec.json`` declares (the revisions after its own were refused or undone); it is
recorded (:func:`adopt`) before anything else happens. Otherwise the folder's revisions after
its own are run as they are, as that release did.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext

from app.messages import NOTHING_CHANGED, msg
from app.record.tables import AppliedSpec
from app.spec.model import Spec
from app.spec.revisions import Base, RevisionFile, leads_to, read_previous
from app.spec.steps import MapValues, Step, diff_specs, schema_digest

VERSION_TABLE = sa.Table(  # Alembic's own, so `alembic current` and earlier releases read the same revision
    "alembic_version", sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


class StaleRevisions(Exception):
    """The generated revisions do not lead from the database's state to the workbook."""


@dataclass(frozen=True)
class Applied:
    """A database's state: its revision (None: new), the spec it was upgraded to (None: new, or
    an earlier release's database whose spec is not known), and whether that spec is recorded."""

    revision: str | None
    spec: Spec | None
    recorded: bool = False

    @property
    def base(self) -> Base | None:
        """What the next revision starts from; None: the generated folder's own history."""
        return Base(self.revision, self.spec) if self.spec is not None else None


def read_applied(conn: sa.Connection, generated_dir: str | Path) -> Applied:
    """The state of the database behind ``conn`` (read only)."""
    insp = sa.inspect(conn)
    if insp.has_table(AppliedSpec.__tablename__):
        t = AppliedSpec.__table__
        row = conn.execute(sa.select(t.c.revision, t.c.spec).order_by(t.c.id.desc()).limit(1)).first()
        if row is not None:
            return Applied(row.revision, Spec.from_json(row.spec), recorded=True)
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None:
        return Applied(None, None)
    text, files = read_previous(Path(generated_dir))
    if text and files:
        spec = Spec.from_json(text)
        tail = [f for f in files if int(f.revision) > int(revision)]
        if not tail or (_shaped_like(conn, spec) and not _maps_values(Path(generated_dir), tail)):
            return Applied(revision, spec)
    return Applied(revision, None)


def adopt(engine: sa.Engine, generated_dir: str | Path) -> Applied:
    """The database's state, recording it first when an earlier release left it unrecorded and
    its spec is known: nothing else changes, and a ``crm generate`` that rewrites ``spec.json``
    afterwards cannot make it forget."""
    with engine.connect() as conn:
        state = read_applied(conn, generated_dir)
    if state.recorded or state.spec is None:
        return state
    with engine.begin() as conn:
        AppliedSpec.__table__.create(conn, checkfirst=True)
        record_applied(conn, state.revision, state.spec)
    return Applied(state.revision, state.spec, recorded=True)


def record_applied(conn: sa.Connection, revision: str | None, spec: Spec) -> None:
    """Note in ``conn``'s transaction that the database is at ``revision`` with ``spec`` (once: a
    repeated upgrade that changed nothing adds no row)."""
    t = AppliedSpec.__table__
    text = spec.to_json()
    last = conn.execute(sa.select(t.c.revision, t.c.spec).order_by(t.c.id.desc()).limit(1)).first()
    if last is None or last.revision != revision or last.spec != text:
        conn.execute(sa.insert(t).values(revision=revision, spec=text, applied_on=dt.datetime.now()))


def stamp(conn: sa.Connection, revision: str) -> None:
    """Set the database's revision in ``conn``'s transaction."""
    VERSION_TABLE.create(conn, checkfirst=True)
    current = list(conn.execute(sa.select(VERSION_TABLE.c.version_num)).scalars())
    if current == [revision]:
        return
    if current:
        conn.execute(sa.delete(VERSION_TABLE).where(VERSION_TABLE.c.version_num != current[0]))
        conn.execute(sa.update(VERSION_TABLE).values(version_num=revision))
    else:
        conn.execute(sa.insert(VERSION_TABLE).values(version_num=revision))


def pending_revisions(generated_dir: str | Path, state: Applied, spec: Spec) -> list[tuple[str, list[Step]]]:
    """(revision, steps) of the generated revisions the database has still to run, in order.

    They must run unbroken from the database's revision; for a database whose spec is recorded,
    from its schema to ``spec``'s too — else :class:`StaleRevisions` (the folder was generated
    for another state: ``crm generate`` or ``crm upgrade`` makes it again)."""
    _text, files = read_previous(Path(generated_dir))
    tail = [f for f in files if int(f.revision) > int(state.revision or 0)]
    if state.spec is not None:
        if not (leads_to(tail, state.revision, schema_digest(state.spec), schema_digest(spec)) if tail
                else not diff_specs(state.spec, spec)):
            raise StaleRevisions(_stale(generated_dir, state))
    else:
        at = state.revision
        for f in tail:
            if f.down != at:
                raise StaleRevisions(_stale(generated_dir, state))
            at = f.revision
    return [(f.revision, revision_steps(Path(generated_dir) / f.name)) for f in tail]


def _stale(generated_dir: str | Path, state: Applied) -> str:
    stale = msg("%(folder)s 中生成的迁移不是从数据库的当前版本 (%(revision)s) 通向工作簿的:运行 crm upgrade(它会先重新生成)",
                folder=generated_dir, revision=state.revision or "空库", revision_en=state.revision or "(new)")
    return f"{stale}; {NOTHING_CHANGED}"


# where revisions written by earlier releases import their names from: the same classes, now in the
# spec kernel (a running app never imports the generator)
LEGACY_IMPORTS = {
    "from app.runtime.migrate import": "from app.migrate.apply import",
    "from generator.migration import": "from app.spec.steps import",
    "from generator.schema import": "from app.spec.columns import",
}


def revision_steps(path: Path) -> list[Step]:
    """The ``STEPS`` a generated revision declares. The file is run from its source (no cached
    bytecode: a revision replaced within the same second must not come back from a .pyc)."""
    namespace: dict[str, object] = {"__name__": f"crm_revision_{path.stem}", "__file__": str(path)}
    text = path.read_text(encoding="utf-8")
    for before, now in LEGACY_IMPORTS.items():
        text = text.replace(before, now)
    # our own generated revision (every value in it rendered with repr), as Alembic would run it
    exec(compile(text, str(path), "exec"), namespace)  # noqa: S102
    return list(namespace["STEPS"])  # type: ignore[call-overload]


def _maps_values(generated_dir: Path, tail: list[RevisionFile]) -> bool:
    """Whether revisions not yet run rewrite stored values (a change the table's shape does not show)."""
    return any(isinstance(s, MapValues) for f in tail for s in revision_steps(generated_dir / f.name))


def _shaped_like(conn: sa.Connection, spec: Spec) -> bool:
    """Whether every table of ``spec`` is there with its columns' types, emptiness and uniqueness."""
    from app.migrate.declared import declared_metadata

    insp = sa.inspect(conn)
    for table in declared_metadata(spec).tables.values():
        if table.name == "ab_user":
            continue
        if not insp.has_table(table.name):
            return False
        have = {c["name"]: c for c in insp.get_columns(table.name)}
        unique: set[tuple[str | None, ...]] = {tuple(u["column_names"]) for u in insp.get_unique_constraints(table.name)}
        unique |= {tuple(i["column_names"]) for i in insp.get_indexes(table.name) if i.get("unique")}
        for column in table.columns:
            found = have.get(column.name)
            if found is None:
                return False
            if column.primary_key:
                continue
            if found["nullable"] != column.nullable or ((column.name,) in unique) != bool(column.unique):
                return False
            if found["type"]._type_affinity is not column.type._type_affinity:  # noqa: SLF001 - SQLAlchemy's type family
                return False
    return True
