"""Schema evolution, generator side: the chain of revision files in ``versions/`` and the text
of a new one, declaring the steps (:mod:`app.spec.steps`) from one Spec to the next.

Steps are plain data from the kernel; what they check, how they describe themselves and how they
are applied is the runtime's business (:mod:`app.migrate`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.spec.model import Spec
from app.spec.revisions import Base, RevisionFile
from app.spec.steps import CreateTable, Step, diff_specs


@dataclass
class Chain:
    """What the ``versions/`` folder becomes: the revisions kept, those dropped (generated for a
    database that never applied them), the new revision's steps, number and predecessor, and the
    revision a database is at once it has run the chain (``head``)."""

    keep: list[RevisionFile]
    drop: list[RevisionFile]
    steps: list[Step]
    number: str | None
    down: str | None
    head: str | None


def _number(revision: str | None) -> int:
    return int(revision) if revision else 0


def next_chain(files: list[RevisionFile], previous: Spec | None, spec: Spec, base: Base | None) -> Chain:
    """The revisions that take a database to ``spec``.

    With ``base`` (a database that recorded what it was upgraded to) the revisions after its
    revision were generated but never applied there: one revision from ``base`` to ``spec``
    replaces them, so an edit undone in the workbook is undone in the plan (the same revision,
    when they already were just that). Revisions up to ``base`` are history and never rewritten.
    Without ``base`` (no database to ask, or a new one) the folder is the history: ``previous``
    (the spec generated last) is its head, and a change is stacked on it.
    """
    if base is None or base.spec is None:
        last = files[-1].revision if files else None
        steps = diff_specs(previous if files else None, spec)
        number = f"{_number(last) + 1:04d}" if steps else None
        return Chain(list(files), [], steps, number, last, number or last)
    applied = [f for f in files if _number(f.revision) <= _number(base.revision)]
    tail = [f for f in files if _number(f.revision) > _number(base.revision)]
    steps = diff_specs(base.spec, spec)
    number = f"{_number(base.revision) + 1:04d}" if steps else None
    return Chain(applied, tail, steps, number, base.revision, number or base.revision)


def slug(steps: list[Step]) -> str:
    if not steps:
        return "no_change"
    first = steps[0]
    kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(first).__name__).lower()
    table = getattr(first, "table", None) or getattr(first, "new", "")
    more = f"_and_{len(steps) - 1}_more" if len(steps) > 1 else ""
    return f"{kind}_{table}{more}"[:60]


def _render_step(step: Step) -> str:
    """One step as Python source: a constructor call of literals (reprs), a column per line."""
    if isinstance(step, CreateTable):
        cols = "".join(f"        {c!r},\n" for c in step.columns)
        return f"    CreateTable(table={step.table!r}, label={step.label!r}, columns=(\n{cols}    )),"
    return f"    {step!r},"


def comment_text(text: str) -> str:
    """``text`` (a workbook's file name) made safe inside a ``#`` comment or a docstring of generated
    source: line breaks, other unprintable characters, quotes and backslashes become ``_``, so a file
    name can neither end the comment nor close the docstring."""
    return "".join(ch if ch.isprintable() and ch not in "\"'\\" else "_" for ch in text)


def render_revision(revision: str, down_revision: str | None, steps: list[Step], workbook: str, base: str = "", schema: str = "") -> str:
    """An Alembic revision declaring ``steps`` (every value rendered with repr), naming the schema
    digests it starts from (``base``) and leads to (``schema``)."""
    lines = [
        f"# generated from {comment_text(workbook)} — do not edit; run `crm generate` instead.",
        f'"""Schema change {revision}: {len(steps)} step(s)."""',
        "",
        "from app.migrate.apply import run_steps",
        "from app.spec.columns import Col  # noqa: F401",
        "from app.spec.steps import (  # noqa: F401",
        "    AddColumn, AlterColumn, CreateTable, MapValues, RenameColumn, RenameTable, RequireValues, RetireColumn,",
        "    RetireTable,",
        ")",
        "",
        f"revision = {revision!r}",
        f"down_revision = {down_revision!r}",
        "branch_labels = None",
        "depends_on = None",
        f"BASE_SCHEMA = {base!r}  # the schema it starts from (app.spec.steps.schema_digest)",
        f"SCHEMA = {schema!r}  # the schema it leads to",
        "",
        "STEPS = [",
    ]
    lines += [_render_step(step) for step in steps]
    lines += [
        "]",
        "",
        "",
        "def upgrade() -> None:",
        "    run_steps(STEPS)",
        "",
        "",
        "def downgrade() -> None:",
        "    raise RuntimeError('a downgrade is a restore: crm upgrade keeps a backup (SQLite) or runs in one transaction')",
        "",
    ]
    return "\n".join(lines)


