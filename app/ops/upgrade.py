"""``crm upgrade`` as one operation: one upgrade at a time per database; the plan from where the
database stands (an earlier release's database adopted first); refused as a whole with the
reasons, or generated, migrated and recorded together; then the roles' rights, the work a big
table owes after the commit (PostgreSQL, the system in use) and the grades the change moved."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from app.messages import msg
from app.migrate.applied import StaleRevisions, adopt
from app.migrate.data import UPGRADE_LOCK_TIMEOUT_MS
from app.migrate.describe import PlanLine, RefusedUpgrade
from app.migrate.upgrade import BusyUpgrade, UpgradeRunning, finish_online, one_upgrade_at_a_time
from app.ops import OpsError, evolution
from app.ops.permissions import sync_permissions
from app.spec.model import Spec

Say = Callable[[str], None]


@dataclass
class UpgradeReport:
    """What an upgrade did, for the person who ran it."""

    lines: list[PlanLine] = field(default_factory=list)  # the changes made, rows and examples
    applied: list[str] = field(default_factory=list)  # revisions run
    backup: Path | None = None  # SQLite: the copy taken first
    graded: list[str] = field(default_factory=list)  # records moved between grades
    finished: list[str] = field(default_factory=list)  # work done after the commit
    unfinished: list[str] = field(default_factory=list)  # left for the next upgrade (the system works)


class UpgradeRefused(OpsError):
    """Stored data refuses the change: ``lines`` say which steps and why; nothing changed."""

    def __init__(self, message: str, lines: list[PlanLine]):
        super().__init__(message)
        self.lines = lines


def upgrade(engine: sa.Engine, spec: Spec, out: str | Path, var: Path, allow_destructive: bool = False,
            lock_timeout_ms: int = UPGRADE_LOCK_TIMEOUT_MS, progress: Say = lambda _text: None,
            committed: Callable[[UpgradeReport], None] = lambda _report: None, sync: bool = True) -> UpgradeReport:
    """Bring the database behind ``engine`` and the generated folder ``out`` to ``spec``.

    ``committed`` hears what was done as soon as it is committed (the work after the commit can
    take long); ``progress``, each piece of that work. ``sync``: bring the roles' rights to the new
    screens too (False when the caller starts the app in this process right after, which does it)."""
    Path(var).mkdir(parents=True, exist_ok=True)
    try:
        with one_upgrade_at_a_time(engine):
            return _alone(engine, spec, Path(out), Path(var), allow_destructive, lock_timeout_ms, progress, committed, sync)
    except UpgradeRunning as exc:
        raise OpsError(str(exc)) from None


def _alone(engine: sa.Engine, spec: Spec, out: Path, var: Path, allow_destructive: bool, lock_timeout_ms: int,
           progress: Say, committed: Callable[[UpgradeReport], None], sync: bool) -> UpgradeReport:
    state = adopt(engine, out)  # a database of an earlier release gets its spec recorded, nothing else
    found = evolution.make_plan(engine, spec, out, state)
    if found.refused:
        raise UpgradeRefused(f"{msg('升级被拒绝,没有任何改动')}: {len(found.refused)} step(s)", found.refused)
    try:
        done = evolution.apply_plan(engine, found, out, var / "backups", allow_destructive, lock_timeout_ms)
    except RefusedUpgrade as exc:
        raise UpgradeRefused(msg("升级被拒绝,没有任何改动"), exc.lines) from None
    except (BusyUpgrade, StaleRevisions) as exc:
        raise OpsError(str(exc)) from None
    report = UpgradeReport(done.lines + done.dropped + [x for x in found.regenerate if x.kind == "validation"],
                           list(done.applied), done.backup)
    committed(report)
    if sync:
        sync_permissions(out, engine, spec)  # committed, its files kept: the rights now, not after the long work below
    # what big tables need after the commit, the system in use (PostgreSQL), before the regrade,
    # which must see the defaults filled in (also those an interrupted run left)
    finish_online(engine, done, progress=progress)
    if evolution.grades_changed(found) or done.applied or done.filled:
        report.graded = evolution.regrade_all(engine, spec)
    report.finished, report.unfinished = list(done.finished), list(done.unfinished)
    return report

