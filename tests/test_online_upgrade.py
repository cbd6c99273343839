"""Upgrading a live PostgreSQL database with big tables: the upgrade's transaction takes its locks
briefly or not at all, and indexes of big tables are built afterwards without locking them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.migration_helpers import Office, database
from tests.workbooks import library_sheets

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # slow: crm upgrade on a database per test

SHELF = {"entity": "book", "name": "shelf", "label": "书架", "type": "string", "required": "yes", "default": "O'Neil \\1",
         "filter": "yes", "list": "yes"}


@pytest.fixture
def office(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Office]:
    with database("postgres", tmp_path) as url:
        o = Office(tmp_path, library_sheets(), url, monkeypatch)
        assert o.upgrade().exit_code == 0
        o.insert("book", *[{"title": f"书{i}", "isbn": f"B{i}", "pages": i + 1} for i in range(40)])
        yield o
        o.engine.dispose()


def catalogue(office: Office, table: str, select: str) -> dict[str, tuple[Any, Any]]:
    """name → the other two columns of ``select`` (a catalogue query on ``:t``, ``table``'s oid)."""
    with office.engine.connect() as conn:
        return {name: (a, b) for name, a, b in conn.execute(sa.text(select), {"t": table})}


def indexes(office: Office, table: str) -> dict[str, tuple[bool, str]]:
    """name → (valid, definition) of ``table``'s indexes."""
    return catalogue(office, table, "SELECT i.relname, x.indisvalid, pg_get_indexdef(x.indexrelid) FROM pg_index x "
                                    "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = CAST(:t AS regclass)")


@pytest.fixture
def sql() -> Iterator[list[str]]:
    """Every SQL statement any engine runs during the test (the CLI makes its own engines)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def test_a_new_fields_default_reaches_every_row_without_rewriting_one(office: Office) -> None:
    with office.engine.connect() as conn:
        before = dict(conn.execute(sa.text("SELECT id, xmin::text FROM book")).all())
    office.edit(lambda s: s["fields"].append(SHELF))
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    with office.engine.connect() as conn:
        after = dict(conn.execute(sa.text("SELECT id, xmin::text FROM book")).all())
    assert after == before  # no row was written: PostgreSQL keeps the default in its catalogue
    assert {v for _, v in office.rows("book", "shelf")} == {SHELF["default"]} and len(after) == 40
    column = office.columns("book")["shelf"]
    assert column["nullable"] is False and column["default"] is None  # later rows get the application's default
    office.insert("book", {"title": "新书", "shelf": "B-2"})
    assert office.rows("book", "shelf")[-1][1] == "B-2"


def test_indexes_of_a_big_table_are_built_concurrently_after_the_commit(office: Office, sql: list[str],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.migrate import data as migrate

    monkeypatch.setattr(migrate, "ONLINE_INDEX_ROWS", 20)  # book (40 rows) counts as big; loan (2) does not
    office.edit(lambda s: s["fields"].extend([SHELF, {"entity": "loan", "name": "desk", "label": "柜台", "type": "string",
                                                      "filter": "yes"}]))
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    concurrent = [s for s in sql if "CREATE INDEX CONCURRENTLY" in s]
    assert concurrent == ['CREATE INDEX CONCURRENTLY ix_book_shelf ON book (shelf)',
                          'CREATE INDEX CONCURRENTLY lx_book_shelf_sort ON book (shelf, id)']
    # CREATE INDEX CONCURRENTLY refuses to run inside a transaction: it ran after the commit
    assert sql.index(concurrent[0]) > max(i for i, s in enumerate(sql) if s.startswith("UPDATE alembic_version")
                                          or s.startswith("INSERT INTO alembic_version"))
    assert "create index ix_book_shelf (btree: shelf) concurrently" in result.output
    assert any(s.startswith("CREATE INDEX ix_loan_desk") for s in sql)  # a small table's, in the transaction
    assert indexes(office, "book")["ix_book_shelf"][0] and indexes(office, "book")["lx_book_shelf_sort"][0]
    assert indexes(office, "loan")["ix_loan_desk"][0]
    sql.clear()
    assert "up to date" in office.upgrade().output
    assert not [s for s in sql if "CREATE INDEX" in s]  # nothing to build twice


@pytest.mark.parametrize("big", [True, False])
def test_an_index_left_invalid_by_an_interrupted_build_is_built_again(office: Office, big: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from app.migrate import data as migrate

    monkeypatch.setattr(migrate, "ONLINE_INDEX_ROWS", 20 if big else 10_000)
    with office.engine.begin() as conn:  # what a CREATE INDEX CONCURRENTLY that was cancelled leaves
        conn.execute(sa.text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = CAST('lx_book_title_trgm' AS regclass)"))
    assert indexes(office, "book")["lx_book_title_trgm"][0] is False
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    valid, definition = indexes(office, "book")["lx_book_title_trgm"]
    assert valid and "gin_trgm_ops" in definition
    assert ("concurrently" in result.output) is big


def hold(office: Office, table: str) -> tuple[sa.Connection, int]:
    """A session reading ``table`` in a transaction it keeps open (an export, a report, a forgotten
    psql), and its process id."""
    conn = office.engine.connect()
    pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    conn.execute(sa.text(f"SELECT count(*) FROM {table}"))  # noqa: S608 - a test's table
    return conn, pid


def test_upgrade_gives_up_on_a_busy_table_naming_who_holds_it_and_changes_nothing(office: Office,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from app.migrate import upgrade as migrate

    monkeypatch.setenv("CRM_UPGRADE_LOCK_TIMEOUT_MS", "200")
    monkeypatch.setattr(migrate, "UPGRADE_LOCK_PAUSE_S", 0.05)
    office.edit(lambda s: s["fields"].append(SHELF))
    before = office.snapshot()
    blocker, pid = hold(office, "book")
    try:
        started = time.perf_counter()
        result = office.run("upgrade")
        waited = time.perf_counter() - started
    finally:
        blocker.rollback()
        blocker.close()
    assert result.exit_code == 1
    assert "拿不到表锁" in result.output and "5 tries; nothing changed" in result.output
    assert f"pid {pid} (" in result.output and "holds book" in result.output and "SELECT count(*) FROM book" in result.output
    assert waited < 10  # 5 tries of 200 ms, short pauses: not queued behind the reader for ever
    assert office.snapshot() == before
    assert not list((office.generated / "versions").glob("0002_*.py"))  # the generated files are put back
    assert office.upgrade().exit_code == 0  # once the reader has gone
    assert "shelf" in office.columns("book")


def test_a_lock_held_for_a_moment_is_waited_out(office: Office, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.migrate import upgrade as migrate

    monkeypatch.setenv("CRM_UPGRADE_LOCK_TIMEOUT_MS", "200")
    monkeypatch.setattr(migrate, "UPGRADE_LOCK_PAUSE_S", 0.3)
    office.edit(lambda s: s["fields"].append(SHELF))
    blocker, _pid = hold(office, "book")

    def finish() -> None:
        time.sleep(0.5)
        blocker.rollback()
        blocker.close()

    threading.Thread(target=finish).start()
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert {v for _, v in office.rows("book", "shelf")} == {SHELF["default"]}


def test_an_index_that_could_not_be_built_is_reported_and_built_by_the_next_upgrade(office: Office,
                                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The build waits for older transactions; past its wait it gives up. The schema change is
    committed by then: its generated files stay, and the next upgrade builds the index."""
    from app.migrate import data as migrate

    wait = migrate.INDEX_WAIT_MS
    monkeypatch.setattr(migrate, "ONLINE_INDEX_ROWS", 20)
    monkeypatch.setattr(migrate, "INDEX_WAIT_MS", 300)
    office.edit(lambda s: s["fields"].append(SHELF))
    export = office.engine.connect()  # a long export: one snapshot for its whole transaction
    export.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    export.execute(sa.text("SELECT count(*) FROM member"))
    try:
        result = office.upgrade()
    finally:
        export.rollback()
        export.close()
    assert result.exit_code == 0, result.output
    assert "未完成" in result.output and "ix_book_shelf" in result.output and "in the way: pid" in result.output
    assert len(list((office.generated / "versions").glob("0002_*.py"))) == 1  # committed, so kept
    assert "shelf" in office.columns("book")
    assert any("ix_book_shelf" in text for text in office.plan()["owed"])
    # the next upgrade waits as a real one does: a concurrent build waits for every older snapshot
    # of the database, and other sessions (another test worker's) may hold one a moment
    monkeypatch.setattr(migrate, "INDEX_WAIT_MS", wait)
    result = office.upgrade()
    assert result.exit_code == 0 and "未完成" not in result.output, result.output
    assert office.plan()["owed"] == []
    found = indexes(office, "book")
    assert found["ix_book_shelf"][0] and found["lx_book_shelf_sort"][0]


def test_a_search_fields_own_index_is_not_mistaken_for_its_trigram_index(office: Office) -> None:
    office.edit(lambda s: s["fields"].append({"entity": "book", "name": "blurb", "label": "简介", "type": "string",
                                              "search": "yes", "filter": "yes"}))
    assert office.upgrade().exit_code == 0
    with office.engine.begin() as conn:  # dropped by hand, or never built
        conn.execute(sa.text("DROP INDEX ix_book_blurb"))
    assert office.upgrade().exit_code == 0
    found = indexes(office, "book")
    assert found["ix_book_blurb"][0] and "btree" in found["ix_book_blurb"][1] and "gin" in found["lx_book_blurb_trgm"][1]


# -- constraints on big tables: what must see every row is done after the commit ----------------

def after_commit(sql: list[str]) -> int:
    """The position in ``sql`` of the upgrade's alembic_version write (its transaction's end)."""
    return max(i for i, s in enumerate(sql) if s.startswith(("UPDATE alembic_version", "INSERT INTO alembic_version")))


def checks(office: Office, table: str) -> dict[str, tuple[str, bool]]:
    """name → (kind, validated) of ``table``'s constraints."""
    return catalogue(office, table, "SELECT conname, contype::text, convalidated FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)")


@pytest.fixture
def big(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.migrate import constraints
    from app.migrate import data as migrate

    monkeypatch.setattr(migrate, "ONLINE_INDEX_ROWS", 20)  # book (40 rows) counts as big
    monkeypatch.setattr(constraints, "FILL_BATCH", 4)


def test_a_field_made_required_on_a_big_table_is_filled_in_batches_after_the_commit(office: Office, sql: list[str],
                                                                                     big: None) -> None:
    office.insert("book", *[{"title": f"无页数{i}"} for i in range(6)])
    filled_before = dict(office.rows("book", "pages"))
    office.edit(lambda s: s["fields"].__setitem__(2, {**office.field("book", "pages"), "required": "yes", "default": "100"}))
    assert "6 empty values get the default 100" in " ".join(office.plan_text())
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    end = after_commit(sql)
    inside, outside = sql[:end], sql[end:]
    # inside the transaction: no row written, no NOT NULL (a scan of the table under its lock)
    assert not [s for s in inside if s.startswith("UPDATE book") or "SET NOT NULL" in s or "nn_book_pages" in s]
    # after it: filled a few rows a transaction; only then a check (saving a row still empty would
    # fail), validated without blocking anyone, and NOT NULL set on its proof
    fills = [i for i, s in enumerate(outside) if s.startswith("UPDATE book SET pages")]
    assert len(fills) >= 2 and all("book.id >= " in outside[i] and "book.id <= " in outside[i] for i in fills)
    steps = [s for s in outside if "nn_book_pages" in s or "SET NOT NULL" in s]
    assert steps == ["ALTER TABLE book ADD CONSTRAINT nn_book_pages CHECK (pages IS NOT NULL) NOT VALID",
                     "ALTER TABLE book VALIDATE CONSTRAINT nn_book_pages", "ALTER TABLE book ALTER COLUMN pages SET NOT NULL",
                     "ALTER TABLE book DROP CONSTRAINT nn_book_pages"]
    assert max(fills) < outside.index(steps[0])
    assert "made book.pages required (6 empty rows got the default 100)" in result.output
    after = dict(office.rows("book", "pages"))
    assert after == {k: (100 if v is None else v) for k, v in filled_before.items()}  # no row lost, none changed but the empty
    assert office.columns("book")["pages"]["nullable"] is False and "nn_book_pages" not in checks(office, "book")
    sql.clear()
    assert "up to date" in office.upgrade().output and not [s for s in sql if "nn_book_pages" in s]


@pytest.mark.parametrize("checked", [False, True])
def test_required_work_an_interrupted_upgrade_left_is_finished_by_the_next_or_dropped_if_made_optional(
        office: Office, big: None, checked: bool) -> None:
    office.edit(lambda s: s["fields"].__setitem__(2, {**office.field("book", "pages"), "required": "yes", "default": "100"}))
    assert office.upgrade().exit_code == 0

    def interrupted(empty: str) -> None:
        """What an upgrade stopped half-way through its fill leaves (``checked``: after its check was added)."""
        with office.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE book ALTER COLUMN pages DROP NOT NULL"))
            conn.execute(sa.text(f"UPDATE book SET pages = NULL WHERE {empty}"))  # noqa: S608 - the test's own
            if checked:
                conn.execute(sa.text("ALTER TABLE book ADD CONSTRAINT nn_book_pages CHECK (pages IS NOT NULL) NOT VALID"))

    interrupted("id <= 3")
    if checked:
        with pytest.raises(sa.exc.IntegrityError):  # meanwhile no one can save a book without pages
            office.insert("book", {"title": "没有页数"})
    assert office.plan()["owed"] == ["make book.pages required"]  # the plan tells what the next upgrade finishes
    assert "crm upgrade does it" in office.run("plan").output
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output and "made book.pages required (3 empty rows got the default 100)" in result.output
    assert office.plan()["owed"] == []
    assert office.columns("book")["pages"]["nullable"] is False and "nn_book_pages" not in checks(office, "book")
    assert [p for _, p in office.rows("book", "pages")][:3] == [100, 100, 100]
    # left half-way again, and then the office makes the field optional: no check stays, nothing is filled
    interrupted("id = 1")
    office.edit(lambda s: s["fields"].__setitem__(2, {**office.field("book", "pages"), "required": "no"}))
    assert office.upgrade().exit_code == 0
    assert "nn_book_pages" not in checks(office, "book") and office.rows("book", "pages")[0][1] is None
    office.insert("book", {"title": "没有页数"})


def test_a_new_link_on_a_big_table_has_its_rows_checked_after_the_commit(office: Office, sql: list[str], big: None) -> None:
    office.edit(lambda s: s["fields"].append({"entity": "book", "name": "donor", "label": "捐赠人", "type": "link",
                                              "link": "member"}))
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    end = after_commit(sql)
    assert ("ALTER TABLE book ADD CONSTRAINT fk_book_donor_id_member FOREIGN KEY (donor_id) REFERENCES member (id) NOT VALID"
            in sql[:end])
    assert "ALTER TABLE book VALIDATE CONSTRAINT fk_book_donor_id_member" in sql[end:]
    assert checks(office, "book")["fk_book_donor_id_member"] == ("f", True)
    assert "checked every link of book.donor_id" in result.output
    with pytest.raises(sa.exc.IntegrityError):
        office.insert("book", {"title": "无主", "donor_id": 999_999})


def test_a_field_made_unique_on_a_big_table_gets_its_index_concurrently_and_duplicates_are_reported(
        office: Office, sql: list[str], big: None) -> None:
    office.edit(lambda s: s["fields"].__setitem__(0, {**office.field("book", "title"), "unique": "yes"}))
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    end = after_commit(sql)
    assert not [s for s in sql[:end] if "uq_book_title" in s]  # no unique index built under the table's lock
    assert sql[end:].index("CREATE UNIQUE INDEX CONCURRENTLY uq_book_title ON book (title)") < sql[end:].index(
        "ALTER TABLE book ADD CONSTRAINT uq_book_title UNIQUE USING INDEX uq_book_title")
    assert checks(office, "book")["uq_book_title"] == ("u", True)
    assert "made book.title unique" in result.output
    # duplicates written before the index was there (an upgrade stopped before its build)
    with office.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE book DROP CONSTRAINT uq_book_title"))
    office.insert("book", {"title": "书1"}, {"title": "书1"})
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert "未完成" in result.output and "make book.title unique" in result.output and "'书1' ×3" in result.output
    assert "uq_book_title" not in indexes(office, "book")  # no invalid index left behind
    with office.engine.begin() as conn:
        conn.execute(sa.text("UPDATE book SET title = title || '-' || id WHERE title = '书1'"))
    result = office.upgrade()
    assert result.exit_code == 0 and "未完成" not in result.output, result.output
    assert checks(office, "book")["uq_book_title"] == ("u", True)


def test_a_valid_unique_index_an_interrupted_run_left_is_attached_not_built_again(office: Office, sql: list[str],
                                                                                  big: None) -> None:
    office.edit(lambda s: s["fields"].__setitem__(0, {**office.field("book", "title"), "unique": "yes"}))
    assert office.upgrade().exit_code == 0
    with office.engine.begin() as conn:  # stopped between the index build and the constraint taking it
        conn.execute(sa.text("ALTER TABLE book DROP CONSTRAINT uq_book_title"))
        conn.execute(sa.text("CREATE UNIQUE INDEX uq_book_title ON book (title)"))
    sql.clear()
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert not [s for s in sql if ("CREATE" in s or "DROP" in s) and "uq_book_title" in s]  # no drop, no rebuild of a million rows
    assert "ALTER TABLE book ADD CONSTRAINT uq_book_title UNIQUE USING INDEX uq_book_title" in sql
    assert checks(office, "book")["uq_book_title"] == ("u", True)


def test_a_required_check_left_on_a_field_then_removed_goes_with_it(office: Office, big: None) -> None:
    office.edit(lambda s: s["fields"].__setitem__(2, {**office.field("book", "pages"), "required": "yes", "default": "100"}))
    assert office.upgrade().exit_code == 0
    with office.engine.begin() as conn:  # an upgrade stopped after adding its check (or its NOT NULL timed out)
        conn.execute(sa.text("ALTER TABLE book ALTER COLUMN pages DROP NOT NULL"))
        conn.execute(sa.text("ALTER TABLE book ADD CONSTRAINT nn_book_pages CHECK (pages IS NOT NULL) NOT VALID"))
    office.edit(lambda s: s["fields"].pop(2))  # the field is removed: the application stops writing it
    result = office.upgrade()
    assert result.exit_code == 0, result.output
    assert "nn_book_pages" not in checks(office, "book")
    office.insert("book", {"title": "没有页数"})  # saving without the retired field works


def test_rows_filled_by_a_later_run_are_graded_again(office: Office, big: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.migrate import data as migrate
    from app.ops import evolution

    seen: list[int] = []  # how many rows were still empty each time the grades were computed

    def regrade(engine: sa.Engine, spec: Any) -> list[str]:
        with engine.connect() as conn:
            seen.append(conn.execute(sa.text("SELECT count(*) FROM book WHERE pages IS NULL")).scalar_one())
        return []

    monkeypatch.setattr(evolution, "regrade_all", regrade)
    wait = migrate.INDEX_WAIT_MS
    monkeypatch.setattr(migrate, "INDEX_WAIT_MS", 300)
    office.insert("book", *[{"title": f"无页数{i}"} for i in range(6)])
    office.edit(lambda s: s["fields"].__setitem__(2, {**office.field("book", "pages"), "required": "yes", "default": "100"}))
    editing = office.engine.connect()  # someone has an empty book open for editing, its row locked
    editing.execute(sa.text("SELECT id FROM book WHERE pages IS NULL ORDER BY id DESC LIMIT 1 FOR UPDATE"))
    try:
        result = office.upgrade()
    finally:
        editing.rollback()
        editing.close()
    assert "未完成" in result.output and "make book.pages required" in result.output, result.output
    monkeypatch.setattr(migrate, "INDEX_WAIT_MS", wait)  # the next run waits as a real one does
    result = office.upgrade()
    assert "up to date" in result.output and "made book.pages required" in result.output, result.output
    assert seen[-1] == 0 and len(seen) == 2  # the second run filled rows: they were graded again


def test_a_unique_index_an_interrupted_run_left_goes_when_the_field_is_no_longer_unique(office: Office, big: None) -> None:
    office.edit(lambda s: s["fields"].__setitem__(0, {**office.field("book", "title"), "unique": "yes"}))
    result = office.upgrade()
    assert result.exit_code == 0 and "made book.title unique" in result.output, result.output
    with office.engine.begin() as conn:  # stopped between the index build and the constraint taking it
        conn.execute(sa.text("ALTER TABLE book DROP CONSTRAINT uq_book_title"))
        conn.execute(sa.text("CREATE UNIQUE INDEX uq_book_title ON book (title)"))
    office.edit(lambda s: s["fields"].__setitem__(0, {**office.field("book", "title"), "unique": "no"}))
    assert office.upgrade().exit_code == 0
    assert "uq_book_title" not in indexes(office, "book") and "uq_book_title" not in checks(office, "book")
    office.insert("book", {"title": "书1"})  # the same title twice is allowed now


@pytest.mark.parametrize("change", ["text to number", "encrypted"])
def test_values_written_back_by_an_upgrade_do_not_undo_a_save_committed_while_it_waited(office: Office, change: str) -> None:
    """A type change converts the values it reads, an encryption encrypts them; both write them
    back. A save committed after the read must not be overwritten with the value read."""
    from app.access.crypto import decrypt, is_encrypted

    office.edit(lambda s: s["fields"].append({"entity": "book", "name": "shelf", "label": "书架", "type": "string"}))
    assert office.upgrade().exit_code == 0
    with office.engine.begin() as conn:
        conn.execute(sa.text("UPDATE book SET shelf = CAST(id + 100 AS text)"))
    office.field("book", "shelf").update({"type": "integer"} if change == "text to number" else {"encrypted": "yes"})
    office.save()
    writer = office.engine.connect()
    writer.begin()
    writer.execute(sa.text("UPDATE book SET shelf = '99' WHERE id = 1"))  # a save in progress

    def commit_once_the_upgrade_waits() -> None:
        with office.engine.connect() as watch:
            for _ in range(200):
                if watch.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one():
                    break
                time.sleep(0.05)
        writer.commit()
        writer.close()

    saver = threading.Thread(target=commit_once_the_upgrade_waits)
    saver.start()
    result = office.upgrade()
    saver.join()
    assert result.exit_code == 0, result.output
    values = dict(office.rows("book", "shelf"))
    if change == "encrypted":
        assert all(is_encrypted(v) for v in values.values())
        values = {pk: decrypt(v) for pk, v in values.items()}
    assert values[1] in (99, "99")  # the save committed while the upgrade waited for the table
    assert {pk: int(v) for pk, v in values.items() if pk != 1} == {pk: pk + 100 for pk in values if pk != 1}
