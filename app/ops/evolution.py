"""Plan and upgrade: what takes a database from the spec it was last upgraded to (``applied``)
to the workbook's, said in words before anything happens, then done all or nothing.

``crm plan`` is :func:`make_plan`; ``crm upgrade`` is :func:`make_plan`, then :func:`apply_plan`
(the generated files and the migration, restored together if the migration does not commit),
then the work after the commit (``migrate.finish_online``) and :func:`regrade_all`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.migrate.applied import Applied, read_applied, revision_steps
from app.migrate.data import UPGRADE_LOCK_TIMEOUT_MS
from app.migrate.declared import declared_metadata
from app.migrate.describe import PlanLine, plan_groups
from app.migrate.indexes import owed_online
from app.migrate.retire import retired_columns
from app.migrate.upgrade import UpgradeResult, upgrade_database
from app.record.grading import describe_moves, graded_fields, impact, move_examples
from app.spec.expr import SAVE_ONLY, parse
from app.spec.model import Spec
from app.spec.revisions import read_previous
from app.spec.sqlexpr import NotCompilable, compile_condition
from app.spec.steps import RenameColumn, RenameTable, Step
from generator import Result, generate_spec
from generator.emit import restore_files, save_files


@dataclass
class Plan:
    """What ``crm upgrade`` would do to one database, and whether it would be refused."""

    spec: Spec
    state: Applied
    result: Result  # the generated folder as the upgrade would write it (compared, not written)
    pending: list[PlanLine]  # revisions already generated that the database has not run
    regenerate: list[PlanLine]  # the revision generating adds; records moving between grades; rules broken by stored records
    retired: list[tuple[str, str | None, int]]
    owed: list[str]  # work an earlier upgrade left for after its commit (PostgreSQL)

    @property
    def refused(self) -> list[PlanLine]:
        return [line for line in self.pending + self.regenerate if line.refused]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": [line.as_dict() for line in self.pending],
            "regenerate": [line.as_dict() for line in self.regenerate],
            "retired": [{"table": t, "column": c, "values": n} for t, c, n in self.retired],
            "refused": len(self.refused),
            "owed": self.owed,
        }


def now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


def make_plan(engine: sa.Engine, spec: Spec, out: str | Path, state: Applied | None = None) -> Plan:
    """The plan from where the database stands (``state``, read when not given) to ``spec``."""
    with engine.connect() as conn:
        state = state or read_applied(conn, out)
        result = generate_spec(spec, out, check=True, base=state.base)
        ran = int(state.revision or 0)
        kept = [revision_steps(Path(out) / r.name) for r in result.chain.keep if int(r.revision) > ran]
        tail: list[Step] = [s for steps in kept for s in steps]
        pending, regen = plan_groups([tail, result.steps], conn)
        previous = state.spec if state.spec is not None else _generated_spec(out) if state.revision else None
        if previous is not None:
            if previous.grading != spec.grading:
                regen += grading_lines(conn, spec)
            regen += validation_lines(conn, previous, spec)
            regen += computed_lines(conn, previous, spec)
        # what a rename of this plan moves is not left behind
        moving: set[tuple[str, str | None]] = {(s.table, s.old) for s in tail + result.steps if isinstance(s, RenameColumn)}
        moving |= {(s.old, None) for s in tail + result.steps if isinstance(s, RenameTable)}
        declared = declared_metadata(spec)
        retired = [r for r in retired_columns(conn, declared) if r[:2] not in moving]
        owed = owed_online(conn, declared)
    return Plan(spec, state, result, pending, regen, retired, owed)


def _generated_spec(out: str | Path) -> Spec | None:
    text, revisions = read_previous(Path(out))
    return Spec.from_json(text) if text and revisions else None


def grades_changed(plan: Plan) -> bool:
    """Whether the upgrade must compute every grade again (new rules, or a new database)."""
    return plan.state.spec is None or plan.state.spec.grading != plan.spec.grading


def apply_plan(engine: sa.Engine, plan: Plan, out: str | Path, backups: Path, allow_destructive: bool = False,
               lock_timeout_ms: int = UPGRADE_LOCK_TIMEOUT_MS) -> UpgradeResult:
    """Write the generated folder the plan compared and run the migration. The files are only
    kept with the database change they declare: refused or failed, the revision and the updated
    spec go too, and what they replaced comes back."""
    result, out = plan.result, Path(out)
    saved = save_files(sorted(result.files) + result.dropped, out) if result.stale else {}
    try:
        if result.stale:
            generate_spec(plan.spec, out, base=plan.state.base)
        return upgrade_database(engine, out, backups, plan.spec, allow_destructive, lock_timeout_ms)
    except BaseException:
        restore_files(saved, out)
        raise


def grading_lines(conn: sa.Connection, spec: Spec) -> list[PlanLine]:
    """The effect of the workbook's grading rules on the records as they are stored now, with
    up to five records of each move."""
    tables = dict(declared_metadata(spec).tables)
    lines = []
    for e in spec.entities:
        for graded in graded_fields(spec, e):
            label = f"{e.name}.{graded.field}"
            try:
                with conn.begin_nested():
                    moves = impact(conn, spec, e, graded, tables, now())
                    examples = move_examples(conn, spec, e, graded, tables, now(), moves)
            except sa.exc.DBAPIError:
                lines.append(PlanLine("grading", f"分级 {label}:规则用到的字段升级后才有,升级后重新分级",
                                      f"grading {label}: the rules use fields that exist after the upgrade; regraded then"))
                continue
            zh, en = describe_moves(label, moves)
            lines.append(PlanLine("grading", zh, en, sum(n for (old, new), n in moves.items() if old != new), examples=[
                {"from": old, "to": new, "rows": moves[(old, new)], "records": [{"id": i, "title": t} for i, t in found]}
                for (old, new), found in sorted(examples.items(), key=lambda kv: (-moves[kv[0]], str(kv[0])))]))
    return lines


def validation_lines(conn: sa.Connection, previous: Spec, spec: Spec) -> list[PlanLine]:
    """How many stored records break each validation the workbook adds or rewrites: they stay as
    they are, and their next save asks for the correction (IT can tell the office beforehand)."""
    known = {(v.entity, v.condition) for v in previous.validations}
    tables = dict(declared_metadata(spec).tables)
    lines = []
    for v in spec.validations:
        entity, expr = spec.entity(v.entity), parse(v.condition)
        if (v.entity, v.condition) in known or entity is None or set(expr.functions) & set(SAVE_ONLY):
            continue  # a rule about the save being made (changed()) has nothing to say about stored records
        table = tables[entity.name]
        try:
            broken = sa.not_(compile_condition(expr, spec, entity, table, tables, now(), conn.dialect.name))
            with conn.begin_nested():
                ids = list(conn.execute(sa.select(table.c.id).where(broken).order_by(table.c.id).limit(5)).scalars())
                n = int(conn.execute(sa.select(sa.func.count()).select_from(table).where(broken)).scalar_one()) if ids else 0
        except (NotCompilable, sa.exc.DBAPIError):
            continue  # fields the upgrade adds, or a rule SQL cannot ask: the records meet it when next saved
        if n:
            shown = ", ".join(f"#{i}" for i in ids) + (" …" if n > len(ids) else "")
            lines.append(PlanLine("validation", f"新规则 {v.entity}「{v.message}」:已有 {n} 条记录不符合 ({shown}),记录保留,下次保存时须先改正",
                                  f"new rule on {v.entity} ({v.condition}): {n} stored record(s) break it ({shown}); they are kept "
                                  f"and must be corrected when next saved", n, examples=ids))
    return lines


def computed_lines(conn: sa.Connection, previous: Spec, spec: Spec) -> list[PlanLine]:
    """How many stored records each new or rewritten computed field gives a new value, with examples."""
    from app.record.computed import changed_fields, count_changes

    tables = dict(declared_metadata(spec).tables)
    lines = []
    for c in changed_fields(previous, spec):
        label = f"{c.entity}.{c.field.name}"
        have = {col["name"] for col in sa.inspect(conn).get_columns(c.entity)} if sa.inspect(conn).has_table(c.entity) else set()
        try:
            with conn.begin_nested():
                n, examples = count_changes(conn, spec, tables, c.entity, c, exists=c.field.column in have)
        except sa.exc.DBAPIError:
            lines.append(PlanLine("computed", f"公式 {label}:用到升级后才有的字段,升级时计算",
                                  f"formula {label}: reads fields that exist after the upgrade; computed by it"))
            continue
        shown = ", ".join(f"#{i}: {old} → {new}" for i, old, new in examples) + (" …" if n > len(examples) else "")
        lines.append(PlanLine("computed", f"公式 {label}({c.field.formula}):升级时计算,{n} 条记录的值改变" + (f" ({shown})" if n else ""),
                              f"formula {label} ({c.field.formula}): filled by the upgrade, {n} record(s) change"
                              + (f" ({shown})" if n else ""), n, examples=[{"id": i, "from": str(old), "to": str(new)}
                                                                           for i, old, new in examples]))
    return lines


def regrade_all(engine: sa.Engine, spec: Spec) -> list[str]:
    """Every grade computed again from ``spec``'s rules; a line for each field whose records moved."""
    from app.factory import use_office_clock
    from app.record.grading import regrade

    use_office_clock(spec.settings.timezone)  # "now" in a grade's rules is the office's

    tables = dict(declared_metadata(spec).tables)
    lines = []
    with engine.begin() as conn:
        for e in spec.entities:
            for fname, moves in regrade(conn, spec, e, tables, now()).items():
                if all(old == new for old, new in moves):
                    continue  # nothing moved: nothing to say
                lines.append(describe_moves(f"{e.name}.{fname}", moves)[0 if spec.settings.language == "zh" else 1])
    return lines
