"""Random sequences of workbook edits, each followed by a random choice of `crm generate`,
`crm plan` and `crm upgrade`, a refused upgrade answered by undoing the edit: the database always
ends at the workbook's schema with every row, and no sequence leaves `crm upgrade` refusing once
the workbook is valid for the data (SQLite and PostgreSQL, through the CLI)."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.migrate.applied import read_applied
from generator import load_spec
from tests.migration_helpers import Office, database
from tests.test_applied_state import BOOKS, graded_library

pytestmark = pytest.mark.slow  # random sequences of upgrades

EDITS = ("add", "remove", "rename", "retype", "unique", "required", "threshold")
ACTIONS = ("generate", "plan", "upgrade", "generate+upgrade")
EXAMPLES = {"sqlite": 25, "postgres": 12}


class Sequence:
    """The office's workbook, the fields it added (each filled with numbers or with words once
    the database has it), and the workbook last upgraded without refusal."""

    def __init__(self, office: Office):
        self.office = office
        self.added: dict[str, bool] = {}  # field → its values are numbers
        self.serial = 0
        self.good = copy.deepcopy(office.sheets)

    def book_fields(self) -> list[dict[str, Any]]:
        return [f for f in self.office.sheets["fields"] if f["entity"] == "book"]

    def extra(self, n: int) -> dict[str, Any] | None:
        names = [f for f in self.book_fields() if f["name"] in self.added]
        return names[n % len(names)] if names else None

    def edit(self, kind: str, n: int) -> None:
        s, extra = self.office.sheets, self.extra(n)
        if kind == "add" or (extra is None and kind in ("remove", "rename", "required")):
            self.serial += 1
            name = f"f{self.serial}"
            s["fields"].append({"entity": "book", "name": name, "label": f"字段{self.serial}", "type": "string", "max": 40})
            self.added[name] = n % 2 == 0
        elif kind == "remove":
            s["fields"].remove(extra)
            del self.added[extra["name"]]
        elif kind == "rename":
            new = f"{extra['name']}r"
            self.added[new] = self.added.pop(extra["name"])
            extra.update(name=new, previous_name=extra["name"])
        elif kind == "retype":
            target = extra if extra is not None and n % 3 else next(f for f in s["fields"] if f["name"] == "isbn")
            target.update(type="integer", max=None)
        elif kind == "unique":
            target = extra if extra is not None and n % 3 else next(f for f in s["fields"] if f["name"] == "title")
            target.update(unique="yes")
        elif kind == "required":
            extra.update(required="yes", default="7" if n % 2 else None)
        else:
            s["grading"][0]["condition"] = f"pages >= {100 + n % 1900}"
        self.office.save()

    def fill(self) -> None:
        """Give the fields the database has just gained their values (numbers or words)."""
        spec, _ = load_spec(self.office.workbook)
        book = spec.entity("book")
        with self.office.engine.begin() as conn:
            for name, numbers in self.added.items():
                f = book.field(name)
                if f is None or f.type != "string":
                    continue
                value = "CAST(id * 7 AS VARCHAR(20))" if numbers else "'第' || CAST(id AS VARCHAR(20))"
                conn.execute(sa.text(f"UPDATE book SET {f.column} = {value} WHERE {f.column} IS NULL"))  # noqa: S608 - test names

    def upgrade(self) -> bool:
        """Upgrade; a refusal is answered by undoing the edits since the last upgrade that went through."""
        result = self.office.upgrade()
        if result.exit_code == 0:
            self.good = copy.deepcopy(self.office.sheets)
            self.fill()
            return True
        assert "REFUSED" in result.output, result.output  # refused with reasons, never a failure
        self.office.sheets = copy.deepcopy(self.good)
        self.added = {k: v for k, v in self.added.items() if any(f["name"] == k for f in self.book_fields())}
        self.office.save()
        return False

    def act(self, action: str) -> None:
        if "generate" in action:
            result = self.office.run("generate")
            assert result.exit_code == 0, result.output
        if action == "plan":
            self.office.plan()
        if "upgrade" in action:
            self.upgrade()


def books(office: Office) -> list[tuple[Any, ...]]:
    return office.rows("book", "title", "pages")


def drift(office: Office) -> list[Any]:
    """What the database lacks or has otherwise than the workbook declares (kept retired columns
    are by design, not drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from app.migrate.declared import declared_metadata

    spec, _ = load_spec(office.workbook)

    def ours(obj: object, name: str, type_: str, reflected: bool, compare_to: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        return not table.startswith(("ab_", "alembic", "crm_"))

    with office.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": ours})
        diff = compare_metadata(ctx, declared_metadata(spec))
    flat = [d for group in diff for d in (group if isinstance(group, list) else [group])]
    return [d for d in flat if not str(d[0]).startswith("remove_")]


def run_sequence(kind: str, ops: list[tuple[str, int, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    import app.ops.upgrade

    monkeypatch.setattr(app.ops.upgrade, "sync_permissions", lambda *_args: None)  # roles are not what this walks through
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        office = Office(Path(tmp), graded_library(), url, monkeypatch)
        try:
            assert office.upgrade().exit_code == 0
            office.insert("book", *BOOKS)
            start = books(office)
            walk = Sequence(office)
            for edit, n, action in ops:
                walk.edit(edit, n)
                walk.act(action)
                assert books(office) == start, (edit, action)  # no row lost, none duplicated
            if not walk.upgrade():  # the workbook as it stands, else as it last went through
                assert walk.upgrade(), "the workbook that went through before is refused now"
            assert books(office) == start
            assert drift(office) == []
            assert office.plan()["pending"] == [] and office.plan()["regenerate"] == []
            assert office.run("generate", "--check").exit_code == 0
            with office.engine.connect() as conn:
                assert read_applied(conn, office.generated).spec == load_spec(office.workbook)[0]
        finally:
            office.engine.dispose()


OPS = st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0, 10_000), st.sampled_from(ACTIONS)), min_size=2, max_size=6)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_random_edit_sequences_end_at_the_workbook_with_every_row(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    @settings(max_examples=int(os.environ.get("CRM_SEQUENCE_EXAMPLES", EXAMPLES[kind])), deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(ops=OPS)
    def walk(ops: list[tuple[str, int, str]]) -> None:
        with monkeypatch.context() as m:
            run_sequence(kind, ops, m)

    walk()
